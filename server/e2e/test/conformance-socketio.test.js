// Conformance with Socket.IO v5 (the protocol of socket.io 4.x): every case
// of the "Socket.IO protocol" part of socketio/socket.io-protocol's test
// suite (test-suite/test-suite.js), over raw WebSocket frames, against the
// real server with the suite's settings (SUITE_ENV). The suite's Engine.IO
// part is in conformance-engineio.test.js.
//
// The suite's server registers a /custom namespace, answers each CONNECT
// with an "auth" event echoing the handshake's payload, and echoes events
// ("message" → "message-back", "message-with-ack" → the ack). Ours is the
// chat, so each case checks what the chat does with the same exchange: the
// newcomer's `presence` follows the CONNECT answer, `event:message` is
// broadcast and acknowledged, anything else is answered by an `error`
// event (with an acknowledgement id: by a negative acknowledgement,
// unknown_event, where Node never answers). The reference is what Node's socket.io 4.8 does with the same raw
// exchange; where we deliberately differ from Node, the case says so.
// Each test's name is the suite case it covers.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../lib/harness.js";
import { SUITE_ENV, RawSocket, connectWebSocket, decodeSio, eventOf, isNoise, sleep } from "../lib/raw.js";

const T = { timeout: 15_000 };
const WS = "EIO=4&transport=websocket";
const chat = (message, id = "") => `42${id}${JSON.stringify(["event:message", { message, username: "conformance" }])}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// plain: connection-state recovery off, so a CONNECT answer is exactly
// {sid}. node: Node's defaults for the rest (recovery on: {sid, pid}), and
// CONNECT_TIMEOUT=1s, the connectTimeout of the no-handshake case.
let plain;
let node;
before(async () => {
  [plain, node] = await Promise.all([
    startServer({ ...SUITE_ENV, CONNECTION_RECOVERY_WINDOW: "0" }),
    startServer({ ...SUITE_ENV, CONNECT_TIMEOUT: "1s" }),
  ]);
});
after(async () => {
  for (const s of [plain, node]) assert.equal((await s.stop()).code, 0, "the server exits 0 on SIGTERM");
});

/** Opens a raw WebSocket session and waits for its open packet. */
async function session(url) {
  const s = new RawSocket(url, WS);
  await s.handshake();
  return s;
}

/** Asserts p is a CONNECT answer of nsp whose payload has exactly the keys. */
function assertConnect(p, keys, nsp = "/") {
  const d = decodeSio(p);
  assert.ok(d && d.type === 0, `a CONNECT answer, got ${JSON.stringify(p)}`);
  assert.equal(d.nsp, nsp);
  assert.deepEqual(Object.keys(d.data).sort(), keys, `the CONNECT answer's keys: ${p}`);
  for (const k of keys) {
    assert.equal(typeof d.data[k], "string", `${k} in ${p}`);
    assert.ok(d.data[k].length > 0, `${k} in ${p}`);
  }
  return d.data;
}

/** Asserts p is the `presence` event a newcomer gets after its CONNECT answer. */
function assertPresence(p) {
  const ev = eventOf(p);
  assert.ok(ev && ev[0] === "presence", `a presence event, got ${JSON.stringify(p)}`);
  assert.ok(Number.isInteger(ev[1].online) && ev[1].online >= 1, `presence ${p}`);
}

/** Asserts p is an `error` event with the code. */
function assertError(p, code) {
  const ev = eventOf(p);
  assert.ok(ev && ev[0] === "error", `an error event, got ${JSON.stringify(p)}`);
  assert.equal(ev[1].code, code, `error code in ${p}`);
  assert.equal(typeof ev[1].reason, "string");
  return ev[1];
}

/** Asserts p is the broadcast of the chat message with the text; returns it. */
function assertMessage(p, text) {
  const ev = eventOf(p);
  assert.ok(ev && ev[0] === "message", `a message event, got ${JSON.stringify(p)}`);
  assert.equal(ev[1].message, text);
  assert.equal(ev[1].username, "conformance");
  assert.match(ev[1].id, UUID);
  return ev[1];
}

/** Asserts the connection still serves: a chat message comes back. */
async function assertServes(s, text) {
  s.send(chat(text));
  assertMessage(await s.next(), text);
}

describe("socket.io-protocol › connect", () => {
  // The suite's server then emits "auth" with the CONNECT payload; ours
  // sends the newcomer `presence` (no history: HISTORY_LIMIT=0).
  test("should allow connection to the main namespace", T, async () => {
    const s = await session(plain.url);
    try {
      s.send("40");
      assertConnect(await s.next(), ["sid"]);
      assertPresence(await s.next(3000, (p) => p === "2"));
    } finally {
      s.close();
    }
  });

  // Node adds the private session id when connection-state recovery is on
  // (our default, CONNECTION_RECOVERY_WINDOW=2m).
  test("should allow connection to the main namespace (connection-state recovery on: sid and pid)", T, async () => {
    const s = await session(node.url);
    try {
      s.send("40");
      const hs = assertConnect(await s.next(), ["pid", "sid"]);
      assert.notEqual(hs.pid, hs.sid);
      assertPresence(await s.next(3000, (p) => p === "2"));
    } finally {
      s.close();
    }
  });

  test("should allow connection to the main namespace with a payload", T, async () => {
    const s = await session(plain.url);
    try {
      s.send('40{"token":"123"}');
      assertConnect(await s.next(), ["sid"]);
      assertPresence(await s.next(3000, (p) => p === "2"));
    } finally {
      s.close();
    }
  });

  // The suite's server registers /custom; the chat, like the original Node
  // server, registers no namespace but the main one, and Node refuses a
  // namespace it does not have exactly so. The connection stays usable.
  test("should allow connection to a custom namespace (refused: the chat has only the main namespace)", T, async () => {
    const s = await session(plain.url);
    try {
      s.send("40/custom,");
      assert.equal(await s.next(), '44/custom,{"message":"Invalid namespace"}');
      s.send("40");
      assertConnect(await s.next(), ["sid"]);
    } finally {
      s.close();
    }
  });

  test("should allow connection to a custom namespace with a payload (refused: the chat has only the main namespace)", T, async () => {
    const s = await session(plain.url);
    try {
      s.send('40/custom,{"token":"abc"}');
      assert.equal(await s.next(), '44/custom,{"message":"Invalid namespace"}');
      s.send("40");
      assertConnect(await s.next(), ["sid"]);
    } finally {
      s.close();
    }
  });

  test("should disallow connection to an unknown namespace", T, async () => {
    const s = await session(plain.url);
    try {
      s.send("40/random");
      assert.equal(await s.next(), '44/random,{"message":"Invalid namespace"}');
    } finally {
      s.close();
    }
  });

  test("should disallow connection with an invalid handshake", T, async () => {
    const s = await session(plain.url);
    s.send("4abc");
    await s.ended(2000);
  });

  // The suite's client answers no ping, so there the connection also ends
  // at the ping timeout; this one answers every ping, so it is the connect
  // timeout (Node's connectTimeout, CONNECT_TIMEOUT, 1 s on this server)
  // that must close it, and only it: a socket that connected stays.
  test("should close the connection if no handshake is received", T, async () => {
    const idle = new RawSocket(node.url, WS);
    const { sock: connected } = await connectWebSocket(node.url);
    try {
      await idle.handshake();
      const opened = Date.now();
      const end = await idle.ended(4000);
      const after = end.at - opened;
      assert.ok(after >= 800, `closed after ${after} ms, before CONNECT_TIMEOUT (1 s)`);
      await connected.staysOpen(300);
    } finally {
      idle.close();
      connected.close();
    }
  });
});

describe("socket.io-protocol › disconnect", () => {
  // DISCONNECT gets no answer; the Engine.IO session stays (the next packet
  // is a ping), and may connect again.
  test("should disconnect from the main namespace", T, async () => {
    const { sock: s } = await connectWebSocket(plain.url);
    try {
      s.send("41");
      assert.equal(await s.next(3000, (p) => isNoise(p) && p !== "2"), "2", "no answer, then a ping");
      s.send("40");
      assertConnect(await s.next(), ["sid"]);
    } finally {
      s.close();
    }
  });

  // The suite connects to /custom, leaves it and checks that the main
  // namespace still answers. The chat refuses /custom (above); the main
  // namespace answers still, and a DISCONNECT from the namespace the client
  // never joined closes the connection, as in Node 4.8 (a packet for a
  // namespace without a socket is an invalid state).
  test("should connect then disconnect from a custom namespace", T, async () => {
    const { sock: s } = await connectWebSocket(plain.url);
    s.send("40/custom");
    assert.equal(await s.next(), '44/custom,{"message":"Invalid namespace"}');
    s.send('42["message","message to main namespace"]');
    assertError(await s.next(), "unknown_event");
    await assertServes(s, "still on the main namespace");
    s.send("41/custom");
    await s.ended(2000);
  });
});

describe("socket.io-protocol › message", () => {
  // "message" → "message-back" in the suite; the chat answers an event it
  // does not handle with an error event, and broadcasts event:message.
  test("should send a plain-text packet", T, async () => {
    const { sock: s } = await connectWebSocket(plain.url);
    try {
      s.send('42["message",1,"2",{"3":[true]}]');
      assertError(await s.next(), "unknown_event");
      s.send(chat("plain text"));
      const p = await s.next();
      assertMessage(p, "plain text");
      const ev = eventOf(p);
      assert.deepEqual(Object.keys(ev[1]).sort(), ["createdAt", "id", "message", "username"]);
      assert.equal(ev.length, 2, "no recovery offset with recovery off");
    } finally {
      s.close();
    }
  });

  // The suite's server echoes the attachments; the chat takes no binary:
  // refused with invalid_payload, nothing broadcast, the connection goes on.
  test("should send a packet with binary attachments", T, async () => {
    const { sock: s } = await connectWebSocket(plain.url);
    try {
      s.send('452-["event:message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      s.send(Uint8Array.from([1, 2, 3]));
      s.send(Uint8Array.from([4, 5, 6]));
      assertError(await s.next(), "invalid_payload");
      s.send('451-["event:message",{"message":{"_placeholder":true,"num":0},"username":"conformance"}]');
      s.send(Uint8Array.from([1, 2, 3]));
      assertError(await s.next(), "invalid_payload");
      await assertServes(s, "after the binary events");
    } finally {
      s.close();
    }
  });

  // The acknowledgement carries the chat's answer, {ok: true, id}, once the
  // message is stored; the sender gets the broadcast of the same id first.
  test("should send a plain-text packet with an ack", T, async () => {
    const { sock: s } = await connectWebSocket(plain.url);
    try {
      s.send(chat("acknowledged", 456));
      const m = assertMessage(await s.next(), "acknowledged");
      assert.equal(await s.next(), `43456[{"ok":true,"id":"${m.id}"}]`);
    } finally {
      s.close();
    }
  });

  // The suite's "message-with-ack" is an event the chat does not handle.
  // Node, with no handler for it, never answers; the chat answers each such
  // acknowledgement, negative (unknown_event), in place of the error event,
  // so a client that awaits it without a timeout is not left waiting.
  test("should send a plain-text packet with an ack (message-with-ack, an event the chat does not handle)", T, async () => {
    const { sock: s } = await connectWebSocket(plain.url);
    try {
      s.send('42456["message-with-ack",1,"2",{"3":[false]}]');
      s.send('42457["message-with-ack"]');
      for (const [p, id] of (await s.take(2)).map((p, i) => [p, 456 + i])) {
        const ack = decodeSio(p);
        assert.ok(ack && ack.type === 3 && ack.id === id, `an ACK ${id}, got ${JSON.stringify(p)}`);
        assert.equal(ack.data.length, 1, p);
        assert.deepEqual(Object.keys(ack.data[0]).sort(), ["error", "ok"], p);
        assert.equal(ack.data[0].ok, false, p);
        assert.equal(ack.data[0].error.code, "unknown_event", p);
        assert.equal(typeof ack.data[0].error.reason, "string", p);
      }
      // No error event is queued before the broadcast.
      await assertServes(s, "after the unknown events");
    } finally {
      s.close();
    }
  });

  // The suite's server acknowledges with the attachments (BINARY_ACK, 46);
  // the chat refuses the payload: an error event, and a plain ACK with the
  // refusal.
  test("should send a packet with binary attachments and an ack", T, async () => {
    const { sock: s } = await connectWebSocket(plain.url);
    try {
      s.send('451-789["event:message",{"_placeholder":true,"num":0}]');
      s.send(Uint8Array.from([1, 2, 3]));
      const [first, second] = await s.take(2);
      const err = assertError(first, "invalid_payload");
      const ack = decodeSio(second);
      assert.ok(ack && ack.type === 3 && ack.id === 789, `an ACK 789, got ${JSON.stringify(second)}`);
      assert.deepEqual(ack.data, [{ ok: false, error: { code: "invalid_payload", reason: err.reason } }]);
      await assertServes(s, "after the binary event");
    } finally {
      s.close();
    }
  });

  for (const [what, packet] of [
    ["unknown packet type", "4abc"],
    ["invalid payload format", "42{}"],
    ["invalid ack id", '42abc["event:message",{"message":"x","username":"conformance"}]'],
  ]) {
    test(`should close the connection upon invalid format (${what})`, T, async () => {
      const { sock: s } = await connectWebSocket(plain.url);
      const other = await connectWebSocket(plain.url);
      try {
        s.send(packet);
        await s.ended(2000);
        await sleep(50);
        await assertServes(other.sock, `the others stay after ${what}`);
      } finally {
        other.sock.close();
      }
    });
  }
});
