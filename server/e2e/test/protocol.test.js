// The protocol of the original server, spoken by the real socket.io-client
// in its three transport modes.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connect, until, sleep, emitAck, MODES } from "../lib/harness.js";

for (const [mode, opts] of Object.entries(MODES)) {
  describe(`protocol over ${mode}`, () => {
    let server;
    before(async () => {
      server = await startServer({ RATE_LIMIT_PER_SEC: "1000", RATE_LIMIT_BURST: "1000" });
    });
    after(async () => {
      const { code } = await server.stop();
      assert.equal(code, 0, "server exits 0 on SIGTERM");
    });

    test("a message reaches every client with the original fields", async () => {
      const a = await connect(server.url, opts);
      const b = await connect(server.url, opts);
      if (mode === "default") {
        await until(() => a.io.engine.transport.name === "websocket", 5000, "upgrade to websocket");
      }
      a.emit("event:message", { message: "hello from a", username: "alice" });
      await until(() => b.messages.length === 1 && a.messages.length === 1, 5000, "broadcast");
      const m = b.messages[0];
      assert.equal(m.message, "hello from a");
      assert.equal(m.username, "alice");
      assert.match(m.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.match(m.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.deepEqual(a.messages[0], m, "the sender gets the same broadcast");
      a.disconnect();
      b.disconnect();
    });

    test("an acknowledged message is acknowledged with its id once stored", async () => {
      const a = await connect(server.url, opts);
      const clientId = crypto.randomUUID();
      const res = await emitAck(a, { message: "acked", username: "alice", clientId });
      assert.deepEqual(res, { ok: true, id: clientId });
      // A retry of the same clientId is acknowledged again but not broadcast twice.
      const again = await emitAck(a, { message: "acked", username: "alice", clientId });
      assert.deepEqual(again, { ok: true, id: clientId });
      await sleep(200);
      assert.equal(a.messages.filter((m) => m.id === clientId).length, 1);
      a.disconnect();
    });

    test("a burst from one sender arrives complete and in order", async () => {
      const a = await connect(server.url, opts);
      const b = await connect(server.url, opts);
      const n = 300;
      for (let i = 0; i < n; i++) a.emit("event:message", { message: `burst ${i}`, username: "bursty" });
      await until(() => b.messages.filter((m) => m.username === "bursty").length >= n, 15_000, "burst");
      const got = b.messages.filter((m) => m.username === "bursty").map((m) => m.message);
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => `burst ${i}`));
      a.disconnect();
      b.disconnect();
    });

    test("clients joining during a stream get it in order, with no gap, through their upgrade", async () => {
      const sender = await connect(server.url, opts);
      let sending = true;
      let n = 0;
      const stream = (async () => {
        while (sending && n < 3000) {
          sender.emit("event:message", { message: `s${n++}`, username: "stream" });
          await sleep(2);
        }
      })();
      const clients = [];
      for (let i = 0; i < 8; i++) {
        await sleep(100);
        clients.push(await connect(server.url, { ...opts, reconnection: false }));
      }
      await sleep(1500);
      sending = false;
      await stream;
      const last = `s${n - 1}`;
      for (const c of clients) {
        await until(() => c.messages.some((m) => m.message === last), 10_000, "the end of the stream");
        // History (the stream's latest) then live: one run, no gap, no repeat.
        const seq = c.messages.filter((m) => m.username === "stream").map((m) => Number(m.message.slice(1)));
        for (let i = 1; i < seq.length; i++) {
          assert.equal(seq[i], seq[i - 1] + 1, `in order with no gap after ${seq[i - 1]} (got ${seq[i]})`);
        }
        c.disconnect();
      }
      sender.disconnect();
    });

    test("a later client gets the history first, oldest first, then live", async () => {
      const a = await connect(server.url, opts);
      for (let i = 0; i < 3; i++) await emitAck(a, { message: `before ${i}`, username: "hist" });
      const c = await connect(server.url, opts);
      await until(() => c.messages.filter((m) => m.username === "hist").length === 3, 5000, "history");
      a.emit("event:message", { message: "after", username: "hist" });
      await until(() => c.messages.filter((m) => m.username === "hist").length === 4, 5000, "live after history");
      const texts = c.messages.filter((m) => m.username === "hist").map((m) => m.message);
      assert.deepEqual(texts, ["before 0", "before 1", "before 2", "after"]);
      const ids = c.messages.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, "no duplicate");
      a.disconnect();
      c.disconnect();
    });

    test("a client that reconnects within the window gets what it missed and no history again", async () => {
      const a = await connect(server.url, opts);
      const watcher = await connect(server.url, opts);
      await emitAck(watcher, { message: "seen before the cut", username: "rec" });
      await until(() => a.messages.some((m) => m.message === "seen before the cut"), 5000, "first");
      const before = a.messages.length;
      // Cut the transport, as a network failure does; the client reconnects.
      a.io.engine.close();
      await until(() => !a.connected, 5000, "disconnect");
      await emitAck(watcher, { message: "sent while away", username: "rec" });
      await until(() => a.connected, 10_000, "reconnect");
      await until(() => a.messages.some((m) => m.message === "sent while away"), 5000, "missed message");
      assert.equal(a.recovered, true, "connection state recovered");
      await sleep(300);
      assert.equal(a.messages.length, before + 1, "only the missed message, no history replay");
      const ids = a.messages.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, "no duplicate");
      a.disconnect();
      watcher.disconnect();
    });

    test("presence counts the connected clients", async () => {
      const a = await connect(server.url, opts);
      await until(() => a.presence.length > 0, 3000, "presence on connect");
      const b = await connect(server.url, opts);
      await until(() => a.presence.at(-1)?.online >= 2, 3000, "presence update");
      b.disconnect();
      await until(() => a.presence.at(-1)?.online === a.presence.at(-1)?.online && a.presence.at(-1).online >= 1, 3000, "presence after leave");
      a.disconnect();
    });
  });
}
