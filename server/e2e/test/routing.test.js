// Room routing (issue 25) with Node's sharded adapter in its dynamic
// subscription mode: a room's events travel on the room's own channel, so
// a Node socket.io server and Go nodes share a room both ways, and a Go
// node with no member of the room receives none of its traffic. In static
// mode (issue 23) the same rooms ride the namespace's channel. Needs
// REDIS_URL and DATABASE_URL (scripts/services): fails, never skips,
// without them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createClient } from "redis";
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { startServer, connect, until, sleep, redisURL, requireEnv } from "../lib/harness.js";
import { newSecret, claims, hs256 } from "../lib/jwt.js";

/** The value of a metric without labels in a Prometheus text page. */
async function metric(node, name) {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${node.url} has no metric ${name}`);
  return Number(line.split(" ")[1]);
}

/**
 * A Node socket.io server on the sharded adapter in subscriptionMode mode:
 * its sockets join a room and say things in it, as an app on Node's
 * adapter would (io.to(room).emit).
 */
async function startNodeServer(redisUrl, prefix, mode) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const node = new Server(http, { adapter: createShardedAdapter(pub, sub, { channelPrefix: prefix, subscriptionMode: mode }) });
  node.on("connection", (s) => {
    s.on("join", (room, ack) => { s.join(room); ack(true); });
    s.on("say", ({ room, message }) => node.to(room).emit("message", { message, username: "node", room }));
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return {
    pub, url: `http://127.0.0.1:${http.address().port}`,
    close: async () => { node.close(); await Promise.allSettled([pub.quit(), sub.quit()]); },
  };
}

/** Two Go nodes on Redis, sharded, with subscription (REDIS_SUBSCRIPTION_MODE). */
async function startGoNodes(subscription) {
  const secret = newSecret();
  const run = randomBytes(4).toString("hex");
  const prefix = `e2e-routing-${run}`;
  const env = {
    DATABASE_URL: requireEnv("DATABASE_URL"), REDIS_URL: redisURL(), REDIS_KEY_PREFIX: prefix,
    REDIS_ADAPTER_MODE: "sharded", REDIS_SUBSCRIPTION_MODE: subscription,
    AUTH_JWT_SECRET: secret, AUTH_MODE: "optional", BATCH_WAIT: "5ms",
  };
  const go1 = await startServer(env);
  const go2 = await startServer(env);
  const token = (id, name) => hs256(secret, claims({ sub: id, name }));
  return { env, prefix, run, go1, go2, token };
}

/** Sends n messages each way between a Go socket and a Node socket in room. */
async function bothWays(onGo, onNode, room, n) {
  for (let i = 0; i < n; i++) {
    const ack = await onGo.timeout(10_000).emitWithAck("event:message", { message: `go ${i}`, room });
    assert.equal(ack.ok, true, JSON.stringify(ack));
  }
  const fromGo = () => onNode.messages.filter((m) => m.room === room && m.username === "ann").map((m) => m.message);
  await until(() => fromGo().length >= n, 10_000, "the Node socket to get the Go messages", () => JSON.stringify(onNode.messages.slice(-3)));
  assert.deepEqual(fromGo(), Array.from({ length: n }, (_, i) => `go ${i}`), "complete, once, in order");
  assert.match(onNode.messages.find((m) => m.username === "ann").id, /^[0-9a-f-]{36}$/);

  for (let i = 0; i < n; i++) onNode.emit("say", { room, message: `node ${i}` });
  const fromNode = () => onGo.messages.filter((m) => m.room === room && m.username === "node").map((m) => m.message);
  await until(() => fromNode().length >= n, 10_000, "ann to get the Node messages", () => JSON.stringify(onGo.messages.slice(-3)));
  assert.deepEqual(fromNode(), Array.from({ length: n }, (_, i) => `node ${i}`), "complete, once, in order");
}

test("a Node server in dynamic mode and Go nodes share a room both ways; a Go node without members gets none of it", async () => {
  const { env, prefix, run, go1, go2, token } = await startGoNodes("dynamic");
  const nodeServer = await startNodeServer(env.REDIS_URL, prefix, "dynamic");
  const { pub } = nodeServer;
  const nodeUrl = nodeServer.url;
  const open = [];
  try {
    const ann = { id: `ann-${run}`, name: "ann" };
    const onGo1 = await connect(go1.url, { auth: { token: token(ann.id, ann.name) }, transports: ["websocket"] });
    open.push(onGo1);
    const created = await onGo1.timeout(10_000).emitWithAck("room:create", { name: "shared", kind: "public" });
    assert.equal(created.ok, true, JSON.stringify(created));
    const room = created.room.id;
    const channel = `${prefix}#/#${room}#`;

    const onNode = await connect(nodeUrl, { transports: ["websocket"] });
    open.push(onNode);
    assert.equal(await onNode.timeout(10_000).emitWithAck("join", room), true);
    // go1 (ann) and the Node server subscribe to the room's channel; go2,
    // with no member, does not.
    const subscribers = async () => (await pub.sendCommand(["PUBSUB", "SHARDNUMSUB", channel]))[1];
    await until(async () => (await subscribers()) === 2, 10_000, `two subscribers of ${channel}`, async () => `${await subscribers()}`);
    assert.equal(await metric(go1, "chat_cluster_room_channels"), 1);
    assert.equal(await metric(go2, "chat_cluster_room_channels"), 0);

    // Go to Node and Node to Go: ann's messages reach the Node socket in
    // the room, and the Node socket's reach ann on go1.
    const N = 20;
    await bothWays(onGo1, onNode, room, N);

    // go2 received none of the room's 2 × N events.
    await sleep(300);
    assert.equal(await metric(go2, "chat_cluster_room_events_received_total"), 0, "go2 has no member of the room");
    assert.ok(await metric(go1, "chat_cluster_room_events_received_total") >= N, "go1 received the Node server's events");

    // ann leaves: go1 leaves the channel.
    const left = await onGo1.timeout(10_000).emitWithAck("room:leave", { room });
    assert.equal(left.ok, true, JSON.stringify(left));
    await until(async () => (await subscribers()) === 1, 10_000, `go1 to leave ${channel}`, async () => `${await subscribers()}`);
    assert.equal(await metric(go1, "chat_cluster_room_channels"), 0);
    assert.equal(await metric(go1, "chat_cluster_room_unsubscribes_total"), 1);
  } finally {
    for (const s of open) s.close();
    await nodeServer.close();
    await go1.stop();
    await go2.stop();
  }
});

test("REDIS_SUBSCRIPTION_MODE=static shares rooms with a Node server in static mode: every room on the namespace's channel", async () => {
  const { env, prefix, run, go1, go2, token } = await startGoNodes("static");
  const nodeServer = await startNodeServer(env.REDIS_URL, prefix, "static");
  const open = [];
  try {
    const onGo1 = await connect(go1.url, { auth: { token: token(`ann-${run}`, "ann") }, transports: ["websocket"] });
    open.push(onGo1);
    const created = await onGo1.timeout(10_000).emitWithAck("room:create", { name: "shared", kind: "public" });
    assert.equal(created.ok, true, JSON.stringify(created));
    const room = created.room.id;
    const onNode = await connect(nodeServer.url, { transports: ["websocket"] });
    open.push(onNode);
    assert.equal(await onNode.timeout(10_000).emitWithAck("join", room), true);

    const N = 20;
    await bothWays(onGo1, onNode, room, N);
    // No room has a channel: nobody subscribes to it, and go2, which has
    // no member, receives the room's events and drops them, counted.
    const [, subscribers] = await nodeServer.pub.sendCommand(["PUBSUB", "SHARDNUMSUB", `${prefix}#/#${room}#`]);
    assert.equal(subscribers, 0);
    assert.equal(await metric(go1, "chat_cluster_room_channels"), 0);
    await until(async () => (await metric(go2, "chat_cluster_room_events_dropped_total")) >= 2 * N, 10_000,
      "go2 to drop the room's events", async () => `${await metric(go2, "chat_cluster_room_events_dropped_total")}`);
  } finally {
    for (const s of open) s.close();
    await nodeServer.close();
    await go1.stop();
    await go2.stop();
  }
});
