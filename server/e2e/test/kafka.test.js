// The Kafka pipeline against records of the original Node.js server:
// kafkajs (the original's client, from npm) produces them exactly as the
// original did, and reads what the Go server produces, as the original's
// consumer would. Needs the real Kafka and PostgreSQL of scripts/services
// (KAFKA_BROKERS, DATABASE_URL): fails, never skips, without them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import { startServer, connect, emitAck, until, sleep, requireEnv, psql } from "../lib/harness.js";

const e2eDir = join(dirname(fileURLToPath(import.meta.url)), "..");

// UUIDv5 (RFC 9562), to compute the ids the Go consumer gives original records.
function uuidv5(name, namespace) {
  const h = createHash("sha1").update(Buffer.from(namespace.replace(/-/g, ""), "hex")).update(name, "utf8").digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
const URL_NAMESPACE = "6ba7b811-9dad-11d1-80b4-00c04fd430c8";
const RECORD_SPACE = uuidv5("https://github.com/scalable-chat-go/kafka-record", URL_NAMESPACE);
const originalId = (topic, partition, offset) => uuidv5(`${topic}/${partition}/${offset}`, RECORD_SPACE);

let brokers, topic, dlq, dbName, dbUrl, adminUrl, server, kafka;

before(async () => {
  brokers = requireEnv("KAFKA_BROKERS");
  adminUrl = requireEnv("DATABASE_URL");
  const suffix = randomBytes(4).toString("hex");
  topic = `e2e-original-${suffix}`;
  dlq = `${topic}.DLQ`;
  dbName = `e2e_kafka_${suffix}`;
  psql(adminUrl, `CREATE DATABASE "${dbName}"`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  dbUrl = u.toString();
  server = await startServer({
    DATABASE_URL: dbUrl,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC: topic,
    KAFKA_DLQ_TOPIC: dlq,
    KAFKA_GROUP: `e2e-group-${suffix}`,
    KAFKA_PARTITIONS: "2",
  });
  kafka = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.WARN });
});

after(async () => {
  if (server) await server.stop();
  if (dbName) psql(adminUrl, `DROP DATABASE IF EXISTS "${dbName}"`);
});

/** Reads topic from the beginning with a kafkajs consumer group (as the original's consumer did) until want() is satisfied. */
async function consumeUntil(topicName, want, ms = 30_000) {
  const consumer = kafka.consumer({ groupId: `e2e-reader-${randomBytes(4).toString("hex")}` });
  const seen = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: topicName, fromBeginning: true });
    await consumer.run({ autoCommit: true, eachMessage: async ({ partition, message }) => void seen.push({ partition, message }) });
    await until(() => want(seen), ms, `records in ${topicName}`, () =>
      seen.map(({ partition, message }) => `${partition}/${message.offset}: ${JSON.stringify(message.value?.toString())}`),
    );
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

test("records produced by kafkajs exactly as the original server did: stored with username '' and a stable id; a NUL byte goes to the dead-letter topic", async () => {
  const texts = ["hello from the original server", "nul \u0000 byte", "after the nul byte"];
  const out = execFileSync("node", ["fixtures/original-producer.js", ...texts.map((s) => JSON.stringify(s))], {
    cwd: e2eDir,
    env: { ...process.env, KAFKA_BROKERS: brokers, KAFKA_TOPIC: topic },
    encoding: "utf-8",
  });
  const produced = out.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(produced.length, 3);
  const [hello, nul, afterNul] = produced;

  // Stored: the two good ones, with username "" and the id of their record.
  let rows = [];
  await until(() => {
    rows = psql(dbUrl, "SELECT id, content, username FROM messages ORDER BY content").split("\n").filter(Boolean);
    return rows.length >= 2;
  }, 30_000, "two rows in PostgreSQL", () => rows);
  await sleep(500);
  rows = psql(dbUrl, "SELECT id, content, username FROM messages ORDER BY content").split("\n").filter(Boolean);
  assert.deepEqual(rows, [
    `${originalId(topic, afterNul.partition, afterNul.offset)}\t${afterNul.text}\t`,
    `${originalId(topic, hello.partition, hello.offset)}\t${hello.text}\t`,
  ]);

  // The NUL byte: PostgreSQL refuses it; it is in the dead-letter topic, as it was, with the reason.
  const dead = await consumeUntil(dlq, (seen) => seen.length >= 1);
  assert.equal(dead.length, 1);
  const d = dead[0].message;
  assert.equal(d.value.toString("utf-8"), "nul \u0000 byte");
  assert.match(d.key.toString(), /^message-\d+$/);
  assert.match(d.headers["dlq-reason"].toString(), /the store refused it/);
  assert.equal(d.headers["dlq-source"].toString(), `${topic}/${nul.partition}/${nul.offset}`);

  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^chat_kafka_dlq_total\{reason="rejected"\} 1$/m);
  assert.match(metrics, /^chat_kafka_dlq_total\{reason="undecodable"\} 0$/m);

  // History reads them back from the store.
  const page = await (await fetch(`${server.url}/api/messages?limit=10`)).json();
  const listed = page.messages.map((m) => [m.message, m.username]);
  assert.deepEqual(listed.sort(), [[afterNul.text, ""], [hello.text, ""]].sort());
});

test("the original's kafkajs consumer reads what the Go server produces: the text as the value (gzip), plus id, username and created-at headers", async () => {
  const socket = await connect(server.url);
  try {
    const ack = await emitAck(socket, { message: "from the Go server ✓", username: "ann" });
    assert.equal(ack.ok, true);
    const seen = await consumeUntil(topic, (s) => s.some(({ message }) => message.value?.toString() === "from the Go server ✓"));
    const { message } = seen.find(({ message }) => message.value?.toString() === "from the Go server ✓");
    assert.equal(message.key.toString(), ack.id);
    assert.equal(message.headers.id.toString(), ack.id);
    assert.equal(message.headers.username.toString(), "ann");
    assert.match(message.headers["created-at"].toString(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  } finally {
    socket.disconnect();
  }
});
