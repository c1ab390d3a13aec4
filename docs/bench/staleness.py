#!/usr/bin/env python3
"""Staleness of the near cache across proxies: a writer on proxy B, a reader on proxy A.

For each sample: SET key v_i through B; once B has answered (the write is on the shard), read
the key through A in a tight loop until A returns v_i. The time from B's reply to A's first
fresh reply is the staleness. Between samples A keeps reading the key, so it stays hot and is
served from A's near cache (the script prints A's near-cache hit counters to show it was).

Usage: staleness.py PORT_A PORT_B [SAMPLES]   (prints p50/p99/max in ms as one JSON line)
"""
import json
import socket
import sys
import time


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self):
        l = self.line()
        if l[:1] == b"$":
            n = int(l[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        return l


def info_field(c, name):
    raw = c.cmd("INFO", "hotkeys")
    for l in raw.decode().split("\r\n"):
        if l.startswith(name + ":"):
            return int(l.split(":", 1)[1])
    return -1


def main():
    pa, pb = int(sys.argv[1]), int(sys.argv[2])
    samples = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    a, b = Conn(pa), Conn(pb)
    key = "staleness:key"
    b.cmd("SET", key, "v0")
    # Make the key hot on A and cached (bounded: 20 s).
    deadline = time.time() + 20
    while time.time() < deadline:
        for _ in range(200):
            a.cmd("GET", key)
        h0 = info_field(a, "near_cache_hits")
        for _ in range(50):
            a.cmd("GET", key)
        if info_field(a, "near_cache_hits") >= h0 + 50:
            break
    hits0 = info_field(a, "near_cache_hits")
    lat = []
    for i in range(1, samples + 1):
        want = b"v%d" % i
        b.cmd("SET", key, want)
        t0 = time.perf_counter()
        for _ in range(1_000_000):
            if a.cmd("GET", key) == want:
                break
        lat.append((time.perf_counter() - t0) * 1000.0)
        for _ in range(20):  # keep it hot and let it be cached again
            a.cmd("GET", key)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(json.dumps({
        "samples": samples,
        "p50_ms": round(q(0.50), 3),
        "p99_ms": round(q(0.99), 3),
        "max_ms": round(lat[-1], 3),
        "a_hits_during": info_field(a, "near_cache_hits") - hits0,
        "a_gets_during": samples * 21,
    }))


if __name__ == "__main__":
    main()
