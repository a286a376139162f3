// Moderation through the Kafka log (issue 13), with the real socket.io-client
// and kafkajs: two Go nodes on Redis that only produce, then a third that
// consumes late (a lagging consumer): the deleted message is stored and
// hidden, its deletion record is what the topic says, and a ban made on one
// node, stored in the shared PostgreSQL, disconnects the user on the other
// and holds after a restart. Needs REDIS_URL, DATABASE_URL and
// KAFKA_BROKERS (scripts/services): fails, never skips, without them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { io } from "socket.io-client";
import { Kafka, logLevel } from "kafkajs";
import { startServer, connect, until, sleep, emitAck, requireEnv, psql } from "../lib/harness.js";
import { newSecret, claims, hs256 } from "../lib/jwt.js";

const secret = newSecret();
const adminToken = newSecret();
let env, adminUrl, dbName, topic, nodes = [];
const sockets = [];

before(async () => {
  adminUrl = requireEnv("DATABASE_URL");
  const suffix = randomBytes(4).toString("hex");
  dbName = `e2e_trust_kafka_${suffix}`;
  topic = `e2e-trust-${suffix}`;
  psql(adminUrl, `CREATE DATABASE "${dbName}"`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  env = {
    DATABASE_URL: u.toString(),
    REDIS_URL: requireEnv("REDIS_URL"),
    REDIS_KEY_PREFIX: `e2e-trust-kafka-${suffix}`,
    KAFKA_BROKERS: requireEnv("KAFKA_BROKERS"),
    KAFKA_TOPIC: topic,
    KAFKA_GROUP: `e2e-trust-${suffix}`,
    KAFKA_PARTITIONS: "3",
    AUTH_JWT_SECRET: secret,
    ADMIN_TOKEN: adminToken,
    BAN_REFRESH_INTERVAL: "1s",
  };
});

after(async () => {
  for (const s of sockets) s.close();
  for (const n of nodes) await n.stop();
  if (dbName) psql(adminUrl, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
});

async function join(url, token, opts = {}) {
  const s = await connect(url, { auth: { token }, ...opts });
  s.deleted = [];
  s.on("message:deleted", (d) => s.deleted.push(d));
  sockets.push(s);
  return s;
}

const dbUrl = () => env.DATABASE_URL;

test("a deletion through Kafka: hidden at once, stored as a tombstone by a consumer that comes late, the message never back", async () => {
  const n1 = await startServer({ ...env, KAFKA_CONSUMER: "off" });
  const n2 = await startServer({ ...env, KAFKA_CONSUMER: "off" });
  nodes.push(n1, n2);
  for (let i = 0; i < 100; i++) {
    if ((await (await fetch(`${n2.url}/readyz`)).json()).servers === 2) break;
    await sleep(100);
  }
  const alice = await join(n1.url, hs256(secret, claims({ sub: "alice", name: "Alice" })));
  const mod = await join(n2.url, hs256(secret, claims({ sub: "mod", name: "Mod", roles: ["admin"] })));
  await sleep(200);
  const gone = await emitAck(alice, { message: "to be deleted" });
  const kept = await emitAck(alice, { message: "kept" });
  assert.ok(gone.ok && kept.ok, "acknowledged by the broker");
  await until(() => mod.messages.some((m) => m.id === kept.id), 10_000, "both on node 2");
  const ack = await mod.timeout(10_000).emitWithAck("event:delete", { id: gone.id });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  await until(() => alice.deleted.some((d) => d.id === gone.id), 5000, "message:deleted on node 1");
  assert.equal(psql(dbUrl(), "SELECT count(*) FROM messages"), "0", "no consumer yet");
  for (const n of [n1, n2]) {
    const page = await (await fetch(`${n.url}/api/messages`)).json();
    assert.deepEqual(page.messages.map((m) => m.message), ["kept"], `${n.url}: hidden before anything is stored`);
  }

  // The records: the message, then its deletion on the same partition.
  const kafka = new Kafka({ brokers: env.KAFKA_BROKERS.split(","), logLevel: logLevel.WARN });
  const reader = kafka.consumer({ groupId: `e2e-reader-${randomBytes(4).toString("hex")}` });
  const seen = [];
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  await reader.run({ eachMessage: async ({ partition, message }) => void seen.push({ partition, message }) });
  await until(() => seen.length >= 3, 30_000, "three records");
  await reader.disconnect();
  const del = seen.find((r) => r.message.headers["chat-event"]?.toString() === "message-deleted");
  const msg = seen.find((r) => r.message.key.toString() === gone.id && !r.message.headers["chat-event"]);
  assert.ok(del && msg, "a message record and a deletion record");
  assert.equal(del.message.key.toString(), gone.id);
  assert.equal(del.partition, msg.partition, "on the message's partition");
  assert.ok(BigInt(del.message.offset) > BigInt(msg.message.offset), "after it");
  assert.equal(del.message.value.toString(), "", "an empty value, not null");
  assert.equal(del.message.headers["deleted-by"].toString(), "mod");
  assert.equal(msg.message.value.toString(), "to be deleted", "the message record is as before: the text as the value");

  // A node with a consumer comes late and stores both.
  const n3 = await startServer(env);
  nodes.push(n3);
  await until(() => psql(dbUrl(), "SELECT count(*) FROM message_deletions") === "1" && psql(dbUrl(), "SELECT count(*) FROM messages") === "2",
    30_000, "the message and its tombstone in PostgreSQL");
  assert.equal(psql(dbUrl(), `SELECT username || '/' || coalesce(user_id, '') FROM messages WHERE id = '${gone.id}'`), "Alice/alice");
  for (const n of [n1, n2, n3]) {
    const page = await (await fetch(`${n.url}/api/messages`)).json();
    assert.deepEqual(page.messages.map((m) => m.message), ["kept"], `${n.url}: never back`);
  }
  const newcomer = await join(n3.url, hs256(secret, claims()));
  await until(() => newcomer.messages.length >= 1, 10_000, "history");
  await sleep(200);
  assert.deepEqual(newcomer.messages.map((m) => m.message), ["kept"]);
});

test("a ban in the shared PostgreSQL: the other node disconnects the user at once, and after a restart still refuses it", async () => {
  const [n1, n2] = nodes;
  const victim = () => hs256(secret, claims({ sub: "troll", name: "Troll" }));
  const s = await join(n2.url, victim(), { reconnection: false });
  const gone = new Promise((resolve) => s.once("disconnect", () => resolve(Date.now())));
  const t0 = Date.now();
  const res = await fetch(`${n1.url}/api/bans`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ userId: "troll", reason: "flood" }),
  });
  assert.equal(res.status, 201);
  const took = (await gone) - t0;
  console.log(`ban (Kafka setup): node 2 disconnected the banned socket ${took} ms after POST /api/bans to node 1`);
  assert.ok(took < 1000);
  assert.equal(psql(dbUrl(), "SELECT count(*) FROM bans WHERE user_id = 'troll' AND lifted_at IS NULL"), "1");
  const port = n2.port;
  await n2.stop();
  nodes = nodes.filter((n) => n !== n2);
  const again = await startServer({ ...env, PORT: String(port), KAFKA_CONSUMER: "off" });
  nodes.push(again);
  const err = await new Promise((resolve) => {
    const c = io(again.url, { forceNew: true, reconnection: false, auth: { token: victim() } });
    c.once("connect_error", (e) => {
      c.close();
      resolve(e);
    });
    c.once("connect", () => {
      c.close();
      resolve(new Error("connected"));
    });
  });
  assert.equal(err.message, "banned");
  assert.match(err.data.reason, /flood/);
});
