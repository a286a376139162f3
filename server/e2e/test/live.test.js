// Who is online and who is typing, across two Go nodes sharing Redis, with
// the real socket.io-client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { redisURL, startServer, connect, until, sleep, emitAck } from "../lib/harness.js";

/** Connects with a name, and records the live events too. */
async function join(url, username, opts = {}) {
  const s = await connect(url, { transports: ["websocket"], auth: username ? { username } : undefined, ...opts });
  s.joins = [];
  s.leaves = [];
  s.typing = [];
  s.on("presence:join", (e) => s.joins.push(e));
  s.on("presence:leave", (e) => s.leaves.push(e));
  s.on("typing", (e) => s.typing.push(e));
  return s;
}

const names = (p) => (p?.users ?? []).map((u) => u.name).sort();
const last = (a) => a[a.length - 1];

test("presence lists every user of the cluster once, with joins and leaves; a crashed node's users drop out", async () => {
  const env = { REDIS_URL: redisURL(), REDIS_KEY_PREFIX: `live${Date.now()}`, PRESENCE_INTERVAL: "200ms" };
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const ann = await join(a.url, "ann");
    const ann2 = await join(b.url, "ann"); // a second tab, on the other node
    const bob = await join(b.url, "bob");
    const anon = await join(a.url, null); // the original client: counted, not listed
    await until(() => last(ann.presence)?.online === 4 && names(last(ann.presence)).join() === "ann,bob", 5000, "ann sees 4 online, ann and bob listed");
    await until(() => names(last(anon.presence)).join() === "ann,bob", 5000, "the same list on the other node");
    const listed = last(ann.presence).users;
    assert.ok(listed.every((u) => typeof u.since === "string" && u.since.endsWith("Z")), "since is an RFC 3339 time");
    assert.ok(bob.joins.length === 0 || bob.joins.every((j) => j.name === "ann" || j.name === "bob"));

    const api = await (await fetch(`${a.url}/api/presence`)).json();
    assert.equal(api.online, 4);
    assert.deepEqual(api.users.map((u) => u.name).sort(), ["ann", "bob"]);

    // A user with two tabs leaves only when both are gone.
    const cid = await join(a.url, "cid");
    await until(() => ann2.joins.some((j) => j.name === "cid"), 5000, "ann's other tab told that cid joined");
    ann.disconnect();
    await sleep(600);
    assert.ok(!bob.leaves.some((l) => l.name === "ann"), "ann still has a tab open");
    ann2.disconnect();
    await until(() => bob.leaves.some((l) => l.name === "ann"), 5000, "bob told that ann left");

    // Node b dies: its users drop out within seconds.
    process.kill(b.pid, "SIGKILL");
    await until(() => names(last(cid.presence)).join() === "cid", 8000, "bob gone from the list after node b died");
    assert.ok(cid.leaves.some((l) => l.name === "bob"));
    cid.disconnect();
    anon.disconnect();
  } finally {
    await a.stop();
    await b.stop().catch(() => {});
  }
});

test("typing reaches the others on both nodes, not the typist; expires; a typing flood leaves the message budget alone", async () => {
  const env = {
    REDIS_URL: redisURL(), REDIS_KEY_PREFIX: `typing${Date.now()}`, TYPING_TIMEOUT: "1s", PRESENCE_INTERVAL: "200ms",
    RATE_LIMIT_PER_SEC: "2", RATE_LIMIT_BURST: "3",
  };
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const ann = await join(a.url, "ann");
    const bob = await join(b.url, "bob");
    const cid = await join(a.url, "cid");
    await sleep(300);
    ann.emit("typing", { typing: true });
    await until(() => bob.typing.some((t) => t.name === "ann" && t.typing), 5000, "bob sees ann typing (other node)");
    await until(() => cid.typing.some((t) => t.name === "ann" && t.typing), 5000, "cid sees ann typing (same node)");
    assert.equal(ann.typing.length, 0, "the typist is not told of its own typing");
    // Not renewed: it ends by itself.
    await until(() => bob.typing.some((t) => t.name === "ann" && !t.typing), 5000, "ann's typing expired");

    // A flood of typing: refused past its own limit, while messages still
    // have their whole budget.
    for (let i = 0; i < 200; i++) ann.emit("typing", { typing: i % 2 === 0 });
    await sleep(200);
    const ok = await emitAck(ann, { message: "after the flood", username: "ann" });
    assert.equal(ok.ok, true, "a message after a typing flood is accepted");
    assert.ok(ann.errors.some((e) => e.code === "rate_limited"), "the typing flood was refused");
    assert.ok(ann.errors.filter((e) => e.code === "rate_limited").length <= 2, "at most one refusal a second");

    // Bad typing payloads and a client without a name.
    const anon = await join(a.url, null);
    anon.emit("typing", { typing: true });
    await until(() => anon.errors.some((e) => e.code === "invalid_payload"), 5000, "typing without a name refused");
    anon.emit("typing", "yes");
    anon.emit("typing", { typing: true, username: "dee" });
    await until(() => bob.typing.some((t) => t.name === "dee" && t.typing), 5000, "a name given with typing is used");
    anon.disconnect();
    await until(() => bob.typing.some((t) => t.name === "dee" && !t.typing), 5000, "leaving ends the typing");

    // Nothing typed was stored.
    const hist = await (await fetch(`${a.url}/api/messages?limit=50`)).json();
    assert.deepEqual(hist.messages.map((m) => m.message), ["after the flood"]);
    ann.disconnect();
    bob.disconnect();
    cid.disconnect();
  } finally {
    await a.stop();
    await b.stop();
  }
});
