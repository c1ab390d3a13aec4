//! Pub/sub delivery throughput: `--subscribers` connections SUBSCRIBE to one channel, one
//! publisher connection sends `--messages` PUBLISHes pipelined `--pipeline` deep, and the figure
//! is messages delivered per second: every subscriber's messages counted, over the time from
//! the first PUBLISH to the last message read. Prints one JSON line.
//!
//! ```text
//! autocache-pubsub-bench -p 6379 --subscribers 100 --messages 20000 --pipeline 32 -d 64
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(name = "autocache-pubsub-bench", about = "PUBLISH fan-out throughput")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// Subscriber connections (all on one channel).
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// PUBLISHes sent.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    messages: usize,
    /// PUBLISHes in flight on the publisher connection.
    #[arg(long, default_value_t = 32)]
    pipeline: usize,
    /// Payload bytes.
    #[arg(short = 'd', long, default_value_t = 64)]
    data_size: usize,
    /// Gives up after this many seconds.
    #[arg(long, default_value_t = 120)]
    hard_timeout: u64,
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads until `n` complete replies of `frame_len` bytes each arrived (fixed-size frames:
/// every message of the run has the same length).
async fn read_frames(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    frame_len: usize,
    n: usize,
) -> Result<()> {
    let want = frame_len * n;
    let mut got = 0usize;
    while got < want {
        let k = s.read_buf(buf).await?;
        if k == 0 {
            bail!(
                "connection closed after {} of {n} messages",
                got / frame_len
            );
        }
        got += k;
        buf.clear();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let addr = format!("{}:{}", a.host, a.port);
    let channel = b"bench:ch".as_slice();
    let payload = vec![b'x'; a.data_size];
    // `*3 $7 message $8 bench:ch $N payload`, as a RESP2 subscriber reads it.
    let frame_len = encode(&[b"message", channel, &payload]).len();
    let sub_req = encode(&[b"SUBSCRIBE", channel]);
    // `*3 $9 subscribe $8 bench:ch :1`: the two bulks' encoding plus the count.
    let confirm_len = encode(&[b"subscribe", channel]).len() + ":1\r\n".len();
    let mut subs = Vec::with_capacity(a.subscribers);
    for _ in 0..a.subscribers {
        let mut s = TcpStream::connect(&addr).await.context("connect")?;
        s.set_nodelay(true)?;
        s.write_all(&sub_req).await?;
        subs.push(s);
    }
    for s in &mut subs {
        let mut b = vec![0u8; confirm_len];
        s.read_exact(&mut b)
            .await
            .context("subscribe confirmation")?;
        if !b.starts_with(b"*3\r\n$9\r\nsubscribe") {
            bail!("unexpected confirmation: {}", String::from_utf8_lossy(&b));
        }
    }
    let n = a.messages;
    let deadline = Duration::from_secs(a.hard_timeout);
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut buf = BytesMut::with_capacity(256 * 1024);
                read_frames(&mut s, &mut buf, frame_len, n).await?;
                Ok::<Instant, anyhow::Error>(Instant::now())
            })
        })
        .collect();
    let mut publ = TcpStream::connect(&addr).await?;
    publ.set_nodelay(true)?;
    let req = encode(&[b"PUBLISH", channel, &payload]);
    let start = Instant::now();
    let run = async {
        let (mut r, mut w) = publ.split();
        let sender = async {
            let batch: Vec<u8> = req.repeat(a.pipeline.max(1));
            let mut sent = 0;
            while sent < n {
                let k = a.pipeline.max(1).min(n - sent);
                w.write_all(&batch[..req.len() * k]).await?;
                sent += k;
            }
            Ok::<(), anyhow::Error>(())
        };
        // PUBLISH replies are `:<count>\r\n`: counted by their line ends.
        let replies = async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut lines = 0;
            while lines < n {
                let k = r.read(&mut buf).await?;
                if k == 0 {
                    bail!("publisher connection closed");
                }
                lines += buf[..k].iter().filter(|&&b| b == b'\n').count();
            }
            Ok(())
        };
        tokio::try_join!(sender, replies)?;
        let published = start.elapsed();
        let mut last = start;
        for t in readers {
            last = last.max(t.await??);
        }
        Ok::<(Duration, Duration), anyhow::Error>((published, last - start))
    };
    let (published, delivered) = tokio::time::timeout(deadline, run)
        .await
        .context("hard timeout")??;
    let total = n * a.subscribers;
    println!(
        "{{\"subscribers\":{},\"messages\":{},\"pipeline\":{},\"data_size\":{},\"delivered\":{},\"publish_secs\":{:.4},\"deliver_secs\":{:.4},\"delivered_per_sec\":{:.0},\"published_per_sec\":{:.0}}}",
        a.subscribers,
        n,
        a.pipeline,
        a.data_size,
        total,
        published.as_secs_f64(),
        delivered.as_secs_f64(),
        total as f64 / delivered.as_secs_f64(),
        n as f64 / published.as_secs_f64(),
    );
    Ok(())
}
