#!/usr/bin/env bash
# Geo commands, autocache-shard against redis-server side by side with redis-benchmark's
# custom-command mode: -c 50, -P 1 and -P 16, REPS rounds alternating the two servers,
# medians and ratios as a markdown table. Both servers first get the same geo set of
# MEMBERS points spread uniformly over a 1 x 1 degree square around (13.5, 38.5), about
# 10 points per km² at 100,000 (written with redis-cli --pipe from a seeded generator);
# the searches run from its centre. GEOADD writes to another key, members and positions
# from __rand_int__ (13.<12 digits>, 38.<12 digits>). Loopback only; every run is bounded by
# -n, set per test (a search over thousands of candidates runs at a few thousand a second);
# SCALE multiplies every -n.
#
#   docs/bench/geo.sh                   # 3 rounds, 100,000 points
#   REPS=5 MEMBERS=10000 SCALE=2 docs/bench/geo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
MEMBERS=${MEMBERS:-100000}
SCALE=${SCALE:-1}
SHARD_PORT=${SHARD_PORT:-7321}
REDIS_PORT=${REDIS_PORT:-7322}
OUT=$(mktemp -d /tmp/geo-bench.XXXXXX)

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

python3 - "$MEMBERS" >"$OUT/load.resp" <<'PY'
import random, sys
rng = random.Random(7)
out = sys.stdout.buffer
def cmd(*args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        a = a.encode()
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
n = int(sys.argv[1])
for start in range(0, n, 100):
    args = ["GEOADD", "g"]
    for i in range(start, min(n, start + 100)):
        args += [f"{13 + rng.random():.6f}", f"{38 + rng.random():.6f}", f"p:{i}"]
    cmd(*args)
PY
for p in "$SHARD_PORT" "$REDIS_PORT"; do
  redis-cli -p "$p" --pipe <"$OUT/load.resp" >/dev/null
  echo "port $p: $(redis-cli -p "$p" zcard g) points, $(redis-cli -p "$p" geosearch g fromlonlat 13.5 38.5 byradius 1 km | wc -l) within 1 km" >&2
done

# name|requests at -P 1|requests at -P 16|command
TESTS=(
  "GEOADD|50000|200000|geoadd ga 13.__rand_int__ 38.__rand_int__ m:__rand_int__"
  "GEOSEARCH BYRADIUS 1 km|30000|60000|geosearch g fromlonlat 13.5 38.5 byradius 1 km"
  "GEOSEARCH BYRADIUS 2 km ASC COUNT 10|10000|20000|geosearch g fromlonlat 13.5 38.5 byradius 2 km asc count 10"
  "GEOSEARCH BYBOX 2x2 km WITHDIST|20000|40000|geosearch g fromlonlat 13.5 38.5 bybox 2 2 km withdist"
  "GEOPOS|50000|200000|geopos g p:1 p:2"
)
echo -e "system\ttest\tpipeline\trep\trps" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for P in 1 16; do
    for t in "${TESTS[@]}"; do
      IFS='|' read -r name n1 n16 cmd <<<"$t"
      n=$n1; [ "$P" = 16 ] && n=$n16
      n=$((n * SCALE))
      for sys in shard redis; do
        port=$SHARD_PORT; [ "$sys" = redis ] && port=$REDIS_PORT
        # shellcheck disable=SC2086
        rps=$(timeout 300 redis-benchmark -p "$port" -c 50 -r 1000000 -n "$n" -P "$P" --csv $cmd 2>/dev/null |
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
