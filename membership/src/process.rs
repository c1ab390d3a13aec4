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
