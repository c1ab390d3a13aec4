#!/usr/bin/env bash
# Scrapes a running autocache-shard and autocache-proxy with a real Prometheus server and asks it
# for the command rate. Everything listens on 127.0.0.1 and stops when the script ends.
#
#   apt-get install -y prometheus redis-tools curl   # Debian/Ubuntu
#   docs/bench/prometheus.sh
#   PROFILE=debug docs/bench/prometheus.sh     # with the debug binaries (faster to build)
#
# Exits non-zero unless Prometheus returns a non-zero command rate for both jobs.
set -euo pipefail
cd "$(dirname "$0")/../.."

for bin in prometheus redis-benchmark curl python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install prometheus redis-tools curl python3)" >&2; exit 1; }
done
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p autocache-shard -p autocache-proxy
else
  cargo build -q -p autocache-shard -p autocache-proxy
fi
BIN=./target/$PROFILE

OUT=$(mktemp -d /tmp/autocache-prometheus.XXXXXX)
SHARD_PORT=${SHARD_PORT:-7451}; SHARD_ADMIN=${SHARD_ADMIN:-9451}
PROXY_PORT=${PROXY_PORT:-7452}; PROXY_ADMIN=${PROXY_ADMIN:-9452}
PROM_PORT=${PROM_PORT:-9453}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$BIN/autocache-shard" --port "$SHARD_PORT" --admin-port "$SHARD_ADMIN" --dir "$OUT/shard" --loglevel warning >"$OUT/shard.log" 2>&1 &
PIDS+=($!)
"$BIN/autocache-proxy" --port "$PROXY_PORT" --admin-port "$PROXY_ADMIN" --seeds "127.0.0.1:$SHARD_PORT" --loglevel warning >"$OUT/proxy.log" 2>&1 &
PIDS+=($!)

wait_http() { # url, tries (0.1 s apart)
  for _ in $(seq "$2"); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; return 1
}
wait_http "http://127.0.0.1:$SHARD_ADMIN/ready" 300
wait_http "http://127.0.0.1:$PROXY_ADMIN/ready" 300

cat >"$OUT/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: autocache-shard
    static_configs: [{ targets: ["127.0.0.1:$SHARD_ADMIN"] }]
  - job_name: autocache-proxy
    static_configs: [{ targets: ["127.0.0.1:$PROXY_ADMIN"] }]
EOF
prometheus --config.file="$OUT/prometheus.yml" --storage.tsdb.path="$OUT/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$OUT/prometheus.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" 300

# Traffic through the proxy (and so on the shard) for about 10 s, bounded in requests too.
for _ in $(seq 10); do
  timeout 5 redis-benchmark -p "$PROXY_PORT" -c 10 -n 20000 -r 1000 -t set,get -q >/dev/null || true
  sleep 1
done

QUERY='sum by (job) (rate(autocache_commands_total[10s]))'
RESULT=$(curl -fsG "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$QUERY")
echo "query: $QUERY"
echo "$RESULT" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
rates = {s["metric"].get("job"): float(s["value"][1]) for s in r}
for job in ("autocache-shard", "autocache-proxy"):
    print(f"{job}: {rates.get(job, 0):.0f} commands/s")
missing = [j for j in ("autocache-shard", "autocache-proxy") if rates.get(j, 0) <= 0]
if missing:
    sys.exit(f"no command rate for {missing}")
'
echo "up: $(curl -fsG "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=up' | python3 -c 'import json,sys; print({s["metric"]["job"]: s["value"][1] for s in json.load(sys.stdin)["data"]["result"]})')"
