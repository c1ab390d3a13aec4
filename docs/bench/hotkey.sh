#!/usr/bin/env bash
# hotkey.sh — the proxy's near cache under a Zipf(1.1) load, on vs off, and its staleness.
#
# 3 autocache-shard (ports 17601-17603) behind autocache-proxy (17610, static split), all
# release builds, started here and stopped by PID at exit. The keyspace (1M keys, 64 B) is
# prefilled once through the proxy. Then, REPS times, interleaved:
#   zipf-on / zipf-off : autocache-loadtest -t 1 -c 50 --ratio 1:19 (95% GETs)
#                        --key-pattern Z:Z --key-zipf-exp 1.1 --key-maximum 999999 -d 64
#                        --test-time $SECS, through a fresh proxy with the near cache on / off
#                        (AUTOCACHE_NEAR_CACHE, hotkey-threshold $THRESHOLD). Per-shard load = the requests the proxy sent
#                        to each shard during the run (INFO shards, before/after), max/mean.
#   twem               : the zipf load through twemproxy (nutcracker, ketama, port 17620) over 3
#                        redis-servers (17621-17623, capped like the shards), prefilled the same
#                        way; per-server load = total_commands_processed, before/after.
#   cold-on / cold-off : the same with uniform keys (R:R, 0:1 reads only) and hot-key detection
#                        on / off (AUTOCACHE_HOTKEY_ENABLED): the cost of detection on cold keys.
# Staleness: proxies A (17610) and B (17611), docs/bench/staleness.py: SET through B, time
# until A returns the new value, 1000 samples, with the key hot and cached on A; with the
# shards uncapped (their CPU caps are lifted first).
# PROXY_ENV="AUTOCACHE_HOTKEY_CAPACITY=1024 ..." adds settings to every proxy.
# PROXY_BIN=<path> runs another autocache-proxy build (an A/B against this one).
# EXPIRY=3600 gives every key written (prefill and the runs' SETs) a TTL in seconds, so the near
# cache's fills read a TTL and its hits check a deadline (the cost of its TTL handling).
# SHARD_CPU=20 caps every shard at 20% of one core (a cgroup v1 cpu quota, as root): shards
# then stand for separate, smaller machines, so the shard holding the hottest keys saturates
# first, as it does in production; without it, on a 2-core machine the proxy and the load
# generator are the bottleneck and the shards idle.
# SHARD_CPU_PERIOD_US (default 100000) is the quota's period: a shorter one (20000; the quota must stay at least 1000) throttles
# the same share in shorter pauses, closer to a slower machine than to one frozen for 95 ms.
# CONNS (default 50) connections; RUNS (default "zipf-on zipf-off cold-on cold-off") picks runs.
# Output: $OUT/runs.tsv, $OUT/staleness.json, logs; a summary table (medians) on stdout with
# shard requests per client operation and the share of GETs the near cache served.
set -u
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
SECS=${SECS:-10}
THRESHOLD=${THRESHOLD:-100}   # hotkey-threshold (ops/s) of the zipf runs
CONNS=${CONNS:-50}
RUNS=${RUNS:-zipf-on zipf-off cold-on cold-off}
PERIOD=${SHARD_CPU_PERIOD_US:-100000}
OUT=${OUT:-/tmp/autocache-hotkey-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p autocache-shard -p autocache-proxy -p autocache-loadtest || exit 1
S=./target/release/autocache-shard
P=${PROXY_BIN:-./target/release/autocache-proxy}
L=./target/release/autocache-loadtest
PIDS=()
CG=/sys/fs/cgroup/cpu
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null
  for port in 17601 17602 17603 17621 17622 17623; do [ -d "$CG/autocache-hk-$port" ] && rmdir "$CG/autocache-hk-$port"; done
}
trap cleanup EXIT
cap() { # port pid
  [ -n "${SHARD_CPU:-}" ] || return 0
  mkdir -p "$CG/autocache-hk-$1" &&
    echo "$PERIOD" >"$CG/autocache-hk-$1/cpu.cfs_period_us" &&
    echo $((SHARD_CPU * PERIOD / 100)) >"$CG/autocache-hk-$1/cpu.cfs_quota_us" &&
    echo "$2" >"$CG/autocache-hk-$1/cgroup.procs" || { echo "cannot cap CPU (cgroup v1 cpu, root)"; exit 1; }
}
wait_port() { for _ in $(seq 1 200); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }

TTLARGS=()
[ -n "${EXPIRY:-}" ] && TTLARGS=(--expiry "$EXPIRY")
SEEDS=127.0.0.1:17601,127.0.0.1:17602,127.0.0.1:17603
for port in 17601 17602 17603; do
  mkdir -p "$OUT/shard-$port"
  $S --port $port --dir "$OUT/shard-$port" --admin-port 0 --loglevel warning >"$OUT/shard-$port.log" 2>&1 &
  PIDS+=($!)
  cap $port $!
  wait_port $port || { echo "shard $port did not start"; exit 1; }
done

start_proxy() { # port, env...
  local port=$1; shift
  env ${PROXY_ENV:-} "$@" $P --port "$port" --seeds $SEEDS --admin-port 0 --loglevel warning >>"$OUT/proxy-$port.log" 2>&1 &
  PROXY_PID=$!
  wait_port "$port" || { echo "proxy $port did not start"; exit 1; }
}
stop_proxy() { kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null; }
shard_requests() { redis-cli -p 17610 INFO shards | tr -d '\r' | sed -n 's/.*requests=\([0-9]*\).*/\1/p' | tr '\n' ' '; }

start_proxy 17610
$L -p 17610 -t 1 -c 50 --prefill --ratio 1:0 --key-minimum 0 --key-maximum 999999 -d 64 \
  -n 1 --hide-progress "${TTLARGS[@]}" >"$OUT/prefill.log" 2>&1
stop_proxy

if [[ " $RUNS " == *" twem "* ]]; then
  for port in 17621 17622 17623; do
    redis-server --port $port --save '' --appendonly no --daemonize no --loglevel warning >"$OUT/redis-$port.log" 2>&1 &
    PIDS+=($!)
    cap $port $!
    wait_port $port || { echo "redis-server $port did not start"; exit 1; }
  done
  printf '%s\n' "hk:" "  listen: 127.0.0.1:17620" "  hash: fnv1a_64" "  distribution: ketama" \
    "  redis: true" "  auto_eject_hosts: false" "  timeout: 5000" "  servers:" \
    "   - 127.0.0.1:17621:1 s1" "   - 127.0.0.1:17622:1 s2" "   - 127.0.0.1:17623:1 s3" >"$OUT/nutcracker.yml"
  nutcracker -c "$OUT/nutcracker.yml" -o "$OUT/nutcracker.log" -s 17629 -a 127.0.0.1 &
  PIDS+=($!)
  wait_port 17620 || { echo "nutcracker did not start"; exit 1; }
  $L -p 17620 -t 1 -c 50 --prefill --ratio 1:0 --key-minimum 0 --key-maximum 999999 -d 64 \
    -n 1 --hide-progress "${TTLARGS[@]}" >"$OUT/prefill-twem.log" 2>&1
fi
server_commands() {
  for port in 17621 17622 17623; do
    redis-cli -p $port INFO stats | tr -d '\r' | sed -n 's/^total_commands_processed:\([0-9]*\)/\1/p'
  done | tr '\n' ' '
}

printf 'run\trep\tops_per_sec\tp99_ms\terrors\tshard_requests_before\tshard_requests_after\tops\treads\tcache_hits\n' >"$OUT/runs.tsv"
for rep in $(seq 1 "$REPS"); do
  for run in $RUNS; do
    case $run in
      zipf-on)  ENVV=(AUTOCACHE_NEAR_CACHE=yes AUTOCACHE_HOTKEY_THRESHOLD=$THRESHOLD); KP=(--ratio 1:19 --key-pattern Z:Z --key-zipf-exp 1.1) ;;
      zipf-off) ENVV=(AUTOCACHE_NEAR_CACHE=no AUTOCACHE_HOTKEY_THRESHOLD=$THRESHOLD);  KP=(--ratio 1:19 --key-pattern Z:Z --key-zipf-exp 1.1) ;;
      cold-on)  ENVV=(AUTOCACHE_HOTKEY_ENABLED=yes); KP=(--ratio 0:1 --key-pattern R:R) ;;
      cold-off) ENVV=(AUTOCACHE_HOTKEY_ENABLED=no);  KP=(--ratio 0:1 --key-pattern R:R) ;;
      twem)     KP=(--ratio 1:19 --key-pattern Z:Z --key-zipf-exp 1.1) ;;
    esac
    if [ "$run" = twem ]; then
      before=$(server_commands)
      $L -p 17620 -t 1 -c "$CONNS" "${KP[@]}" --key-minimum 0 --key-maximum 999999 -d 64 \
        --test-time "$SECS" --hide-progress "${TTLARGS[@]}" --json-out-file "$OUT/$run-$rep.json" >"$OUT/$run-$rep.log" 2>&1
      after=$(server_commands)
      : >"$OUT/$run-$rep.hotkeys"
    else
      start_proxy 17610 "${ENVV[@]}"
      before=$(shard_requests)
      $L -p 17610 -t 1 -c "$CONNS" "${KP[@]}" --key-minimum 0 --key-maximum 999999 -d 64 \
        --test-time "$SECS" --hide-progress "${TTLARGS[@]}" --json-out-file "$OUT/$run-$rep.json" >"$OUT/$run-$rep.log" 2>&1
      after=$(shard_requests)
      redis-cli -p 17610 INFO hotkeys | tr -d '\r' | grep -E '^near_cache_(hits|misses|invalidations|fills|expired)' >"$OUT/$run-$rep.hotkeys"
      stop_proxy
    fi
    python3 - "$OUT/$run-$rep.json" "$run" "$rep" "$before" "$after" "$OUT/$run-$rep.hotkeys" >>"$OUT/runs.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["totals"]
hk = dict(l.strip().split(":", 1) for l in open(sys.argv[6]) if ":" in l)
# GET replies (hits + misses as the load generator counts them) are the reads.
print("\t".join([sys.argv[2], sys.argv[3], "%.0f" % t["ops_per_sec"], "%.3f" % t["p99_ms"],
                 str(t["errors"]), sys.argv[4].strip(), sys.argv[5].strip(), str(t["count"]),
                 str(t["hits"] + t["misses"]), hk.get("near_cache_hits", "0")]))
PY
  done
done

# Staleness is measured with the shards uncapped: a capped shard's freezes (19 ms in every
# 20) would set it, not the invalidation path.
if [ -n "${SHARD_CPU:-}" ]; then
  for port in 17601 17602 17603 17621 17622 17623; do
    [ -f "$CG/autocache-hk-$port/cgroup.procs" ] || continue
    for pid in $(cat "$CG/autocache-hk-$port/cgroup.procs"); do echo "$pid" >"$CG/cgroup.procs"; done
  done
fi
start_proxy 17610
A=$PROXY_PID
start_proxy 17611
python3 docs/bench/staleness.py 17610 17611 1000 >"$OUT/staleness.json"
kill $A 2>/dev/null; stop_proxy
python3 - "$OUT/runs.tsv" <<'PY'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for run, rep, ops, p99, err, b, a, count, reads, hits in rows:
    b = list(map(int, b.split())); a = list(map(int, a.split()))
    d = [y - x for x, y in zip(b, a)]
    bal = max(d) / (sum(d) / len(d)) if sum(d) else float("nan")
    count, reads, hits = int(count), int(reads), int(hits)
    by[run].append((float(ops), float(p99), int(err), bal, sum(d),
                    sum(d) / count if count else float("nan"),
                    100.0 * hits / reads if reads else 0.0))
print("| run | ops/s (median of %d) | p99 ms | errors | shard max/mean | shard requests | per op | reads served by the near cache |" % len(rows and by[rows[0][0]]))
print("|---|---|---|---|---|---|---|---|")
for run, v in by.items():
    m = lambda i: st.median(x[i] for x in v)
    print("| %s | %.0f | %.3f | %d | %.2f | %.0f | %.2f | %.0f%% |" % (run, m(0), m(1), sum(x[2] for x in v), m(3), m(4), m(5), m(6)))
PY
cat "$OUT/staleness.json"
echo "results in $OUT"
