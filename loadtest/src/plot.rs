//! SVG charts: throughput over time, and latency by percentile (HdrHistogram style: the x axis
//! counts nines, so 90%, 99%, 99.9% are evenly spaced; log-scaled latency).

use std::path::Path;

use anyhow::anyhow;
use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::Report;
use crate::workload::OpKind;

/// A named line.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    /// Lines of one group share a colour (compare mode: one colour per target).
    pub group: usize,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// `(nines, ms)` points of a latency histogram in µs: nines = -log10(1 - q), up to the
/// resolution the sample count supports, ending at the maximum.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let top = (h.len() as f64).log10().clamp(1.0, 6.0);
    let steps = (top * 50.0) as usize;
    let mut pts: Vec<(f64, f64)> = (0..steps)
        .map(|i| {
            let x = top * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect();
    pts.push((top, h.max() as f64 / 1000.0));
    pts
}

fn nines_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

pub fn throughput_svg(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let xmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("requests / s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err)?;
    for s in series {
        let c = color(s.group);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

pub fn latency_svg(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let xmax = pts().map(|p| p.0).fold(1.0, f64::max);
    let ymin = pts()
        .map(|p| p.1)
        .filter(|&y| y > 0.0)
        .fold(f64::MAX, f64::min);
    let ymin = if ymin == f64::MAX { 0.001 } else { ymin * 0.8 };
    let ymax = pts().map(|p| p.1).fold(ymin * 10.0, f64::max) * 1.25;
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..xmax, (ymin..ymax).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, log scale)")
        .x_labels(((xmax.ceil() as usize) + 1).max(2))
        .x_label_formatter(&nines_label)
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(err)?;
    for s in series {
        let c = color(s.group);
        let clipped = s.points.iter().map(|&(x, y)| (x, y.max(ymin)));
        chart
            .draw_series(LineSeries::new(clipped, c.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// `throughput.svg` and `latency.svg` for reports labelled and grouped (one report, or every run
/// of a comparison, grouped by target). With one report, the lines are per operation type; with
/// several, one line per report (totals), coloured by group.
pub fn write_plots(
    dir: &Path,
    reports: &[(String, usize, &Report)],
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut thr = Vec::new();
    let mut lat = Vec::new();
    if let [(_, _, r)] = reports {
        thr.push(Series {
            label: "total".into(),
            group: 0,
            points: r
                .timeline
                .iter()
                .map(|p| (p.t_secs, p.ops_per_sec))
                .collect(),
        });
        type Rate = fn(&crate::report::TimelinePoint) -> f64;
        let per_op: [(&str, Rate, u64); OpKind::COUNT] = [
            ("SET", |p| p.set_per_sec, r.sets.count),
            ("GET", |p| p.get_per_sec, r.gets.count),
            ("MGET", |p| p.mget_per_sec, r.mgets.count),
            ("TX", |p| p.tx_per_sec, r.transactions.count),
        ];
        for (i, (name, f, count)) in per_op.into_iter().enumerate() {
            if count > 0 {
                thr.push(Series {
                    label: name.into(),
                    group: i + 1,
                    points: r.timeline.iter().map(|p| (p.t_secs, f(p))).collect(),
                });
            }
        }
        if let Some(h) = &r.histograms {
            lat.push(Series {
                label: "total".into(),
                group: 0,
                points: percentile_curve(&h.total),
            });
            for op in OpKind::ALL {
                let (name, i) = (op.name(), op.index());
                if let Some(hist) = h.per_op.get(i)
                    && !hist.is_empty()
                {
                    lat.push(Series {
                        label: name.into(),
                        group: i + 1,
                        points: percentile_curve(hist),
                    });
                }
            }
        }
    } else {
        for (label, group, r) in reports {
            thr.push(Series {
                label: label.clone(),
                group: *group,
                points: r
                    .timeline
                    .iter()
                    .map(|p| (p.t_secs, p.ops_per_sec))
                    .collect(),
            });
            if let Some(h) = &r.histograms {
                lat.push(Series {
                    label: label.clone(),
                    group: *group,
                    points: percentile_curve(&h.total),
                });
            }
        }
    }
    let title = match reports {
        [(label, _, _)] => label.clone(),
        _ => "comparison".into(),
    };
    let t = dir.join("throughput.svg");
    let l = dir.join("latency.svg");
    throughput_svg(&t, &format!("Throughput: {title}"), &thr)?;
    latency_svg(&l, &format!("Latency by percentile: {title}"), &lat)?;
    Ok(vec![t, l])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::new_histogram;

    #[test]
    fn curve_is_monotonic_and_ends_at_max() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).expect("auto-resizing");
        }
        let c = percentile_curve(&h);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let last = c.last().expect("points");
        assert!((last.1 - 10.0).abs() < 0.01, "{last:?}");
        assert!((last.0 - 4.0).abs() < 1e-9);
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&3.0), "99.9%");
        assert_eq!(nines_label(&0.0), "0%");
    }

    #[test]
    fn writes_svg_files() {
        let dir = std::env::temp_dir().join(format!("loadtest-plot-{}", std::process::id()));
        let s = vec![Series {
            label: "x".into(),
            group: 0,
            points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)],
        }];
        std::fs::create_dir_all(&dir).expect("dir");
        throughput_svg(&dir.join("t.svg"), "t", &s).expect("throughput");
        latency_svg(&dir.join("l.svg"), "l", &s).expect("latency");
        let svg = std::fs::read_to_string(dir.join("l.svg")).expect("read");
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
