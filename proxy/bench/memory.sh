#!/usr/bin/env bash
# memory.sh — what clients cost the proxy in memory (RSS), release build:
#   1. idle connections: N_IDLE clients connect, each sends one PING, then idle; RSS before and
#      after, per connection; the same against one redis-server for comparison;
#   2. slow clients: SLOW clients each pipeline GETS GETs of a 100 KB value and read nothing;
#      RSS after SETTLE seconds, then again SETTLE seconds after they closed.
# 3 autocache-shard (17701-17703) behind autocache-proxy (17700), redis-server on 17710, all
# started here and stopped by PID at exit; everything on 127.0.0.1 and bounded.
# Usage: bash proxy/bench/memory.sh   (env: N_IDLE=5000 SLOW=4 GETS=20000 SETTLE=5 OUT=<dir>,
#        PROXY_BIN=<another autocache-proxy build>)
# Needs: cargo build --release -p autocache-proxy -p autocache-shard; redis-server, python3.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N_IDLE=${N_IDLE:-5000}
SLOW=${SLOW:-4}
GETS=${GETS:-20000}
SETTLE=${SETTLE:-5}
OUT=${OUT:-${TMPDIR:-/tmp}/autocache-proxy-memory-$(date +%Y%m%d-%H%M%S)}
P=${PROXY_BIN:-$ROOT/target/release/autocache-proxy}
S=$ROOT/target/release/autocache-shard
mkdir -p "$OUT"
if [ ! -x "$P" ] || [ ! -x "$S" ]; then echo "build first: cargo build --release -p autocache-proxy -p autocache-shard" >&2; exit 1; fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
wait_pong() { for _ in $(seq 1 200); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "port $1 did not answer" >&2; exit 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

for port in 17701 17702 17703; do
  "$S" --port $port --admin-port 0 --dir "$OUT/shard-$port" --loglevel warning >"$OUT/shard-$port.log" 2>&1 &
  PIDS+=($!)
  wait_pong $port
done
"$P" --port 17700 --admin-port 0 --seeds 127.0.0.1:17701,127.0.0.1:17702,127.0.0.1:17703 \
  --loglevel warning >"$OUT/proxy.log" 2>&1 &
PROXY=$!; PIDS+=("$PROXY")
wait_pong 17700
redis-server --port 17710 --save '' --appendonly no --maxclients 20000 --loglevel warning >"$OUT/redis.log" 2>&1 &
REDIS=$!; PIDS+=("$REDIS")
wait_pong 17710

idle() { # port pid
  python3 - "$1" "$2" "$N_IDLE" <<'PY'
import socket, sys, time
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1])
time.sleep(0.5)
before = rss()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    socks.append(s)
for s in socks:
    assert s.recv(16) == b"+PONG\r\n"
time.sleep(2)
after = rss()
print(f"{n}\t{before}\t{after}\t{(after - before) * 1024 / n:.0f}")
for s in socks:
    s.close()
PY
}
printf 'system\tconnections\trss_before_kb\trss_after_kb\tbytes_per_connection\n' | tee "$OUT/idle.tsv"
printf 'autocache-proxy\t%s\n' "$(idle 17700 "$PROXY")" | tee -a "$OUT/idle.tsv"
printf 'redis-server\t%s\n' "$(idle 17710 "$REDIS")" | tee -a "$OUT/idle.tsv"

redis-cli -p 17700 SET big "$(head -c 102400 /dev/zero | tr '\0' v)" >/dev/null
python3 - 17700 "$PROXY" "$SLOW" "$GETS" "$SETTLE" <<'PY' | tee "$OUT/slow.tsv"
import socket, sys, time
port, pid, n, gets, settle = (int(a) for a in sys.argv[1:6])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1])
before = rss()
one = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"
req = one * gets
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    sent = 0
    deadline = time.time() + settle
    while sent < len(req) and time.time() < deadline:
        try:
            sent += s.send(req[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    socks.append((s, sent))
time.sleep(settle)
during = rss()
for s, _ in socks:
    s.close()
time.sleep(settle)
after = rss()
print("slow_clients\tgets_each\trequests_sent_each\trss_before_kb\trss_with_slow_clients_kb\trss_after_close_kb")
print(f"{n}\t{gets}\t{min(x for _, x in socks) // len(one)}\t{before}\t{during}\t{after}")
PY
echo "results in $OUT"
