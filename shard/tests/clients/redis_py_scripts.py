"""redis-py's Lua helpers against a shard, or through the proxy: register_script (EVALSHA,
then EVAL on NOSCRIPT; in a pipeline SCRIPT EXISTS and SCRIPT LOAD first), Lock (acquire,
release, extend and reacquire are scripts; a blocking acquire contended by two clients), and a
function library called with FCALL.

Usage: python3 redis_py_scripts.py PORT
Exits non-zero (an assertion or a redis-py exception) on any mismatch; prints "ok" at the end.
"""
import sys
import threading
import time

import redis

port = int(sys.argv[1])


def client():
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, decode_responses=True)


r = client()

# register_script: EVALSHA first; NOSCRIPT makes redis-py send EVAL.
assert r.script_flush() is True
incr = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
for i in range(20):
    key = f"py:script:{i}"
    assert incr(keys=[key], args=[5]) == 5
    assert incr(keys=[key], args=[2]) == 7
assert r.script_exists(incr.sha) == [True]
echo = r.register_script("return {KEYS[1], ARGV[1], redis.call('GET', KEYS[1])}")
assert r.set("py:script:g", "x") is True
assert echo(keys=["py:script:g"], args=["a"]) == ["py:script:g", "a", "x"]
# In a pipeline redis-py checks SCRIPT EXISTS and loads what is missing before EVALSHA.
fresh = r.register_script("return redis.call('INCR', KEYS[1]) * 10")
p = r.pipeline(transaction=False)
for i in range(10):
    fresh(keys=[f"py:script:p{i}"], client=p)
assert p.execute() == [10] * 10
assert r.script_exists(fresh.sha) == [True]

# Lock: acquire, a second owner refused, extend, reacquire, release.
lock = r.lock("py:lock", timeout=10)
assert lock.acquire(blocking=False) is True
assert lock.locked() and lock.owned()
assert r.lock("py:lock", timeout=10).acquire(blocking=False) is False
assert lock.extend(10) is True
assert 10000 < r.pttl("py:lock") <= 20000
assert lock.reacquire() is True
assert 0 < r.pttl("py:lock") <= 10000
lock.release()
assert not lock.locked()
try:
    lock.release()
    raise AssertionError("released a lock it did not hold")
except redis.exceptions.LockError:
    pass
try:
    lock.extend(5)
    raise AssertionError("extended a lock it did not hold")
except redis.exceptions.LockError:
    pass

# A blocking acquire waits for the holder to release, in another client.
holder = r.lock("py:lock2", timeout=30)
assert holder.acquire(blocking=False) is True
waiter = client().lock("py:lock2", timeout=30, sleep=0.01)
order = []


def wait_for_it():
    got = waiter.acquire(blocking=True, blocking_timeout=20)
    order.append(("waiter acquired", got))
    waiter.release()


t = threading.Thread(target=wait_for_it)
t.start()
time.sleep(0.2)
assert order == [], order
order.append(("holder released", True))
holder.release()
t.join(25)
assert order == [("holder released", True), ("waiter acquired", True)], order
# ... and gives up after its blocking timeout while the lock stays held.
held = r.lock("py:lock3", timeout=30)
assert held.acquire(blocking=False) is True
assert client().lock("py:lock3", timeout=30, sleep=0.01).acquire(blocking_timeout=0.2) is False
held.release()

# Functions: a library loaded once, its functions called by key.
lib = """#!lua name=pylib
redis.register_function('py_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
redis.register_function{function_name='py_get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}
"""
assert r.execute_command("FUNCTION", "LOAD", "REPLACE", lib) == "pylib"
for i in range(20):
    assert r.execute_command("FCALL", "py_set", 1, f"py:fn:{i}", f"v{i}") == "OK"
for i in range(20):
    assert r.execute_command("FCALL_RO", "py_get", 1, f"py:fn:{i}") == f"v{i}"
assert r.execute_command("FUNCTION", "DELETE", "pylib") == "OK"
try:
    r.execute_command("FCALL", "py_set", 1, "py:fn:0", "x")
    raise AssertionError("a deleted function ran")
except redis.exceptions.ResponseError as e:
    assert str(e) == "Function not found", e
print("ok")
