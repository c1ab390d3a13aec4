#!/usr/bin/env python3
"""The proxy's error window around a shard failure, with real processes on loopback.

Three autocache-shard processes in cluster mode behind one autocache-proxy (default settings);
a client writes through the proxy (one SET every ~2 ms) while one shard is killed with
`kill -9`. Prints, per round: when the survivors covered every slot again (both report
cluster_size:2 and cluster_state:ok), how many requests failed, and when the last error came
relative to that coverage (the target: within 1 s).

    cargo build -p autocache-shard -p autocache-proxy      # or --release, with BIN=target/release
    BIN=target/debug ROUNDS=3 /usr/bin/python3 docs/bench/proxy-failover.py

Needs redis-py (apt-get install python3-redis). Uses ports 7600-7603 and 17601-17603; kills
only what it starts.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import redis

BIN = os.environ.get("BIN", "target/release")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SHARDS = (7601, 7602, 7603)


def start_shard(data, port, seeds=None):
    d = os.path.join(data, str(port))
    os.makedirs(d, exist_ok=True)
    args = [f"{BIN}/autocache-shard", "--port", str(port), "--dir", d,
            "--cluster-enabled", "yes", "--cluster-secret", "failover-bench-secret",
            "--admin-port", "0", "--loglevel", "warning"]
    if seeds:
        args += ["--cluster-seeds", seeds]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cluster_info(port):
    try:
        return redis.Redis(port=port, socket_timeout=1).execute_command("CLUSTER", "INFO").decode()
    except Exception:
        return ""


def ok(port, size):
    i = cluster_info(port)
    return f"cluster_size:{size}" in i and "cluster_state:ok" in i


def round_once(n):
    data = tempfile.mkdtemp(prefix="proxy-failover.")
    procs = []
    proxy = None
    try:
        procs.append(start_shard(data, SHARDS[0]))
        time.sleep(0.5)
        for p in SHARDS[1:]:
            procs.append(start_shard(data, p, f"127.0.0.1:{SHARDS[0] + 10000}"))
        deadline = time.time() + 60
        while not all(ok(p, 3) for p in SHARDS):
            if time.time() > deadline:
                sys.exit("the shards did not form a cluster")
            time.sleep(0.1)
        seeds = ",".join(f"127.0.0.1:{p}" for p in SHARDS)
        proxy = subprocess.Popen([f"{BIN}/autocache-proxy", "--port", "7600", "--admin-port", "0",
                                  "--seeds", seeds, "--loglevel", "warning"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = redis.Redis(port=7600, socket_timeout=5)
        for _ in range(100):
            try:
                c.ping()
                break
            except Exception:
                time.sleep(0.1)
        log, stop = [], threading.Event()

        def client():
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    c.set(f"fo:{i % 64}", i)
                    log.append((time.time(), None))
                except Exception as e:
                    log.append((time.time(), str(e)[:40]))
                time.sleep(0.002)

        t = threading.Thread(target=client)
        t.start()
        time.sleep(1)
        killed = time.time()
        procs[2].kill()
        procs[2].wait()
        covered = None
        while time.time() - killed < 30:
            if all(ok(p, 2) for p in SHARDS[:2]):
                covered = time.time()
                break
            time.sleep(0.02)
        time.sleep(4)
        stop.set()
        t.join()
        if covered is None:
            sys.exit("the survivors did not cover the slots within 30 s")
        errs = [x for x in log if x[1]]
        ms = lambda s: f"{s * 1000:.0f} ms"
        if errs:
            first, last = errs[0][0], errs[-1][0]
            print(f"round {n}: slots covered {ms(covered - killed)} after the kill; "
                  f"{len(errs)} of {len(log)} requests failed, from {ms(first - killed)} to "
                  f"{ms(last - killed)} after the kill; last error {ms(last - covered)} after "
                  f"coverage; {sorted(set(e[1] for e in errs))}", flush=True)
        else:
            print(f"round {n}: slots covered {ms(covered - killed)} after the kill; no errors",
                  flush=True)
    finally:
        for p in procs + ([proxy] if proxy else []):
            p.kill()
            p.wait()
        shutil.rmtree(data, ignore_errors=True)


for r in range(1, ROUNDS + 1):
    round_once(r)
