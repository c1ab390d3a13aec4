//! Process plumbing shared by the binaries: logging set-up and the shutdown signal.

/// Installs the global tracing subscriber: `RUST_LOG` if set, else the configured level (Redis
/// names accepted, see [`crate::settings::log_filter`]); JSON lines when `json`.
pub fn init_logging(level: &str, json: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| crate::settings::log_filter(level))
        .unwrap_or_else(|| "info".into());
    // Logs go to standard error (standard output is left to the proxy's start-up banner), in
    // colour only on a terminal: log files, `docker logs` and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on ctrl-c or SIGTERM (what `docker stop` and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// This process's CPU time so far, (system, user) seconds, for INFO's `used_cpu_sys` and
/// `used_cpu_user`; None where `/proc/self/stat` is missing (not Linux).
pub fn cpu_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_times(&stat)
}

/// Fields 14 (utime) and 15 (stime) of `/proc/<pid>/stat`, in clock ticks. The kernel reports
/// them in USER_HZ, which is 100 on every Linux architecture's user ABI. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from its closing `)`.
fn parse_cpu_times(stat: &str) -> Option<(f64, f64)> {
    const USER_HZ: f64 = 100.0;
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): utime and stime are its 12th and 13th fields.
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let sys: u64 = fields.next()?.parse().ok()?;
    Some((sys as f64 / USER_HZ, user as f64 / USER_HZ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 1 0";
        assert_eq!(super::parse_cpu_times(stat), Some((0.75, 2.5)));
        assert_eq!(super::parse_cpu_times("garbage"), None);
        assert!(super::cpu_times().is_none_or(|(s, u)| s >= 0.0 && u >= 0.0));
    }
}
