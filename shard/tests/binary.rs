//! The `autocache-shard` binary: configuration errors, signals, and a planned restart.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shard::testing::{Raw, V};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autocache-shard"));
    // Several shards run at once: none takes the default admin port.
    c.args(["--admin-port", "0"]);
    c
}

/// Sends SIGTERM (what `docker stop` and Kubernetes send) to the child.
fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

async fn connect(port: u16) -> Raw {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Raw::connect(addr).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("shard did not start on {addr}");
}

#[test]
fn bad_configuration_is_reported_whole_with_exit_status_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("shard.toml");
    std::fs::write(&file, "maxmemory = \"lots\"\ncolour = \"blue\"\n").expect("write");
    let out = shard()
        .args(["--maxmemory-policy", "lru", "--config"])
        .arg(&file)
        .env("AUTOCACHE_HZ", "0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "4 problems",
        "`maxmemory`",
        "`colour`: unknown configuration key",
        "`maxmemory-policy`",
        "`hz`",
        "shard.toml",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_a_restart_keeps_the_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let start = || {
        shard()
            .args([
                "--port",
                &port.to_string(),
                "--warm-tier",
                "yes",
                "--loglevel",
                "warning",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let mut p = Proc(start());
    let mut c = connect(port).await;
    assert_eq!(c.cmd(&["SET", "greeting", "hello"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["HSET", "h", "f", "v"]).await, V::Int(1));
    sigterm(&p.0);
    let exit = tokio::task::spawn_blocking(move || {
        let s = p.0.wait();
        (s, p)
    })
    .await
    .expect("join");
    assert!(exit.0.expect("wait").success(), "clean exit on SIGTERM");
    assert!(
        c.try_read().await.is_none(),
        "connection closed by the shutdown"
    );

    let _p = Proc(start());
    let mut c = connect(port).await;
    assert_eq!(
        c.cmd(&["GET", "greeting"]).await,
        V::s("hello"),
        "RAM tier was demoted on shutdown"
    );
    assert_eq!(c.cmd(&["HGET", "h", "f"]).await, V::s("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_stderr_as_plain_text_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let child = shard()
        .args(["--port", &port.to_string(), "--loglevel", "verbose"])
        .arg("--dir")
        .arg(dir.path())
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let p = Proc(child);
    let mut c = connect(port).await;
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
    sigterm(&p.0);
    let out = tokio::task::spawn_blocking(move || {
        let mut p = p;
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut s) = p.0.stdout.take() {
            s.read_to_string(&mut stdout).expect("stdout");
        }
        if let Some(mut s) = p.0.stderr.take() {
            s.read_to_string(&mut stderr).expect("stderr");
        }
        let status = p.0.wait().expect("wait");
        (status, stdout, stderr)
    })
    .await
    .expect("join");
    assert!(out.0.success(), "clean exit on SIGTERM");
    assert_eq!(out.1, "", "nothing on stdout");
    assert!(out.2.contains("shard listening"), "stderr:\n{}", out.2);
    assert!(!out.2.contains('\u{1b}'), "no colour codes:\n{}", out.2);
}
