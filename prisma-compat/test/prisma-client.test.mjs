// The Go server and a Prisma 7 client (client.ts: generator `prisma-client`,
// `@prisma/adapter-pg`) on one PostgreSQL database: what either writes, the
// other reads, usernames included. The database is the real one that
// DATABASE_URL names (scripts/services up postgres); the test makes its own
// database there and drops it afterwards. Without DATABASE_URL it fails.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { io } from "socket.io-client";
import { sleep, startChatServer, until } from "../../scripts/lib/harness.mjs";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = promisify(execFile);

let admin; // DATABASE_URL
let dbName;
let dbUrl; // Prisma style, ?schema=public
let server;
const adminToken = "a".repeat(16) + Date.now().toString(16).padStart(16, "0");

async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

/**
 * Ends this role's sessions on the database and drops it. Not WITH (FORCE): a role that is
 * not a superuser cannot end an autovacuum worker that way; a plain DROP stops it.
 */
async function dropDatabase(name) {
  for (let attempt = 0; ; attempt++) {
    await adminQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND usename = current_user AND pid <> pg_backend_pid()`,
    );
    try {
      await adminQuery(`DROP DATABASE IF EXISTS "${name}"`);
      return;
    } catch (err) {
      if (err.code !== "55006" || attempt >= 50) throw err; // object_in_use
      await sleep(100);
    }
  }
}

/** Runs client.ts with args against the test database; returns its JSON output. */
async function prisma(...args) {
  const { stdout } = await run(join(here, "node_modules", ".bin", "tsx"), ["client.ts", ...args], {
    cwd: here,
    env: { ...process.env, DATABASE_URL: dbUrl },
  });
  return JSON.parse(stdout);
}

before(async () => {
  admin = process.env.DATABASE_URL;
  if (!admin) {
    throw new Error(
      'DATABASE_URL is not set: this test needs the real PostgreSQL. Start it with: eval "$(scripts/services up postgres)"',
    );
  }
  if (!existsSync(join(here, "generated", "prisma", "client.ts"))) {
    throw new Error("the Prisma client is not generated: run `npm run generate` in prisma-compat first");
  }
  dbName = `prisma_compat_${process.pid}_${Date.now()}`;
  await adminQuery(`CREATE DATABASE "${dbName}"`);
  const u = new URL(admin);
  u.pathname = "/" + dbName;
  u.searchParams.set("schema", "public");
  dbUrl = u.toString();

  server = await startChatServer({ DATABASE_URL: dbUrl, RATE_LIMIT_PER_SEC: "0", BATCH_WAIT: "10ms", ADMIN_TOKEN: adminToken });
});

after(async () => {
  await server?.stop();
  if (dbName) await dropDatabase(dbName);
});

async function connect() {
  const socket = io(server.url, { reconnection: false, forceNew: true });
  const history = [];
  socket.on("message", (m) => history.push(m));
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return { socket, history };
}

test("a message written by the Prisma client is served by the Go server", async () => {
  const row = await prisma("write", "prisma-user", "written through Prisma Client");
  assert.match(row.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "Prisma's @default(uuid())");
  assert.equal(row.username, "prisma-user");

  const res = await fetch(`${server.url}/api/messages?limit=10`);
  assert.equal(res.status, 200);
  const { messages } = await res.json();
  const served = messages.find((m) => m.id === row.id);
  assert.deepEqual(served, {
    id: row.id,
    message: "written through Prisma Client",
    username: "prisma-user",
    createdAt: row.createdAt,
  });

  // A newcomer's history (the original client's `message` events) has it too.
  const { socket, history } = await connect();
  try {
    await until(() => history.some((m) => m.id === row.id), 10_000, `message ${row.id} in the history on connect`, () => history);
    const m = history.find((m) => m.id === row.id);
    assert.equal(m.message, "written through Prisma Client");
    assert.equal(m.username, "prisma-user");
  } finally {
    socket.close();
  }
});

test("the Prisma client reads the messages the Go server stored, with their usernames", async () => {
  const { socket } = await connect();
  const sent = [];
  try {
    for (const [username, message] of [
      ["ada", "first from socket.io"],
      ["Zoë 🦊", "second, with ünïcode and \"quotes\""],
      ["grace", "third"],
    ]) {
      const ack = await socket.timeout(10_000).emitWithAck("event:message", { message, username });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      sent.push({ id: ack.id, username, content: message });
    }
  } finally {
    socket.close();
  }
  // Acknowledged means committed: Prisma sees all three at once.
  const rows = await prisma("list", "10");
  for (const s of sent) {
    const r = rows.find((r) => r.id === s.id);
    assert.ok(r, `message ${s.id} is not visible to Prisma: ${JSON.stringify(rows)}`);
    assert.equal(r.username, s.username);
    assert.equal(r.content, s.content);
    assert.ok(!Number.isNaN(Date.parse(r.createdAt)));
  }
  // Newest first, as the Go server orders history: the last one sent leads.
  assert.equal(rows[0].id, sent[2].id);
  const order = sent.map((s) => rows.findIndex((r) => r.id === s.id));
  assert.deepEqual([...order].sort((a, b) => b - a), order, "newest first");
});

test("identity and moderation: Prisma reads and writes user ids, and sees the Go server's tombstones and bans", async () => {
  // A row with a user id, written through Prisma, is served as a verified message.
  const row = await prisma("write", "Zoë", "a verified message", "auth0|zoe");
  assert.equal(row.userId, "auth0|zoe");
  let page = await (await fetch(`${server.url}/api/messages?limit=50`)).json();
  const served = page.messages.find((m) => m.id === row.id);
  assert.deepEqual([served.username, served.userId, served.verified], ["Zoë", "auth0|zoe", true]);

  // The Go server deletes it: the row stays, its tombstone is a row Prisma reads, history leaves it out.
  const del = await fetch(`${server.url}/api/messages/${row.id}`, { method: "DELETE", headers: { authorization: `Bearer ${adminToken}` } });
  assert.equal(del.status, 204);
  const tombstones = await prisma("deletions");
  const t = tombstones.find((d) => d.id === row.id);
  assert.ok(t, `no tombstone for ${row.id}: ${JSON.stringify(tombstones)}`);
  assert.equal(t.deletedBy, "admin-token");
  assert.ok((await prisma("list", "50")).some((r) => r.id === row.id), "the row is kept");
  page = await (await fetch(`${server.url}/api/messages?limit=50`)).json();
  assert.ok(!page.messages.some((m) => m.id === row.id), "history leaves it out");

  // A ban the Go server stores is a row of Prisma's Ban model.
  const res = await fetch(`${server.url}/api/bans`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ username: "mallory", durationSec: 60, reason: "spam" }),
  });
  assert.equal(res.status, 201);
  const ban = await res.json();
  const bans = await prisma("bans");
  const b = bans.find((x) => x.id === ban.id);
  assert.ok(b, JSON.stringify(bans));
  assert.deepEqual([b.username, b.reason, b.createdBy, b.userId, b.ip, b.liftedAt], ["mallory", "spam", "admin-token", null, null, null]);
  assert.equal(Date.parse(b.expiresAt), Date.parse(ban.until));
});

/** Runs server/sqlstore/internal/roomsfixture on the test database: what it stored, as JSON. */
async function goRoomsFixture() {
  const { stdout } = await run("go", ["run", "./sqlstore/internal/roomsfixture"], {
    cwd: join(here, "..", "server"),
    env: { ...process.env, DATABASE_URL: dbUrl },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout);
}

test("rooms: Prisma reads the users, rooms and memberships the Go store wrote, and the global room stays Prisma's", async () => {
  const f = await goRoomsFixture();

  const users = await prisma("users");
  for (const u of f.users) {
    const got = users.find((x) => x.id === u.ID);
    assert.ok(got, `user ${u.ID} is not visible to Prisma: ${JSON.stringify(users)}`);
    assert.equal(got.name, u.Name);
    assert.equal(Date.parse(got.lastSeen), Date.parse(u.LastSeen));
  }

  const rooms = await prisma("rooms");
  const priv = rooms.find((r) => r.id === f.private.ID);
  assert.ok(priv, JSON.stringify(rooms));
  assert.deepEqual(
    [priv.name, priv.nameKey, priv.kind, priv.createdBy, priv.deletedAt, priv.directA, priv.directB],
    ["Plans", "plans", "private", "auth0|ada", null, null, null],
  );
  assert.equal(Date.parse(priv.createdAt), Date.parse(f.private.CreatedAt));
  assert.deepEqual(
    priv.members.map((m) => [m.userId, m.role, Date.parse(m.joinedAt), m.readUpTo]),
    f.members.map((m) => [m.UserID, m.Role, Date.parse(m.JoinedAt), m.ReadUpTo || null]),
  );
  assert.deepEqual(
    priv.members.map((m) => m.readUpTo),
    [null, f.message.ID],
    "zoe read up to the room's message",
  );
  // The direct room: one per pair, its two users ordered, both members.
  const dm = rooms.find((r) => r.id === f.direct.ID);
  assert.ok(dm, JSON.stringify(rooms));
  assert.deepEqual([dm.kind, dm.directA, dm.directB], ["direct", "auth0|ada", "auth0|zoe"]);
  assert.deepEqual(dm.members.map((m) => [m.userId, m.role]).sort(), [["auth0|ada", "member"], ["auth0|zoe", "member"]]);

  // The room's message is a row with its roomId, and not one of the global room.
  const rows = await prisma("list", "100");
  assert.equal(rows.find((r) => r.id === f.message.ID)?.roomId, f.private.ID);
  let page = await (await fetch(`${server.url}/api/messages?limit=100`)).json();
  assert.ok(!page.messages.some((m) => m.id === f.message.ID), "a room's message is served in the global room");

  // A row Prisma writes without roomId (NULL) is the global room's, as the original client's are.
  const global = await prisma("write", "prisma-user", "to everyone");
  assert.equal(global.roomId, null);
  // One Prisma writes with a roomId is that room's, and stays out of the global room.
  const inRoom = await prisma("write-in-room", f.private.ID, "prisma-user", "to the room only");
  assert.equal(inRoom.roomId, f.private.ID);
  page = await (await fetch(`${server.url}/api/messages?limit=100`)).json();
  assert.ok(page.messages.some((m) => m.id === global.id), "Prisma's NULL-room row is served in the global room");
  assert.ok(!page.messages.some((m) => m.id === inRoom.id), "Prisma's room row is served in the global room");
  const { socket, history } = await connect();
  try {
    await until(() => history.some((m) => m.id === global.id), 10_000, `message ${global.id} in the history on connect`, () => history);
    assert.ok(!history.some((m) => m.id === inRoom.id || m.id === f.message.ID), "a room's message in the global room's history");
    assert.equal(history.find((m) => m.id === global.id).room, undefined, "the global room's payload has no room");
  } finally {
    socket.close();
  }
});
