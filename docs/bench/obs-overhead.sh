#!/usr/bin/env bash
# What metrics and traces cost: redis-benchmark (-c 50 -d 64 -r 100000, GET and SET, -P 1 and
# -P 16) against
#   shard-off    autocache-shard --admin-port 0                (no metrics kept at all)
#   shard-on     autocache-shard --admin-port N                (metrics, latency histograms)
#   shard-otel   shard-on + --otel-endpoint to a closed port, ratio 0.01 (collector down)
#   proxy-off    autocache-proxy --admin-port 0 in front of one shard
#   proxy-on     autocache-proxy --admin-port N in front of the same shard
# REPS rounds, the systems alternating within each round; medians printed as a markdown table.
# Loopback only; every run is bounded by -n.
#
#   docs/bench/obs-overhead.sh            # 3 rounds
#   REPS=5 docs/bench/obs-overhead.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
N_P1=${N_P1:-100000}
N_P16=${N_P16:-1000000}
BASE=${BASE:-7400}
OUT=$(mktemp -d /tmp/obs-overhead.XXXXXX)

for bin in redis-benchmark redis-cli python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard -p autocache-proxy
S=./target/release/autocache-shard
P=./target/release/autocache-proxy

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
declare -A PORT=([shard-off]=$((BASE+1)) [shard-on]=$((BASE+2)) [shard-otel]=$((BASE+3)) [proxy-off]=$((BASE+5)) [proxy-on]=$((BASE+6)))
BACKEND=$((BASE+4))
$S --port "${PORT[shard-off]}" --dir "$OUT/a" --admin-port 0 --loglevel warning >"$OUT/shard-off.log" 2>&1 & PIDS+=($!)
$S --port "${PORT[shard-on]}" --dir "$OUT/b" --admin-port $((BASE+12)) --loglevel warning >"$OUT/shard-on.log" 2>&1 & PIDS+=($!)
$S --port "${PORT[shard-otel]}" --dir "$OUT/c" --admin-port $((BASE+13)) --otel-endpoint http://127.0.0.1:1 \
  --otel-sample-ratio 0.01 --loglevel error >"$OUT/shard-otel.log" 2>&1 & PIDS+=($!)
$S --port "$BACKEND" --dir "$OUT/d" --admin-port 0 --loglevel warning >"$OUT/backend.log" 2>&1 & PIDS+=($!)
$P --port "${PORT[proxy-off]}" --seeds "127.0.0.1:$BACKEND" --admin-port 0 --threads 1 --loglevel warning >"$OUT/proxy-off.log" 2>&1 & PIDS+=($!)
$P --port "${PORT[proxy-on]}" --seeds "127.0.0.1:$BACKEND" --admin-port $((BASE+16)) --threads 1 --loglevel warning >"$OUT/proxy-on.log" 2>&1 & PIDS+=($!)
for sys in "${!PORT[@]}"; do
  for _ in $(seq 100); do redis-cli -p "${PORT[$sys]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

# Prefill so GETs hit (not measured).
for p in "${PORT[shard-off]}" "${PORT[shard-on]}" "${PORT[shard-otel]}" "$BACKEND"; do
  redis-benchmark -p "$p" -c 50 -d 64 -r 100000 -n 1000000 -P 16 -t set -q >/dev/null 2>&1
done

echo -e "system\ttest\tpipeline\trep\trps\tp50_ms\tp99_ms" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for pl in 1 16; do
    n=$N_P1; [ "$pl" = 16 ] && n=$N_P16
    for sys in shard-off shard-on shard-otel proxy-off proxy-on; do
      timeout 120 redis-benchmark -p "${PORT[$sys]}" -c 50 -d 64 -r 100000 -n "$n" -P "$pl" -t set,get --csv 2>/dev/null |
        tr -d '"' | awk -F, -v s="$sys" -v P="$pl" -v r="$rep" 'NR>1 {print s"\t"$1"\t"P"\t"r"\t"$2"\t"$5"\t"$7}' >>"$OUT/runs.tsv"
    done
  done
done

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
g = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    g[(r["system"], r["test"], r["pipeline"])].append(float(r["rps"]))
print("| test | pipeline | shard off | shard on | on/off | shard otel | otel/off | proxy off | proxy on | on/off |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t in ("SET", "GET"):
    for P in ("1", "16"):
        m = {s: st.median(g[(s, t, P)]) for s in ("shard-off", "shard-on", "shard-otel", "proxy-off", "proxy-on") if g.get((s, t, P))}
        if len(m) < 5:
            continue
        print(f"| {t} | {P} | {m['shard-off']:,.0f} | {m['shard-on']:,.0f} | {m['shard-on']/m['shard-off']:.3f} "
              f"| {m['shard-otel']:,.0f} | {m['shard-otel']/m['shard-off']:.3f} "
              f"| {m['proxy-off']:,.0f} | {m['proxy-on']:,.0f} | {m['proxy-on']/m['proxy-off']:.3f} |")
print(f"\nmedians of {len(next(iter(g.values())))} runs (rps); raw runs in {sys.argv[1]}")
PY
