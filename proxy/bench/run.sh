#!/usr/bin/env bash
# run.sh — autocache-proxy over a 3-node Redis Cluster vs twemproxy over 3 redis-servers vs
# direct redis-server, same machine, same run, via peers.sh next to this script (medians of REPS).
# Then one unpipelined client (-c 1) per system for the per-hop latency.
#
# Usage: bash proxy/bench/run.sh        (env: REPS=3 SCALE=0.5 THREADS=1 OUT=<dir> BIN=<proxy>
#        TESTS="set_p1 ..." SYSTEMS="direct twemproxy custom" C1=0 to skip the -c 1 part,
#        PEERS_PART=0 to run only the -c 1 part, PEERS=<another peers.sh>; peers.sh's own
#        settings, e.g. GATE_WAIT=5, pass through the environment)
#        bash proxy/bench/run.sh --help
# Needs: redis-server (7.0 or later), redis-tools and nutcracker, Debian packages installed
#        here with apt-get if missing when run as root (AUTOCACHE_BENCH_INSTALL=0 to only
#        check); a release build of the proxy (cargo build --release -p autocache-proxy).
# Everything runs on 127.0.0.1, every load is bounded (request counts + timeouts), and every
# process started here is stopped by PID on exit.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEERS=${PEERS:-$HERE/peers.sh}
REPS=${REPS:-3}
SCALE=${SCALE:-0.5}
THREADS=${THREADS:-1}
OUT=${OUT:-${TMPDIR:-/tmp}/autocache-proxy-bench-$(date +%Y%m%d-%H%M%S)}
BIN=${BIN:-$ROOT/target/release/autocache-proxy}
P_PROXY=17500; P_CL=(17501 17502 17503)
P_C1_DIRECT=17600; P_C1_SH=(17601 17602 17603); P_C1_TWEM=17610
# shellcheck source=proxy/bench/packages.sh
source "$HERE/packages.sh"
case "${1:-}" in
  -h|--help) print_usage "$0"; exit 0 ;;
  "") ;;
  *) echo "unknown argument $1 (--help)" >&2; exit 2 ;;
esac
need_tools redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools \
  nutcracker:nutcracker python3:python3 || exit 1
need_redis7 || exit 1
[ -x "$BIN" ] || { echo "build first: cargo build --release -p autocache-proxy" >&2; exit 1; }
[ -f "$PEERS" ] || { echo "no peers script at $PEERS" >&2; exit 1; }
mkdir -p "$OUT"/{logs,c1}
# shellcheck source=proxy/bench/common.sh
source "$HERE/common.sh"

# 1. Our system: the proxy over a 3-master Redis Cluster.
start_cluster "${P_CL[@]}"
"$BIN" --port $P_PROXY --seeds "127.0.0.1:${P_CL[0]}" --threads "$THREADS" --loglevel warning \
  >"$OUT/logs/proxy.out" 2>&1 &
PROXY_PID=$!; PIDS+=("$PROXY_PID")
wait_pong $P_PROXY
echo "proxy pid $PROXY_PID on $P_PROXY (threads=$THREADS) over cluster ${P_CL[*]}"

# 2. Throughput: peers.sh runs direct and twemproxy itself and measures ours as "custom"
#    (CUSTOM_PIDS = the proxy only, so its "servers" CPU columns are the proxy's CPU).
#    The cluster nodes count as "other jobs" there, so ours is never "clean": no extra runs.
if [ "${PEERS_PART:-1}" = 1 ]; then
SYSTEMS=${SYSTEMS:-"direct twemproxy custom"} CUSTOM_PORT=$P_PROXY CUSTOM_PIDS="$PROXY_PID" \
  TESTS=${TESTS:-"set_p1 get_p1 set_p16 get_p16 mget_p1 mget_p16"} REPS=$REPS SCALE=$SCALE \
  EXTRA_MAX=${EXTRA_MAX:-0} OUT="$OUT/peers" bash "$PEERS" 2>&1 | tee "$OUT/peers.log"
fi
[ "${C1:-1}" = 1 ] || { echo "results in $OUT"; exit 0; }

# 3. One unpipelined client: per-hop latency (p50/p99 in ms) and requests per second.
start_redis $P_C1_DIRECT
for p in "${P_C1_SH[@]}"; do start_redis "$p"; done
start_twemproxy $P_C1_TWEM 17611 "${P_C1_SH[@]}"
echo -e "system\ttest\trps\tp50_ms\tp99_ms" > "$OUT/c1/c1.tsv"
for _ in $(seq "$REPS"); do
  for sys in direct:$P_C1_DIRECT twemproxy:$P_C1_TWEM autocache-proxy:$P_PROXY; do
    name=${sys%%:*}; port=${sys##*:}
    for t in get set; do
      row=$(timeout 60 redis-benchmark -p "$port" -c 1 -n 20000 -r 100000 -d 64 -t $t -P 1 --csv --precision 3 \
        | tail -1 | tr -d '"' | awk -F, '{print $2"\t"$6"\t"$8}')
      echo -e "$name\t$t\t$row" | tee -a "$OUT/c1/c1.tsv"
    done
  done
done
# CPU time of the proxy per request over the whole run (all tests, all reps).
read -r ut st < <(awk '{print $14, $15}' /proc/$PROXY_PID/stat)
echo "proxy total cpu seconds: $(awk -v u="$ut" -v s="$st" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (u+s)/hz}')" | tee "$OUT/proxy_cpu.txt"
redis-cli -p $P_PROXY info stats | grep -E 'total_commands|redirects' | tee -a "$OUT/proxy_cpu.txt"
echo "c1 medians:"; awk -F'\t' 'NR>1{k=$1" "$2; n[k]++; r[k]=r[k]" "$3; a[k]=a[k]" "$4; b[k]=b[k]" "$5}
  END{for (k in n) print k": rps"r[k]" | p50"a[k]" | p99"b[k]}' "$OUT/c1/c1.tsv" | sort | tee "$OUT/c1/summary.txt"
echo "results in $OUT"
