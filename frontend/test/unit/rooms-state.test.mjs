// Unit tests of the rooms reducer and its selectors (pure logic; compiled by run.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  GLOBAL,
  UNREAD_MAX,
  describeRoomError,
  initialRoomsState,
  listedRooms,
  newestSeen,
  parseRoomList,
  roomById,
  roomFromSearch,
  roomHref,
  roomTitle,
  roomsReducer,
  unreadLabel,
  unreadOf,
} from "../../test-results/unit-build/rooms-state.js";

const run = (actions, s = initialRoomsState()) => actions.reduce(roomsReducer, s);
const t = (s) => `2026-12-01T10:00:${String(s).padStart(2, "0")}.000Z`;
const LIST = {
  rooms: [
    { id: "global", name: "global", kind: "global", member: true, lastMessage: { message: "hi", createdAt: t(1) } },
    { id: "r-priv", name: "plans", kind: "private", member: true, unread: 2, lastMessage: { message: "x", createdAt: t(10) } },
    { id: "r-dm", name: "bob", kind: "direct", member: true, unread: 0 },
    { id: "r-pub", name: "lobby", kind: "public", member: false },
    { id: "r-pub", name: "again", kind: "public", member: false },
    { id: "r-bad", name: "x", kind: "secret" },
    "junk",
  ],
  nextCursor: null,
};

test("the list: the global room first, each room once, bad entries dropped; a body that is no list changes nothing", () => {
  const s = run([{ type: "list", body: LIST, anonymous: false }]);
  assert.equal(s.availability, "yes");
  assert.deepEqual(s.rooms.map((r) => r.id), ["global", "r-priv", "r-dm", "r-pub"]);
  assert.deepEqual(roomById(s, "r-priv"), { id: "r-priv", name: "plans", kind: "private", member: true, unreadBase: 2, baseAt: t(10) });
  assert.deepEqual(listedRooms(s, GLOBAL).map((r) => r.id), ["global", "r-priv", "r-dm"], "the side list: the user's rooms");
  assert.deepEqual(listedRooms(s, "r-pub").map((r) => r.id), ["global", "r-priv", "r-dm", "r-pub"], "and the open one");
  assert.equal(roomsReducer(s, { type: "list", body: { nope: 1 }, anonymous: false }), s);
  // Without the global room, or with it elsewhere, it comes first.
  assert.deepEqual(parseRoomList({ rooms: [{ id: "a", name: "a", kind: "public" }] }).map((r) => r.id), ["global", "a"]);
  assert.deepEqual(parseRoomList({ rooms: [{ id: "a", name: "a", kind: "public" }, { id: "global", kind: "global" }] }).map((r) => r.id), ["global", "a"]);
  assert.equal(parseRoomList("nope"), null);
  // A stand-in for a room being opened.
  assert.deepEqual(roomById(s, "elsewhere"), { id: "elsewhere", name: "", kind: "public", member: false });
});

test("a new list keeps what the server cannot say: who made a room, and an anonymous socket's public rooms", () => {
  let s = run([
    { type: "list", body: LIST, anonymous: true },
    { type: "in", room: { id: "r-pub", name: "lobby", kind: "public", createdBy: "u-ann" } },
  ]);
  assert.equal(roomById(s, "r-pub").member, true);
  s = roomsReducer(s, { type: "list", body: LIST, anonymous: true });
  assert.equal(roomById(s, "r-pub").member, true, "joined by this socket: still in");
  assert.equal(roomById(s, "r-pub").createdBy, "u-ann");
  s = roomsReducer(s, { type: "list", body: LIST, anonymous: false });
  assert.equal(roomById(s, "r-pub").member, false, "a verified user's membership is the server's");
});

test("in, joined, out: rooms come and go; a public room left stays to be found; notices say what happened", () => {
  let s = run([{ type: "list", body: LIST, anonymous: false }]);
  s = roomsReducer(s, { type: "in", room: { id: "r-new", name: "", kind: "direct", createdBy: "u-bob" }, name: "bob" });
  assert.deepEqual(roomById(s, "r-new"), { id: "r-new", name: "bob", kind: "direct", member: true, createdBy: "u-bob" });
  assert.equal(roomsReducer(s, { type: "in", room: { id: "global", kind: "global" } }), s);
  assert.equal(roomsReducer(s, { type: "in", room: "junk" }), s);
  s = roomsReducer(s, { type: "joined", id: "r-pub" });
  assert.equal(roomById(s, "r-pub").member, true);

  // Left (not open): quietly; a public room stays, not a member's.
  let l = roomsReducer(s, { type: "out", id: "r-pub", why: "left", active: GLOBAL });
  assert.equal(roomById(l, "r-pub").member, false);
  assert.equal(l.notice, null);
  l = roomsReducer(l, { type: "out", id: "r-priv", why: "left", active: "r-priv" });
  assert.equal(l.rooms.some((r) => r.id === "r-priv"), false);
  assert.equal(l.notice.text, "You left “plans”.");
  // Removed, deleted: said, open or not.
  let r = roomsReducer(s, { type: "out", id: "r-priv", why: "removed", active: GLOBAL });
  assert.equal(r.notice.text, "You were removed from “plans”.");
  r = roomsReducer(r, { type: "out", id: "r-new", why: "deleted", active: GLOBAL });
  assert.equal(r.notice.text, "“bob” was deleted.");
  assert.notEqual(r.notice.key, 1, "a new notice has a new key");
  assert.equal(roomsReducer(r, { type: "out", id: "unknown", why: "deleted", active: GLOBAL }), r);
  assert.equal(roomsReducer(r, { type: "dismiss-notice" }).notice, null);
  // A server without rooms: the global room alone.
  const none = roomsReducer(s, { type: "no-rooms", availability: "unavailable", reason: "replica" });
  assert.deepEqual([none.availability, none.reason, none.rooms.map((x) => x.id)], ["unavailable", "replica", ["global"]]);
});

test("unread: the server's count until read, then the others' messages after it; own and earlier ones do not count", () => {
  const own = (it) => it.userId === "me";
  const msg = (id, at, room = "r-priv", userId = "u-bob") => ({ key: id, id, room, createdAt: t(at), userId, username: "x", text: "x", localAt: 0 });
  let s = run([{ type: "list", body: LIST, anonymous: false }]);
  const room = () => roomById(s, "r-priv");
  assert.equal(unreadOf(room(), [], own), 2, "the server's count");
  const items = [msg("a", 5), msg("b", 11), msg("c", 12, "r-priv", "me"), msg("d", 13, "elsewhere"), msg("e", 14)];
  assert.equal(unreadOf(room(), items, own), 4, "2, and b and e (a is older than the list; c is own; d another room's)");
  s = roomsReducer(s, { type: "read", id: "r-priv", at: t(11) });
  assert.equal(unreadOf(room(), items, own), 1, "read up to b: e");
  s = roomsReducer(s, { type: "read", id: "r-priv", at: t(3) });
  assert.equal(room().readAt, t(11), "a read position never moves back");
  s = roomsReducer(s, { type: "read", id: "r-priv", at: t(14) });
  assert.equal(unreadOf(room(), items, own), 0);
  // Read, but before the list's newest message: the server's count stands.
  let p = run([{ type: "list", body: LIST, anonymous: false }, { type: "read", id: "r-priv", at: t(9) }]);
  assert.equal(unreadOf(roomById(p, "r-priv"), [], own), 2);
  // None for the global room, nor for a room the user is not in; a cap.
  assert.equal(unreadOf(roomById(s, GLOBAL), [msg("g", 30, undefined)], own), 0);
  assert.equal(unreadOf(roomById(s, "r-pub"), [msg("p", 30, "r-pub")], own), 0);
  const many = Array.from({ length: UNREAD_MAX + 5 }, (_, i) => ({ ...msg(`m${i}`, 50, "r-dm") }));
  assert.equal(unreadOf(roomById(s, "r-dm"), many, own), UNREAD_MAX);
  assert.equal(unreadLabel(UNREAD_MAX), "999+");
  assert.equal(unreadLabel(7), "7");
});

test("the newest message read is one the server has: an id, a time, not a pending own one", () => {
  const items = [
    { key: "a", id: "a", room: "r", createdAt: t(1), username: "", text: "", localAt: 0 },
    { key: "b", id: "b", room: "r", createdAt: t(2), username: "", text: "", localAt: 0, out: { delivery: "stored" } },
    { key: "c", clientId: "c", room: "r", username: "", text: "", localAt: 0, out: { delivery: "pending" } },
    { key: "d", id: "d", createdAt: t(3), username: "", text: "", localAt: 0 },
  ];
  assert.equal(newestSeen(items, "r").id, "b");
  assert.equal(newestSeen(items, GLOBAL).id, "d");
  assert.equal(newestSeen(items, "none"), undefined);
});

test("paging of older messages: loading, the next cursor, the beginning, a failure keeps the cursor", () => {
  let s = run([{ type: "paging", id: "r", loading: true }]);
  assert.deepEqual(s.paging.r, { loading: true, failed: false });
  s = roomsReducer(s, { type: "paging", id: "r", loading: false, next: "m40" });
  assert.deepEqual(s.paging.r, { next: "m40", loading: false, failed: undefined });
  s = run([{ type: "paging", id: "r", loading: true }, { type: "paging", id: "r", loading: false, failed: true }], s);
  assert.equal(s.paging.r.next, "m40");
  assert.equal(s.paging.r.failed, true);
  s = run([{ type: "paging", id: "r", loading: true }, { type: "paging", id: "r", loading: false, next: null }], s);
  assert.equal(s.paging.r.next, null, "the beginning");
});

test("a room's URL: ?room=<id>, the global room is the page itself; titles and refusals read well", () => {
  for (const id of ["0193a1b2-0000-7000-8000-000000000000", "a b&c"]) assert.equal(roomFromSearch(roomHref(id)), id);
  assert.equal(roomHref(GLOBAL), "./");
  assert.equal(roomFromSearch(""), GLOBAL);
  assert.equal(roomFromSearch("?room="), GLOBAL);
  assert.equal(roomFromSearch(`?room=${"x".repeat(65)}`), GLOBAL, "not a room id");
  assert.equal(roomTitle({ id: GLOBAL, name: "global", kind: "global" }), "Global");
  assert.equal(roomTitle({ id: "d", name: "", kind: "direct" }), "Direct message");
  assert.equal(describeRoomError({ code: "limit", reason: "at most 3", limit: "ROOM_MEMBERS_MAX" }, "bob was not invited"), "bob was not invited: a limit was reached (ROOM_MEMBERS_MAX) (at most 3).");
  assert.match(describeRoomError({ code: "rate_limited", reason: "", retryAfterMs: 1500 }, "No room"), /Try again in 2 s/);
  assert.match(describeRoomError({ code: "forbidden", reason: "" }, "Not removed"), /only the room's owner or a moderator/);
});
