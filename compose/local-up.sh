#!/usr/bin/env bash
# The topology of compose/docker-compose.yml as local processes, from the same config files and
# on the same ports: shards on 7001-7003 (cluster bus 17001-17003, admin 9121-9123), proxies on
# 6379 and 6380 (admin 9131, 9132), an OTLP/HTTP receiver on 4318 standing in for Jaeger, and
# Prometheus on 9090 scraping them all with the alert rules loaded. Everything listens on
# 127.0.0.1; everything it started is stopped when it exits.
#
#   compose/local-up.sh              start, print the endpoints, run until Ctrl-C
#   compose/local-up.sh --smoke      start, run the smoke test, stop (exit status 0 = all passed)
#
# Options:
#   --release    run target/release binaries (default: target/debug)
#   --no-build   do not run cargo build first
#   --keep       keep the data and log directory after stopping (it is kept after a failure)
# Environment:
#   LOCAL_UP_DIR      data and log directory (default: a new /tmp/autocache-local-up.XXXXXX)
#   LOCAL_UP_TIMEOUT  seconds to wait for each step (default 60)
#   LOCAL_UP_BIN_DIR  run the binaries of this directory instead (nothing is built)
# Needs: python3, curl, redis-cli (Debian: redis-tools) and, for Prometheus, Debian's prometheus.
# AUTOCACHE_* variables of the calling shell are not passed on: the config files rule.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
smoke=0 profile=debug build=1 keep=0
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --release) profile=release ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-up.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done
timeout=${LOCAL_UP_TIMEOUT:-60}

while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^AUTOCACHE_' || true)

say() { echo "local-up: $*"; }
die() { echo "local-up: $*" >&2; exit 1; }

for tool in python3 curl redis-cli; do
  command -v "$tool" >/dev/null || die "$tool is required (redis-cli: apt-get install redis-tools)"
done
have_prometheus=0
command -v prometheus >/dev/null && have_prometheus=1
if [ "$smoke" = 1 ] && [ "$have_prometheus" = 0 ]; then
  die "the smoke test needs prometheus (apt-get install prometheus)"
fi

bins="${CARGO_TARGET_DIR:-$root/target}/$profile"
if [ -n "${LOCAL_UP_BIN_DIR:-}" ]; then
  bins=$LOCAL_UP_BIN_DIR build=0
fi
if [ "$build" = 1 ]; then
  flag=(); [ "$profile" = release ] && flag=(--release)
  say "cargo build ${flag[*]} (shard, proxy, loadtest)"
  (cd "$root" && cargo build -q "${flag[@]}" -p autocache-shard -p autocache-proxy -p autocache-loadtest --bins)
fi
for b in autocache-shard autocache-proxy autocache-loadtest; do
  [ -x "$bins/$b" ] || die "$bins/$b not found (build it, or drop --no-build)"
done
for b in autocache-shard autocache-proxy; do
  "$bins/$b" --help | grep -q -- --admin-port \
    || die "$bins/$b has no admin server (--admin-port); the topology needs /ready and /metrics"
done

# Values from the config files, so that the ports are those of docker-compose.yml.
conf() { python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))[sys.argv[2]])' "$here/$1.toml" "$2"; }
shards=(shard-1 shard-2 shard-3)
proxies=(proxy-1 proxy-2)
declare -A port admin bus
for n in "${shards[@]}" "${proxies[@]}"; do
  port[$n]=$(conf "$n" port)
  admin[$n]=$(conf "$n" admin-port)
done
for n in "${shards[@]}"; do bus[$n]=$(conf "$n" cluster-port); done
otlp_port=4318 prom_port=9090

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "${port[@]}" "${admin[@]}" "$otlp_port" "$prom_port"; do
  if busy "$p"; then die "port $p on 127.0.0.1 is in use (another local-up or docker compose?)"; fi
done

state=${LOCAL_UP_DIR:-$(mktemp -d /tmp/autocache-local-up.XXXXXX)}
mkdir -p "$state"
pids=() names=()
failed=0

stop_all() {
  local status=$? i pid t
  trap - EXIT INT TERM
  [ "$failed" = 1 ] && status=1
  # Reverse start order: proxies, shards 3..1, then Prometheus and the receiver last.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for ((t = 0; t < 200; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "local-up: ${names[$i]} (pid $pid) ignored SIGTERM for 20 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" != 0 ]; then
    for n in "${names[@]}"; do
      echo "----- last lines of $state/$n.log" >&2
      tail -n 15 "$state/$n.log" >&2 || true
    done
  fi
  if [ "$keep" = 1 ] || [ "$status" != 0 ]; then
    say "stopped; data and logs kept in $state"
  else
    rm -rf "$state"
    say "stopped"
  fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start NAME VAR=value... -- COMMAND...
start() {
  local name=$1 envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" "$@" >"$state/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

alive() {
  local i
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = "$1" ]; then kill -0 "${pids[$i]}" 2>/dev/null; return; fi
  done
  return 1
}

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }

# wait_ready NAME URL: until URL answers 200, the process has died, or the timeout.
wait_ready() {
  local name=$1 url=$2 deadline=$((SECONDS + timeout))
  until [ "$(code "$url")" = 200 ]; do
    alive "$name" || die "$name exited; see $state/$name.log"
    [ "$SECONDS" -lt "$deadline" ] || die "$name not ready at $url after ${timeout}s"
    sleep 0.2
  done
}

secret=local-up-cluster-secret
otel=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)
# The smoke test wants a trace from a handful of commands: sample every command.
[ "$smoke" = 1 ] && otel+=(AUTOCACHE_OTEL_SAMPLE_RATIO=1)

say "state in $state"
start otlp-receiver -- python3 "$here/otlp-receiver.py" --port "$otlp_port"
wait_ready otlp-receiver "http://127.0.0.1:$otlp_port/stats"

# As in docker-compose.yml: shard-1 creates the cluster, shard-2 and shard-3 join through it
# (shard-3 also through shard-2), the proxies start when every shard is ready.
seeds=""
for n in "${shards[@]}"; do
  env=(AUTOCACHE_BIND=127.0.0.1 AUTOCACHE_ADMIN_BIND=127.0.0.1 AUTOCACHE_DIR="$state/$n"
    AUTOCACHE_CLUSTER_SECRET="$secret" "${otel[@]}")
  [ -n "$seeds" ] && env+=(AUTOCACHE_CLUSTER_SEEDS="$seeds")
  start "$n" "${env[@]}" -- "$bins/autocache-shard" --config "$here/$n.toml"
  if [ "$n" = shard-1 ]; then
    wait_ready "$n" "http://127.0.0.1:${admin[$n]}/ready"
  fi
  seeds="${seeds:+$seeds,}127.0.0.1:${bus[$n]}"
done
for n in "${shards[@]}"; do wait_ready "$n" "http://127.0.0.1:${admin[$n]}/ready"; done
say "shards ready: ${port[shard-1]}, ${port[shard-2]}, ${port[shard-3]}"

shard_addrs=$(for n in "${shards[@]}"; do printf '127.0.0.1:%s,' "${port[$n]}"; done)
for n in "${proxies[@]}"; do
  start "$n" AUTOCACHE_BIND=127.0.0.1 AUTOCACHE_ADMIN_BIND=127.0.0.1 \
    AUTOCACHE_SEEDS="${shard_addrs%,}" "${otel[@]}" -- \
    "$bins/autocache-proxy" --config "$here/$n.toml"
done
for n in "${proxies[@]}"; do wait_ready "$n" "http://127.0.0.1:${admin[$n]}/ready"; done
say "proxies ready: ${port[proxy-1]}, ${port[proxy-2]}"

if [ "$have_prometheus" = 1 ]; then
  # compose/prometheus.yml with the services at 127.0.0.1, a 1 s scrape and evaluation
  # interval, and the rules file at its place in the repository.
  sed -e 's/"\(shard\|proxy\)-[0-9]*:/"127.0.0.1:/g' \
    -e 's/^\(  scrape_interval:\).*/\1 1s/' -e 's/^\(  evaluation_interval:\).*/\1 1s/' \
    -e "s#^  - alerts.yml\$#  - $root/deploy/prometheus/alerts.yml#" \
    "$here/prometheus.yml" >"$state/prometheus.yml"
  start prometheus -- prometheus --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/prometheus" --web.listen-address="127.0.0.1:$prom_port" \
    --log.level=warn
  wait_ready prometheus "http://127.0.0.1:$prom_port/-/ready"
  say "prometheus ready: http://127.0.0.1:$prom_port"
else
  say "prometheus not installed: not started (apt-get install prometheus)"
fi

if [ "$smoke" = 0 ]; then
  say "up. redis-cli -p ${port[proxy-1]} | redis-cli -p ${port[proxy-2]}; metrics on" \
    "http://127.0.0.1:${admin[proxy-1]}/metrics; traces counted at" \
    "http://127.0.0.1:$otlp_port/stats. Ctrl-C stops everything."
  while true; do
    for n in "${names[@]}"; do alive "$n" || die "$n exited; see $state/$n.log"; done
    sleep 1
  done
fi

# ---------------------------------------------------------------- smoke test
passed=0 failures=0
check() {
  local title=$1
  shift
  if "$@" >"$state/check.out" 2>&1; then
    passed=$((passed + 1))
    say "ok   $title"
    sed 's/^/      /' "$state/check.out"
  else
    failures=$((failures + 1))
    say "FAIL $title"
    sed 's/^/      /' "$state/check.out" >&2
  fi
}
p1=${port[proxy-1]} p2=${port[proxy-2]}

write_read_across_proxies() {
  local set got
  set=$(redis-cli -p "$p1" SET smoke:hello world)
  got=$(redis-cli -p "$p2" GET smoke:hello)
  echo "SET on $p1: $set; GET on $p2: $got"
  [ "$set" = OK ] && [ "$got" = world ]
}

mget_across_shards() {
  local args=() keys=() expect got n total=0 count
  for i in $(seq 1 300); do args+=("smoke:k$i" "v$i"); keys+=("smoke:k$i"); done
  [ "$(redis-cli -p "$p1" MSET "${args[@]}")" = OK ] || { echo "MSET failed"; return 1; }
  expect=$(seq 1 300 | sed 's/^/v/')
  got=$(redis-cli -p "$p2" MGET "${keys[@]}")
  [ "$got" = "$expect" ] || { echo "MGET through $p2 did not return the 300 values in order"; return 1; }
  for n in "${shards[@]}"; do
    count=$(redis-cli -p "${port[$n]}" DBSIZE)
    echo "$n holds $count keys"
    [ "$count" -gt 0 ] || return 1
    total=$((total + count))
  done
  # 300 keys and smoke:hello, each on exactly one shard.
  [ "$total" = 301 ]
}

loadtest_both_proxies() {
  local p out
  for p in "$p1" "$p2"; do
    out="$state/loadtest-$p.json"
    "$bins/autocache-loadtest" -s 127.0.0.1 -p "$p" -c 4 -t 1 -n 500 --ratio 1:2 \
      --key-prefix smoke-load: --key-maximum 999 --mget-ratio 0.2 --mget-keys 8 \
      --hide-progress --seed "$p" --json-out-file "$out" >/dev/null
    python3 - "$out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['target']}: {r['requests']} requests, {r['errors_total']} errors, {r['ops_per_sec']:.0f} ops/s")
sys.exit(0 if r["requests"] == 2000 and r["errors_total"] == 0 else 1)
EOF
  done
}

admin_endpoints() {
  local n body
  for n in "${shards[@]}" "${proxies[@]}"; do
    [ "$(code "http://127.0.0.1:${admin[$n]}/health")" = 200 ] || { echo "$n /health"; return 1; }
    [ "$(code "http://127.0.0.1:${admin[$n]}/ready")" = 200 ] || { echo "$n /ready"; return 1; }
    body=$(curl -fsS --max-time 2 "http://127.0.0.1:${admin[$n]}/metrics")
    for m in autocache_info autocache_commands_total autocache_command_duration_seconds_bucket; do
      grep -q "^$m{" <<<"$body" || { echo "$n /metrics has no $m"; return 1; }
    done
  done
}

# Polls until the command succeeds or the timeout passes; prints its last output.
eventually() {
  local deadline=$((SECONDS + timeout))
  until "$@" >"$state/eventually.out" 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then cat "$state/eventually.out"; return 1; fi
    sleep 1
  done
  cat "$state/eventually.out"
}

traces_received() {
  curl -fsS --max-time 2 "http://127.0.0.1:$otlp_port/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("OTLP requests per path:", s)
sys.exit(0 if s.get("/v1/traces", {}).get("requests", 0) > 0 else 1)'
}

promql() { curl -fsS --max-time 5 -G "http://127.0.0.1:$prom_port/api/v1/$1" --data-urlencode "query=$2"; }

prometheus_scrapes() {
  promql query 'count by (job) (up == 1)' | python3 -c '
import json, sys
r = {x["metric"]["job"]: x["value"][1] for x in json.load(sys.stdin)["data"]["result"]}
print("targets up:", r)
sys.exit(0 if r == {"autocache-shard": "3", "autocache-proxy": "2"} else 1)' || return 1
  promql query 'sum by (job) (autocache_commands_total)' | python3 -c '
import json, sys
r = {x["metric"]["job"]: float(x["value"][1]) for x in json.load(sys.stdin)["data"]["result"]}
print("autocache_commands_total:", r)
sys.exit(0 if r.get("autocache-shard", 0) > 0 and r.get("autocache-proxy", 0) > 0 else 1)'
}

rules_loaded() {
  curl -fsS --max-time 5 "http://127.0.0.1:$prom_port/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") != "ok"]
print(f"{len(groups)} groups, {len(rules)} rules, not healthy: {bad}")
sys.exit(0 if rules and not bad else 1)'
}

dashboard_queries() {
  local total=0 with_data=0 e r
  while IFS= read -r e; do
    total=$((total + 1))
    r=$(promql query "$e") || { echo "Prometheus refused: $e"; return 1; }
    python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["status"] == "success" else 1)' "$r" \
      || { echo "error: $e: $r"; return 1; }
    python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["data"]["result"] else 1)' "$r" \
      && with_data=$((with_data + 1))
  done < <(python3 "$root/deploy/grafana/dashboard.py" --exprs)
  echo "$total dashboard queries evaluated, $with_data returned data"
  [ "$total" -gt 0 ]
}

check "write on proxy-1, read on proxy-2" write_read_across_proxies
check "MSET on proxy-1, MGET on proxy-2 of 300 keys spread over the 3 shards" mget_across_shards
check "autocache-loadtest through both proxies without errors" loadtest_both_proxies
check "admin /health, /ready and /metrics of every shard and proxy" admin_endpoints
check "a trace reaches the OTLP receiver (POST /v1/traces)" eventually traces_received
check "Prometheus scrapes 3 shards and 2 proxies, autocache_commands_total from both" eventually prometheus_scrapes
check "Prometheus loaded the alert rules and evaluates them" eventually rules_loaded
check "every Grafana dashboard query evaluates in Prometheus" dashboard_queries

echo "local-up smoke: $passed passed, $failures failed"
[ "$failures" = 0 ] || failed=1
