// Unit tests of the chat reducer (pure logic; compiled by run.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  LIMITS,
  backoff,
  chatReducer,
  connectionStatus,
  describeError,
  dueSends,
  initialState,
  isOwn,
  itemsOf,
  nextDue,
  parseAck,
  parseIncoming,
  roomOf,
} from "../../test-results/unit-build/chat-state.js";

const ME = "alice";
const CID = "0191d2c4-7b1e-4c3a-9f00-5a1b2c3d4e5f";

function run(actions, state = initialState()) {
  return actions.reduce(chatReducer, state);
}

function submitted(text = "hi", now = 1000) {
  return run([{ type: "submit", clientId: CID, username: ME, text, now }]);
}

function own(state) {
  const it = state.items.find((i) => i.clientId === CID);
  assert.ok(it, "own message in the list");
  return it;
}

test("parseIncoming keeps the original fields and ignores extras and bad types", () => {
  const cases = [
    { in: { message: "a", username: "b" }, want: { message: "a", username: "b" } },
    { in: { message: "a", username: "b", id: "x", createdAt: "2024-01-01T00:00:00.000Z", extra: 1 }, want: { message: "a", username: "b", id: "x", createdAt: "2024-01-01T00:00:00.000Z" } },
    { in: { message: "a" }, want: { message: "a", username: "" } },
    { in: { message: "a", username: "b", createdAt: "not a date", id: 5 }, want: { message: "a", username: "b" } },
    { in: { message: "a", username: "b", userId: "u-1", verified: true }, want: { message: "a", username: "b", userId: "u-1", verified: true } },
    { in: { message: "a", username: "b", verified: false }, want: { message: "a", username: "b", verified: false } },
    { in: { message: "a", username: "b", userId: 7, verified: "yes" }, want: { message: "a", username: "b" } },
    { in: { message: 1, username: "b" }, want: null },
    { in: null, want: null },
    { in: "text", want: null },
  ];
  for (const c of cases) assert.deepEqual(parseIncoming(c.in), c.want, JSON.stringify(c.in));
});

test("parseAck reads ok, errors, and turns anything else into internal", () => {
  assert.deepEqual(parseAck({ ok: true, id: "i" }), { ok: true, id: "i" });
  assert.deepEqual(parseAck({ ok: false, error: { code: "message_too_long", reason: "r" } }), {
    ok: false,
    error: { code: "message_too_long", reason: "r" },
  });
  assert.equal(parseAck(undefined).ok, false);
  assert.equal(parseAck({ ok: false }).error.code, "internal");
});

test("a submitted message is pending and due at once; sending marks it in flight", () => {
  let s = submitted();
  assert.equal(own(s).out.delivery, "pending");
  assert.equal(dueSends(s, 1000).length, 1);
  s = chatReducer(s, { type: "send-started", clientId: CID });
  assert.equal(own(s).out.inFlight, true);
  assert.equal(own(s).out.attempts, 1);
  assert.equal(dueSends(s, 10_000).length, 0);
  assert.equal(nextDue(s), null);
});

test("a positive acknowledgement marks the message stored", () => {
  const s = run([{ type: "send-started", clientId: CID }, { type: "acked", clientId: CID, result: { ok: true, id: CID }, now: 1100 }], submitted());
  assert.equal(own(s).out.delivery, "stored");
  assert.equal(own(s).id, CID);
});

test("acknowledgement errors: retryable ones are retried with back-off, others fail", () => {
  const cases = [
    { code: "rate_limited", retryAfterMs: 3000, want: "pending", due: 1100 + 3000 },
    { code: "unavailable", want: "pending", due: 1100 + backoff(1) },
    { code: "not_stored", want: "pending", due: 1100 + backoff(1) },
    { code: "message_too_long", want: "failed", due: null },
    { code: "username_too_long", want: "failed", due: null },
    { code: "invalid_client_id", want: "failed", due: null },
  ];
  for (const c of cases) {
    const error = { code: c.code, reason: "why", ...(c.retryAfterMs ? { retryAfterMs: c.retryAfterMs } : {}) };
    const s = run([{ type: "send-started", clientId: CID }, { type: "acked", clientId: CID, result: { ok: false, error }, now: 1100 }], submitted());
    assert.equal(own(s).out.delivery, c.want, c.code);
    assert.equal(own(s).out.due, c.due, c.code);
    assert.equal(own(s).out.error.code, c.code);
  }
});

test("retryable errors stop after maxAttempts", () => {
  let s = submitted();
  for (let i = 0; i < LIMITS.maxAttempts; i++) {
    s = run([{ type: "send-started", clientId: CID }, { type: "acked", clientId: CID, result: { ok: false, error: { code: "unavailable", reason: "" } }, now: 2000 }], s);
  }
  assert.equal(own(s).out.delivery, "failed");
  assert.equal(own(s).out.attempts, LIMITS.maxAttempts);
});

test("a timeout while connected retries with back-off, then shows unconfirmed", () => {
  let s = submitted();
  for (let i = 1; i <= LIMITS.maxAttempts; i++) {
    s = run([{ type: "send-started", clientId: CID }, { type: "ack-timeout", clientId: CID, connected: true, now: 5000 }], s);
    if (i < LIMITS.maxAttempts) {
      assert.equal(own(s).out.delivery, "pending");
      assert.equal(own(s).out.due, 5000 + backoff(i));
    }
  }
  assert.equal(own(s).out.delivery, "unconfirmed");
  s = chatReducer(s, { type: "retry", clientId: CID, now: 9000 });
  assert.equal(own(s).out.delivery, "pending");
  assert.equal(own(s).out.attempts, 0);
  assert.equal(own(s).out.due, 9000);
});

test("a timeout while disconnected does not count as an attempt", () => {
  let s = submitted();
  for (let i = 0; i < LIMITS.maxAttempts * 2; i++) {
    s = run([{ type: "send-started", clientId: CID }, { type: "ack-timeout", clientId: CID, connected: false, now: 5000 }], s);
  }
  assert.equal(own(s).out.delivery, "pending");
  assert.equal(own(s).out.attempts, 0);
  assert.equal(own(s).out.due, 5000);
});

test("the echo of an own message (id = clientId) is merged, not added", () => {
  let s = run([{ type: "send-started", clientId: CID }], submitted());
  s = chatReducer(s, { type: "received", payload: { message: "hi", username: ME, id: CID, createdAt: "2024-05-01T10:00:00.000Z" }, me: ME, now: 1050 });
  assert.equal(s.items.length, 1);
  assert.equal(own(s).createdAt, "2024-05-01T10:00:00.000Z");
  assert.equal(own(s).out.delivery, "pending", "pending until acknowledged");
});

test("messages with an id already shown are dropped (history replay, recovery)", () => {
  const m = { message: "x", username: "bob", id: "m1", createdAt: "2024-05-01T10:00:00.000Z" };
  const s = run([
    { type: "received", payload: m, me: ME, now: 1 },
    { type: "received", payload: m, me: ME, now: 2 },
    { type: "received", payload: { ...m, id: "m2" }, me: ME, now: 3 },
    { type: "received", payload: m, me: ME, now: 4 },
  ]);
  assert.deepEqual(s.items.map((i) => i.id), ["m1", "m2"]);
});

test("original protocol: an id-less echo of an own message marks it sent and stops retries", () => {
  let s = run([{ type: "send-started", clientId: CID }], submitted("same"));
  s = chatReducer(s, { type: "received", payload: { message: "same", username: ME }, me: ME, now: 1100 });
  assert.equal(s.items.length, 1);
  assert.equal(own(s).out.delivery, "echoed");
  s = chatReducer(s, { type: "ack-timeout", clientId: CID, connected: true, now: 6000 });
  assert.equal(own(s).out.delivery, "echoed");
  assert.equal(nextDue(s), null);
  // The same text again from this name (another tab) is a new line.
  s = chatReducer(s, { type: "received", payload: { message: "same", username: ME }, me: ME, now: 1200 });
  assert.equal(s.items.length, 2);
  // Id-less messages of others are always added.
  s = chatReducer(s, { type: "received", payload: { message: "same", username: "bob" }, me: ME, now: 1300 });
  assert.equal(s.items.length, 3);
});

test("connection status: connecting, live, reconnecting, offline", () => {
  let s = initialState();
  assert.equal(connectionStatus(s.connection), "connecting");
  s = chatReducer(s, { type: "connect-failed" });
  s = chatReducer(s, { type: "connect-failed" });
  assert.equal(connectionStatus(s.connection), "offline");
  s = chatReducer(s, { type: "connected" });
  assert.equal(connectionStatus(s.connection), "live");
  s = chatReducer(s, { type: "disconnected" });
  assert.equal(connectionStatus(s.connection), "reconnecting");
  for (let i = 0; i < LIMITS.offlineAfterFailures; i++) s = chatReducer(s, { type: "connect-failed" });
  assert.equal(connectionStatus(s.connection), "offline");
  s = chatReducer(s, { type: "connected" });
  s = chatReducer(s, { type: "browser-online", online: false });
  assert.equal(connectionStatus(s.connection), "live", "a working socket wins over navigator.onLine");
  s = chatReducer(s, { type: "disconnected" });
  assert.equal(connectionStatus(s.connection), "offline");
});

test("server errors are read; bad payloads are ignored", () => {
  let s = chatReducer(initialState(), { type: "server-error", payload: { code: "message_too_long", reason: "message is 2001 characters long; the limit is 2000" }, now: 5 });
  assert.equal(describeError(s.lastError), "Message too long: message is 2001 characters long; the limit is 2000");
  s = chatReducer(s, { type: "server-error", payload: "nonsense", now: 6 });
  assert.equal(s.lastError.code, "message_too_long");
  s = chatReducer(s, { type: "dismiss-error" });
  assert.equal(s.lastError, null);
});

test("the list is capped, but pending own messages are kept", () => {
  let s = submitted();
  for (let i = 0; i < LIMITS.maxItems + 10; i++) {
    s = chatReducer(s, { type: "received", payload: { message: `m${i}`, username: "bob", id: `id${i}` }, me: ME, now: i });
  }
  assert.equal(s.items.length, LIMITS.maxItems);
  assert.ok(s.items.some((i) => i.clientId === CID), "pending message kept");
  assert.equal(s.items.at(-1).id, `id${LIMITS.maxItems + 9}`);
});

test("remove drops a failed own message but never a pending one", () => {
  let s = submitted();
  s = chatReducer(s, { type: "remove", clientId: CID });
  assert.equal(s.items.length, 1);
  s = run([{ type: "send-started", clientId: CID }, { type: "acked", clientId: CID, result: { ok: false, error: { code: "message_too_long", reason: "" } }, now: 1 }, { type: "remove", clientId: CID }], s);
  assert.equal(s.items.length, 0);
});

test("message:deleted removes the message for everyone; banned errors say why and until when", () => {
  let s = run([
    { type: "received", payload: { message: "a", username: "bob", id: "m1" }, me: ME, now: 1 },
    { type: "received", payload: { message: "b", username: "bob", id: "m2" }, me: ME, now: 2 },
  ]);
  s = chatReducer(s, { type: "deleted", payload: { id: "m1" } });
  assert.deepEqual(s.items.map((i) => i.id), ["m2"]);
  assert.equal(chatReducer(s, { type: "deleted", payload: { id: "nope" } }), s, "an unknown id changes nothing");
  assert.equal(chatReducer(s, { type: "deleted", payload: 5 }), s);
  // An own message, known by its clientId before its id came back.
  s = run([{ type: "submit", clientId: CID, username: ME, text: "mine", now: 3 }, { type: "deleted", payload: { id: CID } }], s);
  assert.ok(!s.items.some((i) => i.clientId === CID));

  s = chatReducer(s, { type: "server-error", payload: { code: "banned", reason: "you are banned: spam", until: "2030-01-01T00:00:00.000Z" }, now: 5 });
  assert.equal(s.lastError.code, "banned");
  assert.equal(s.lastError.until, "2030-01-01T00:00:00.000Z");
  assert.match(describeError(s.lastError), /you are banned: spam until/);
});

// Issue 29: "own" compared names, so an anonymous client (or another
// verified user) posting under the user's name showed as the user's own.
test("own is decided by user id for a signed-in user, and never by a verified sender's name for an anonymous one", () => {
  const from = (payload) => run([{ type: "received", payload, me: "Zoë", now: 1 }]).items[0];
  const mine = from({ message: "m", username: "Zoë", id: "1", userId: "guest:1", verified: true });
  const impostor = from({ message: "i", username: "Zoë", id: "2", verified: false });
  const namesake = from({ message: "n", username: "Zoë", id: "3", userId: "auth0|7", verified: true });
  const original = from({ message: "o", username: "Zoë" });
  assert.equal(impostor.verified, false, "the item keeps verified: false, for its mark");
  assert.equal(mine.userId, "guest:1");
  // Signed in as guest:1.
  assert.deepEqual([mine, impostor, namesake, original].map((it) => isOwn(it, "Zoë", "guest:1")), [true, false, false, false]);
  // Anonymous, or a server without sign-in: the name is all there is.
  assert.deepEqual([mine, impostor, namesake, original].map((it) => isOwn(it, "Zoë", null)), [false, true, false, true]);
  // Typed here: own whatever the server says.
  assert.equal(isOwn(own(submitted()), "someone else", "guest:9"), true);
  // The echo of an own message gets its sender.
  const echoed = run([{ type: "received", payload: { message: "hi", username: ME, id: CID, userId: "u-9", verified: true }, me: ME, now: 2 }], submitted());
  assert.deepEqual([own(echoed).userId, own(echoed).verified], ["u-9", true]);
});

test("rooms: messages know their room; each room is capped apart; an echo is matched in the global room only", () => {
  let s = run([
    { type: "received", payload: { message: "g", username: "bob", id: "g1" }, me: ME, now: 1 },
    { type: "received", payload: { message: "r", username: "bob", id: "r1", room: "room-1" }, me: ME, now: 2 },
    { type: "received", payload: { message: "x", username: "bob", id: "x1", room: "global" }, me: ME, now: 3 },
    { type: "submit", clientId: CID, username: ME, text: "in a room", now: 4, room: "room-1" },
  ]);
  assert.deepEqual(s.items.map((i) => [i.id ?? i.clientId, roomOf(i)]), [["g1", "global"], ["r1", "room-1"], ["x1", "global"], [CID, "room-1"]]);
  assert.equal("room" in s.items[2], false, "the global room's items carry no room");
  assert.deepEqual(itemsOf(s.items, "room-1").map((i) => i.text), ["r", "in a room"]);
  // An id-less message of the same name and text in a room is not the echo.
  s = chatReducer(s, { type: "received", payload: { message: "in a room", username: ME, room: "room-1" }, me: ME, now: 5 });
  assert.equal(own(s).out.delivery, "pending");

  let t = initialState();
  for (let i = 0; i < LIMITS.maxItems + 5; i++) {
    t = chatReducer(t, { type: "received", payload: { message: `m${i}`, username: "bob", id: `b${i}`, room: "busy" }, me: ME, now: i });
  }
  t = chatReducer(t, { type: "received", payload: { message: "quiet", username: "bob", id: "q1" }, me: ME, now: 9999 });
  assert.equal(itemsOf(t.items, "busy").length, LIMITS.maxItems);
  assert.equal(itemsOf(t.items, "global").length, 1, "a busy room does not push the others' messages out");
});

test("older pages go before the room's messages, oldest first, without duplicates; a room left is forgotten", () => {
  let s = run([
    { type: "received", payload: { message: "3", username: "bob", id: "m3", createdAt: "2026-01-01T00:00:03.000Z", room: "r" }, me: ME, now: 1 },
    { type: "received", payload: { message: "g", username: "bob", id: "g1" }, me: ME, now: 2 },
  ]);
  // The API's pages are newest first; one overlaps what is shown.
  const page = [
    { message: "3", username: "bob", id: "m3", createdAt: "2026-01-01T00:00:03.000Z", room: "r" },
    { message: "2", username: "ann", id: "m2", createdAt: "2026-01-01T00:00:02.000Z", room: "r", userId: "u-ann", verified: true },
    { message: "1", username: "bob", id: "m1", createdAt: "2026-01-01T00:00:01.000Z", room: "r" },
    { nope: true },
  ];
  s = chatReducer(s, { type: "older", room: "r", payload: page, now: 3 });
  assert.deepEqual(itemsOf(s.items, "r").map((i) => i.text), ["1", "2", "3"]);
  assert.equal(itemsOf(s.items, "r")[1].userId, "u-ann");
  assert.equal(chatReducer(s, { type: "older", room: "r", payload: page, now: 4 }), s, "the same page again changes nothing");
  assert.equal(chatReducer(s, { type: "older", room: "r", payload: "junk", now: 4 }), s);
  // The global room's page (from /api/messages) makes global items.
  s = chatReducer(s, { type: "older", room: "global", payload: [{ message: "g0", username: "bob", id: "g0" }], now: 5 });
  assert.deepEqual(itemsOf(s.items, "global").map((i) => i.id), ["g0", "g1"]);
  assert.equal("room" in s.items[0], false);
  s = chatReducer(s, { type: "forget-room", room: "r" });
  assert.deepEqual(s.items.map((i) => i.id), ["g0", "g1"]);
});
