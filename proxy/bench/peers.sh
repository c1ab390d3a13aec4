#!/usr/bin/env bash
# peers.sh — measure Redis-protocol peers side by side with redis-benchmark on this machine.
#
# Systems (all on 127.0.0.1, started by this script, stopped by PID at exit):
#   direct    : 1 redis-server                                  port 17100
#   haproxy   : HAProxy tcp mode, 1 thread -> the same redis     port 17300
#   twemproxy : nutcracker (ketama, redis:true) -> 3 redis       port 17120 (backends 17001-17003)
#   cluster   : Redis Cluster, 3 masters, redis-benchmark --cluster  ports 17201-17203
#   custom    : a system of your own, already running (CUSTOM_PORT, below)
# Tests (redis-benchmark, -c 50 -r 100000 -d 64, CSV, --precision 3):
#   set/get at -P 1 and -P 16; mset (10 keys, -t mset) and mget (custom, 10 keys)
#   at -P 1 and -P 16. Cluster: set/get only.
# Each (system,test) runs REPS times; reps are interleaved across systems.
# Per run it records rps, p50/p99, and CPU per process group from /proc deltas,
# plus "ext" = CPU used on the machine by anything that is not ours (other jobs).
# Before each run it waits (up to GATE_WAIT s) until external load < IDLE_GATE cores.
#
# Usage: bash proxy/bench/peers.sh   # full run (~15-40 min on 2 cores, depends on other load)
#        bash proxy/bench/peers.sh --check   # only check (and install) the programs, then exit
#   env: REPS=3 SCALE=1 SYSTEMS="direct haproxy twemproxy cluster" TESTS="set_p1 ..."
#        IDLE_GATE=0.3 GATE_WAIT=15 CLEAN_EXT=0.25 EXTRA_MAX=20 RUN_TIMEOUT=90 OUT=<dir>
#   A system of your own that is already running: SYSTEMS="direct twemproxy custom" CUSTOM_PORT=6379
#   (CUSTOM_PIDS="pid ..." to account its CPU; CUSTOM_CLUSTER=1 to drive it with redis-benchmark --cluster)
#   proxy/bench/run.sh runs it this way for autocache-proxy.
# Output: $OUT/runs.tsv (one line per run), $OUT/summary.md (medians, ratios; summarize.py), logs.
# Needs: redis-server (7.0 or later) and redis-tools, nutcracker for twemproxy, haproxy for
#   haproxy, python3: Debian packages, installed here with apt-get if missing when run as root
#   (AUTOCACHE_BENCH_INSTALL=0 to only check).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=proxy/bench/packages.sh
source "$HERE/packages.sh"
case "${1:-}" in
  -h|--help) print_usage "$0"; exit 0 ;;
  --check|"") ;;
  *) echo "unknown argument $1 (--help)" >&2; exit 2 ;;
esac
BASE=${BASE:-${TMPDIR:-/tmp}/autocache-peers}
REPS=${REPS:-3}
SCALE=${SCALE:-1}
SYSTEMS=${SYSTEMS:-"direct haproxy twemproxy cluster"}
IDLE_GATE=${IDLE_GATE:-0.3}     # cores
GATE_WAIT=${GATE_WAIT:-15}      # seconds
CLEAN_EXT=${CLEAN_EXT:-0.25}    # a run is "clean" if other jobs used < this many cores during it
EXTRA_MAX=${EXTRA_MAX:-20}      # total extra runs allowed to replace contaminated ones
RUN_TIMEOUT=${RUN_TIMEOUT:-90}  # hard cap per redis-benchmark run
OUT=${OUT:-$BASE/results-$(date +%Y%m%d-%H%M%S)}
COMMON=(-c 50 -r 100000 -d 64 --csv --precision 3)
HZ=$(getconf CLK_TCK)
PY=/usr/bin/python3; [ -x $PY ] || PY=python3

tools=(redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools python3:python3 ss:iproute2)
case " $SYSTEMS " in *" twemproxy "*) tools+=(nutcracker:nutcracker) ;; esac
case " $SYSTEMS " in *" haproxy "*) tools+=(haproxy:haproxy) ;; esac
need_tools "${tools[@]}" || exit 1
case " $SYSTEMS " in *" cluster "*) need_redis7 || exit 1 ;; esac
if [ "${1:-}" = --check ]; then echo "ok: ${tools[*]%%:*}"; exit 0; fi

P_DIRECT=17100; P_HAP=17300; P_TWEM=17120; P_TWEM_STATS=17121
P_SH=(17001 17002 17003); P_CL=(17201 17202 17203)

MGET10="mget"; for _ in $(seq 10); do MGET10="$MGET10 key:__rand_int__"; done
# name | requests | args
ALL_TESTS="
set_p1|600000|-t set -P 1
get_p1|600000|-t get -P 1
set_p16|4000000|-t set -P 16
get_p16|4000000|-t get -P 16
mset_p1|400000|-t mset -P 1
mget_p1|400000|-P 1 $MGET10
mset_p16|1000000|-t mset -P 16
mget_p16|1000000|-P 16 $MGET10
"
CLUSTER_TESTS="set_p1 get_p1 set_p16 get_p16"
TESTS=${TESTS:-"set_p1 get_p1 set_p16 get_p16 mset_p1 mget_p1 mset_p16 mget_p16"}

mkdir -p "$BASE" "$OUT"/{logs,raw}; echo $$ > "$OUT/run.pid"
# shellcheck source=proxy/bench/common.sh
source "$HERE/common.sh"

for p in $P_DIRECT $P_HAP $P_TWEM $P_TWEM_STATS "${P_SH[@]}" "${P_CL[@]}" 17211 17212 17213; do
  if ss -ltn | awk '{print $4}' | grep -q ":$p\$"; then echo "port $p busy; aborting" >&2; exit 1; fi
done

declare -A GROUP_PROXY GROUP_SERVERS GROUP_PORT
setup_direct() {
  start_redis $P_DIRECT
  GROUP_SERVERS[direct]=${SERVER_PID[$P_DIRECT]}; GROUP_PROXY[direct]=""; GROUP_PORT[direct]=$P_DIRECT
}
setup_haproxy() {
  [ -n "${SERVER_PID[$P_DIRECT]:-}" ] || start_redis $P_DIRECT
  cat > "$OUT/logs/haproxy.cfg" <<EOF
global
  maxconn 4096
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend fe
  bind 127.0.0.1:$P_HAP
  default_backend be
backend be
  server r1 127.0.0.1:$P_DIRECT
EOF
  haproxy -f "$OUT/logs/haproxy.cfg" -db >"$OUT/logs/haproxy.out" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 50); do redis-cli -p $P_HAP ping >/dev/null 2>&1 && break; sleep 0.1; done
  GROUP_SERVERS[haproxy]=${SERVER_PID[$P_DIRECT]}; GROUP_PROXY[haproxy]=$pid; GROUP_PORT[haproxy]=$P_HAP
}
setup_twemproxy() {
  local s="" p
  for p in "${P_SH[@]}"; do start_redis "$p"; s="$s ${SERVER_PID[$p]}"; done
  cat > "$OUT/logs/nutcracker.yml" <<EOF
peers:
  listen: 127.0.0.1:$P_TWEM
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  timeout: 5000
  servers:
   - 127.0.0.1:${P_SH[0]}:1 s1
   - 127.0.0.1:${P_SH[1]}:1 s2
   - 127.0.0.1:${P_SH[2]}:1 s3
EOF
  nutcracker -c "$OUT/logs/nutcracker.yml" -o "$OUT/logs/nutcracker.log" -s $P_TWEM_STATS -a 127.0.0.1 &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 50); do redis-cli -p $P_TWEM ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  GROUP_SERVERS[twemproxy]=$s; GROUP_PROXY[twemproxy]=$pid; GROUP_PORT[twemproxy]=$P_TWEM
}
setup_cluster() {
  local s="" hp=() i p ok
  for i in 0 1 2; do
    p=${P_CL[$i]}
    start_redis "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port $((17211 + i))
    s="$s ${SERVER_PID[$p]}"; hp+=("127.0.0.1:$p")
  done
  redis-cli --cluster create "${hp[@]}" --cluster-replicas 0 --cluster-yes >"$OUT/logs/cluster-create.log" 2>&1
  for _ in $(seq 100); do
    ok=0
    for p in "${P_CL[@]}"; do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1)); done
    [ $ok -eq 3 ] && break; sleep 0.2
  done
  GROUP_SERVERS[cluster]=$s; GROUP_PROXY[cluster]=""; GROUP_PORT[cluster]=${P_CL[0]}
}
setup_custom() {
  : "${CUSTOM_PORT:?set CUSTOM_PORT to the port of the running system to measure}"
  redis-cli -p "$CUSTOM_PORT" ping >/dev/null 2>&1 || { echo "nothing answers PING on $CUSTOM_PORT" >&2; exit 1; }
  GROUP_SERVERS[custom]="${CUSTOM_PIDS:-}"; GROUP_PROXY[custom]=""; GROUP_PORT[custom]=$CUSTOM_PORT
}

cpu_total() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; } # busy total (jiffies)
pid_j() { # summed utime+stime of the given PIDs (0 for one that is gone)
  local t=0 x p
  for p in "$@"; do x=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + x)); done
  echo $t
}
ext_now() { # external busy cores over 1s (none of our servers are loaded between runs)
  local a b
  read -r a _ < <(cpu_total); sleep 1; read -r b _ < <(cpu_total)
  awk -v d=$((b - a)) -v hz="$HZ" 'BEGIN{printf "%.2f", d/hz}'
}
gate() {
  local waited=0 e
  while :; do
    e=$(ext_now); waited=$((waited + 1))
    awk -v e="$e" -v g="$IDLE_GATE" 'BEGIN{exit !(e<g)}' && break
    [ $waited -ge "$GATE_WAIT" ] && break; sleep 1; waited=$((waited + 1))
  done
  echo "$e $waited"
}
is_cluster() { [ "$1" = cluster ] || { [ "$1" = custom ] && [ "${CUSTOM_CLUSTER:-0}" = 1 ]; }; }
bench_args() { # sys test -> prints "requests|args"
  local line n a extra=""
  line=$(echo "$ALL_TESTS" | grep "^$2|"); n=${line#*|}; n=${n%%|*}; a=${line##*|}
  n=$(awk -v n="$n" -v s="$SCALE" 'BEGIN{printf "%d", n*s}')
  is_cluster "$1" && extra="--cluster"
  echo "$n|$extra $a"
}

echo -e "system\ttest\trep\tn\trps\tavg_ms\tp50_ms\tp95_ms\tp99_ms\tmax_ms\twall_s\tbench_cpu\tproxy_cpu\tservers_cpu\text_cpu\tpre_ext\tgate_wait_s\trc" > "$OUT/runs.tsv"
measure() { # sys test rep
  local sys=$1 t=$2 rep=$3 ba n args g pre_ext gw sv px port
  ba=$(bench_args "$sys" "$t"); n=${ba%%|*}; args=${ba#*|}
  g=$(gate); pre_ext=${g% *}; gw=${g#* }
  sv=${GROUP_SERVERS[$sys]}; px=${GROUP_PROXY[$sys]}; port=${GROUP_PORT[$sys]}
  local c0 c1 s0 s1 x0 x1 rc tm row raw="$OUT/raw/$sys.$t.$rep"
  # shellcheck disable=SC2086 # $sv and $px are lists of PIDs
  { read -r c0 _ < <(cpu_total); s0=$(pid_j $sv); x0=$(pid_j $px); }
  TIMEFORMAT='%R %U %S'
  # shellcheck disable=SC2086 # $args is a list of redis-benchmark arguments
  { time timeout "$RUN_TIMEOUT" redis-benchmark -p "$port" "${COMMON[@]}" -n "$n" $args >"$raw.csv" 2>"$raw.err"; } 2>"$raw.time"
  rc=$?
  # shellcheck disable=SC2086
  { read -r c1 _ < <(cpu_total); s1=$(pid_j $sv); x1=$(pid_j $px); }
  tm=$(tail -1 "$raw.time")
  row=$(tail -1 "$raw.csv" | tr -d '"' | awk -F, '{print $2"\t"$3"\t"$5"\t"$6"\t"$7"\t"$8}')
  [ -z "$row" ] && row="NA\tNA\tNA\tNA\tNA\tNA"
  awk -v OFS='\t' -v sys="$sys" -v t="$t" -v rep="$rep" -v n="$n" -v row="$row" -v tm="$tm" \
      -v dc=$((c1 - c0)) -v ds=$((s1 - s0)) -v dx=$((x1 - x0)) -v hz="$HZ" -v pre="$pre_ext" -v gw="$gw" -v rc=$rc 'BEGIN{
      split(tm,T," "); w=T[1]; bc=(T[2]+T[3])/w; sc=ds/hz/w; xc=dx/hz/w; tot=dc/hz/w
      ext=tot-bc-sc-xc; if (ext<0) ext=0
      printf "%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\n", sys,t,rep,n,row,w,bc,xc,sc,ext,pre,gw,rc }' >> "$OUT/runs.tsv"
  tail -1 "$OUT/runs.tsv"
}

echo "== setup $(date -u +%FT%TZ)  out=$OUT"
for s in $SYSTEMS; do "setup_$s"; done
# populate keyspaces (not measured): key:<12 digits> for 100k keys
for s in $SYSTEMS; do
  ex=(); is_cluster "$s" && ex=(--cluster)
  timeout 60 redis-benchmark -p "${GROUP_PORT[$s]}" "${ex[@]}" -c 50 -r 100000 -d 64 -n 1000000 -P 16 -t set -q >/dev/null 2>&1
done
{
  redis-server --version
  if command -v nutcracker >/dev/null; then nutcracker --version 2>&1 | head -1; fi
  if command -v haproxy >/dev/null; then haproxy -v | head -1; fi
  uname -r; nproc
} > "$OUT/versions.txt"
for rep in $(seq "$REPS"); do
  for s in $SYSTEMS; do
    for t in $TESTS; do
      [ "$s" = cluster ] && ! echo " $CLUSTER_TESTS " | grep -q " $t " && continue
      measure "$s" "$t" "$rep"
    done
  done
done
# extra reps for (system,test) pairs with fewer than REPS clean runs (bounded by EXTRA_MAX)
extra=0
for s in $SYSTEMS; do
  for t in $TESTS; do
    [ "$s" = cluster ] && ! echo " $CLUSTER_TESTS " | grep -q " $t " && continue
    for _ in 1 2; do
      clean=$(awk -F'\t' -v s="$s" -v t="$t" -v c="$CLEAN_EXT" '$1==s && $2==t && $15<c && $18==0' "$OUT/runs.tsv" | wc -l)
      [ "$clean" -ge "$REPS" ] && break
      [ $extra -ge "$EXTRA_MAX" ] && break 3
      extra=$((extra + 1)); measure "$s" "$t" "x$extra"
    done
  done
done
case " $SYSTEMS " in *" twemproxy "*)
  for p in "${P_SH[@]}"; do echo "shard $p keys: $(redis-cli -p "$p" dbsize)"; done > "$OUT/shard_keys.txt" ;;
esac
CLEAN_EXT=$CLEAN_EXT $PY "$HERE/summarize.py" "$OUT/runs.tsv" > "$OUT/summary.md"
cat "$OUT/summary.md"
echo "== done $(date -u +%FT%TZ)"
