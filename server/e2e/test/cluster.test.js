// One cluster of Go nodes and a Node socket.io 4.8 server using Node's
// official sharded Redis adapter: messages cross both ways in bursts, with
// no loss and no duplicate, and both sides count the same servers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, connect, until, sleep } from "../lib/harness.js";
import { startReference } from "../lib/reference.js";

function redisURL() {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: start Redis with eval "$(scripts/services up redis)" (scripts/test does)');
  return url;
}

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
      await until(() => fromNode(s).length >= N && fromGo(s).length >= N, 60_000, `${name} to receive both bursts`).catch((e) => {
        for (const g of [go1, go2]) console.error(g.logs().slice(-3000));
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
