// One cluster of Go nodes and a Node socket.io 4.8 server using Node's
// official sharded Redis adapter: messages cross both ways in bursts, with
// no loss and no duplicate, and both sides count the same servers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";
import { createClient } from "redis";
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { io as ioClient } from "socket.io-client";
import { redisURL, startServer, connect, until, sleep } from "../lib/harness.js";
import { startReference } from "../lib/reference.js";

test("Go nodes and a Node node with the official sharded adapter form one cluster", async () => {
  const prefix = `e2e${Date.now()}`;
  // Bursts of 4,000 messages: no rate limit, and room in the send queues
  // (a slow-client cut would drop the Node node's messages, which carry no
  // id to recover them by).
  const env = {
    REDIS_URL: redisURL(), REDIS_KEY_PREFIX: prefix, REDIS_ADAPTER_MODE: "sharded",
    RATE_LIMIT_PER_SEC: "0", HISTORY_LIMIT: "0", SEND_QUEUE_LIMIT: "20000",
  };
  const go1 = await startServer(env);
  const go2 = await startServer(env);
  const node = await startReference({ REDIS_URL: env.REDIS_URL, REDIS_KEY_PREFIX: prefix });
  try {
    // Both sides count three servers.
    let goCount, nodeCount;
    for (let i = 0; i < 100; i++) {
      goCount = (await (await fetch(`${go1.url}/readyz`)).json()).servers;
      nodeCount = (await (await fetch(`${node.url}/serverCount`)).json()).servers;
      if (goCount === 3 && nodeCount === 3) break;
      await sleep(100);
    }
    assert.equal(goCount, 3, "Go counts the servers");
    assert.equal(nodeCount, 3, "Node counts the same servers");

    const onGo1 = await connect(go1.url, { transports: ["websocket"] });
    const onGo2 = await connect(go2.url);
    const onNode = await connect(node.url, { transports: ["websocket"] });
    await sleep(300);

    const N = 2000;
    // From the Node node to the Go nodes.
    for (let i = 0; i < N; i++) onNode.emit("event:message", { message: `n${i}`, username: "node" });
    // From a Go node to the Node node (and the other Go node).
    for (let i = 0; i < N; i++) onGo1.emit("event:message", { message: `g${i}`, username: "go" });

    const fromNode = (s) => s.messages.filter((m) => m.username === "node").map((m) => m.message);
    const fromGo = (s) => s.messages.filter((m) => m.username === "go").map((m) => m.message);
    const expected = (p) => Array.from({ length: N }, (_, i) => `${p}${i}`);
    for (const [name, s] of [["go1", onGo1], ["go2", onGo2], ["node", onNode]]) {
      await until(() => fromNode(s).length >= N && fromGo(s).length >= N, 60_000, `${name} to receive both bursts`).catch(async (e) => {
        for (const g of [go1, go2]) console.error(g.logs().slice(-3000));
        for (const g of [go1, go2]) {
          const text = await (await fetch(`${g.url}/metrics`)).text();
          console.error(`${g.url}: ${text.split("\n").filter((l) => /^chat_cluster|^chat_redis|^chat_broadcast/.test(l)).join(" ")}`);
        }
        const missing = (got, p) => expected(p).filter((t) => !got.includes(t));
        e.message += `: ${fromNode(s).length} of the Node burst (missing ${missing(fromNode(s), "n").slice(0, 10)}), ` +
          `${fromGo(s).length} of the Go burst (missing ${missing(fromGo(s), "g").slice(0, 10)}), ` +
          `transport ${s.io.engine?.transport?.name}, connected ${s.connected}`;
        throw e;
      });
    }
    await sleep(500);
    for (const [name, s] of [["go1", onGo1], ["go2", onGo2], ["node", onNode]]) {
      assert.deepEqual(fromNode(s), expected("n"), `${name}: the Node burst, complete, once, in order`);
      assert.deepEqual(fromGo(s), expected("g"), `${name}: the Go burst, complete, once, in order`);
    }
    // Go-originated messages keep their id and time on the Node side.
    const m = onNode.messages.find((m) => m.username === "go");
    assert.match(m.id, /^[0-9a-f-]{36}$/);
    assert.match(m.createdAt, /Z$/);
    for (const s of [onGo1, onGo2, onNode]) s.disconnect();
  } finally {
    await go1.stop();
    await go2.stop();
    await node.stop();
  }
});

// Messages of several nodes reach a client a little out of their
// (createdAt, id) order. A client that moves to another node (its node died)
// sends the offset of the last message it got; the new node must resume it
// after the newest one it got, not after the last, or it shows one twice.
// A Node socket.io server of the cluster publishes two messages newest
// first, so the order is made, not hoped for.
test("a client that moves to another Go node after out-of-order messages gets none twice", async () => {
  const prefix = `e2e-order${Date.now()}`;
  const env = { REDIS_URL: redisURL(), REDIS_KEY_PREFIX: prefix, REDIS_ADAPTER_MODE: "sharded" };
  const go1 = await startServer(env);
  const go2 = await startServer(env);
  const pub = createClient({ url: env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const injector = new Server();
  injector.adapter(createShardedAdapter(pub, sub, { channelPrefix: prefix }));
  const moved = [];
  try {
    for (let i = 0; i < 100; i++) {
      if ((await (await fetch(`${go2.url}/readyz`)).json()).servers === 3) break;
      await sleep(100);
    }
    const client = await connect(go1.url, { transports: ["websocket"] });
    await sleep(300);
    const at = (s) => new Date(Date.now() + s * 1000).toISOString();
    const newer = { message: "newer", username: "n", id: randomUUID(), createdAt: at(60) };
    const older = { message: "older", username: "n", id: randomUUID(), createdAt: at(30) };
    injector.emit("message", newer);
    injector.emit("message", older);
    await until(() => client.messages.length === 2, 10_000, "both messages on go1");
    assert.deepEqual(client.messages.map((m) => m.message), ["newer", "older"], "received newest first");
    assert.equal(client._lastOffset, `${older.id}~${newer.id}`, "the offset names the last message and the newest");
    // go2 delivered both too (its ring holds them).
    const watcher = await connect(go2.url, { transports: ["websocket"] });
    await until(() => watcher.messages.length === 2, 10_000, "both messages on go2's history");
    watcher.disconnect();

    // The client comes back on go2, as socket.io-client does after its node
    // died: its session id and last offset in the CONNECT packet.
    const back = ioClient(go2.url, {
      forceNew: true, transports: ["websocket"], auth: { pid: client._pid, offset: client._lastOffset },
    });
    client.disconnect();
    back.on("message", (m) => moved.push(m));
    moved.socket = back;
    await new Promise((resolve, reject) => {
      back.once("connect", resolve);
      back.once("connect_error", reject);
    });
    const after = { message: "after the move", username: "n", id: randomUUID(), createdAt: at(90) };
    injector.emit("message", after);
    await until(() => moved.some((m) => m.message === "after the move"), 10_000, "a live message after the move");
    await sleep(300);
    assert.deepEqual(moved.map((m) => m.message), ["after the move"], "nothing it had already seen");
  } finally {
    moved.socket?.disconnect();
    // A Server without an HTTP server has no engine to close: its adapter
    // and Redis clients are all it holds.
    await Promise.allSettled([injector.of("/").adapter.close(), pub.quit(), sub.quit()]);
    await go1.stop();
    await go2.stop();
  }
});
