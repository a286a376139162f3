// Bad input gets a clear error and loses nothing; every limit holds; the
// server keeps serving.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connect, until, sleep, emitAck, MODES } from "../lib/harness.js";

const BAD = [
  ["a string", "hello", "invalid_payload"],
  ["a number", 42, "invalid_payload"],
  ["null", null, "invalid_payload"],
  ["an empty object", {}, "invalid_payload"],
  ["a missing message", { username: "x" }, "invalid_payload"],
  ["a number as message", { message: 5, username: "x" }, "invalid_payload"],
  ["an object as username", { message: "hi", username: { a: 1 } }, "invalid_payload"],
  ["a blank message", { message: " \t\n ", username: "x" }, "message_empty"],
  ["only control characters", { message: "\u0000\u0007", username: "x" }, "message_empty"],
  ["a 2,001-character message", { message: "a".repeat(2001), username: "x" }, "message_too_long"],
  ["a 10,000-character username", { message: "hi", username: "u".repeat(10_000) }, "username_too_long"],
  ["a clientId that is no UUID", { message: "hi", username: "x", clientId: "nope" }, "invalid_client_id"],
];

for (const [mode, opts] of Object.entries(MODES)) {
  describe(`bad input over ${mode}`, () => {
    let server;
    before(async () => {
      server = await startServer({ RATE_LIMIT_PER_SEC: "1000", RATE_LIMIT_BURST: "1000" });
    });
    after(async () => assert.equal((await server.stop()).code, 0));

    test("each bad payload gets its error, is never broadcast, and the server keeps serving", async () => {
      const sender = await connect(server.url, opts);
      const watcher = await connect(server.url, opts);
      for (const [what, payload, code] of BAD) {
        const before = sender.errors.length;
        sender.emit("event:message", payload);
        await until(() => sender.errors.length > before, 3000, `error for ${what}`);
        const e = sender.errors.at(-1);
        assert.equal(e.code, code, what);
        assert.ok(typeof e.reason === "string" && e.reason.length > 0, `${what}: a reason`);
        // The same payload with an acknowledgement gets a negative ack.
        const ack = await emitAck(sender, payload);
        assert.equal(ack.ok, false, what);
        assert.equal(ack.error.code, code, what);
      }
      // An unknown event with an acknowledgement gets it, negative, in place
      // of the error event; without one, the error event comes.
      const errorsBefore = sender.errors.length;
      const unknown = await sender.timeout(3000).emitWithAck("no-such-event", { message: "x" });
      assert.equal(unknown.ok, false);
      assert.equal(unknown.error.code, "unknown_event");
      assert.ok(typeof unknown.error.reason === "string" && unknown.error.reason.length > 0, "a reason");
      sender.emit("no-such-event", { message: "x" });
      await until(() => sender.errors.at(-1)?.code === "unknown_event", 3000, "unknown event error");
      assert.equal(sender.errors.length, errorsBefore + 1, "one error event: for the event without an acknowledgement");
      // A frame the parser rejects (a bare EVENT packet, "42") closes only the
      // client that sent it.
      const rogue = await connect(server.url, { ...opts, reconnection: false });
      rogue.io.engine.write("42");
      await until(() => !rogue.connected, 5000, "rogue closed");
      assert.ok(sender.connected && watcher.connected, "others stay connected");
      await sleep(100);
      assert.equal(watcher.messages.length, 0, "nothing bad was broadcast");
      // Still serving: a good message goes through.
      const ok = await emitAck(sender, { message: "still here", username: "x" });
      assert.equal(ok.ok, true);
      await until(() => watcher.messages.length === 1, 3000, "good message");
      assert.equal(watcher.messages[0].message, "still here");
      assert.ok(sender.connected, "the sender of bad payloads was not disconnected");
      for (const s of [sender, watcher]) s.disconnect();
    });

    test("control characters are removed and text is kept as text", async () => {
      const a = await connect(server.url, opts);
      const res = await emitAck(a, { message: "  <img src=x onerror=alert(1)>\u0000 ok  ", username: " bob\u0007 " });
      assert.equal(res.ok, true);
      await until(() => a.messages.some((m) => m.id === res.id), 3000, "message");
      const m = a.messages.find((m) => m.id === res.id);
      assert.equal(m.message, "<img src=x onerror=alert(1)> ok");
      assert.equal(m.username, "bob");
      a.disconnect();
    });
  });

  describe(`limits over ${mode}`, () => {
    test("a flood past the rate limit gets one rate_limited a second, with retryAfterMs", async () => {
      const server = await startServer({ RATE_LIMIT_PER_SEC: "5", RATE_LIMIT_BURST: "5" });
      try {
        const a = await connect(server.url, opts);
        const b = await connect(server.url, opts);
        const start = Date.now();
        let sent = 0;
        while (Date.now() - start < 2500) {
          for (let i = 0; i < 10; i++) a.emit("event:message", { message: `flood ${sent++}`, username: "f" });
          await sleep(50);
        }
        await sleep(500);
        const limited = a.errors.filter((e) => e.code === "rate_limited");
        assert.ok(limited.length >= 2 && limited.length <= 4, `one rate_limited a second, got ${limited.length} in ~2.5 s`);
        for (const e of limited) assert.ok(e.retryAfterMs > 0 && e.retryAfterMs <= 1000, `retryAfterMs ${e.retryAfterMs}`);
        const through = b.messages.length;
        assert.ok(through >= 5 && through <= 5 + 5 * 3.5, `burst plus rate got through: ${through} of ${sent}`);
        const texts = b.messages.map((m) => Number(m.message.split(" ")[1]));
        assert.deepEqual(texts, [...texts].sort((x, y) => x - y), "what got through is in order");
        a.disconnect();
        b.disconnect();
      } finally {
        assert.equal((await server.stop()).code, 0);
      }
    });

    // Unknown events count against the rate limit as messages do; each
    // acknowledgement is answered, past the limit with rate_limited, and no
    // error event comes for them.
    test("unknown events with acknowledgements are each answered, within the rate limit and past it", async () => {
      const server = await startServer({ RATE_LIMIT_PER_SEC: "1", RATE_LIMIT_BURST: "3" });
      try {
        const a = await connect(server.url, opts);
        const acks = await Promise.all(Array.from({ length: 6 }, (_, i) => a.timeout(3000).emitWithAck("no-such-event", i)));
        const codes = acks.map((r) => r.error?.code);
        assert.deepEqual(codes.slice(0, 3), ["unknown_event", "unknown_event", "unknown_event"], `within the burst: ${codes}`);
        assert.ok(codes.slice(3).every((c) => c === "rate_limited"), `past it: ${codes}`);
        for (const r of acks) assert.equal(r.ok, false);
        for (const r of acks.slice(3)) assert.ok(r.error.retryAfterMs > 0 && r.error.retryAfterMs <= 1000, `retryAfterMs ${r.error.retryAfterMs}`);
        const message = await emitAck(a, { message: "after them", username: "u" });
        assert.equal(message.error?.code, "rate_limited", "the unknown events took the message's tokens");
        await sleep(100);
        assert.deepEqual(a.errors.map((e) => e.code), ["rate_limited"], "no error event for an acknowledged unknown event");
        a.disconnect();
      } finally {
        assert.equal((await server.stop()).code, 0);
      }
    });

    test("a frame over MAX_HTTP_BUFFER_SIZE closes only that connection", async () => {
      const server = await startServer({ MAX_HTTP_BUFFER_SIZE: "4096", MAX_MESSAGE_LENGTH: "100000" });
      try {
        const big = await connect(server.url, { ...opts, reconnection: false });
        const other = await connect(server.url, opts);
        if (mode === "default") await until(() => big.io.engine.transport.name === "websocket", 5000, "upgrade");
        let reason;
        big.on("disconnect", (r) => (reason = r));
        big.emit("event:message", { message: "x".repeat(10_000), username: "big" });
        await until(() => !big.connected, 5000, "oversized sender closed");
        assert.match(reason, /transport (error|close)/);
        assert.ok(other.connected, "the other client stays");
        const ok = await emitAck(other, { message: "under the limit", username: "o" });
        assert.equal(ok.ok, true);
        await sleep(100);
        assert.ok(!other.messages.some((m) => m.username === "big"), "the oversized message was not broadcast");
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        assert.match(metrics, /chat_frames_too_large_total [1-9]/, "counted");
        other.disconnect();
      } finally {
        assert.equal((await server.stop()).code, 0);
      }
    });
  });
}

describe("connection limits and origins", () => {
  test("MAX_CONNECTIONS_PER_IP refuses the connection past the limit", async () => {
    const server = await startServer({ MAX_CONNECTIONS_PER_IP: "2" });
    try {
      const a = await connect(server.url);
      const b = await connect(server.url);
      await assert.rejects(connect(server.url, { reconnection: false }), /xhr poll error|websocket error|429|Too many/i);
      a.disconnect();
      await sleep(200);
      const c = await connect(server.url);
      assert.ok(c.connected, "a slot frees when a client leaves");
      b.disconnect();
      c.disconnect();
    } finally {
      await server.stop();
    }
  });

  test("CORS_ORIGINS is enforced on polling and on WebSocket upgrades", async () => {
    const server = await startServer({ CORS_ORIGINS: "http://allowed.example:3000" });
    try {
      const ok = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: "http://allowed.example:3000" } });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("access-control-allow-origin"), "http://allowed.example:3000");
      const bad = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: "http://evil.example" } });
      assert.equal(bad.status, 403);
      await assert.rejects(
        connect(server.url, { transports: ["websocket"], reconnection: false, extraHeaders: { Origin: "http://evil.example" } }),
        /websocket error/,
      );
      const good = await connect(server.url, { transports: ["websocket"], extraHeaders: { Origin: "http://allowed.example:3000" } });
      assert.ok(good.connected);
      good.disconnect();
    } finally {
      await server.stop();
    }
  });
});
