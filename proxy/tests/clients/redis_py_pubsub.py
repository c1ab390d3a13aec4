"""redis-py's PubSub, as an application uses it: get_message, listen, handlers, patterns,
introspection and keyspace notifications. The same script runs through the proxy (over shards
or a real Redis Cluster) and straight on a shard.

Usage: python3 redis_py_pubsub.py PORT
Exits non-zero on any mismatch; prints "ok" at the end.
"""
import sys
import time

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)


def next_message(p, timeout=10):
    """The next message of any type, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(timeout=deadline - time.monotonic())
        if m is not None:
            return m
    raise AssertionError("no message in time")


# get_message: confirmations carry the connection's own counts.
p = r.pubsub()
p.subscribe("py:a")
m = next_message(p)
assert (m["type"], m["channel"], m["data"]) == ("subscribe", b"py:a", 1), m
p.psubscribe("py:b*")
m = next_message(p)
assert (m["type"], m["channel"], m["data"]) == ("psubscribe", b"py:b*", 2), m
assert r.publish("py:a", "one") == 1
m = next_message(p)
assert (m["type"], m["channel"], m["data"]) == ("message", b"py:a", b"one"), m
assert r.publish("py:bee", "two") == 1
m = next_message(p)
assert (m["type"], m["pattern"], m["channel"], m["data"]) == (
    "pmessage",
    b"py:b*",
    b"py:bee",
    b"two",
), m
assert r.publish("py:nobody", "x") == 0

# Introspection.
assert r.pubsub_numsub("py:a", "py:nobody") == [(b"py:a", 1), (b"py:nobody", 0)]
assert r.pubsub_numpat() == 1
assert b"py:a" in r.pubsub_channels()
assert r.pubsub_channels("py:nob*") == []

# A second subscriber of the same channel: both get every message.
p2 = r.pubsub()
got = []
p2.subscribe(**{"py:a": lambda m: got.append(m["data"])})
next_message(p2)
assert r.pubsub_numsub("py:a") == [(b"py:a", 2)]
r.publish("py:a", "both")
m = next_message(p)
assert m["data"] == b"both", m
p2.get_message(timeout=10)
assert got == [b"both"], got

# listen(): the confirmation, then the messages in order (published once the subscription is
# confirmed, they must all arrive).
p3 = r.pubsub()
p3.subscribe("py:listen")
seen = []
for m in p3.listen():
    seen.append((m["type"], m["data"]))
    if m["type"] == "subscribe":
        for i in range(3):
            assert r.publish("py:listen", f"m{i}") == 1
    if len(seen) == 4:
        break
assert seen == [
    ("subscribe", 1),
    ("message", b"m0"),
    ("message", b"m1"),
    ("message", b"m2"),
], seen

# Keyspace notifications: the events of every shard (CONFIG SET reaches them all).
r.config_set("notify-keyspace-events", "KEA")
p4 = r.pubsub()
p4.psubscribe("__keyevent@0__:set")
next_message(p4)
p4.subscribe("__keyspace@0__:py:key:7")
next_message(p4)
keys = [f"py:key:{i}" for i in range(30)]
for k in keys:
    r.set(k, "v")
events = set()
keyspace = []
while len(events) < len(keys) or not keyspace:
    m = next_message(p4)
    if m["type"] == "pmessage":
        assert m["channel"] == b"__keyevent@0__:set", m
        events.add(m["data"].decode())
    elif m["type"] == "message":
        keyspace.append((m["channel"], m["data"]))
assert events == set(keys), events
assert keyspace == [(b"__keyspace@0__:py:key:7", b"set")], keyspace
r.config_set("notify-keyspace-events", "")
r.delete(*keys)

# Unsubscribing: counts go down to 0, and nobody gets a message any more.
p.unsubscribe()
m = next_message(p)
assert (m["type"], m["data"]) == ("unsubscribe", 1), m
p.punsubscribe()
m = next_message(p)
assert (m["type"], m["data"]) == ("punsubscribe", 0), m
for q in (p2, p3, p4):
    q.unsubscribe()
    q.punsubscribe()
    while q.subscribed:
        q.get_message(timeout=1)
    q.close()
p.close()
assert r.publish("py:a", "gone") == 0
print("ok")
