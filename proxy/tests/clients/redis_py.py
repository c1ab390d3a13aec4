"""redis-py through the proxy: what an application does with it.

Usage: python3 redis_py.py PORT
Exits non-zero (an assertion or a redis-py exception) on any mismatch; prints "ok" at the end.
"""
import sys

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

# Cluster-wide commands: SCAN walks every shard once, DBSIZE sums them.
scanned = set(r.scan_iter(match="py:p:*", count=50))
assert scanned == {f"py:p:{i}" for i in range(200)}, len(scanned)
total = r.dbsize()
assert total >= 200 + 50, total
assert "redis_version" in r.info("server")

print("ok")
