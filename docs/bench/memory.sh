#!/usr/bin/env bash
# Memory per data type: autocache-shard against redis-server, the same data loaded into each
# (one fresh server per dataset, with redis-cli --pipe), then RSS growth (from /proc) and
# INFO used_memory. Datasets (N elements, default 1,000,000):
#   <type>-big:   one key holding N elements (RPUSH / SADD / ZADD in batches of 1,000)
#   <type>-small: N/10 keys of 10 elements each (SMALL_KEYS to change the key count)
# Loopback only; every load is a bounded file.
#
#   docs/bench/memory.sh                      # list set zset hash, N=1000000
#   TYPES="list" N=200000 docs/bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TYPES=${TYPES:-list set zset hash}
N=${N:-1000000}
SMALL_KEYS=${SMALL_KEYS:-$((N / 10))}
PORT=${PORT:-7311}
OUT=$(mktemp -d /tmp/memory.XXXXXX)

for bin in redis-server redis-cli python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard

# Writes the RESP commands of one dataset to a file.
gen() { # type shape file
  python3 - "$1" "$2" "$N" "$SMALL_KEYS" >"$3" <<'PY'
import sys
typ, shape, n, small = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))
def add(key, members):
    if typ == "list":
        cmd("RPUSH", key, *members)
    elif typ == "set":
        cmd("SADD", key, *members)
    elif typ == "zset":
        args = []
        for i, m in enumerate(members):
            args += [i, m]
        cmd("ZADD", key, *args)
    else:
        args = []
        for m in members:
            args += [m, "v"]
        cmd("HSET", key, *args)
if shape == "big":
    for start in range(0, n, 1000):
        add("big", ["element:%d" % i for i in range(start, min(n, start + 1000))])
else:
    for k in range(small):
        add("small:%d" % k, ["element:%d" % i for i in range(10)])
PY
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
used() { redis-cli -p "$PORT" info memory | tr -d '\r' | awk -F: '$1=="used_memory" {print $2}'; }

start() { # system
  if [ "$1" = shard ]; then
    ./target/release/autocache-shard --port "$PORT" --admin-port 0 --loglevel warning >"$OUT/shard.log" 2>&1 &
  else
    redis-server --port "$PORT" --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
  fi
  PID=$!
  for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start" >&2; exit 1
}

echo -e "dataset\tsystem\trss_growth_kb\tused_memory" >"$OUT/runs.tsv"
trap 'kill $PID 2>/dev/null; wait 2>/dev/null' EXIT
for t in $TYPES; do
  for shape in big small; do
    gen "$t" "$shape" "$OUT/load.resp"
    for sys in shard redis; do
      start "$sys"
      before=$(rss_kb "$PID")
      redis-cli -p "$PORT" --pipe <"$OUT/load.resp" >/dev/null
      sleep 1
      after=$(rss_kb "$PID")
      echo -e "$t-$shape\t$sys\t$((after - before))\t$(used)" >>"$OUT/runs.tsv"
      kill "$PID"; wait "$PID" 2>/dev/null || true
    done
  done
done

python3 - "$OUT/runs.tsv" "$N" "$SMALL_KEYS" <<'PY'
import csv, sys
rows = {(r["dataset"], r["system"]): r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")}
n, small = int(sys.argv[2]), int(sys.argv[3])
print(f"| dataset | autocache-shard RSS growth | redis-server RSS growth | ratio | shard used_memory | redis used_memory |")
print("|---|---|---|---|---|---|")
for ds in dict.fromkeys(d for d, _ in rows):
    a, b = rows[(ds, "shard")], rows[(ds, "redis")]
    ra, rb = int(a["rss_growth_kb"]) / 1024, int(b["rss_growth_kb"]) / 1024
    label = f"{ds} ({n:,} elements)" if ds.endswith("big") else f"{ds} ({small:,} keys x 10)"
    print(f"| {label} | {ra:.1f} MiB | {rb:.1f} MiB | {ra/rb:.2f}x | {int(a['used_memory'])/2**20:.1f} MiB | {int(b['used_memory'])/2**20:.1f} MiB |")
print(f"\nraw rows in {sys.argv[1]}")
PY
{ redis-server --version; ./target/release/autocache-shard --version; } | sed 's/^/# /'
