// ioredis against a shard, through the proxy, or as Redis.Cluster: what an application does.
//
// Usage: node ioredis.js PORT [--pubsub] [--proxy] [--cluster]
//   --pubsub   also subscribe/psubscribe and check on('message') / on('pmessage') deliveries
//   --proxy    PORT is autocache-proxy in front of several nodes (SCRIPT EXISTS is then the AND
//              of every node's answer)
//   --cluster  connect with ioredis's Redis.Cluster (seeded with 127.0.0.1:PORT) instead of a
//              plain connection; a pipeline then keeps to one hash-tag group, as the client needs
// Exits non-zero (an assertion or an ioredis error, printed) on any mismatch; prints "ok" last.
// ioredis is installed next to this file: `npm ci` in proxy/tests/clients (.ci/run does it).
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");

const args = process.argv.slice(2);
const port = Number(args[0]);
const pubsub = args.includes("--pubsub");
const cluster = args.includes("--cluster");
const proxy = args.includes("--proxy");
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node ioredis.js PORT [--pubsub] [--proxy] [--cluster]");
  process.exit(2);
}

// Fail fast: no reconnect loop, no queueing while disconnected hiding a refused command.
const options = {
  host: "127.0.0.1",
  port,
  maxRetriesPerRequest: 1,
  retryStrategy: () => null,
  connectTimeout: 10000,
  commandTimeout: 10000,
};

function connect() {
  if (cluster) {
    return new Redis.Cluster([{ host: "127.0.0.1", port }], {
      clusterRetryStrategy: () => null,
      redisOptions: { maxRetriesPerRequest: 1, connectTimeout: 10000, commandTimeout: 10000 },
    });
  }
  return new Redis(options);
}

// The whole run is bounded: a hung reply fails the script instead of the test's timeout.
const deadline = setTimeout(() => {
  console.error("ioredis script timed out");
  process.exit(1);
}, 40000);

function waitFor(what, pred) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() - t0 > 10000) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

async function basics(r) {
  assert.equal(await r.ping(), "PONG");
  assert.equal(await r.set("io:s", "v1"), "OK");
  assert.equal(await r.get("io:s"), "v1");
  assert.equal(await r.set("io:s", "v2", "NX"), null);
  assert.equal(await r.incrby("io:n", 42), 42);
  await assert.rejects(r.hget("io:s", "f"), /^ReplyError: WRONGTYPE/);
}

async function transactions(r, other) {
  // multi() pipelines MULTI, the commands and EXEC in one write; exec() gives [err, reply] pairs.
  let out = await r.multi().set("{io:tx}:a", "1").incr("{io:tx}:a").lpush("{io:tx}:l", "x", "y")
    .get("{io:tx}:a").exec();
  assert.deepEqual(out, [[null, "OK"], [null, 2], [null, 2], [null, "2"]]);

  // multi({ pipeline: false }): MULTI sent at once, each command answered QUEUED (a plain
  // connection's mode; Redis.Cluster pipelines every transaction).
  if (!cluster) {
    assert.equal(await r.multi({ pipeline: false }), "OK");
    assert.equal(await r.incr("{io:tx}:a"), "QUEUED");
    assert.equal(await r.get("{io:tx}:a"), "QUEUED");
    out = await r.exec();
    assert.deepEqual(out, [[null, 3], [null, "3"]]);
  } else {
    await r.incr("{io:tx}:a");
  }

  // A runtime error stays in its place; the other commands run.
  out = await r.multi().set("{io:tx}:s", "x").lpush("{io:tx}:s", "y").get("{io:tx}:s").exec();
  assert.deepEqual(out[0], [null, "OK"]);
  assert.match(String(out[1][0]), /^ReplyError: WRONGTYPE/);
  assert.deepEqual(out[2], [null, "x"]);

  // A queueing error discards the whole transaction.
  await assert.rejects(
    r.multi().set("{io:tx}:b", "1").call("SET", "{io:tx}:b").exec(),
    (e) => /EXECABORT/.test(e.message),
  );
  assert.equal(await r.exists("{io:tx}:b"), 0);

  // WATCH retry loop: read, then write in MULTI unless the key changed; exec() gives null when
  // it did. The first attempt is spoiled by another client, the second goes through.
  await r.set("{io:tx}:n", "10");
  let attempts = 0;
  for (;;) {
    attempts += 1;
    assert.ok(attempts <= 5, "WATCH loop did not converge");
    assert.equal(await r.watch("{io:tx}:n"), "OK");
    const n = Number(await r.get("{io:tx}:n"));
    if (attempts === 1) await other.incr("{io:tx}:n");
    const res = await r.multi().set("{io:tx}:n", String(n + 1)).exec();
    if (res !== null) {
      assert.deepEqual(res, [[null, "OK"]]);
      break;
    }
  }
  assert.equal(attempts, 2);
  assert.equal(await r.get("{io:tx}:n"), "12");
  // UNWATCH: a change after it does not abort. (Not with Redis.Cluster: a keyless UNWATCH goes
  // to a node picked at random, which may not be the one holding the WATCH.)
  if (!cluster) {
    await r.watch("{io:tx}:n");
    assert.equal(await r.unwatch(), "OK");
    await other.incr("{io:tx}:n");
    assert.deepEqual(await r.multi().get("{io:tx}:n").exec(), [[null, "13"]]);
  }
}

const INCR_GET = "redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])";

async function scripts(r) {
  // defineCommand sends EVALSHA and falls back to EVAL on -NOSCRIPT (which caches it).
  // Redis.Cluster sends a keyless SCRIPT to one node picked at random, so the SCRIPT FLUSH /
  // EXISTS checks are for a single node or the proxy (which applies them to every shard).
  r.defineCommand("incrget", { numberOfKeys: 1, lua: INCR_GET });
  const sha = require("node:crypto").createHash("sha1").update(INCR_GET).digest("hex");
  if (!cluster) {
    assert.equal(await r.script("LOAD", INCR_GET), sha);
    assert.equal(await r.script("FLUSH"), "OK");
    assert.deepEqual(await r.script("EXISTS", sha), [0]);
  }
  assert.equal(await r.incrget("io:sc"), "1");
  // EVAL cached the script on the node that ran it: through the proxy, on one shard of
  // several, and the proxy heals an EVALSHA sent to another (it saw the EVAL).
  if (!cluster && !proxy) {
    assert.deepEqual(await r.script("EXISTS", sha), [1], "EVAL cached the script");
  }
  assert.equal(await r.incrget("io:sc"), "2");
  assert.equal(await r.evalsha(sha, 1, "io:sc"), "3");
  // Flushed again: the next call falls back to EVAL once more.
  if (!cluster) assert.equal(await r.script("FLUSH"), "OK");
  assert.equal(await r.incrget("io:sc"), "4");

  // Keys given at call time (no numberOfKeys): the first argument is the key count.
  r.defineCommand("pair", { lua: "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}" });
  assert.deepEqual(await r.pair(1, "io:k", "a", "41"), ["io:k", "a", 42]);
  // Errors raised by the script come back as ReplyErrors.
  r.defineCommand("boom", { numberOfKeys: 1, lua: "return redis.error_reply('MY boom ' .. KEYS[1])" });
  await assert.rejects(r.boom("io:e"), /MY boom io:e/);
  r.defineCommand("wrongtype", { numberOfKeys: 1, lua: "return redis.call('LPUSH', KEYS[1], 'x')" });
  await assert.rejects(r.wrongtype("io:s"), /WRONGTYPE/);

  // Scripts inside a pipeline (ioredis loads missing ones first) and inside MULTI.
  if (!cluster) await r.script("FLUSH");
  const tagged = cluster ? ["{io:sp}:1", "{io:sp}:2"] : ["io:sp:1", "io:sp:2"];
  let out = await r.pipeline().incrget(tagged[0]).incrget(tagged[1]).incrget(tagged[0]).exec();
  assert.deepEqual(out, [[null, "1"], [null, "1"], [null, "2"]]);
  out = await r.multi().incrget("{io:sm}:1").incrget("{io:sm}:2").exec();
  assert.deepEqual(out, [[null, "1"], [null, "1"]]);
}

async function pipelines(r) {
  // Through the proxy the keys spread over every shard; Redis.Cluster keeps a pipeline to one
  // node, so there they share a hash tag.
  const key = (i) => (cluster ? `{io:p}:${i}` : `io:p:${i}`);
  const p = r.pipeline();
  for (let i = 0; i < 200; i++) p.set(key(i), String(i));
  for (let i = 0; i < 200; i++) p.get(key(i));
  p.incr(key(0));
  p.hget(key(1), "f");
  const out = await p.exec();
  assert.equal(out.length, 402);
  for (let i = 0; i < 200; i++) assert.deepEqual(out[i], [null, "OK"]);
  for (let i = 0; i < 200; i++) assert.deepEqual(out[200 + i], [null, String(i)]);
  assert.deepEqual(out[400], [null, 1]);
  assert.match(String(out[401][0]), /WRONGTYPE/);
  // Auto-pipelining-free burst: many commands in flight on one connection, replies in order.
  const vals = await Promise.all(Array.from({ length: 100 }, (_, i) => r.get(key(i))));
  assert.deepEqual(vals, Array.from({ length: 100 }, (_, i) => (i === 0 ? "1" : String(i))));
}

async function subscriptions(r) {
  const sub = connect();
  const messages = [];
  const pmessages = [];
  sub.on("message", (channel, message) => messages.push([channel, message]));
  sub.on("pmessage", (pattern, channel, message) => pmessages.push([pattern, channel, message]));
  sub.on("messageBuffer", (channel, message) => assert.ok(Buffer.isBuffer(message)));
  assert.equal(await sub.subscribe("io:news", "io:alerts"), 2);
  assert.equal(await sub.psubscribe("io:ev:*"), 3);

  assert.equal(await r.publish("io:news", "hello"), 1);
  assert.equal(await r.publish("io:ev:login", "alice"), 1);
  assert.equal(await r.publish("io:nobody", "x"), 0);
  await waitFor("message", () => messages.length === 1);
  await waitFor("pmessage", () => pmessages.length === 1);
  assert.deepEqual(messages, [["io:news", "hello"]]);
  assert.deepEqual(pmessages, [["io:ev:*", "io:ev:login", "alice"]]);
  assert.deepEqual(await r.pubsub("NUMSUB", "io:news", "io:nobody"), ["io:news", 1, "io:nobody", 0]);
  assert.equal(await r.pubsub("NUMPAT"), 1);

  // Order is kept per publisher; unsubscribing stops deliveries.
  for (let i = 0; i < 50; i++) await r.publish("io:alerts", `a${i}`);
  await waitFor("50 alerts", () => messages.length === 51);
  assert.deepEqual(messages.slice(1).map((m) => m[1]), Array.from({ length: 50 }, (_, i) => `a${i}`));
  assert.equal(await sub.unsubscribe("io:news"), 2);
  assert.equal(await r.publish("io:news", "gone"), 0);
  // (ioredis resolves an argument-less UNSUBSCRIBE / PUNSUBSCRIBE only once the count is 0.)
  assert.equal(await sub.punsubscribe("io:ev:*"), 1);
  assert.equal(await r.publish("io:ev:x", "gone"), 0);
  assert.equal(await sub.unsubscribe(), 0);
  // Out of subscribed mode the connection takes ordinary commands again.
  assert.equal(await sub.get("io:s"), "v1");
  sub.disconnect();
}

// Streams: a producer and a consumer group (XADD, XREADGROUP with a short BLOCK, XACK,
// XPENDING, XAUTOCLAIM), all on one hash-tag group so Redis.Cluster keeps them together.
async function streams(r) {
  const s = "io:{st}:jobs";
  await r.del(s);
  assert.equal(await r.xgroup("CREATE", s, "g", "0", "MKSTREAM"), "OK");
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(await r.xadd(s, "MAXLEN", "~", "1000", "*", "n", String(i)));
  assert.equal(await r.xlen(s), 20);
  const first = await r.xreadgroup("GROUP", "g", "a", "COUNT", "5", "STREAMS", s, ">");
  assert.equal(first[0][0], s);
  assert.deepEqual(first[0][1].map((e) => e[1]), [0, 1, 2, 3, 4].map((i) => ["n", String(i)]));
  let acked = 0;
  for (;;) {
    const got = await r.xreadgroup("GROUP", "g", "b", "COUNT", "4", "BLOCK", "100", "STREAMS", s, ">");
    if (!got) break;
    for (const [id] of got[0][1]) acked += await r.xack(s, "g", id);
  }
  assert.equal(acked, 15);
  const pending = await r.xpending(s, "g");
  assert.deepEqual(pending, [5, ids[0], ids[4], [["a", "5"]]]);
  const [next, claimed, deleted] = await r.xautoclaim(s, "g", "c", "0", "0-0", "COUNT", "10", "JUSTID");
  assert.equal(next, "0-0");
  assert.deepEqual(claimed, ids.slice(0, 5));
  assert.deepEqual(deleted, []);
  assert.equal(await r.xack(s, "g", ...claimed), 5);
  assert.deepEqual(await r.xrange(s, ids[19], "+"), [[ids[19], ["n", "19"]]]);
  assert.equal(await r.xtrim(s, "MAXLEN", "10"), 10);
  await r.del(s);
}

async function main() {
  const r = connect();
  const other = connect();
  await basics(r);
  await transactions(r, other);
  await scripts(r);
  await pipelines(r);
  await streams(r);
  if (pubsub) await subscriptions(r);
  await r.quit();
  await other.quit();
  clearTimeout(deadline);
  console.log("ok");
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
