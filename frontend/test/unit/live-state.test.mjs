// Unit tests of who is online and who is typing (pure logic; compiled by run.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  LIVE_LIMITS,
  initialLiveState,
  liveOf,
  liveReducer,
  liveRoomOf,
  liveRoomsReducer,
  nextLiveChange,
  nextLiveRoomsChange,
  onInput,
  parseUsers,
  isMe,
  sortedUsers,
  stopTyping,
  typingLine,
} from "../../test-results/unit-build/live-state.js";

const run = (actions, s = initialLiveState()) => actions.reduce(liveReducer, s);

test("presence lists each user once; a count-only presence leaves the list unknown", () => {
  let s = run([
    {
      type: "presence",
      payload: {
        online: 4,
        users: [
          { name: "ann", since: "2026-12-01T10:00:00.000Z" },
          { name: "bob", userId: "u-bob" },
          { name: "ann" },
          { name: "" },
          { nope: 1 },
          "x",
        ],
      },
    },
  ]);
  assert.deepEqual(s.users, [{ name: "ann", since: "2026-12-01T10:00:00.000Z" }, { name: "bob", userId: "u-bob" }]);
  s = run([{ type: "presence", payload: { online: 5000 } }], s);
  assert.equal(s.users, null, "above PRESENCE_LIST_LIMIT only the count comes");
  assert.equal(parseUsers(null), null);
  assert.equal(parseUsers({ users: "ann" }), null);
  assert.deepEqual(parseUsers({ users: [] }), []);
});

test("typing: shown when someone starts, renewed, gone when they stop, expired when not renewed", () => {
  let s = run([{ type: "typing", payload: { name: "bob", typing: true }, now: 1000 }]);
  assert.deepEqual(s.typing.map((t) => t.name), ["bob"]);
  assert.equal(s.typing[0].until, 1000 + LIVE_LIMITS.typingExpireMs);
  // A renewal pushes the end out, and lists bob once.
  s = run([{ type: "typing", payload: { name: "bob", typing: true }, now: 3500 }], s);
  assert.equal(s.typing.length, 1);
  assert.equal(s.typing[0].until, 3500 + LIVE_LIMITS.typingExpireMs);
  assert.equal(nextLiveChange(s), 3500 + LIVE_LIMITS.typingExpireMs);
  // Not renewed: gone after the expiry.
  assert.equal(run([{ type: "tick", now: 3500 + LIVE_LIMITS.typingExpireMs - 1 }], s).typing.length, 1);
  assert.equal(run([{ type: "tick", now: 3500 + LIVE_LIMITS.typingExpireMs }], s).typing.length, 0);
  // typing: false ends it at once.
  assert.equal(run([{ type: "typing", payload: { name: "bob", typing: false }, now: 4000 }], s).typing.length, 0);
  // Users with the same name but different ids are two typists.
  s = run([
    { type: "typing", payload: { name: "sam", userId: "1", typing: true }, now: 0 },
    { type: "typing", payload: { name: "sam", userId: "2", typing: true }, now: 0 },
    { type: "typing", payload: { name: "sam", userId: "1", typing: false }, now: 1 },
  ]);
  assert.deepEqual(s.typing.map((t) => t.userId), ["2"]);
  // Malformed payloads change nothing.
  const before = run([{ type: "typing", payload: { name: "bob", typing: true }, now: 0 }]);
  for (const payload of [null, {}, { name: "bob" }, { name: "bob", typing: "yes" }, { typing: true }]) {
    assert.equal(liveReducer(before, { type: "typing", payload, now: 1 }), before);
  }
});

test("join and leave are quiet lines that go by themselves; a leaver stops typing", () => {
  let s = run([
    { type: "typing", payload: { name: "bob", typing: true }, now: 0 },
    { type: "presence-change", kind: "join", payload: { name: "cid" }, now: 100 },
    { type: "presence-change", kind: "leave", payload: { name: "bob" }, now: 200 },
  ]);
  assert.deepEqual(s.notices.map((n) => `${n.name} ${n.kind}`), ["cid join", "bob leave"]);
  assert.equal(s.typing.length, 0, "bob left: no longer typing");
  s = run([{ type: "tick", now: 100 + LIVE_LIMITS.noticeMs }], s);
  assert.deepEqual(s.notices.map((n) => n.name), ["bob"]);
  // At most maxNotices lines.
  s = run(Array.from({ length: 10 }, (_, i) => ({ type: "presence-change", kind: "join", payload: { name: `u${i}` }, now: 300 })), s);
  assert.equal(s.notices.length, LIVE_LIMITS.maxNotices);
  assert.equal(s.notices.at(-1).name, "u9");
  assert.equal(new Set(s.notices.map((n) => n.key)).size, s.notices.length, "unique keys");
  assert.equal(liveReducer(s, { type: "presence-change", kind: "join", payload: {}, now: 1 }), s);
});

test("a disconnect clears the typists, keeps the list", () => {
  const s = run([
    { type: "presence", payload: { online: 1, users: [{ name: "ann" }] } },
    { type: "typing", payload: { name: "ann", typing: true }, now: 0 },
    { type: "disconnected" },
  ]);
  assert.deepEqual(s.typing, []);
  assert.deepEqual(s.users, [{ name: "ann" }]);
  assert.equal(nextLiveChange(initialLiveState()), null);
});

test("the typing line names up to three, then counts; never the user", () => {
  const t = (...names) => names.map((name) => ({ name, until: 1 }));
  assert.equal(typingLine(t(), "me"), "");
  assert.equal(typingLine(t("me"), "me"), "", "the user's other tab");
  assert.equal(typingLine(t("ann"), "me"), "ann is typing…");
  assert.equal(typingLine(t("ann", "bob"), "me"), "ann and bob are typing…");
  assert.equal(typingLine(t("ann", "bob", "cid"), "me"), "ann, bob and cid are typing…");
  assert.equal(typingLine(t("ann", "bob", "cid", "dan", "me"), "me"), "ann, bob and 2 others are typing…");
  assert.equal(typingLine(t("ann", "ann"), null), "ann is typing…");
});

test("the user's own typing: started on input, renewed at most every typingRenewMs, stopped once", () => {
  let own = { typing: false, sentAt: 0 };
  let r = onInput(own, true, 1000);
  assert.equal(r.send, true);
  own = r.next;
  r = onInput(own, true, 1000 + LIVE_LIMITS.typingRenewMs - 1);
  assert.equal(r.send, null, "not again so soon");
  r = onInput(own, true, 1000 + LIVE_LIMITS.typingRenewMs);
  assert.equal(r.send, true, "renewed");
  own = r.next;
  r = onInput(own, false, 5000);
  assert.equal(r.send, false, "the input was cleared");
  own = r.next;
  assert.equal(stopTyping(own).send, null, "stopped once only");
  assert.equal(onInput(own, false, 6000).send, null);
});

test("the user comes first in the list, then by name", () => {
  const users = [{ name: "zoe" }, { name: "me" }, { name: "ann" }];
  assert.deepEqual(sortedUsers(users, "me").map((u) => u.name), ["me", "ann", "zoe"]);
  assert.deepEqual(users.map((u) => u.name), ["zoe", "me", "ann"], "not sorted in place");
});

// Issue 29: "(you)" went by name, so another verified Zoë showed as the user.
test("the user is its verified id in the online list, its name only without one", () => {
  const users = [{ name: "Zoë", userId: "auth0|7" }, { name: "ann" }, { name: "Zoë", userId: "guest:1" }];
  assert.deepEqual(users.map((u) => isMe(u, "Zoë", "guest:1")), [false, false, true]);
  assert.deepEqual(users.map((u) => isMe(u, "Zoë", null)), [true, false, true]);
  assert.deepEqual(sortedUsers(users, "Zoë", "guest:1").map((u) => u.userId ?? u.name), ["guest:1", "ann", "auth0|7"]);
});

test("per room: each event goes to the room it names (none: the global room); ticks and disconnects reach every room", () => {
  let s = [
    { type: "presence", payload: { online: 3, users: [{ name: "ann" }, { name: "bob" }] } },
    { type: "presence", payload: { room: "r1", online: 1, users: [{ name: "ann", userId: "u-ann" }] } },
    { type: "typing", payload: { room: "r1", name: "ann", userId: "u-ann", typing: true }, now: 1000 },
    { type: "typing", payload: { name: "bob", typing: true }, now: 1000 },
  ].reduce(liveRoomsReducer, {});
  assert.equal(liveOf(s, "global").online, 3);
  assert.deepEqual(liveOf(s, "r1").users, [{ name: "ann", userId: "u-ann" }]);
  assert.deepEqual(liveOf(s, "r1").typing.map((t) => t.name), ["ann"]);
  assert.deepEqual(liveOf(s, "global").typing.map((t) => t.name), ["bob"]);
  assert.equal(liveOf(s, "elsewhere").online, null, "a room nothing came of is empty");
  assert.equal(liveRoomOf({ room: 5 }), "global");
  assert.equal(nextLiveRoomsChange(s), 1000 + LIVE_LIMITS.typingExpireMs);
  s = liveRoomsReducer(s, { type: "disconnected" });
  assert.equal(liveOf(s, "r1").typing.length + liveOf(s, "global").typing.length, 0);
  assert.equal(nextLiveRoomsChange(s), null);
  s = liveRoomsReducer(s, { type: "forget", room: "r1" });
  assert.deepEqual(Object.keys(s), ["global"]);
  assert.equal(liveRoomsReducer(s, { type: "forget", room: "r1" }), s);
  // A presence without a number keeps the count.
  s = liveRoomsReducer(s, { type: "presence", payload: { online: "many", users: [] } });
  assert.equal(liveOf(s, "global").online, 3);
});
