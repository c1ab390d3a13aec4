//! Consumer-group throughput: a stream is filled with `-n` entries, then `-c` connections, each
//! a consumer of one group, loop on `XREADGROUP GROUP g <consumer> COUNT 1 STREAMS s >` and
//! `XACK s g <id>` for what they got, `-P` of each in flight (P reads, then P acks), until the
//! stream is drained. The figure is acknowledged entries per second (one XREADGROUP and one
//! XACK each), over the time from the first read to the last ack. Prints one JSON line.
//!
//! ```text
//! autocache-stream-bench -p 6379 -c 50 -n 200000 -P 16
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(
    name = "autocache-stream-bench",
    about = "XREADGROUP + XACK throughput"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// Consumer connections.
    #[arg(short, long, default_value_t = 50)]
    clients: usize,
    /// Entries added, then read and acknowledged.
    #[arg(short = 'n', long, default_value_t = 200_000)]
    entries: usize,
    /// Reads (then acks) in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// The stream's key.
    #[arg(long, default_value = "bench:stream")]
    key: String,
    /// Gives up after this many seconds.
    #[arg(long, default_value_t = 300)]
    hard_timeout: u64,
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

struct Conn {
    s: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s,
            buf: BytesMut::with_capacity(64 * 1024),
        })
    }

    async fn reply(&mut self) -> Result<BytesFrame> {
        loop {
            if let Some((frame, _, _)) = decode_bytes_mut(&mut self.buf)? {
                if let BytesFrame::Error(e) = &frame {
                    bail!("server error: {e}");
                }
                return Ok(frame);
            }
            if self.s.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed");
            }
        }
    }

    async fn call(&mut self, req: &[u8], n: usize) -> Result<Vec<BytesFrame>> {
        self.s.write_all(req).await?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.reply().await?);
        }
        Ok(out)
    }
}

/// The entry ID in an XREADGROUP reply (`[[key, [[id, fields]]]]`), `None` for a null reply.
fn entry_id(f: &BytesFrame) -> Option<Bytes> {
    let BytesFrame::Array(streams) = f else {
        return None;
    };
    let BytesFrame::Array(kv) = streams.first()? else {
        return None;
    };
    let BytesFrame::Array(entries) = kv.get(1)? else {
        return None;
    };
    let BytesFrame::Array(entry) = entries.first()? else {
        return None;
    };
    match entry.first()? {
        BytesFrame::BulkString(id) => Some(id.clone()),
        _ => None,
    }
}

async fn consume(addr: String, key: String, consumer: String, pipeline: usize) -> Result<u64> {
    let mut c = Conn::open(&addr).await?;
    let mut reads = Vec::new();
    for _ in 0..pipeline {
        encode(
            &mut reads,
            &[
                b"XREADGROUP",
                b"GROUP",
                b"g",
                consumer.as_bytes(),
                b"COUNT",
                b"1",
                b"STREAMS",
                key.as_bytes(),
                b">",
            ],
        );
    }
    let mut acked = 0u64;
    let mut acks = Vec::new();
    loop {
        let replies = c.call(&reads, pipeline).await?;
        acks.clear();
        let mut n = 0;
        for id in replies.iter().filter_map(entry_id) {
            encode(&mut acks, &[b"XACK", key.as_bytes(), b"g", &id]);
            n += 1;
        }
        if n == 0 {
            return Ok(acked);
        }
        for r in c.call(&acks, n).await? {
            if !matches!(r, BytesFrame::Integer(1)) {
                bail!("XACK answered {r:?}");
            }
        }
        acked += n as u64;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let addr = format!("{}:{}", a.host, a.port);
    let key = a.key.as_bytes();
    let mut setup = Conn::open(&addr).await?;
    let mut req = Vec::new();
    encode(&mut req, &[b"DEL", key]);
    encode(
        &mut req,
        &[b"XGROUP", b"CREATE", key, b"g", b"$", b"MKSTREAM"],
    );
    setup.call(&req, 2).await?;
    for chunk in (0..a.entries).collect::<Vec<_>>().chunks(1000) {
        req.clear();
        for i in chunk {
            encode(
                &mut req,
                &[b"XADD", key, b"*", b"job", i.to_string().as_bytes()],
            );
        }
        setup.call(&req, chunk.len()).await?;
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| {
            tokio::spawn(consume(
                addr.clone(),
                a.key.clone(),
                format!("c{i}"),
                a.pipeline.max(1),
            ))
        })
        .collect();
    let mut total = 0;
    let deadline = Duration::from_secs(a.hard_timeout);
    for t in tasks {
        total += tokio::time::timeout(deadline, t)
            .await
            .context("hard timeout")???;
    }
    let secs = started.elapsed().as_secs_f64();
    if total != a.entries as u64 {
        bail!("acknowledged {total} of {} entries", a.entries);
    }
    req.clear();
    encode(&mut req, &[b"DEL", key]);
    setup.call(&req, 1).await?;
    println!(
        "{{\"entries\":{total},\"clients\":{},\"pipeline\":{},\"seconds\":{secs:.3},\"acked_per_sec\":{:.0}}}",
        a.clients,
        a.pipeline,
        total as f64 / secs
    );
    Ok(())
}
