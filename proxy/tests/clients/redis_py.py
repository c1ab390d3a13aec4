"""redis-py through the proxy: what an application does with it.

Usage: python3 redis_py.py PORT
Exits non-zero (an assertion or a redis-py exception) on any mismatch; prints "ok" at the end.
"""
import sys
import threading
import time

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, decode_responses=True)

assert r.ping() is True
r.client_setname("redis-py-test")
assert r.client_getname() == "redis-py-test"

# Strings, counters, TTLs.
assert r.set("py:s", "v1") is True
assert r.get("py:s") == "v1"
assert r.set("py:s", "v2", nx=True) is None
assert r.incr("py:n") == 1 and r.incrby("py:n", 41) == 42
assert r.set("py:t", "x", ex=100) is True
assert 0 < r.ttl("py:t") <= 100
assert r.persist("py:t") is True and r.ttl("py:t") == -1

# Multi-key commands across shards, in the caller's key order.
keys = [f"py:k:{i}" for i in range(100)]
assert r.mset({k: f"v{i}" for i, k in enumerate(keys)}) is True
assert r.mget(keys) == [f"v{i}" for i in range(100)]
assert r.mget(["py:k:0", "py:missing", "py:k:99"]) == ["v0", None, "v99"]
assert r.exists(*keys, "py:missing") == 100
assert r.delete(*keys[:50]) == 50
assert r.mget(keys[:2] + keys[50:52]) == [None, None, "v50", "v51"]

# Hashes.
assert r.hset("py:h", mapping={"a": "1", "b": "2"}) == 2
assert r.hgetall("py:h") == {"a": "1", "b": "2"}
assert r.hincrby("py:h", "a", 9) == 10

# A pipeline whose commands go to every shard comes back in order.
p = r.pipeline(transaction=False)
for i in range(200):
    p.set(f"py:p:{i}", i)
for i in range(200):
    p.get(f"py:p:{i}")
out = p.execute()
assert out[:200] == [True] * 200
assert out[200:] == [str(i) for i in range(200)]

# redis-py's default pipeline is a transaction (MULTI ... EXEC): its keys share a slot.
t = r.pipeline()
t.set("{py:tx}:a", "1")
t.incr("{py:tx}:a")
t.lpush("{py:tx}:l", "x", "y")
t.get("{py:tx}:a")
assert t.execute() == [True, 2, 2, "2"]
# Keys in different slots abort the transaction with Redis Cluster's error.
t = r.pipeline()
t.set("py:tx:one", "1")
t.set("py:tx:two", "2")
try:
    t.execute()
    raise AssertionError("a cross-slot transaction must fail")
except redis.ResponseError as e:
    assert "CROSSSLOT" in str(e) or "EXECABORT" in str(e), e
assert r.get("py:tx:one") is None
# The WATCH retry loop (redis-py's transaction helper): read, then write if unchanged.
r.set("{py:tx}:n", 0)
def bump(pipe):
    n = int(pipe.get("{py:tx}:n"))
    pipe.multi()
    pipe.set("{py:tx}:n", n + 1)
for _ in range(20):
    r.transaction(bump, "{py:tx}:n")
assert r.get("{py:tx}:n") == "20"
# A watched key changed by another client fails the transaction (WatchError).
with r.pipeline() as p:
    p.watch("{py:tx}:n")
    r.incr("{py:tx}:n")
    p.multi()
    p.set("{py:tx}:n", 0)
    try:
        p.execute()
        raise AssertionError("a changed watched key must fail EXEC")
    except redis.WatchError:
        pass
assert r.get("{py:tx}:n") == "21"

# Errors are raised for the command; the connection goes on.
try:
    r.hget("py:s", "f")
    raise AssertionError("WRONGTYPE expected")
except redis.ResponseError as e:
    assert str(e).startswith("WRONGTYPE"), e
try:
    r.execute_command("NOSUCHCOMMAND", "x")
    raise AssertionError("unknown command error expected")
except redis.ResponseError as e:
    assert "unknown command" in str(e), e
got = r.get("py:s")
assert got == "v1", got

# register_script: EVALSHA, and on NOSCRIPT a SCRIPT LOAD then EVALSHA again.
incr_get = r.register_script("redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])")
assert incr_get(keys=["py:sc"]) == "1"
assert incr_get(keys=["py:sc"]) == "2"
assert r.script_exists(incr_get.sha) == [True]
assert r.script_flush() is True
assert r.script_exists(incr_get.sha) == [False]
assert incr_get(keys=["py:sc"]) == "3"
echo = r.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}")
assert echo(keys=["py:e"], args=["a", 21]) == ["py:e", "a", 42]
failing = r.register_script("return redis.error_reply('MY failure')")
try:
    failing(keys=["py:f"])
    raise AssertionError("a script's error_reply must raise")
except redis.ResponseError as e:
    assert str(e) == "MY failure", e
# In a pipeline redis-py checks SCRIPT EXISTS and loads what is missing first; the keys here
# live on every shard. A transactional pipeline keeps its keys in one slot.
assert r.script_flush() is True
p = r.pipeline(transaction=False)
for i in range(20):
    incr_get(keys=[f"py:sp:{i}"], client=p)
assert p.execute() == ["1"] * 20
t = r.pipeline()
incr_get(keys=["{py:st}:a"], client=t)
incr_get(keys=["{py:st}:a"], client=t)
t.get("{py:st}:a")
assert t.execute() == ["1", "2", "2"]

# Lock: SET NX PX to acquire, register_script'ed Lua to release, extend and reacquire.
from redis.exceptions import LockError, LockNotOwnedError  # noqa: E402

lock = r.lock("py:lock", timeout=5, sleep=0.01)
assert lock.acquire(blocking=False) is True
assert lock.locked() and lock.owned()
assert 4000 < r.pttl("py:lock") <= 5000
rival = r.lock("py:lock", timeout=5, sleep=0.01)
assert rival.acquire(blocking=False) is False
t0 = time.monotonic()
assert rival.acquire(blocking_timeout=0.2) is False
assert 0.15 < time.monotonic() - t0 < 5
assert not rival.owned()
assert lock.extend(10) is True
assert 10000 < r.pttl("py:lock") <= 15000
assert lock.extend(2, replace_ttl=True) is True
assert 1000 < r.pttl("py:lock") <= 2000
assert lock.reacquire() is True
assert 4000 < r.pttl("py:lock") <= 5000
lock.release()
assert not lock.locked() and r.exists("py:lock") == 0
try:
    lock.release()
    raise AssertionError("releasing an unlocked lock must fail")
except LockError:
    pass
# A lock whose key someone else took over is not ours to release or extend.
assert lock.acquire(blocking=False) is True
r.set("py:lock", "someone-else")
try:
    lock.extend(1)
    raise AssertionError("extending a lock not owned must fail")
except LockNotOwnedError:
    pass
try:
    lock.release()
    raise AssertionError("releasing a lock not owned must fail")
except LockNotOwnedError:
    pass
assert r.get("py:lock") == "someone-else"
r.delete("py:lock")
# The lock's timeout: it expires by itself, and a blocked acquirer then gets it.
short = r.lock("py:lock:short", timeout=0.3, sleep=0.01)
assert short.acquire(blocking=False) is True
waiter = r.lock("py:lock:short", timeout=5, sleep=0.01)
t0 = time.monotonic()
assert waiter.acquire(blocking_timeout=5) is True
assert 0.1 < time.monotonic() - t0 < 5
assert not short.owned() and waiter.owned()
waiter.release()
# As a context manager.
with r.lock("py:lock:with", timeout=5, blocking_timeout=1) as held:
    assert held.owned() and r.exists("py:lock:with") == 1
assert r.exists("py:lock:with") == 0
# Two clients contending with blocking acquires: never both inside, every increment counted.
inside = threading.Lock()
overlaps = []
errors = []
def worker(n):
    c = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, decode_responses=True)
    try:
        for _ in range(n):
            with c.lock("py:lock:shared", timeout=5, sleep=0.005, blocking_timeout=10):
                if not inside.acquire(blocking=False):
                    overlaps.append(1)
                    continue
                try:
                    v = int(c.get("py:lock:count") or 0)
                    time.sleep(0.002)
                    c.set("py:lock:count", v + 1)
                finally:
                    inside.release()
    except Exception as e:  # reported by the main thread
        errors.append(e)
    finally:
        c.close()
threads = [threading.Thread(target=worker, args=(25,)) for _ in range(2)]
for th in threads:
    th.start()
for th in threads:
    th.join(30)
assert not errors, errors
assert not overlaps, "two clients held the lock at once"
assert r.get("py:lock:count") == "50"

# Cluster-wide commands: SCAN walks every shard once, DBSIZE sums them.
scanned = set(r.scan_iter(match="py:p:*", count=50))
assert scanned == {f"py:p:{i}" for i in range(200)}, len(scanned)
total = r.dbsize()
assert total >= 200 + 50, total
assert "redis_version" in r.info("server")

print("ok")
