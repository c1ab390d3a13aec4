"""redis-py consumer-group worker loop: what a Redis Streams job queue does with it.

Usage: python3 redis_py_streams.py PORT
A producer adds jobs (XADD with approximate MAXLEN); one worker takes jobs and dies without
acknowledging them; two workers loop on XREADGROUP BLOCK / XACK until the queue is drained;
a rescuer claims the dead worker's jobs with XAUTOCLAIM (in pages) and acknowledges them.
Every job is processed exactly once by the live workers or the rescuer. Exits non-zero on any
mismatch; prints "ok" at the end.
"""
import sys
import threading
import time

import redis

port = int(sys.argv[1])


def client():
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, decode_responses=True)


r = client()
S = "py:{jobs}"
G = "workers"
N = 300
r.delete(S)
r.xgroup_create(S, G, id="0", mkstream=True)
assert r.xinfo_groups(S)[0]["name"] == G
ids = [r.xadd(S, {"n": str(i), "payload": "x" * (i % 50)}, maxlen=100_000, approximate=True)
       for i in range(N)]
assert r.xlen(S) == N
assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))

# A worker that dies after taking ten jobs: they stay pending under its name.
taken = r.xreadgroup(G, "dead", {S: ">"}, count=10)
assert taken[0][0] == S and len(taken[0][1]) == 10
dead_jobs = [int(f["n"]) for _, f in taken[0][1]]
assert dead_jobs == list(range(10))

done = []
lock = threading.Lock()
errors = []


def worker(name):
    c = client()
    try:
        while True:
            resp = c.xreadgroup(G, name, {S: ">"}, count=7, block=300)
            if not resp:
                return
            for _key, entries in resp:
                for eid, fields in entries:
                    with lock:
                        done.append(int(fields["n"]))
                    assert c.xack(S, G, eid) == 1
    except Exception as e:  # reported by the main thread
        errors.append(e)
    finally:
        c.close()


threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
for th in threads:
    th.start()
for th in threads:
    th.join(60)
assert not errors, errors
assert sorted(done) == list(range(10, N)), (len(done), sorted(done)[:5])

summary = r.xpending(S, G)
assert summary["pending"] == 10, summary
assert summary["consumers"] == [{"name": "dead", "pending": 10}], summary

# The rescuer claims what has been idle for 50 ms, four at a time, following the cursor.
time.sleep(0.1)
rescued = []
start = "0-0"
while True:
    nxt, claimed = r.xautoclaim(S, G, "rescuer", min_idle_time=50, start_id=start, count=4)[:2]
    for eid, fields in claimed:
        rescued.append(int(fields["n"]))
        assert r.xack(S, G, eid) == 1
    if nxt == "0-0":
        break
    start = nxt
assert rescued == dead_jobs, rescued
assert r.xpending(S, G)["pending"] == 0
consumers = {c["name"]: c["pending"] for c in r.xinfo_consumers(S, G)}
assert consumers == {"dead": 0, "rescuer": 0, "w0": 0, "w1": 0}, consumers
group = r.xinfo_groups(S)[0]
assert group["pending"] == 0 and group["last-delivered-id"] == ids[-1], group

# Trimming the processed jobs.
assert r.xtrim(S, minid=ids[N // 2], approximate=False) == N // 2
assert r.xrange(S, count=1)[0][0] == ids[N // 2]
assert r.xrevrange(S, count=1)[0][0] == ids[-1]
assert r.xinfo_stream(S)["length"] == N - N // 2
r.delete(S)
print("ok")
