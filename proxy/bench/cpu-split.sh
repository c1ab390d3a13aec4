#!/usr/bin/env bash
# cpu-split.sh — where the CPU of one request goes, per process, for autocache-proxy over a
# 3-node Redis Cluster and for twemproxy over 3 redis-servers, same machine, same run.
# For each test and repetition it runs redis-benchmark (-c 50 -r 100000 -d 64) against one
# system, then the other, and prints rps, p99, and CPU µs per request of the proxy, of the
# three servers together, and of redis-benchmark itself (from /proc/PID/stat, 10 ms ticks),
# and how many commands the servers executed per socket read (INFO stats).
#
# Usage: bash proxy/bench/cpu-split.sh
#   env: TESTS="set:1 get:1 set:16 get:16 mget:1 mget:16" (test:pipeline; mget = 10 keys)
#        REPS=3 N1=300000 N16=1500000 (requests at -P 1 / -P 16; a third of it for MGET)
#        THREADS=1 BIN=<proxy> OUT=<dir>; AUTOCACHE_* variables reach the proxy
# Needs: redis-server (7.0 or later), redis-tools and nutcracker, Debian packages installed
#        here with apt-get if missing when run as root (see packages.sh); a release build of
#        the proxy.
# Everything runs on 127.0.0.1, every load is bounded (request count + timeout), and every
# process started here is stopped by PID on exit.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TESTS=${TESTS:-"set:1 get:1 set:16 get:16 mget:1 mget:16"}
REPS=${REPS:-3}; N1=${N1:-300000}; N16=${N16:-1500000}; THREADS=${THREADS:-1}
BIN=${BIN:-$ROOT/target/release/autocache-proxy}
OUT=${OUT:-${TMPDIR:-/tmp}/autocache-cpu-split-$(date +%Y%m%d-%H%M%S)}
P_PROXY=17700; P_CL=(17701 17702 17703); P_TWEM=17710; P_RS=(17711 17712 17713)
# shellcheck source=proxy/bench/packages.sh
source "$HERE/packages.sh"
need_tools redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools \
  nutcracker:nutcracker || exit 1
need_redis7 || exit 1
[ -x "$BIN" ] || { echo "build first: cargo build --release -p autocache-proxy" >&2; exit 1; }
mkdir -p "$OUT/logs"
# shellcheck source=proxy/bench/common.sh
source "$HERE/common.sh"

stat_sum() { # stat_sum FIELD PORT...: an INFO stats counter summed over servers
  local f=$1 s=0 p v; shift
  for p in "$@"; do
    v=$(redis-cli -p "$p" info stats | tr -d '\r' | awk -F: -v f="$f" '$1 == f {print $2}')
    s=$((s + ${v:-0}))
  done
  echo "$s"
}
ticks() { # summed utime+stime of the given PIDs
  local s=0 p
  for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$s"
}

start_cluster "${P_CL[@]}"; CL_PIDS=("${CLUSTER_PIDS[@]}")
RS_PIDS=()
for p in "${P_RS[@]}"; do start_redis "$p"; RS_PIDS+=("${PIDS[-1]}"); done
start_twemproxy $P_TWEM $((P_TWEM + 100)) "${P_RS[@]}"; TW=$TWEM_PID
"$BIN" --port $P_PROXY --seeds "127.0.0.1:${P_CL[0]}" --threads "$THREADS" --admin-port 0 \
  --loglevel warning > "$OUT/proxy.log" 2>&1 &
PP=$!; PIDS+=("$PP")
wait_pong $P_PROXY

echo "test system rps p99_ms proxy_us servers_us bench_us server_cmds_per_read" | tee "$OUT/results.txt"
for tp in $TESTS; do
  IFS=: read -r t p <<<"$tp"
  if [ "$t" = mget ]; then
    cmd=(mget); for _ in $(seq 10); do cmd+=("key:__rand_int__"); done
  else
    cmd=(-t "$t")
  fi
  n=$([ "$p" = 1 ] && echo "$N1" || echo "$N16"); [ "$t" = mget ] && n=$((n / 3))
  for _ in $(seq "$REPS"); do
    for sys in "autocache:$P_PROXY:$PP:${CL_PIDS[*]}:${P_CL[*]}" "twemproxy:$P_TWEM:$TW:${RS_PIDS[*]}:${P_RS[*]}"; do
      IFS=: read -r name port pid servers sports <<<"$sys"
      # shellcheck disable=SC2086 # $servers is a list of PIDs
      {
        timeout 60 redis-benchmark -p "$port" -c 50 -n 50000 -r 100000 -d 64 -P "$p" -q "${cmd[@]}" >/dev/null 2>&1
        c0=$(stat_sum total_commands_processed $sports); r0=$(stat_sum total_reads_processed $sports)
        a0=$(ticks "$pid"); s0=$(ticks $servers)
        timeout 120 redis-benchmark -p "$port" -c 50 -n "$n" -r 100000 -d 64 -P "$p" --csv "${cmd[@]}" \
          > "$OUT/last.csv" 2>/dev/null &
        bp=$!; sleep 0.05; bc=$(pgrep -P $bp); b0=$(ticks "$bc"); b1=$b0
        while kill -0 "$bc" 2>/dev/null; do b1=$(ticks "$bc" 2>/dev/null || echo "$b1"); sleep 0.1; done
        wait $bp
        a1=$(ticks "$pid"); s1=$(ticks $servers)
        c1=$(stat_sum total_commands_processed $sports); r1=$(stat_sum total_reads_processed $sports)
      }
      line=$(tail -1 "$OUT/last.csv"); rps=$(echo "$line" | awk -F'","' '{print $2}')
      p99=$(echo "$line" | awk -F'","' '{print $7}')
      python3 -c "
n=$n; us=lambda t: t * 10000 / n
print('%s:%s %s %.0f %s %.2f %.2f %.2f %.1f' % ('$t', '$p', '$name', float('$rps'), '$p99', us($a1-$a0), us($s1-$s0), us($b1-$b0), ($c1-$c0) / max($r1-$r0, 1)))" \
        | tee -a "$OUT/results.txt"
      sleep 1
    done
  done
done
