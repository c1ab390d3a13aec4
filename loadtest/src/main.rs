//! `autocache-loadtest`: flags → config → a multi-thread runtime with `-t` workers → run →
//! table on stdout, JSON and plots on request.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use loadtest::{Args, Config, plot, run, run_compare};

fn main() -> ExitCode {
    let config = match Args::parse().into_config() {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async(config: &Config) -> anyhow::Result<()> {
    if config.targets.len() > 1 {
        let cmp = run_compare(config).await?;
        print!("{}", cmp.table());
        if let Some(path) = &config.json_out_file {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            serde_json::to_writer_pretty(f, &cmp)?;
        }
        if let Some(dir) = &config.plot_dir {
            let runs: Vec<(String, usize, &loadtest::Report)> = cmp
                .rounds
                .iter()
                .enumerate()
                .flat_map(|(r, runs)| {
                    runs.iter().enumerate().map(move |(i, rep)| {
                        (
                            format!("{} r{}", loadtest::compare::target_letter(i), r + 1),
                            i,
                            rep,
                        )
                    })
                })
                .collect();
            for p in plot::write_plots(dir, &runs)? {
                eprintln!("wrote {}", p.display());
            }
        }
        return Ok(());
    }
    let report = run(config).await?;
    print!("{}", report.table());
    if let Some(path) = &config.json_out_file {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(f, &report)?;
    }
    if let Some(dir) = &config.plot_dir {
        for p in plot::write_plots(dir, &[(report.target.clone(), 0, &report)])? {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}
