//! redis-py (Debian's python3-redis) as a test client: the scripts print `ok` and exit 0 when
//! every assertion held.

use super::TIMEOUT;

/// A Python that can `import redis`, or `None` after a NOTICE naming `test` (the test skips).
pub fn redis_py(test: &str) -> Option<&'static str> {
    let python = ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        std::process::Command::new(py)
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if python.is_none() {
        eprintln!(
            "NOTICE: skipping {test}: no python3 with redis-py (apt-get install -y python3-redis)"
        );
    }
    python
}

/// Runs `python args...` (within [`TIMEOUT`]) and fails the test unless it printed `ok`.
pub async fn run_ok(python: &str, args: &[&str]) {
    let out = tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(python)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("redis-py in time")
    .expect("python runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "redis-py failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
