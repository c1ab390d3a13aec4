# common.sh — sourced by the proxy's benchmark scripts: process bookkeeping and server start-up.
# The caller sets OUT (results directory); every process started here is stopped by PID on exit.
# shellcheck shell=bash

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_redis PORT [redis-server args...]: a redis-server on 127.0.0.1 without persistence,
# logs under $OUT/logs/redis-PORT; its PID is appended to PIDS and kept in SERVER_PID[PORT].
declare -A SERVER_PID
start_redis() {
  local port=$1; shift; local d="$OUT/logs/redis-$port"; mkdir -p "$d"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$d" \
    --logfile "$d/redis.log" "$@" >/dev/null 2>&1 &
  PIDS+=("$!")
  # SERVER_PID is read by the scripts that source this one (peers.sh).
  # shellcheck disable=SC2034
  SERVER_PID[$port]=$!
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis $port failed to start" >&2; exit 1
}

# start_cluster PORT...: a Redis Cluster of masters on these ports (bus port = port + 10000),
# waited for until every node reports cluster_state:ok; the nodes' PIDS go to CLUSTER_PIDS.
start_cluster() {
  local p hp=() ok
  CLUSTER_PIDS=()
  for p in "$@"; do
    start_redis "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port $((p + 10000))
    CLUSTER_PIDS+=("${PIDS[-1]}"); hp+=("127.0.0.1:$p")
  done
  redis-cli --cluster create "${hp[@]}" --cluster-replicas 0 --cluster-yes \
    >"$OUT/logs/cluster-create.log" 2>&1
  for _ in $(seq 100); do
    ok=0
    for p in "$@"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && ok=$((ok + 1)); done
    [ "$ok" -eq $# ] && return 0; sleep 0.2
  done
  echo "cluster on $* did not reach cluster_state:ok" >&2; exit 1
}

# wait_pong PORT: until the server on PORT answers PING (at most 10 s).
wait_pong() {
  for _ in $(seq 100); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  echo "nothing answers on $1" >&2; exit 1
}

# start_twemproxy PORT STATS_PORT BACKEND_PORT...: nutcracker (ketama, fnv1a_64, redis) on
# 127.0.0.1:PORT over the given redis-servers, config and log under $OUT/logs; waits for PING;
# its PID goes to TWEM_PID.
start_twemproxy() {
  local port=$1 stats=$2 i=0 p; shift 2
  {
    echo "pool:"
    echo "  listen: 127.0.0.1:$port"
    echo "  hash: fnv1a_64"
    echo "  distribution: ketama"
    echo "  redis: true"
    echo "  auto_eject_hosts: false"
    echo "  timeout: 5000"
    echo "  servers:"
    for p in "$@"; do i=$((i + 1)); echo "   - 127.0.0.1:$p:1 s$i"; done
  } > "$OUT/logs/nutcracker-$port.yml"
  nutcracker -c "$OUT/logs/nutcracker-$port.yml" -o "$OUT/logs/nutcracker-$port.log" -s "$stats" \
    -a 127.0.0.1 >/dev/null 2>&1 &
  TWEM_PID=$!; PIDS+=("$TWEM_PID")
  wait_pong "$port"
}
