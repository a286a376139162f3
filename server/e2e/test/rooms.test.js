// Rooms and direct messages (issue 23) with the real socket.io-client, on
// two Go nodes linked by Redis and sharing PostgreSQL: every membership rule
// and refusal, isolation between rooms (every event each socket receives is
// counted), history per room on join, after a reconnect and after a node's
// restart, direct messages, invitations, removal, unread counts, deletion,
// and the global room unchanged for the original protocol. Needs REDIS_URL
// and DATABASE_URL (scripts/services): fails, never skips, without them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startServer, connect, until, sleep, redisURL, requireEnv, psql } from "../lib/harness.js";
import { newSecret, claims, hs256 } from "../lib/jwt.js";

const secret = newSecret();
const adminToken = newSecret();
const run = randomBytes(4).toString("hex");
let env, node1, node2;
const open = [];

const user = (name, extra = {}) => ({ id: `${name}-${run}`, name, ...extra });
const ann = user("ann");
const bob = user("bob");
const cid = user("cid");
const dee = user("dee");
const token = (u) => hs256(secret, claims({ sub: u.id, name: u.name, ...(u.roles ? { roles: u.roles } : {}) }));

// The events of rooms a socket records, each in arrival order.
const ROOM_EVENTS = ["room:invited", "room:joined", "room:left", "room:removed", "room:deleted", "room:read",
  "typing", "presence", "presence:join", "presence:leave", "message:deleted"];

/** Connects as u (or anonymously) and records every event. */
async function join(node, u, opts = {}) {
  const s = await connect(node.url, { auth: u ? { token: token(u) } : undefined, ...opts });
  s.all = [];
  s.onAny((name, ...args) => s.all.push({ name, args }));
  for (const name of ROOM_EVENTS) {
    s[name] = [];
    s.on(name, (data) => s[name].push(data));
  }
  open.push(s);
  await until(() => s.presence.length > 0, 10_000, "the socket's first presence");
  return s;
}

/** Emits name with payload and resolves with the acknowledgement. */
const ask = (s, name, payload) => s.timeout(10_000).emitWithAck(name, payload);

/** Asserts a refusal's code (and limit). */
function refused(ack, code, limit) {
  assert.equal(ack.ok, false, `want ${code}, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error?.code, code, JSON.stringify(ack));
  if (limit) assert.equal(ack.error.limit, limit, JSON.stringify(ack));
}

/** The messages of room s received (the global room's when room is undefined). */
const inRoom = (s, room) => s.messages.filter((m) => m.room === room).map((m) => m.message);

function api(node, method, path, { as, body } = {}) {
  const headers = { "content-type": "application/json" };
  if (as) headers.authorization = `Bearer ${as === "admin" ? adminToken : token(as)}`;
  return fetch(`${node.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

before(async () => {
  const db = requireEnv("DATABASE_URL");
  env = {
    DATABASE_URL: db,
    REDIS_URL: redisURL(),
    REDIS_KEY_PREFIX: `e2e-rooms-${run}`,
    AUTH_JWT_SECRET: secret,
    AUTH_MODE: "optional",
    ADMIN_TOKEN: adminToken,
    BATCH_WAIT: "5ms",
    PRESENCE_INTERVAL: "200ms",
    ROOM_MEMBERS_MAX: "3",
    ROOMS_ANONYMOUS_MAX: "1",
    ROOM_NAME_MAX_LENGTH: "24",
    DM_OPEN_RATE_PER_MIN: "4",
    ROOMS_PER_USER_MAX: "20",
    ROOM_CREATE_RATE_PER_MIN: "25",
  };
  node1 = await startServer(env);
  node2 = await startServer(env);
  for (let i = 0; i < 100; i++) {
    if ((await (await fetch(`${node2.url}/readyz`)).json()).servers === 2) break;
    await sleep(100);
  }
});

after(async () => {
  for (const s of open) s.close();
  await node1?.stop();
  await node2?.stop();
});

test("every refusal of the room events, with its code (and limit)", async () => {
  const a = await join(node1, ann);
  const b = await join(node2, bob);
  const anon = await join(node1, null);
  refused(await ask(anon, "room:create", { name: "mine", kind: "public" }), "unauthorized");
  refused(await ask(anon, "dm:open", { userId: ann.id }), "unauthorized");
  refused(await ask(a, "room:create", { name: "x", kind: "secret" }), "invalid_payload");
  refused(await ask(a, "room:create", { name: "   ", kind: "public" }), "invalid_payload");
  refused(await ask(a, "room:create", { name: "x".repeat(25), kind: "public" }), "limit", "ROOM_NAME_MAX_LENGTH");
  refused(await ask(a, "room:create", "nope"), "invalid_payload");
  refused(await ask(a, "room:create", { name: "x", kind: "private", members: ["nobody"] }), "not_found");
  refused(await ask(a, "room:create", { name: "x", kind: "private", members: [bob.id, cid.id, dee.id] }), "limit", "ROOM_MEMBERS_MAX");
  refused(await ask(a, "room:join", { room: "0193a1b2-0000-7000-8000-000000000000" }), "not_found");
  refused(await ask(a, "room:leave", { room: "global" }), "forbidden");

  const priv = await ask(a, "room:create", { name: "ann's", kind: "private" });
  assert.equal(priv.ok, true, JSON.stringify(priv));
  assert.equal(priv.room.kind, "private");
  refused(await ask(b, "room:join", { room: priv.room.id }), "not_found"); // a private room one may not see
  refused(await ask(anon, "room:join", { room: priv.room.id }), "not_found");
  refused(await ask(b, "room:invite", { room: priv.room.id, userId: bob.id }), "not_found");
  refused(await ask(a, "room:invite", { room: priv.room.id, userId: "nobody" }), "not_found");
  refused(await ask(b, "event:message", { message: "in?", room: priv.room.id }), "forbidden");
  refused(await ask(a, "room:read", { room: priv.room.id, upTo: "nope" }), "not_found");

  const pub1 = await ask(a, "room:create", { name: "open one", kind: "public" });
  const pub2 = await ask(a, "room:create", { name: "open two", kind: "public" });
  assert.equal((await ask(anon, "room:join", { room: pub1.room.id })).ok, true);
  refused(await ask(anon, "room:join", { room: pub2.room.id }), "limit", "ROOMS_ANONYMOUS_MAX");
  refused(await ask(anon, "room:read", { room: pub1.room.id, upTo: "x" }), "unauthorized");

  await ask(a, "room:invite", { room: priv.room.id, userId: bob.id });
  refused(await ask(b, "room:remove", { room: priv.room.id, userId: ann.id }), "forbidden");
  refused(await ask(b, "room:invite", { room: priv.room.id, userId: cid.id }), "forbidden");
  // Direct rooms a minute (DM_OPEN_RATE_PER_MIN=4): the fifth new one is refused.
  for (const u of [bob, cid, dee, user("eve")]) await join(node2, u).then((s) => s.close());
  const dms = [];
  for (const u of [bob, cid, dee, user("eve"), user("fay")]) dms.push(await ask(a, "dm:open", { userId: u.id }));
  assert.deepEqual(dms.slice(0, 4).map((d) => d.ok), [true, true, true, true], JSON.stringify(dms));
  refused(dms[4], "not_found"); // fay never connected: no such user
  const late = await join(node1, user("gus"));
  late.close();
  const gus = await ask(a, "dm:open", { userId: user("gus").id });
  refused(gus, "rate_limited");
  assert.ok(gus.error.retryAfterMs > 0, JSON.stringify(gus));
  refused(await ask(a, "dm:open", { userId: ann.id }), "invalid_payload");

  // Rooms a user may be in (ROOMS_PER_USER_MAX=20), then creations a
  // minute (ROOM_CREATE_RATE_PER_MIN=25: refused attempts count too).
  const hal = await join(node2, user("hal"));
  for (let i = 0; i < 20; i++) assert.equal((await ask(hal, "room:create", { name: `hal ${i}`, kind: "public" })).ok, true);
  for (let i = 0; i < 5; i++) refused(await ask(hal, "room:create", { name: "one more", kind: "public" }), "limit", "ROOMS_PER_USER_MAX");
  const fast = await ask(hal, "room:create", { name: "one more", kind: "public" });
  refused(fast, "rate_limited");
  assert.ok(fast.error.retryAfterMs > 0);
});

test("isolation: no socket ever receives an event of a room it is not in", async () => {
  const a = await join(node1, ann);
  const b = await join(node2, bob);
  const c = await join(node2, cid);
  const anon = await join(node1, null, { auth: { username: "anon" } });
  const priv = (await ask(a, "room:create", { name: "a+b", kind: "private", members: [bob.id] })).room;
  const pub = (await ask(c, "room:create", { name: "cid's", kind: "public" })).room;
  await until(() => b["room:invited"].some((e) => e.room.id === priv.id), 10_000, "bob invited");
  assert.equal((await ask(anon, "room:join", { room: pub.id })).ok, true);
  await sleep(300);
  for (let i = 0; i < 5; i++) {
    assert.equal((await ask(a, "event:message", { message: `priv ${i}`, room: priv.id })).ok, true);
    assert.equal((await ask(c, "event:message", { message: `pub ${i}`, room: pub.id })).ok, true);
    assert.equal((await ask(anon, "event:message", { message: `global ${i}`, username: "anon" })).ok, true);
  }
  a.emit("typing", { typing: true, room: priv.id });
  c.emit("typing", { typing: true, room: pub.id });
  await until(() => inRoom(b, priv.id).length === 5 && inRoom(anon, pub.id).length === 5 && inRoom(c, undefined).length >= 5,
    10_000, "every message of every room");
  await until(() => b.typing.some((t) => t.room === priv.id), 10_000, "bob sees ann typing in their room");
  await sleep(600); // presence ticks, typing renewals
  // A verified user's sockets are in all of the user's rooms (those of the
  // tests before too); an anonymous socket only in what it joined.
  const roomsOf = async (u) => (await (await api(node1, "GET", "/api/rooms?limit=1", { as: u })).json()).rooms
    .filter((r) => r.member).map((r) => r.id);
  const rooms = new Map([[a, await roomsOf(ann)], [b, await roomsOf(bob)], [c, await roomsOf(cid)], [anon, [pub.id]]]);
  assert.ok(rooms.get(a).includes(priv.id) && rooms.get(b).includes(priv.id) && !rooms.get(c).includes(priv.id));
  for (const [s, mine] of rooms) {
    for (const { name, args } of s.all) {
      const room = args[0]?.room?.id ?? args[0]?.room;
      if (room === undefined || name === "room:invited" || name === "room:joined") continue;
      assert.ok(mine.includes(room), `socket ${s.id} received ${name} of room ${room}, which it is not in`);
    }
  }
  assert.deepEqual(inRoom(b, priv.id), [0, 1, 2, 3, 4].map((i) => `priv ${i}`));
  assert.deepEqual(inRoom(anon, pub.id), [0, 1, 2, 3, 4].map((i) => `pub ${i}`));
  assert.equal(inRoom(c, priv.id).length, 0);
  assert.equal(inRoom(anon, priv.id).length, 0);
  // The global room's payloads are the original's: no room in them.
  for (const m of anon.messages.filter((m) => m.room === undefined)) assert.equal("room" in m, false);
});

test("history per room: on join, after a reconnect, after a node's restart", async () => {
  const a = await join(node1, ann);
  const room = (await ask(a, "room:create", { name: "history", kind: "public" })).room;
  for (let i = 1; i <= 6; i++) await ask(a, "event:message", { message: `h${i}`, room: room.id });
  await ask(a, "event:message", { message: "in global", username: "ann" });
  // A newcomer gets the room's history, oldest first, then live.
  const d = await join(node2, dee);
  assert.equal((await ask(d, "room:join", { room: room.id })).ok, true);
  await until(() => inRoom(d, room.id).length === 6, 10_000, "dee gets the room's history");
  assert.deepEqual(inRoom(d, room.id), ["h1", "h2", "h3", "h4", "h5", "h6"]);
  await ask(a, "event:message", { message: "h7", room: room.id });
  await until(() => inRoom(d, room.id).length === 7, 10_000, "dee gets h7 live");
  // Joining again sends the history again.
  d.messages.length = 0;
  assert.equal((await ask(d, "room:join", { room: room.id })).ok, true);
  await until(() => inRoom(d, room.id).length === 7, 10_000, "the history again");
  // A member's sockets are in its rooms from CONNECT on: a new socket of
  // dee gets the room's live events, not its history.
  const d2 = await join(node1, dee);
  await ask(a, "event:message", { message: "h8", room: room.id });
  await until(() => inRoom(d2, room.id).includes("h8"), 10_000, "dee's second socket gets h8 live");
  assert.deepEqual(inRoom(d2, room.id), ["h8"]);
  // Dropped and back (socket.io-client reconnects with its offset): it gets
  // what it missed in the room.
  d2.io.engine.close();
  await until(() => !d2.connected, 10_000, "dropped");
  await ask(a, "event:message", { message: "h9 while away", room: room.id });
  await until(() => d2.connected && inRoom(d2, room.id).includes("h9 while away"), 15_000, "the missed message after the reconnect");
  assert.equal(inRoom(d2, room.id).filter((m) => m === "h8").length, 1, "h8 once");
  // After node2's restart, a member's new socket there still is in the room,
  // and the room's history is there.
  await node2.stop();
  node2 = await startServer(env);
  const d3 = await join(node2, dee);
  await ask(a, "event:message", { message: "h10", room: room.id });
  await until(() => inRoom(d3, room.id).includes("h10"), 15_000, "after the restart, live in the room");
  assert.equal((await ask(d3, "room:join", { room: room.id })).ok, true);
  await until(() => inRoom(d3, room.id).length >= 11, 10_000, "the room's history after the restart");
  const page = await (await api(node2, "GET", `/api/rooms/${room.id}/messages?limit=3`)).json();
  assert.deepEqual(page.messages.map((m) => m.message), ["h10", "h9 while away", "h8"]);
  assert.ok(page.messages.every((m) => m.room === room.id));
});

test("direct messages, invitations, removal and unread counts", async () => {
  const a = await join(node1, ann);
  const b = await join(node2, bob);
  const dm1 = await ask(a, "dm:open", { userId: bob.id });
  const dm2 = await ask(b, "dm:open", { userId: ann.id });
  assert.equal(dm1.ok, true);
  assert.equal(dm1.room.id, dm2.room.id, "one room per pair");
  assert.equal(dm1.room.kind, "direct");
  await ask(a, "event:message", { message: "hi bob", room: dm1.room.id });
  await until(() => inRoom(b, dm1.room.id).includes("hi bob"), 10_000, "bob gets the DM");
  // Unread: bob has one in the DM (his own never count).
  let list = await (await api(node2, "GET", "/api/rooms", { as: bob })).json();
  const entry = list.rooms.find((r) => r.id === dm1.room.id);
  assert.equal(list.rooms[0].id, "global");
  assert.equal(entry.unread, 1, JSON.stringify(entry));
  assert.equal(entry.name, "ann", "a direct room is named after the other member");
  assert.equal(entry.lastMessage.message, "hi bob");
  const upTo = b.messages.find((m) => m.message === "hi bob").id;
  const b2 = await join(node1, bob);
  assert.equal((await ask(b, "room:read", { room: dm1.room.id, upTo })).ok, true);
  await until(() => b2["room:read"].some((r) => r.room === dm1.room.id && r.upTo === upTo), 10_000, "bob's other socket is told");
  list = await (await api(node2, "GET", "/api/rooms", { as: bob })).json();
  assert.equal(list.rooms.find((r) => r.id === dm1.room.id).unread, 0);

  // An invitation: every socket of the invitee, on every node, joins.
  const c1 = await join(node1, cid);
  const c2 = await join(node2, cid);
  const room = (await ask(a, "room:create", { name: "plans", kind: "private" })).room;
  assert.equal((await ask(a, "room:invite", { room: room.id, userId: cid.id })).ok, true);
  await until(() => c1["room:invited"].length > 0 && c2["room:invited"].length > 0, 10_000, "both of cid's sockets invited");
  await ask(a, "event:message", { message: "welcome cid", room: room.id });
  await until(() => inRoom(c1, room.id).includes("welcome cid") && inRoom(c2, room.id).includes("welcome cid"), 10_000, "cid's sockets in the room");
  // Removed: at once, on every node.
  assert.equal((await ask(a, "room:remove", { room: room.id, userId: cid.id })).ok, true);
  await until(() => c1["room:removed"].length > 0 && c2["room:removed"].length > 0, 10_000, "both of cid's sockets removed");
  await ask(a, "event:message", { message: "after cid left", room: room.id });
  await sleep(300);
  assert.equal(inRoom(c1, room.id).includes("after cid left"), false);
  assert.equal(inRoom(c2, room.id).includes("after cid left"), false);
  refused(await ask(c1, "event:message", { message: "still here?", room: room.id }), "forbidden");
  assert.equal((await api(node1, "GET", `/api/rooms/${room.id}/messages`, { as: cid })).status, 404);
  assert.equal((await api(node1, "GET", `/api/rooms/${room.id}/messages`, { as: ann })).status, 200);
});

test("deleting a room: every member's sockets on every node are told and leave; its messages are hidden", async () => {
  const a = await join(node1, ann);
  const b = await join(node2, bob);
  const room = (await ask(a, "room:create", { name: "doomed", kind: "public", members: [bob.id] })).room;
  await until(() => b["room:invited"].some((e) => e.room.id === room.id), 10_000, "bob invited");
  await ask(b, "event:message", { message: "soon gone", room: room.id });
  assert.equal((await api(node2, "DELETE", `/api/rooms/${room.id}`, { as: bob })).status, 403);
  assert.equal((await api(node2, "DELETE", `/api/rooms/${room.id}`, { as: ann })).status, 204);
  await until(() => a["room:deleted"].some((e) => e.room === room.id) && b["room:deleted"].some((e) => e.room === room.id),
    10_000, "room:deleted on both nodes");
  refused(await ask(b, "event:message", { message: "anyone?", room: room.id }), "forbidden");
  refused(await ask(b, "room:join", { room: room.id }), "not_found");
  assert.equal((await api(node1, "GET", `/api/rooms/${room.id}/messages`, { as: ann })).status, 404);
  const list = await (await api(node1, "GET", "/api/rooms", { as: ann })).json();
  assert.equal(list.rooms.some((r) => r.id === room.id), false);
  // The rows stay (hidden, like tombstoned messages).
  const rows = psql(env.DATABASE_URL, `SELECT count(*) FROM messages WHERE room_id = '${room.id}'`);
  assert.equal(rows, "1");
});

test("the owner of a room deletes its messages; a moderator any; event:delete takes the room from the message", async () => {
  const mod = user("mod", { roles: ["moderator"] });
  const a = await join(node1, ann);
  const b = await join(node2, bob);
  const m = await join(node2, mod);
  const room = (await ask(a, "room:create", { name: "owned", kind: "public", members: [bob.id] })).room;
  await until(() => b["room:invited"].length > 0, 10_000, "bob invited");
  const first = await ask(b, "event:message", { message: "bob's", room: room.id });
  const second = await ask(b, "event:message", { message: "bob's too", room: room.id });
  refused(await ask(b, "event:delete", { id: first.id }), "forbidden"); // bob does not own the room
  const byOwner = await ask(a, "event:delete", { id: first.id, room: "global" }); // the payload's room is ignored
  assert.equal(byOwner.ok, true, JSON.stringify(byOwner));
  await until(() => b["message:deleted"].some((d) => d.id === first.id && d.room === room.id), 10_000, "message:deleted in the room");
  const byMod = await ask(m, "event:delete", { id: second.id });
  assert.equal(byMod.ok, true, JSON.stringify(byMod));
  // node1 hears of node2's deletion through Redis, a moment later.
  let left;
  await until(async () => {
    const page = await (await api(node1, "GET", `/api/rooms/${room.id}/messages`)).json();
    left = page.messages.map((x) => x.message);
    return left.length === 0;
  }, 10_000, "node1's page of the room without the deleted messages", () => left);
});

test("through Kafka: a room's messages reach its members on both nodes, and PostgreSQL with their room", async () => {
  const brokers = requireEnv("KAFKA_BROKERS");
  const suffix = randomBytes(4).toString("hex");
  const kenv = {
    ...env,
    REDIS_KEY_PREFIX: `e2e-rooms-kafka-${suffix}`,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC: `e2e-rooms-${suffix}`,
    KAFKA_DLQ_TOPIC: `e2e-rooms-dlq-${suffix}`,
    KAFKA_GROUP: `e2e-rooms-${suffix}`,
  };
  const k1 = await startServer(kenv);
  const k2 = await startServer(kenv);
  try {
    const a = await join(k1, ann);
    const b = await join(k2, bob);
    const room = (await ask(a, "room:create", { name: "through kafka", kind: "private", members: [bob.id] })).room;
    await until(() => b["room:invited"].some((e) => e.room.id === room.id), 10_000, "bob invited");
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await ask(b, "event:message", { message: `k${i}`, room: room.id }));
    assert.ok(acks.every((x) => x.ok), JSON.stringify(acks)); // acknowledged: durable in Kafka
    await until(() => inRoom(a, room.id).length === 5, 10_000, "ann gets the room's messages");
    assert.equal(inRoom(a, undefined).some((m) => m.startsWith("k")), false, "none of them in global");
    // The consumer group stores them with their room.
    await until(() => psql(env.DATABASE_URL, `SELECT count(*) FROM messages WHERE room_id = '${room.id}'`) === "5",
      30_000, "five rows with the room's id", () => psql(env.DATABASE_URL, `SELECT count(*) FROM messages WHERE room_id = '${room.id}'`));
    const page = await (await api(k2, "GET", `/api/rooms/${room.id}/messages`, { as: ann })).json();
    assert.deepEqual(page.messages.map((m) => m.message), ["k4", "k3", "k2", "k1", "k0"]);
  } finally {
    await k1.stop();
    await k2.stop();
  }
});
