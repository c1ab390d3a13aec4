//! A real Redis Cluster for tests: 3 `redis-server --cluster-enabled yes` on free loopback
//! ports (or more, with replicas: [`RedisCluster::start_with`]), created with
//! `redis-cli --cluster create`, killed by a Drop guard. Needs redis-server
//! and redis-cli (`apt-get install redis-server redis-tools`); [`tools_present`] skips the test
//! when they are missing and AUTOCACHE_SKIP_EXTERNAL=1.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::temp_dir;

pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn tools_present() -> bool {
    let ok = |b: &str| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("redis-server") && ok("redis-cli") {
        return true;
    }
    if std::env::var("AUTOCACHE_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("redis-server/redis-cli missing; skipped (AUTOCACHE_SKIP_EXTERNAL=1)");
        return false;
    }
    panic!(
        "redis-server and redis-cli are needed: `apt-get install -y redis-server redis-tools` (or set AUTOCACHE_SKIP_EXTERNAL=1 to skip)"
    );
}

/// A port free on loopback whose cluster bus port (+10000) is free too.
pub fn free_port(taken: &[u16]) -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        drop(l);
        if p < 50000
            && !taken.contains(&p)
            && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
        {
            return p;
        }
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(3, 0, &[])
    }

    /// `masters` masters with `replicas` replicas each; `extra` redis-server arguments for
    /// every node (`--cluster-node-timeout 1000`, say).
    pub fn start_with(masters: usize, replicas: usize, extra: &[&str]) -> RedisCluster {
        let dir = temp_dir("redis-cluster");
        let mut ports = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            ports.push(free_port(&ports));
        }
        let mut rc = RedisCluster {
            ports: ports.clone(),
            children: Vec::new(),
            dir: dir.clone(),
        };
        for p in &ports {
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &p.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    // DEBUG SET-ACTIVE-EXPIRE (the near cache's TTL test).
                    "--enable-debug-command",
                    "local",
                ])
                .args([
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(extra)
                .args([
                    "--dir",
                    &dir.display().to_string(),
                    "--logfile",
                    &format!("redis-{p}.log"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            rc.children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for p in &ports {
            while cli(*p, &["PING"]) != "PONG" {
                assert!(Instant::now() < deadline, "redis-server {p} did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for p in &ports {
            while !cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster not ok on {p}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Replicas can take over only once they have synced.
        for p in &ports {
            loop {
                let info = cli(*p, &["INFO", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(Instant::now() < deadline, "replica {p} did not sync");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        rc
    }

    /// `kill -9` of the node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(i) = self.ports.iter().position(|p| *p == port)
            && let Some(c) = self.children.get_mut(i)
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `(port, node id, master's node id or "-")` per node, from `CLUSTER NODES` asked on `port`.
    pub fn nodes(&self, port: u16) -> Vec<(u16, String, String)> {
        cli(port, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let addr = f.get(1)?.split('@').next()?;
                let p = addr.rsplit_once(':')?.1.parse().ok()?;
                Some((p, f.first()?.to_string(), f.get(3)?.to_string()))
            })
            .collect()
    }

    pub fn seeds(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }
}

impl RedisCluster {
    /// The node that serves `key` (the one that does not redirect it).
    pub fn owner(&self, key: &str) -> std::net::SocketAddr {
        let port = self
            .ports
            .iter()
            .copied()
            .find(|p| !cli(*p, &["EXISTS", key]).starts_with("MOVED"))
            .expect("some node owns the key");
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }
}
