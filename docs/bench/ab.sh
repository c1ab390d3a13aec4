#!/usr/bin/env bash
# ab.sh — two builds of AutoCache side by side in one run, with redis-server as the yardstick:
#   shard : autocache-shard of build A, of build B, and redis-server, each alone on a port;
#   proxy : autocache-proxy of build A and of build B, each in front of the same three
#           redis-servers (a static split, so only the proxy differs), and twemproxy in front
#           of three others.
# redis-benchmark -c 50 -r 100000 -d 64: SET and GET at -P 1 and -P 16, and MGET of 10 keys
# (proxies only); REPS rounds, the systems alternating within each round; median rates and
# the median of the rounds' B/A ratios printed as markdown tables. Loopback only; every run is bounded by -n and a timeout.
#
#   A=/path/to/old/bin B=target/release docs/bench/ab.sh        (directories holding both binaries)
#   env: REPS=3 N_P1=200000 N_P16=2000000 N_MGET=200000 PARTS="shard proxy" OUT=<dir>
# Build A with e.g. `git worktree add /tmp/a <rev> && cargo build --release --manifest-path
# /tmp/a/Cargo.toml -p autocache-shard -p autocache-proxy`.
set -euo pipefail
A=${A:?A=<directory with the autocache-shard and autocache-proxy of build A>}
B=${B:-target/release}
REPS=${REPS:-3}
N_P1=${N_P1:-200000}
N_P16=${N_P16:-2000000}
N_MGET=${N_MGET:-200000}
PARTS=${PARTS:-"shard proxy"}
OUT=${OUT:-$(mktemp -d /tmp/ab.XXXXXX)}
mkdir -p "$OUT"
for bin in redis-server redis-benchmark redis-cli nutcracker python3; do
  command -v "$bin" >/dev/null || PATH=$PATH:/usr/sbin command -v "$bin" >/dev/null ||
    { echo "missing $bin (apt-get install redis-server redis-tools nutcracker python3)" >&2; exit 1; }
done
PATH=$PATH:/usr/sbin
for d in "$A" "$B"; do
  for b in autocache-shard autocache-proxy; do
    [ -x "$d/$b" ] || { echo "no $d/$b" >&2; exit 1; }
  done
done

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
wait_pong() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done; echo "no PONG on $1" >&2; exit 1; }
redis() { redis-server --port "$1" --save '' --appendonly no --loglevel warning >"$OUT/redis-$1.log" 2>&1 & PIDS+=($!); }

MGET10=(mget); for _ in $(seq 10); do MGET10+=("key:__rand_int__"); done
# system name -> port
declare -A PORT
if [[ " $PARTS " == *" shard "* ]]; then
  "$A/autocache-shard" --port 7411 --admin-port 0 --loglevel warning >"$OUT/shard-a.log" 2>&1 & PIDS+=($!)
  "$B/autocache-shard" --port 7412 --admin-port 0 --loglevel warning >"$OUT/shard-b.log" 2>&1 & PIDS+=($!)
  redis 7413
  PORT[shard-a]=7411; PORT[shard-b]=7412; PORT[redis]=7413
fi
if [[ " $PARTS " == *" proxy "* ]]; then
  for p in 7421 7422 7423 7431 7432 7433; do redis $p; done
  for p in 7421 7422 7423 7431 7432 7433; do wait_pong $p; done
  seeds=127.0.0.1:7421,127.0.0.1:7422,127.0.0.1:7423
  "$A/autocache-proxy" --port 7441 --seeds "$seeds" --admin-port 0 --loglevel warning >"$OUT/proxy-a.log" 2>&1 & PIDS+=($!)
  "$B/autocache-proxy" --port 7442 --seeds "$seeds" --admin-port 0 --loglevel warning >"$OUT/proxy-b.log" 2>&1 & PIDS+=($!)
  cat >"$OUT/twem.yml" <<EOF
ab:
  listen: 127.0.0.1:7443
  hash: fnv1a_64
  distribution: ketama
  redis: true
  servers:
   - 127.0.0.1:7431:1
   - 127.0.0.1:7432:1
   - 127.0.0.1:7433:1
EOF
  nutcracker -c "$OUT/twem.yml" -s 7444 -o "$OUT/twem.log" & PIDS+=($!)
  PORT[proxy-a]=7441; PORT[proxy-b]=7442; PORT[twemproxy]=7443
fi
for s in "${!PORT[@]}"; do wait_pong "${PORT[$s]}"; done
{ redis-server --version; "$A/autocache-shard" --version; "$B/autocache-shard" --version; uname -r; nproc; } >"$OUT/versions.txt"

# Prefill so GETs and MGETs hit (not measured).
for s in "${!PORT[@]}"; do
  redis-benchmark -p "${PORT[$s]}" -c 50 -d 64 -r 100000 -n 400000 -P 16 -t set -q >/dev/null 2>&1
done

bench() { # system test pipeline n args...
  local sys=$1 test=$2 P=$3 n=$4; shift 4
  timeout 120 redis-benchmark -p "${PORT[$sys]}" -c 50 -d 64 -r 100000 -n "$n" -P "$P" --csv "$@" 2>/dev/null |
    tr -d '"' | awk -F, -v s="$sys" -v t="$test" -v P="$P" -v r="$rep" 'NR==2 {print s"\t"t"\t"P"\t"r"\t"$2"\t"$5"\t"$7}' >>"$OUT/runs.tsv"
}
echo -e "system\ttest\tpipeline\trep\trps\tp50_ms\tp99_ms" >"$OUT/runs.tsv"
base=(); for s in shard-a shard-b redis proxy-a proxy-b twemproxy; do [ -n "${PORT[$s]:-}" ] && base+=("$s"); done
for rep in $(seq "$REPS"); do
  # Which build goes first alternates from round to round.
  order=("${base[@]}")
  if [ $((rep % 2)) = 0 ]; then mapfile -t order < <(printf '%s\n' "${base[@]}" | tac); fi
  for P in 1 16; do
    n=$N_P1; [ "$P" = 16 ] && n=$N_P16
    for sys in "${order[@]}"; do
      bench "$sys" SET "$P" "$n" -t set
      bench "$sys" GET "$P" "$n" -t get
      case $sys in proxy-*|twemproxy) bench "$sys" MGET "$P" "$N_MGET" "${MGET10[@]}" ;; esac
    done
  done
done

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
g = defaultdict(dict)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    g[(r["system"], r["test"], r["pipeline"])][r["rep"]] = float(r["rps"])
med = lambda k: st.median(g[k].values()) if g.get(k) else None
def paired(x, y):
    # The median of the per-round ratios: both systems of a round saw the same machine.
    rs = [g[x][r] / g[y][r] for r in g.get(x, {}) if r in g.get(y, {})]
    return st.median(rs) if rs else None
for part, a, b, peer in (("shard", "shard-a", "shard-b", "redis"), ("proxy", "proxy-a", "proxy-b", "twemproxy")):
    rows = [(t, P) for t in ("SET", "GET", "MGET") for P in ("1", "16") if med((a, t, P))]
    if not rows:
        continue
    print(f"\n| {part} test | -P | A rps | B rps | B/A (per round) | {peer} rps | B/{peer} (per round) |")
    print("|---|---|---|---|---|---|---|")
    for t, P in rows:
        ka, kb, kp = (a, t, P), (b, t, P), (peer, t, P)
        rounds = ", ".join(f"{v:.2f}" for v in (g[kb][r] / g[ka][r] for r in sorted(g[ka]) if r in g[kb]))
        peer_cols = f"{med(kp):,.0f} | {paired(kb, kp):.2f}x" if med(kp) else "- | -"
        print(f"| {t} | {P} | {med(ka):,.0f} | {med(kb):,.0f} | {paired(kb, ka):.2f}x ({rounds}) | {peer_cols} |")
print(f"\n{len(next(iter(g.values())))} rounds per cell; rates are medians, ratios medians of the rounds' ratios; raw runs in {sys.argv[1]}")
PY
cat "$OUT/versions.txt"
