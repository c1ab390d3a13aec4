//! The shard against the real `redis-cli` and `redis-benchmark` (Debian's redis-tools).
//!
//! The tools must be on PATH; without them these tests fail, telling how to install them,
//! unless `AUTOCACHE_SKIP_EXTERNAL=1` is set.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shard::testing::{TestShard, V, info_field};

const TOOLS: [&str; 2] = ["redis-cli", "redis-benchmark"];
/// A hung tool is killed after this long (CI machines are slow, but not this slow).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// True if the tools are installed; false (after a notice) if they are missing and
/// `AUTOCACHE_SKIP_EXTERNAL=1`; panics with installation advice otherwise.
fn tools_present() -> bool {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("AUTOCACHE_SKIP_EXTERNAL").is_ok_and(|v| v == "1") {
        eprintln!(
            "NOTICE: skipping external-tool test: {} not found on PATH (AUTOCACHE_SKIP_EXTERNAL=1)",
            missing.join(", ")
        );
        return false;
    }
    panic!(
        "{} not found on PATH. Install them with `apt-get install redis-tools` (Debian/Ubuntu), \
         or set AUTOCACHE_SKIP_EXTERNAL=1 to skip these tests",
        missing.join(", ")
    );
}

/// Runs `program args` on a blocking thread, feeding it `stdin`, and returns its output. A
/// tool still running after `TOOL_TIMEOUT` is killed and the test fails.
async fn run_tool(program: &'static str, args: Vec<String>, stdin: Option<Vec<u8>>) -> Output {
    let pid = Arc::new(AtomicU32::new(0));
    let child_pid = pid.clone();
    let shown = format!("{program} {}", args.join(" "));
    let task = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(program)
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        child_pid.store(child.id(), Ordering::SeqCst);
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(&input).expect("write stdin");
        }
        child.wait_with_output().expect("wait")
    });
    match tokio::time::timeout(TOOL_TIMEOUT, task).await {
        Ok(out) => {
            let out = out.expect("tool thread");
            eprintln!(
                "$ {shown}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out
        }
        Err(_) => {
            let id = pid.load(Ordering::SeqCst);
            if id != 0 {
                let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            }
            panic!("`{shown}` did not finish within {TOOL_TIMEOUT:?}");
        }
    }
}

/// `redis-cli -h 127.0.0.1 -p PORT <args>`: asserts success and returns stdout.
async fn cli(srv: &TestShard, args: &[&str]) -> String {
    cli_with_stdin(srv, args, None).await
}

async fn cli_with_stdin(srv: &TestShard, args: &[&str], stdin: Option<&str>) -> String {
    let out = cli_output(srv, args, stdin).await;
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 output")
}

/// Runs redis-cli without judging its exit status (versions differ on error replies).
async fn cli_output(srv: &TestShard, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec![
        "-h".to_string(),
        "127.0.0.1".to_string(),
        "-p".to_string(),
        srv.addr.port().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    run_tool("redis-cli", all, stdin.map(|s| s.as_bytes().to_vec())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_commands() {
    if !tools_present() {
        return;
    }
    let srv = TestShard::default().await;
    assert_eq!(cli(&srv, &["set", "a", "b"]).await, "OK\n");
    assert_eq!(cli(&srv, &["get", "a"]).await, "b\n");
    assert_eq!(cli(&srv, &["--no-raw", "get", "a"]).await, "\"b\"\n");
    assert_eq!(cli(&srv, &["--no-raw", "get", "missing"]).await, "(nil)\n");
    assert_eq!(cli(&srv, &["--no-raw", "incr", "n"]).await, "(integer) 1\n");
    assert_eq!(
        cli(&srv, &["--no-raw", "mget", "a", "missing", "n"]).await,
        "1) \"b\"\n2) (nil)\n3) \"1\"\n"
    );
    assert_eq!(cli(&srv, &["set", "sp", "x y"]).await, "OK\n");
    let err = cli_output(&srv, &["--no-raw", "incr", "a"], None).await;
    assert_eq!(
        String::from_utf8_lossy(&err.stdout),
        "(error) ERR value is not an integer or out of range\n"
    );
    // What redis-cli wrote is what the server stored.
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["GET", "a"]).await, V::s("b"));
    assert_eq!(c.cmd(&["GET", "sp"]).await, V::s("x y"));

    let info = cli(&srv, &["info", "server"]).await;
    assert!(info.starts_with("# Server"), "{info:?}");
    assert_eq!(
        info_field(&info, "redis_version").as_deref(),
        Some(shard::REDIS_VERSION)
    );
    let port = srv.addr.port().to_string();
    assert_eq!(
        info_field(&info, "tcp_port").as_deref(),
        Some(port.as_str())
    );
    assert!(
        !info.contains("# Keyspace"),
        "only the server section was asked for"
    );
    drop(c);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_reads_commands_from_stdin() {
    if !tools_present() {
        return;
    }
    let srv = TestShard::default().await;
    let script =
        "set x 1\nincr x\nget x\nhset h f v\nhgetall h\nset q \"a b\"\nget q\ndel x q\nexists x\n";
    assert_eq!(
        cli_with_stdin(&srv, &[], Some(script)).await,
        "OK\n2\n2\n1\nf\nv\nOK\na b\n2\n0\n"
    );
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["HGET", "h", "f"]).await, V::s("v"));
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(1));
    drop(c);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_resp3_hello() {
    if !tools_present() {
        return;
    }
    let srv = TestShard::default().await;
    let raw = cli(&srv, &["-3", "hello", "3"]).await;
    let lines: Vec<&str> = raw.lines().collect();
    assert!(lines.contains(&"server redis"), "{raw:?}");
    assert!(lines.contains(&"proto 3"), "{raw:?}");
    let pretty = cli(&srv, &["-3", "--no-raw", "hello", "3"]).await;
    assert!(
        pretty.contains("\"proto\" => (integer) 3"),
        "HELLO 3 is printed as a map: {pretty:?}"
    );
    assert!(pretty.contains("\"version\" => \"7.2.4\""), "{pretty:?}");
    // A RESP3 null and map through redis-cli's RESP3 printer.
    assert_eq!(
        cli(&srv, &["-3", "--no-raw", "get", "nope"]).await,
        "(nil)\n"
    );
    assert_eq!(cli(&srv, &["-3", "hset", "h", "f", "v"]).await, "1\n");
    assert_eq!(
        cli(&srv, &["-3", "--no-raw", "hgetall", "h"]).await,
        "1# \"f\" => \"v\"\n"
    );
    srv.stop().await;
}

/// Requests per second per test from `redis-benchmark -q` output (progress lines are
/// overwritten with `\r`, results end with `\n`).
fn parse_benchmark(out: &str) -> Vec<(String, f64)> {
    out.split(['\r', '\n'])
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(": ")?;
            // Newer versions append ", p50=... msec" to the result line.
            let (rps, _) = rest.split_once(" requests per second")?;
            Some((name.to_string(), rps.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn benchmark_output_parses() {
    let out = "SET: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r   \r\
               SET: 50000.00 requests per second, p50=0.151 msec\n   \r\
               GET: 49019.61 requests per second\n\
               MSET (10 keys): 18691.59 requests per second, p50=0.271 msec\n\n";
    assert_eq!(
        parse_benchmark(out),
        vec![
            ("SET".to_string(), 50000.0),
            ("GET".to_string(), 49019.61),
            ("MSET (10 keys)".to_string(), 18691.59)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_clean() {
    if !tools_present() {
        return;
    }
    let srv = TestShard::default().await;
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &srv.addr.port().to_string(),
        "-n",
        "2000",
        "-c",
        "10",
        "-t",
        "set,get,incr,mset",
        "-q",
    ]
    .map(String::from)
    .to_vec();
    let out = run_tool("redis-benchmark", args, None).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redis-benchmark failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let results = parse_benchmark(&stdout);
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["SET", "GET", "INCR", "MSET (10 keys)"],
        "one result per test: {stdout:?}"
    );
    for (name, rps) in &results {
        assert!(rps.is_finite() && *rps > 0.0, "{name}: {rps} requests/s");
    }
    // The benchmark's 2000 INCRs all hit one key; its values are 3 bytes (-d 3).
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["GET", "counter:__rand_int__"]).await, V::s("2000"));
    assert_eq!(c.cmd(&["STRLEN", "key:__rand_int__"]).await, V::Int(3));
    let stats = c.cmd(&["INFO", "stats"]).await;
    let processed: u64 = info_field(stats.as_str(), "total_commands_processed")
        .expect("total_commands_processed")
        .parse()
        .expect("number");
    assert!(processed >= 8000, "{processed} commands processed");
    drop(c);
    srv.stop().await;
}

/// redis-cli's monitoring tools straight on a shard: --bigkeys and --memkeys (SCAN, TYPE,
/// the size commands, MEMORY USAGE), --stat (INFO's keyspace, memory, clients and stats
/// fields) and --latency (PING).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_tools_on_a_shard() {
    if !tools_present() {
        return;
    }
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    for i in 0..200 {
        c.cmd(&["SET", &format!("s:{i}"), &"x".repeat(i % 50)])
            .await;
    }
    let members: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    let mut push = vec!["RPUSH", "biglist"];
    push.extend(members.iter().map(String::as_str));
    c.cmd(&push).await;
    let mut sadd = vec!["SADD", "bigset"];
    sadd.extend(members.iter().map(String::as_str));
    c.cmd(&sadd).await;
    c.cmd(&["HSET", "h", "f1", "v", "f2", "v"]).await;
    c.cmd(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]).await;
    c.cmd(&["SET", "bigstr", &"y".repeat(100)]).await;
    let nkeys = 205;

    let big = cli(&srv, &["--bigkeys"]).await;
    assert!(
        big.contains(&format!("Sampled {nkeys} keys in the keyspace!")),
        "{big}"
    );
    for line in [
        "Biggest string found '\"bigstr\"' has 100 bytes",
        "Biggest   list found '\"biglist\"' has 30 items",
        "Biggest    set found '\"bigset\"' has 30 members",
        "Biggest   hash found '\"h\"' has 2 fields",
        "Biggest   zset found '\"z\"' has 3 members",
    ] {
        assert!(big.contains(line), "{line:?} in\n{big}");
    }

    let mem = cli(&srv, &["--memkeys"]).await;
    assert!(
        mem.contains(&format!("Sampled {nkeys} keys in the keyspace!")),
        "{mem}"
    );
    assert!(
        mem.contains("Biggest   list found '\"biglist\"' has"),
        "{mem}"
    );
    assert!(!mem.contains("failed"), "{mem}");

    // --stat runs until stopped: line-buffered, stopped after two seconds.
    let args = ["2", "stdbuf", "-oL", "redis-cli", "-h", "127.0.0.1", "-p"]
        .into_iter()
        .map(String::from)
        .chain([srv.addr.port().to_string()])
        .chain(["--stat", "-i", "0.2"].into_iter().map(String::from))
        .collect();
    let stat = run_tool("timeout", args, None).await;
    let text = String::from_utf8_lossy(&stat.stdout).into_owned();
    let data: Vec<&str> = text
        .lines()
        .find(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u64>().is_ok())
        })
        .unwrap_or_else(|| panic!("no --stat data line in\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(data[0], nkeys.to_string(), "keys: {text}");
    assert!(
        data[1].ends_with('K') || data[1].ends_with('M'),
        "mem: {text}"
    );
    assert!(
        data[2].parse::<u64>().is_ok_and(|n| n >= 2),
        "clients: {text}"
    );
    assert_eq!(data[3], "0", "blocked: {text}");
    assert!(
        !text.contains("SAVE") && !text.contains("LOAD") && !text.contains("AOF"),
        "no child process column: {text}"
    );

    // Not a terminal: one `min max avg samples` line after the -i interval, then exit.
    let lat = cli(&srv, &["--latency", "-i", "0.5"]).await;
    let cols: Vec<&str> = lat.split_whitespace().collect();
    assert_eq!(cols.len(), 4, "--latency: {lat}");
    assert!(cols[3].parse::<u64>().is_ok_and(|n| n > 0), "{lat}");
    drop(c);
    srv.stop().await;
}
