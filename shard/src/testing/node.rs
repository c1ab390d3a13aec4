//! ioredis (Node.js) as a test client: `proxy/tests/clients/ioredis.js`, run with `node`
//! against a shard, the proxy, or a cluster. ioredis is installed next to the script by
//! `npm ci` (from the committed package.json and package-lock.json; `.ci/run` does it).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::TIMEOUT;

/// The directory of the client scripts and their `node_modules`.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proxy/tests/clients"
    ))
}

/// `node` when it runs and ioredis is installed in [`clients_dir`]. Otherwise `None` after a
/// NOTICE (the test skips), except under CI (`CI` set), where `.ci/run` installs both and a
/// missing one is a failure rather than a silent skip.
pub fn ioredis() -> Option<String> {
    let node = std::env::var("AUTOCACHE_NODE").unwrap_or_else(|_| "node".to_string());
    let runs = std::process::Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = clients_dir()
        .join("node_modules/ioredis/package.json")
        .is_file();
    if runs && installed {
        return Some(node);
    }
    let why = match runs {
        false => format!("no `{node}` (apt-get install -y nodejs npm)"),
        true => format!(
            "ioredis not installed (cd {} && npm ci)",
            clients_dir().display()
        ),
    };
    if std::env::var_os("CI").is_some() {
        panic!("ioredis tests need node and ioredis: {why}");
    }
    eprintln!("NOTICE: skipping an ioredis test: {why}");
    None
}

/// Runs `ioredis.js PORT FLAGS...` against `addr` (flags: `--pubsub`, `--cluster`) and fails
/// with the script's output unless it prints `ok`.
pub async fn run_ioredis(node: &str, addr: SocketAddr, flags: &[&str]) {
    let script = clients_dir().join("ioredis.js");
    let out = tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(node)
            .arg(&script)
            .arg(addr.port().to_string())
            .args(flags)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ioredis script in time")
    .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "ioredis script {flags:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
