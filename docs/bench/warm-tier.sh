#!/usr/bin/env bash
# Warm-tier benchmark: a dataset several times the RAM budget, Zipf reads with 10% writes.
#
# Systems (all on 127.0.0.1, started and stopped by this script, data in a temp dir):
#   warm-2nd     autocache-shard --maxmemory $MAXMEM --warm-tier yes --warm-promotion second-access
#   warm-always  autocache-shard --maxmemory $MAXMEM --warm-tier yes --warm-promotion always
#   warm-freq    autocache-shard --maxmemory $MAXMEM --warm-tier yes --warm-promotion frequency
#   warm-2nd-nice0  warm-2nd with its disk writer at the shard's priority (warm-writer-nice 0)
#   ram          autocache-shard --maxmemory 0 (everything in RAM, no warm tier)
#   redis        redis-server --maxmemory $MAXMEM --maxmemory-policy allkeys-lru (misses what it evicted)
#
# Each system is prefilled once with every key (rate-limited, identical for all), waited on until
# the warm tier has written its backlog, and warmed up for $WARMUP s (not measured). Then $ROUNDS
# rounds, each running every system in turn:
#   closed loop: $CONNS connections, pipeline 1, $DUR s   -> throughput, hit rate, p50/p99
#   open loop:   --rate $RATE for $ODUR s                 -> p50/p99 at a fixed load
# Workload: keys 0..$KEYS-1, $SIZE-byte values, SET:GET 1:9, key pattern Z:Z (Zipf, exp $ZIPF).
# Prints medians per system as markdown tables; raw JSON and INFO snapshots stay in $OUT.
#
#   docs/bench/warm-tier.sh                                                # ~7 minutes
#   KEYS=200000 MAXMEM=16mb DUR=5 ODUR=3 ROUNDS=1 docs/bench/warm-tier.sh   # quick look
#   SYSTEMS="warm-2nd ram redis" docs/bench/warm-tier.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-1000000}
SIZE=${SIZE:-200}
MAXMEM=${MAXMEM:-64mb}
ZIPF=${ZIPF:-0.99}
CONNS=${CONNS:-10}
DUR=${DUR:-15}
ODUR=${ODUR:-10}
RATE=${RATE:-20000}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-3}
PREFILL_RATE=${PREFILL_RATE:-60000}
SYSTEMS=${SYSTEMS:-"warm-2nd warm-always ram redis"}
BASE_PORT=${BASE_PORT:-7620}
OUT=$(mktemp -d /tmp/warm-tier-bench.XXXXXX)
LT=./target/release/autocache-loadtest
SHARD=./target/release/autocache-shard

for bin in redis-server redis-cli python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard -p autocache-loadtest

declare -A PORT PID
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  # data directories (warm.redb can be hundreds of MB); keep results
  rm -rf "$OUT"/data-*
}
trap cleanup EXIT INT TERM

i=0
for sys in $SYSTEMS; do
  port=$((BASE_PORT + i)); i=$((i + 1)); PORT[$sys]=$port
  mkdir -p "$OUT/data-$sys"
  envs=()
  case $sys in
    warm-2nd)    args=(--maxmemory "$MAXMEM" --warm-tier yes --warm-promotion second-access) ;;
    warm-2nd-nice0) args=(--maxmemory "$MAXMEM" --warm-tier yes --warm-promotion second-access)
                 envs=(AUTOCACHE_WARM_WRITER_NICE=0) ;;
    warm-always) args=(--maxmemory "$MAXMEM" --warm-tier yes --warm-promotion always) ;;
    warm-freq)   args=(--maxmemory "$MAXMEM" --warm-tier yes --warm-promotion frequency) ;;
    ram)         args=(--maxmemory 0) ;;
    redis)       args=() ;;
    *) echo "unknown system $sys" >&2; exit 1 ;;
  esac
  if [ "$sys" = redis ]; then
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --loglevel warning \
      --dir "$OUT/data-$sys" --maxmemory "$MAXMEM" --maxmemory-policy allkeys-lru >"$OUT/$sys.log" 2>&1 &
  else
    env "${envs[@]}" "$SHARD" --bind 127.0.0.1 --port "$port" --dir "$OUT/data-$sys" --admin-port 0 --loglevel warning \
      --warm-demote-on-shutdown no "${args[@]}" >"$OUT/$sys.log" 2>&1 &
  fi
  PID[$sys]=$!; PIDS+=("$!")
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
{ redis-server --version; "$SHARD" --version; "$LT" --version; uname -r; nproc; } >"$OUT/versions.txt"

common=(-s 127.0.0.1 -t 1 --ratio 1:9 --key-pattern Z:Z --key-zipf-exp "$ZIPF" --key-minimum 0
        --key-maximum $((KEYS - 1)) -d "$SIZE" --hide-progress)

wait_warm_backlog() { # until the warm tier's writer has caught up (bounded: 180 s)
  local port=$1
  for _ in $(seq 1800); do
    n=$(redis-cli -p "$port" info tiering 2>/dev/null | awk -F: '/^warm_pending_ops/ {print $2+0}')
    [ -z "$n" ] || [ "$n" = 0 ] && return 0
    sleep 0.1
  done
  echo "warning: warm backlog on :$port not drained" >&2
}

snap() { # INFO snapshot: tiering, memory, keyspace, stats; plus the server's CPU ticks
  redis-cli -p "$1" info all 2>/dev/null | tr -d '\r' >"$2"
  echo "dbsize:$(redis-cli -p "$1" dbsize)" >>"$2"
  echo "proc_cpu_ticks:$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$3/stat" 2>/dev/null)" >>"$2"
}

# Prefill: every key written once, sequentially over 4 connections, at a fixed rate so that the
# warm tier's disk writer keeps up (an unthrottled pipelined prefill outruns it and gets -OOM).
for sys in $SYSTEMS; do
  port=${PORT[$sys]}
  echo "prefill $sys (:$port)" >&2
  per=$(( (KEYS + 3) / 4 ))
  timeout 600 "$LT" -s 127.0.0.1 -p "$port" -c 4 -t 1 --rate "$PREFILL_RATE" --ratio 1:0 --key-pattern S:S \
    --key-minimum 0 --key-maximum $((KEYS - 1)) -d "$SIZE" -n "$per" --hide-progress \
    --json-out-file "$OUT/prefill-$sys.json" >/dev/null 2>&1 || echo "prefill $sys: exit $?" >&2
  wait_warm_backlog "$port"
  # A seed no round uses: a round replaying the warm-up's key sequence would find the keys it
  # reads early on just promoted, which flatters the warm tier.
  timeout $((WARMUP + 30)) "$LT" -p "$port" "${common[@]}" -c "$CONNS" --test-time "$WARMUP" \
    --seed 1000 >/dev/null 2>&1 || true
  wait_warm_backlog "$port"
  snap "$port" "$OUT/after-prefill-$sys.info" "${PID[$sys]}"
done

for r in $(seq "$ROUNDS"); do
  for sys in $SYSTEMS; do
    port=${PORT[$sys]}
    echo "round $r: $sys" >&2
    snap "$port" "$OUT/r$r-$sys-before.info" "${PID[$sys]}"
    timeout $((DUR + 30)) "$LT" -p "$port" "${common[@]}" -c "$CONNS" --test-time "$DUR" \
      --seed "$r" --json-out-file "$OUT/r$r-$sys-closed.json" >/dev/null 2>&1 || echo "closed $sys: exit $?" >&2
    snap "$port" "$OUT/r$r-$sys-mid.info" "${PID[$sys]}"
    timeout $((ODUR + 30)) "$LT" -p "$port" "${common[@]}" -c "$CONNS" --rate "$RATE" --test-time "$ODUR" \
      --seed $((100 + r)) --json-out-file "$OUT/r$r-$sys-open.json" >/dev/null 2>&1 || echo "open $sys: exit $?" >&2
    wait_warm_backlog "$port"
    snap "$port" "$OUT/r$r-$sys-after.info" "${PID[$sys]}"
  done
done

python3 - "$OUT" "$ROUNDS" "$SYSTEMS" "$KEYS" "$SIZE" "$MAXMEM" "$CONNS" "$DUR" "$RATE" "$ODUR" "$(getconf CLK_TCK)" <<'PY'
import json, statistics as st, sys
out, rounds, systems, keys, size, maxmem, conns, dur, rate, odur, tck = sys.argv[1:]
rounds, systems = int(rounds), systems.split()
def info(path):
    d = {}
    for line in open(path):
        if ":" in line and not line.startswith("#"):
            k, v = line.strip().split(":", 1)
            d[k] = v
    return d
def num(d, k):
    try: return float(d.get(k, "0").split(",")[0])
    except ValueError: return 0.0
med = st.median
rows, tier = [], []
for s in systems:
    cl = [json.load(open(f"{out}/r{r}-{s}-closed.json")) for r in range(1, rounds + 1)]
    op = [json.load(open(f"{out}/r{r}-{s}-open.json")) for r in range(1, rounds + 1)]
    aft = [info(f"{out}/r{r}-{s}-after.info") for r in range(1, rounds + 1)]
    hit = lambda j: j["gets"]["hits"] / max(1, j["gets"]["hits"] + j["gets"]["misses"])
    k = [num(a, "dbsize") for a in aft]
    um = [num(a, "used_memory") for a in aft]
    rss = [num(a, "used_memory_rss") for a in aft]
    # server CPU over the closed-loop run, per operation
    cpu = [(num(info(f"{out}/r{r}-{s}-mid.info"), "proc_cpu_ticks") - num(info(f"{out}/r{r}-{s}-before.info"), "proc_cpu_ticks"))
           / float(tck) * 1e6 / max(1, j["ops_per_sec"] * float(dur)) for r, j in zip(range(1, rounds + 1), cl)]
    rows.append((s, med(hit(j) for j in cl), med(j["ops_per_sec"] for j in cl),
                 med(j["totals"]["p50_ms"] for j in cl), med(j["totals"]["p99_ms"] for j in cl),
                 med(j["totals"]["p50_ms"] for j in op), med(j["totals"]["p99_ms"] for j in op),
                 med(j["ops_per_sec"] for j in op), sum(j["errors_total"] for j in cl + op),
                 med(k), med(u / max(1, n) for u, n in zip(um, k)),
                 med(x / max(1, n) for x, n in zip(rss, k)), med(rss), med(cpu)))
    if s.startswith("warm"):
        d = {}
        for key in ("promotions", "demotions", "warm_hits", "hot_hits", "warm_writer_assists"):
            d[key] = med(num(info(f"{out}/r{r}-{s}-after.info"), key) - num(info(f"{out}/r{r}-{s}-before.info"), key)
                         for r in range(1, rounds + 1))
        a = aft[-1]
        tier.append((s, d, num(a, "hot_keys"), num(a, "warm_keys"), num(a, "hot_bytes"), num(a, "warm_bytes")))
ram = dict((r[0], r) for r in rows).get("ram")
print(f"keys {int(keys):,} x {size} B, maxmemory {maxmem}, SET:GET 1:9, Zipf; closed loop {conns} conns {dur} s; open loop {rate} req/s {odur} s; {rounds} rounds, medians\n")
print("| system | GET hit rate | closed-loop ops/s | vs ram | p50 / p99 ms (closed) | p50 / p99 ms (open, %s/s) | server CPU µs/op (closed) | errors | keys held | used_memory / key | used_memory_rss / key | used_memory_rss |" % rate)
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (s, h, ops, p50, p99, op50, op99, oops, err, k, umk, rssk, rss, cpu) in rows:
    vs = f"{ops / ram[2]:.2f}x" if ram else "-"
    print(f"| {s} | {h*100:.2f}% | {ops:,.0f} | {vs} | {p50:.3f} / {p99:.3f} | {op50:.3f} / {op99:.3f} | {cpu:.1f} | {err} | {k:,.0f} | {umk:,.0f} B | {rssk:,.0f} B | {rss/2**20:,.0f} MiB |")
if tier:
    print("\nWarm tier, per round (closed + open run), medians; tiers at the end:\n")
    print("| system | promotions | demotions | warm_hits | hot_hits | warm share of hits | writer assists | hot_keys | warm_keys | hot_bytes | warm_bytes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s, d, hk, wk, hb, wb in tier:
        share = d["warm_hits"] / max(1, d["warm_hits"] + d["hot_hits"])
        print(f"| {s} | {d['promotions']:,.0f} | {d['demotions']:,.0f} | {d['warm_hits']:,.0f} | {d['hot_hits']:,.0f} | {share*100:.1f}% | {d['warm_writer_assists']:,.0f} | {hk:,.0f} | {wk:,.0f} | {hb/2**20:,.1f} MiB | {wb/2**20:,.1f} MiB |")
print(f"\nraw results in {out}")
PY
cat "$OUT/versions.txt"
