//! Command-line flags (memtier_benchmark's names where they overlap) and the validated run
//! configuration the library takes. Every problem with the flags is reported at once.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::workload::{KeyPattern, KeySpace, Ratio, SizeRange, WorkloadSpec};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "autocache-loadtest",
    version,
    about = "A memtier_benchmark-like load generator for RESP servers and Redis Cluster",
    after_help = "Examples:\n  \
      autocache-loadtest -s 127.0.0.1 -p 6379 -c 50 -t 1 --ratio 1:1 -d 64 --key-maximum 99999 -n 20000\n  \
      autocache-loadtest -p 7000 --cluster-mode --hash-tag-group 16 --mget-ratio 0.2 --mget-keys 10 --test-time 30\n  \
      autocache-loadtest -p 7000 --tx-commands 3 --hash-tag-group 16 --pipeline 16 -n 20000\n  \
      autocache-loadtest --target 127.0.0.1:7400 --target 127.0.0.1:7401 --rounds 5 --test-time 10"
)]
pub struct Args {
    /// Server address.
    #[arg(short = 's', long = "server", default_value = "127.0.0.1")]
    pub server: String,
    /// Server port.
    #[arg(short = 'p', long = "port", default_value_t = 6379)]
    pub port: u16,
    /// Password sent with AUTH on every connection.
    #[arg(short = 'a', long = "authenticate")]
    pub authenticate: Option<String>,
    /// Connections per thread.
    #[arg(short = 'c', long = "clients", default_value_t = 50)]
    pub clients: usize,
    /// Worker threads of the runtime; connections = clients x threads.
    #[arg(short = 't', long = "threads", default_value_t = 4)]
    pub threads: usize,
    /// Requests in flight per connection (closed loop).
    #[arg(long = "pipeline", default_value_t = 1)]
    pub pipeline: usize,
    /// SET:GET ratio, e.g. 1:10.
    #[arg(long = "ratio", default_value = "1:10")]
    pub ratio: String,
    /// SET:GET key patterns: R random, S sequential, G gaussian, Z zipf.
    #[arg(long = "key-pattern", default_value = "R:R")]
    pub key_pattern: String,
    /// Zipf exponent for the Z pattern (> 0).
    #[arg(long = "key-zipf-exp", default_value_t = 0.99)]
    pub key_zipf_exp: f64,
    /// Median for the G pattern (default: middle of the range).
    #[arg(long = "key-median")]
    pub key_median: Option<f64>,
    /// Standard deviation for the G pattern (default: range/6).
    #[arg(long = "key-stddev")]
    pub key_stddev: Option<f64>,
    /// Smallest key id.
    #[arg(long = "key-minimum", default_value_t = 0)]
    pub key_minimum: u64,
    /// Largest key id (inclusive).
    #[arg(long = "key-maximum", default_value_t = 10_000_000)]
    pub key_maximum: u64,
    /// Key name prefix.
    #[arg(long = "key-prefix", default_value = "memtier-")]
    pub key_prefix: String,
    /// Value size in bytes.
    #[arg(short = 'd', long = "data-size", default_value_t = 32)]
    pub data_size: usize,
    /// Value size range MIN-MAX, uniform (overrides --data-size).
    #[arg(long = "data-size-range")]
    pub data_size_range: Option<String>,
    /// Share of reads sent as MGET (0..1).
    #[arg(long = "mget-ratio", default_value_t = 0.0)]
    pub mget_ratio: f64,
    /// Keys per MGET.
    #[arg(long = "mget-keys", default_value_t = 10)]
    pub mget_keys: usize,
    /// Every request a transaction: MULTI, N x INCR on keys of one slot, EXEC (0 = off).
    /// Replaces the SET:GET mix; use --hash-tag-group for distinct keys in one slot.
    #[arg(long = "tx-commands", default_value_t = 0)]
    pub tx_commands: usize,
    /// Name keys prefix{id/N}:id so N consecutive ids share a hash tag (a cluster slot).
    #[arg(long = "hash-tag-group", default_value_t = 0)]
    pub hash_tag_group: u64,
    /// TTL in seconds on every SET (SET .. EX).
    #[arg(long = "expiry")]
    pub expiry: Option<u64>,
    /// Write every key of the range once, pipelined, before measuring.
    #[arg(long = "prefill")]
    pub prefill: bool,
    /// Run for this many seconds.
    #[arg(long = "test-time")]
    pub test_time: Option<u64>,
    /// Requests per connection (default 10000 when --test-time is not given).
    #[arg(short = 'n', long = "requests")]
    pub requests: Option<u64>,
    /// Target rate in requests/s over all connections: open loop, latency measured from the
    /// scheduled send time.
    #[arg(long = "rate")]
    pub rate: Option<f64>,
    /// Open loop: most requests in flight per connection.
    #[arg(long = "max-inflight", default_value_t = 128)]
    pub max_inflight: usize,
    /// Route by slot as a Redis Cluster client (CLUSTER SHARDS/SLOTS, MOVED, ASK).
    #[arg(long = "cluster-mode")]
    pub cluster_mode: bool,
    /// Most redirects one request follows.
    #[arg(long = "max-redirects", default_value_t = 5)]
    pub max_redirects: u32,
    /// Seconds without a reply before a busy connection's requests count as timeouts.
    #[arg(long = "timeout", default_value_t = 5.0)]
    pub timeout: f64,
    /// Seconds to wait for outstanding replies after --test-time.
    #[arg(long = "grace", default_value_t = 5.0)]
    pub grace: f64,
    /// Hard cap on a run's seconds (default: test-time + grace, or 600 for counted runs).
    #[arg(long = "hard-timeout")]
    pub hard_timeout: Option<f64>,
    /// Seed for every random choice (connection i uses seed ^ f(i)).
    #[arg(long = "seed", default_value_t = 1)]
    pub seed: u64,
    /// Write the report as JSON here.
    #[arg(long = "json-out-file")]
    pub json_out_file: Option<PathBuf>,
    /// Write throughput.svg and latency.svg here.
    #[arg(long = "plot-dir")]
    pub plot_dir: Option<PathBuf>,
    /// Compare mode: alternate between targets (host:port), repeatable.
    #[arg(long = "target")]
    pub target: Vec<String>,
    /// Compare mode: measure -s/-p against this host:port, alternately.
    #[arg(long = "compare")]
    pub compare: Option<String>,
    /// Compare mode: rounds (each target runs once per round).
    #[arg(long = "rounds", default_value_t = 5)]
    pub rounds: usize,
    /// No progress line on stderr.
    #[arg(long = "hide-progress")]
    pub hide_progress: bool,
}

/// A validated run configuration. `Config::default()` is a small closed-loop run useful in
/// tests; the binary builds one from `Args`.
#[derive(Clone, Debug)]
pub struct Config {
    /// `host:port`. More than one = compare mode.
    pub targets: Vec<String>,
    pub rounds: usize,
    pub clients: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub workload: WorkloadSpec,
    pub expiry: Option<u64>,
    pub prefill: bool,
    /// Per connection. A run with neither this nor `test_time` is invalid.
    pub requests: Option<u64>,
    pub test_time: Option<Duration>,
    pub rate: Option<f64>,
    pub max_inflight: usize,
    pub cluster_mode: bool,
    pub max_redirects: u32,
    pub timeout: Duration,
    pub grace: Duration,
    pub hard_timeout: Option<Duration>,
    pub seed: u64,
    pub auth: Option<String>,
    pub progress: bool,
    pub json_out_file: Option<PathBuf>,
    pub plot_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            targets: vec!["127.0.0.1:6379".into()],
            rounds: 5,
            clients: 4,
            threads: 1,
            pipeline: 1,
            workload: WorkloadSpec {
                keys: KeySpace {
                    prefix: b"memtier-".to_vec(),
                    min: 0,
                    max: 9_999,
                    group_size: 0,
                },
                ratio: Ratio { set: 1, get: 10 },
                set_pattern: KeyPattern::Random,
                get_pattern: KeyPattern::Random,
                mget_ratio: 0.0,
                mget_keys: 10,
                tx_commands: 0,
                value_size: SizeRange { min: 32, max: 32 },
            },
            expiry: None,
            prefill: false,
            requests: Some(1_000),
            test_time: None,
            rate: None,
            max_inflight: 128,
            cluster_mode: false,
            max_redirects: 5,
            timeout: Duration::from_secs(5),
            grace: Duration::from_secs(5),
            hard_timeout: None,
            seed: 1,
            auth: None,
            progress: false,
            json_out_file: None,
            plot_dir: None,
        }
    }
}

impl Config {
    pub fn connections(&self) -> usize {
        self.clients * self.threads
    }

    /// The cap on one measured run: `--hard-timeout`, else test-time + grace, else 600 s.
    pub fn hard_cap(&self) -> Duration {
        self.hard_timeout.unwrap_or(match self.test_time {
            Some(t) => t + self.grace,
            None => Duration::from_secs(600),
        })
    }

    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if self.targets.is_empty() {
            errs.push("no target".into());
        }
        if self.clients == 0 || self.threads == 0 {
            errs.push("--clients and --threads must be at least 1".into());
        }
        if self.pipeline == 0 || self.pipeline > 100_000 {
            errs.push("--pipeline must be in 1..=100000".into());
        }
        if self.max_inflight == 0 {
            errs.push("--max-inflight must be at least 1".into());
        }
        let w = &self.workload;
        if w.keys.min > w.keys.max {
            errs.push("--key-minimum is larger than --key-maximum".into());
        }
        if !(0.0..=1.0).contains(&w.mget_ratio) {
            errs.push("--mget-ratio must be in [0, 1]".into());
        }
        if w.mget_keys == 0 || w.mget_keys > u16::MAX as usize {
            errs.push("--mget-keys must be in 1..=65535".into());
        }
        if w.tx_commands > u16::MAX as usize {
            errs.push("--tx-commands must be at most 65535".into());
        }
        if w.tx_commands > 0 && w.mget_ratio > 0.0 {
            errs.push("--tx-commands and --mget-ratio: every request is a transaction".into());
        }
        if w.tx_commands > 0 && self.prefill {
            errs.push(
                "--tx-commands and --prefill: the transactions INCR their keys, which the \
                 prefill's string values would refuse"
                    .into(),
            );
        }
        if w.value_size.max > 512 * 1024 * 1024 {
            errs.push("values larger than 512 MiB are not supported".into());
        }
        for p in [w.set_pattern, w.get_pattern] {
            if let KeyPattern::Zipf { exponent } = p
                && !(exponent > 0.0 && exponent.is_finite())
            {
                errs.push("--key-zipf-exp must be > 0".into());
            }
            if let KeyPattern::Gaussian {
                stddev: Some(sd), ..
            } = p
                && !(sd > 0.0 && sd.is_finite())
            {
                errs.push("--key-stddev must be > 0".into());
            }
        }
        if self.cluster_mode
            && w.mget_ratio > 0.0
            && w.keys.group_size > 0
            && w.mget_keys as u64 > w.keys.group_size
        {
            errs.push(format!(
                "--mget-keys {} exceeds --hash-tag-group {}: an MGET must fit in one group",
                w.mget_keys, w.keys.group_size
            ));
        }
        if self.requests.is_none() && self.test_time.is_none() {
            errs.push("give --requests or --test-time".into());
        }
        if self.requests == Some(0) {
            errs.push("--requests must be at least 1".into());
        }
        if self.test_time.is_some_and(|t| t.is_zero()) {
            errs.push("--test-time must be at least 1".into());
        }
        if let Some(r) = self.rate
            && !(r > 0.0 && r.is_finite())
        {
            errs.push("--rate must be > 0".into());
        }
        if self.timeout.is_zero() {
            errs.push("--timeout must be > 0".into());
        }
        // Deadlines are `Instant + Duration`, which panics on overflow: keep them sane.
        const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
        for (name, d) in [
            ("--test-time", self.test_time),
            ("--timeout", Some(self.timeout)),
            ("--grace", Some(self.grace)),
            ("--hard-timeout", self.hard_timeout),
        ] {
            if d.is_some_and(|d| d > WEEK) {
                errs.push(format!("{name} must be at most a week"));
            }
        }
        if let Some(r) = self.rate
            && r > 0.0
            && self.connections() as f64 / r > 3600.0
        {
            errs.push(format!(
                "--rate {r} is below one request per hour per connection ({} connections)",
                self.connections()
            ));
        }
        if self.targets.len() > 1 && self.rounds == 0 {
            errs.push("--rounds must be at least 1".into());
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

fn parse_patterns(args: &Args) -> Result<(KeyPattern, KeyPattern), String> {
    let one = |c: &str| -> Result<KeyPattern, String> {
        match c.trim() {
            "R" => Ok(KeyPattern::Random),
            "S" => Ok(KeyPattern::Sequential),
            "G" => Ok(KeyPattern::Gaussian {
                median: args.key_median,
                stddev: args.key_stddev,
            }),
            "Z" => Ok(KeyPattern::Zipf {
                exponent: args.key_zipf_exp,
            }),
            other => Err(format!(
                "--key-pattern: unknown pattern {other:?} (R, S, G or Z)"
            )),
        }
    };
    let (s, g) = args.key_pattern.split_once(':').ok_or_else(|| {
        format!(
            "--key-pattern {:?}: expected SET:GET, e.g. R:R",
            args.key_pattern
        )
    })?;
    Ok((one(s)?, one(g)?))
}

fn secs(name: &str, v: f64, errs: &mut Vec<String>) -> Duration {
    Duration::try_from_secs_f64(v).unwrap_or_else(|_| {
        errs.push(format!("{name} {v}: not a duration"));
        Duration::ZERO
    })
}

impl Args {
    /// Validates and converts the flags, reporting every problem at once.
    pub fn into_config(self) -> Result<Config, Vec<String>> {
        let mut errs = Vec::new();
        let ratio = Ratio::parse(&self.ratio).unwrap_or_else(|e| {
            errs.push(e);
            Ratio { set: 1, get: 10 }
        });
        let (set_pattern, get_pattern) = parse_patterns(&self).unwrap_or_else(|e| {
            errs.push(e);
            (KeyPattern::Random, KeyPattern::Random)
        });
        let value_size = match &self.data_size_range {
            Some(r) => SizeRange::parse(r).unwrap_or_else(|e| {
                errs.push(e);
                SizeRange { min: 1, max: 1 }
            }),
            None => SizeRange {
                min: self.data_size,
                max: self.data_size,
            },
        };
        let mut targets = self.target.clone();
        if targets.is_empty() {
            targets.push(format!("{}:{}", self.server, self.port));
            if let Some(c) = &self.compare {
                targets.push(c.clone());
            }
        } else if self.compare.is_some() {
            errs.push("use either --target (repeated) or --compare, not both".into());
        }
        let test_time = self.test_time.map(Duration::from_secs);
        let requests = match (self.requests, test_time) {
            (None, None) => Some(10_000),
            (r, _) => r,
        };
        let timeout = secs("--timeout", self.timeout, &mut errs);
        let grace = secs("--grace", self.grace, &mut errs);
        let hard_timeout = self
            .hard_timeout
            .map(|h| secs("--hard-timeout", h, &mut errs));
        let config = Config {
            targets,
            rounds: self.rounds,
            clients: self.clients,
            threads: self.threads,
            pipeline: self.pipeline,
            workload: WorkloadSpec {
                keys: KeySpace {
                    prefix: self.key_prefix.into_bytes(),
                    min: self.key_minimum,
                    max: self.key_maximum,
                    group_size: self.hash_tag_group,
                },
                ratio,
                set_pattern,
                get_pattern,
                mget_ratio: self.mget_ratio,
                mget_keys: self.mget_keys,
                tx_commands: self.tx_commands,
                value_size,
            },
            expiry: self.expiry,
            prefill: self.prefill,
            requests,
            test_time,
            rate: self.rate,
            max_inflight: self.max_inflight,
            cluster_mode: self.cluster_mode,
            max_redirects: self.max_redirects,
            timeout,
            grace,
            hard_timeout,
            seed: self.seed,
            auth: self.authenticate,
            progress: !self.hide_progress,
            json_out_file: self.json_out_file,
            plot_dir: self.plot_dir,
        };
        if let Err(more) = config.validate() {
            errs.extend(more);
        }
        if errs.is_empty() {
            Ok(config)
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, Vec<String>> {
        let mut v = vec!["autocache-loadtest"];
        v.extend_from_slice(args);
        Args::try_parse_from(v).expect("flags parse").into_config()
    }

    #[test]
    fn memtier_style_flags() {
        let c = parse(&[
            "-s",
            "127.0.0.1",
            "-p",
            "7400",
            "-c",
            "50",
            "-t",
            "2",
            "--pipeline",
            "16",
            "--ratio",
            "1:1",
            "--key-pattern",
            "S:Z",
            "--key-maximum",
            "99999",
            "-d",
            "64",
            "-n",
            "1000",
        ])
        .expect("valid");
        assert_eq!(c.targets, ["127.0.0.1:7400"]);
        assert_eq!(c.connections(), 100);
        assert_eq!(c.pipeline, 16);
        assert_eq!(c.workload.ratio, Ratio { set: 1, get: 1 });
        assert_eq!(c.workload.set_pattern, KeyPattern::Sequential);
        assert_eq!(c.workload.get_pattern, KeyPattern::Zipf { exponent: 0.99 });
        assert_eq!(c.workload.value_size, SizeRange { min: 64, max: 64 });
        assert_eq!(c.requests, Some(1000));
        assert_eq!(c.hard_cap(), Duration::from_secs(600));
    }

    #[test]
    fn defaults_to_ten_thousand_requests_and_time_runs_get_a_cap() {
        let c = parse(&[]).expect("valid");
        assert_eq!(c.requests, Some(10_000));
        let c = parse(&["--test-time", "10", "--grace", "2"]).expect("valid");
        assert_eq!(c.requests, None);
        assert_eq!(c.hard_cap(), Duration::from_secs(12));
    }

    #[test]
    fn compare_targets() {
        let c = parse(&["-p", "1", "--compare", "127.0.0.1:2"]).expect("valid");
        assert_eq!(c.targets, ["127.0.0.1:1", "127.0.0.1:2"]);
        let c = parse(&["--target", "a:1", "--target", "b:2", "--rounds", "3"]).expect("valid");
        assert_eq!((c.targets.len(), c.rounds), (2, 3));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = parse(&[
            "--ratio",
            "x",
            "--key-pattern",
            "Q:R",
            "--key-minimum",
            "10",
            "--key-maximum",
            "1",
            "--mget-ratio",
            "2",
            "--pipeline",
            "0",
        ])
        .expect_err("invalid");
        assert_eq!(errs.len(), 5, "{errs:?}");
    }

    #[test]
    fn absurd_durations_and_rates_are_refused() {
        let errs = parse(&[
            "--test-time",
            "18446744073709551615",
            "--hard-timeout",
            "1e300",
            "--rate",
            "1e-9",
        ])
        .expect_err("invalid");
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn transactions() {
        let c = parse(&["--tx-commands", "3", "--hash-tag-group", "16"]).expect("valid");
        assert_eq!(c.workload.tx_commands, 3);
        let errs = parse(&["--tx-commands", "70000", "--prefill", "--mget-ratio", "0.1"])
            .expect_err("invalid");
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn cluster_mget_must_fit_a_group() {
        let errs = parse(&[
            "--cluster-mode",
            "--hash-tag-group",
            "4",
            "--mget-ratio",
            "0.5",
            "--mget-keys",
            "8",
        ])
        .expect_err("invalid");
        assert!(errs[0].contains("exceeds"), "{errs:?}");
    }
}
