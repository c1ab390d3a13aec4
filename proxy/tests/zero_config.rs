//! The binary with no seeds starts an embedded local cluster and serves it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_seeds_starts_an_embedded_local_cluster() {
    let dir = temp_dir("zero-config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_autocache-proxy"))
        .args([
            "--port",
            "0",
            "--admin-port",
            "0",
            "--dir",
            &dir.display().to_string(),
            "--loglevel",
            "warning",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn autocache-proxy");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let banner = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("banner in time")
        .expect("read")
        .expect("a banner line");
    assert!(
        banner.contains("embedded local cluster of 3 shards"),
        "{banner}"
    );
    let addr = banner
        .split_whitespace()
        .nth(3)
        .map(|a| a.trim_end_matches(';'))
        .expect("address in banner")
        .to_string();
    let mut c = connect_url(&format!("redis://{addr}/")).await;
    let keys = spread_keys(30);
    for k in &keys {
        let _: () = c.set(k, "v").await.expect("set");
    }
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("dbsize");
    assert_eq!(n, 30);
    let info: String = redis::cmd("INFO")
        .arg("shards")
        .query_async(&mut c)
        .await
        .expect("info");
    assert_eq!(info.matches("status=up").count(), 3, "{info}");
    for i in 0..3 {
        assert!(dir.join(format!("shard-{i}")).is_dir());
    }
    // SIGTERM: graceful exit.
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
