#!/usr/bin/env bash
# Bitmap and HyperLogLog commands, autocache-shard against redis-server side by side with
# redis-benchmark's custom-command mode: -c 50, -P 1 and -P 16, REPS rounds alternating the
# two servers, medians and ratios as a markdown table. redis-benchmark's random numbers are
# zero-padded, which Redis (and AutoCache) refuse as offsets, so they pick keys (a million
# small bitmaps) and HLL elements, while the offsets are fixed; BITCOUNT counts a 4 KB range
# of one 125 KB bitmap, PFCOUNT reads one dense HLL (its cached count) or the union of two.
# Loopback only; every run is bounded by -n.
#
#   docs/bench/bitmaps-hll.sh            # 3 rounds
#   REPS=5 docs/bench/bitmaps-hll.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
N_P1=${N_P1:-200000}
N_P16=${N_P16:-1000000}
SHARD_PORT=${SHARD_PORT:-7311}
REDIS_PORT=${REDIS_PORT:-7312}
OUT=$(mktemp -d /tmp/bitmaps-hll.XXXXXX)

for bin in redis-server redis-benchmark redis-cli python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard

./target/release/autocache-shard --port "$SHARD_PORT" --admin-port 0 --loglevel warning >"$OUT/shard.log" 2>&1 &
SHARD_PID=$!
redis-server --port "$REDIS_PORT" --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill $SHARD_PID $REDIS_PID 2>/dev/null; wait 2>/dev/null' EXIT
for p in "$SHARD_PORT" "$REDIS_PORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

# The bitmap and the HLL exist at full size before anything is measured.
for p in "$SHARD_PORT" "$REDIS_PORT"; do
  redis-cli -p "$p" setbit bm 999999 1 >/dev/null
  redis-benchmark -p "$p" -c 50 -r 1000000 -n 200000 -P 16 setbit bm:__rand_int__ 100 1 >/dev/null 2>&1
  redis-benchmark -p "$p" -c 50 -r 1000000 -n 200000 -P 16 pfadd '{h}1' __rand_int__ >/dev/null 2>&1
  redis-benchmark -p "$p" -c 50 -r 1000000 -n 200000 -P 16 pfadd '{h}2' __rand_int__ >/dev/null 2>&1
done

# name|command
TESTS=(
  "SETBIT|setbit bm:__rand_int__ 100 1"
  "GETBIT|getbit bm:__rand_int__ 100"
  "BITCOUNT 4 KB|bitcount bm 0 4095"
  "BITFIELD INCRBY u8|bitfield bm:__rand_int__ incrby u8 8 1"
  "PFADD|pfadd {h}1 __rand_int__"
  "PFCOUNT|pfcount {h}1"
  "PFCOUNT of 2|pfcount {h}1 {h}2"
)
echo -e "system\ttest\tpipeline\trep\trps" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for P in 1 16; do
    n=$N_P1; [ "$P" = 16 ] && n=$N_P16
    for t in "${TESTS[@]}"; do
      name=${t%%|*}; cmd=${t#*|}
      for sys in shard redis; do
        port=$SHARD_PORT; [ "$sys" = redis ] && port=$REDIS_PORT
        # shellcheck disable=SC2086
        rps=$(timeout 120 redis-benchmark -p "$port" -c 50 -r 1000000 -n "$n" -P "$P" --csv $cmd 2>/dev/null |
          tr -d '"' | awk -F, 'NR>1 {print $2}')
        echo -e "$sys\t$name\t$P\t$rep\t$rps" >>"$OUT/runs.tsv"
      done
    done
  done
done

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
g = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    g[(r["system"], r["test"], r["pipeline"])].append(float(r["rps"]))
print("| test | pipeline | autocache-shard rps | redis-server rps | ratio |")
print("|---|---|---|---|---|")
tests = list(dict.fromkeys(t for (_, t, _) in g))
for P in ("1", "16"):
    for t in tests:
        s, r = st.median(g[("shard", t, P)]), st.median(g[("redis", t, P)])
        print(f"| {t} | {P} | {s:,.0f} | {r:,.0f} | {s / r:.2f}x |")
PY
echo "raw runs: $OUT/runs.tsv" >&2
