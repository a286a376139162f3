// Conformance with Engine.IO v4: every case of the test suite of
// socketio/engine.io-protocol (test-suite/test-suite.js), and of the
// Engine.IO part of socketio/socket.io-protocol's (the same cases on the
// /socket.io/ path, named "should ..."), run against the real server with
// the suites' settings (SUITE_ENV: ping every 300 ms, 200 ms to answer,
// maxPayload 1,000,000).
//
// The suites' server echoes every Engine.IO message; ours is the chat, where
// an Engine.IO message carries a Socket.IO packet. So a case that sends a
// message sends a Socket.IO packet and checks the chat's answer. The
// reference is what Node's socket.io 4.8 (engine.io 6.6) does with the same
// raw exchange; where the suite and Node part, or where we deliberately
// differ from Node, the case says so. Each test's name is the suite case it
// covers.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../lib/harness.js";
import {
  SUITE_ENV,
  PING_INTERVAL,
  PING_TIMEOUT,
  MAX_PAYLOAD,
  RS,
  request,
  openPolling,
  Poller,
  RawSocket,
  decodeSio,
  eventOf,
  isNoise,
  sleep,
} from "../lib/raw.js";

const T = { timeout: 15_000 };
const WS = "EIO=4&transport=websocket";
const polling = (sid, extra = "") => `EIO=4&transport=polling&sid=${sid}${extra}`;
const chat = (message) => `42${JSON.stringify(["event:message", { message, username: "conformance" }])}`;
// A BINARY_EVENT whose payload is its one attachment, and that attachment:
// 1, 2, 3, 4 (base64 "AQIDBA==" inside a polling payload).
const BINARY_EVENT = '451-["event:message",{"_placeholder":true,"num":0}]';
const ATTACHMENT = Uint8Array.from([1, 2, 3, 4]);

let url;
let server;
before(async () => {
  // Connection-state recovery off: a CONNECT answer is then exactly {sid}.
  server = await startServer({ ...SUITE_ENV, CONNECTION_RECOVERY_WINDOW: "0" });
  url = server.url;
});
after(async () => {
  assert.equal((await server.stop()).code, 0, "the server exits 0 on SIGTERM");
});

/** Asserts p is the main namespace's CONNECT answer, exactly {sid}. */
function assertConnect(p, trace = "") {
  const d = decodeSio(p);
  assert.ok(d && d.type === 0 && d.nsp === "/", `a CONNECT answer of the main namespace, got ${JSON.stringify(p)} ${trace}`);
  assert.deepEqual(Object.keys(d.data), ["sid"], `the CONNECT answer holds only sid: ${p}`);
  assert.equal(typeof d.data.sid, "string");
  assert.ok(d.data.sid.length > 0);
}

/** Asserts p is an `error` event with the code. */
function assertError(p, code) {
  const ev = eventOf(p);
  assert.ok(ev && ev[0] === "error", `an error event, got ${JSON.stringify(p)}`);
  assert.equal(ev[1].code, code, `error code in ${p}`);
  assert.equal(typeof ev[1].reason, "string");
}

/** Asserts p is the broadcast of the chat message with the text. */
function assertMessage(p, text) {
  const ev = eventOf(p);
  assert.ok(ev && ev[0] === "message", `a message event, got ${JSON.stringify(p)}`);
  assert.equal(ev[1].message, text);
  assert.equal(ev[1].username, "conformance");
  assert.match(ev[1].id, /^[0-9a-f-]{36}$/);
}

/** Opens a WebSocket that the server must refuse: it ends without an open packet. */
async function assertRefusedWebSocket(query) {
  const s = new RawSocket(url, query);
  const end = await s.ended(3000);
  const opens = s.packets.filter((p) => typeof p === "string" && p.startsWith("0"));
  assert.deepEqual(opens, [], `no Engine.IO open packet for ?${query} (ended: ${end.why})`);
}

describe("engine.io-protocol › handshake › HTTP long-polling", () => {
  test("successfully opens a session (socket.io-protocol: should successfully open a session)", T, async () => {
    const r = await request(url, "EIO=4&transport=polling");
    assert.equal(r.status, 200);
    assert.ok(r.text.startsWith("0"), r.text);
    const open = JSON.parse(r.text.slice(1));
    assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
    assert.equal(typeof open.sid, "string");
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(open.pingInterval, PING_INTERVAL);
    assert.equal(open.pingTimeout, PING_TIMEOUT);
    assert.equal(open.maxPayload, MAX_PAYLOAD);
  });

  test("fails with an invalid 'EIO' query parameter (socket.io-protocol: should fail with an invalid 'EIO' query parameter)", T, async () => {
    // EIO=3 too: like Node without allowEIO3, the server speaks only v4.
    for (const q of ["transport=polling", "EIO=abc&transport=polling", "EIO=3&transport=polling"]) {
      assert.equal((await request(url, q)).status, 400, `?${q}`);
    }
  });

  test("fails with an invalid 'transport' query parameter (socket.io-protocol: should fail with an invalid 'transport' query parameter)", T, async () => {
    for (const q of ["EIO=4", "EIO=4&transport=abc"]) {
      assert.equal((await request(url, q)).status, 400, `?${q}`);
    }
  });

  test("fails with an invalid request method (socket.io-protocol: should fail with an invalid request method)", T, async () => {
    for (const method of ["POST", "PUT"]) {
      assert.equal((await request(url, "EIO=4&transport=polling", { method })).status, 400, method);
    }
  });
});

describe("engine.io-protocol › handshake › WebSocket", () => {
  test("successfully opens a session (socket.io-protocol: should successfully open a session)", T, async () => {
    const s = new RawSocket(url, WS);
    try {
      const open = await s.handshake();
      assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
      assert.equal(typeof open.sid, "string");
      assert.deepEqual(open.upgrades, [], "nothing to upgrade to from WebSocket");
      assert.equal(open.pingInterval, PING_INTERVAL);
      assert.equal(open.pingTimeout, PING_TIMEOUT);
      assert.equal(open.maxPayload, MAX_PAYLOAD);
    } finally {
      s.close();
    }
  });

  // The suite only starts waiting for the close; here the connection must
  // end (an HTTP 400 to the upgrade, or a close after it) with no open packet.
  test("fails with an invalid 'EIO' query parameter (socket.io-protocol: should fail with an invalid 'EIO' query parameter)", T, async () => {
    for (const q of ["transport=websocket", "EIO=abc&transport=websocket", "EIO=3&transport=websocket"]) {
      await assertRefusedWebSocket(q);
    }
  });

  test("fails with an invalid 'transport' query parameter (socket.io-protocol: should fail with an invalid 'transport' query parameter)", T, async () => {
    for (const q of ["EIO=4", "EIO=4&transport=abc"]) await assertRefusedWebSocket(q);
  });
});

describe("engine.io-protocol › message › HTTP long-polling", () => {
  // Echo "4hello" → here the message is a Socket.IO CONNECT, "40", answered
  // on the next GET by the CONNECT answer (then the newcomer's presence).
  test("sends and receives a payload containing one plain text packet", T, async () => {
    const { sid } = await openPolling(url);
    const push = await request(url, polling(sid), { method: "POST", body: "40" });
    assert.equal(push.status, 200);
    assert.equal(push.text, "ok");
    const poll = await request(url, polling(sid));
    assert.equal(poll.status, 200);
    assertConnect(poll.packets[0], poll.text);
    await request(url, polling(sid), { method: "POST", body: "1" });
  });

  // Echo "4test1␞4test2␞4test3" → several Socket.IO packets in one POST,
  // each answered, in order.
  //
  // The first POST puts the CONNECT and events in one payload, which Node
  // 4.8 does not support: it finishes a CONNECT on a later tick, so the
  // events find no socket and it closes the session ("6␞1"). We answer them
  // in order, deliberately (the socket.io-client never sends this, but a
  // raw client may). The second POST goes to a connected socket. Its answers
  // too must come in the order of the packets: a Node app answering unknown
  // events from onAny would answer the unknown event first (Node calls
  // onAny listeners as a packet is read and event handlers a tick later);
  // the chat answers each packet before it reads the next.
  test("sends and receives a payload containing several plain text packets", T, async () => {
    const { sid } = await openPolling(url);
    const p = new Poller(url, sid);
    try {
      const push = await p.post(["40", '42["message",1]', chat("one"), chat("two")].join(RS));
      assert.equal(push.status, 200);
      assert.equal(push.text, "ok");
      const [connect, unknown, one, two] = await p.take(4);
      assertConnect(connect, p.trace());
      assertError(unknown, "unknown_event");
      assertMessage(one, "one");
      assertMessage(two, "two");

      // (A second unknown event within a second gets no error of its own:
      // the error for unknown events is sent at most once a second. An empty
      // message is refused every time.)
      const again = await p.post([chat("three"), '42["event:message",{"message":" ","username":"x"}]', chat("four")].join(RS));
      assert.equal(again.status, 200);
      const [three, empty, four] = await p.take(3);
      assertMessage(three, "three");
      assertError(empty, "message_empty");
      assertMessage(four, "four");
    } finally {
      await p.post("1");
      await p.stop();
    }
  });

  // Echo "4hello␞bAQIDBA==" → a BINARY_EVENT and its attachment ("b" and
  // base64 in a polling payload). The chat takes no binary: the event is
  // refused with invalid_payload, and the session goes on.
  test("sends and receives a payload containing plain text and binary packets", T, async () => {
    const { sid } = await openPolling(url);
    const p = new Poller(url, sid);
    try {
      await p.post("40");
      assertConnect(await p.next(), p.trace());
      const push = await p.post(`${BINARY_EVENT}${RS}b${Buffer.from(ATTACHMENT).toString("base64")}`);
      assert.equal(push.status, 200);
      assert.equal(push.text, "ok");
      assertError(await p.next(), "invalid_payload");
      await p.post(chat("after the binary event"));
      assertMessage(await p.next(), "after the binary event");
    } finally {
      await p.post("1");
      await p.stop();
    }
  });

  // The suite expects HTTP 400 to the POST (or an aborted request); Node 4.8
  // answers 200 "ok" and closes the session. Either way the session is gone.
  test("closes the session upon invalid packet format", T, async () => {
    const { sid } = await openPolling(url);
    const push = await request(url, polling(sid), { method: "POST", body: "abc" });
    assert.ok([0, 200, 400].includes(push.status), `POST answered ${push.status}`);
    const poll = await request(url, polling(sid));
    assert.equal(poll.status, 400, `a GET after the invalid packet must be refused; got ${poll.status} ${JSON.stringify(poll.text)}`);
  });

  // The suite sends the second GET 5 ms after the first; 50 ms here, so that
  // the first is pending when the second arrives on a busy machine.
  test("closes the session upon duplicate poll requests", T, async () => {
    const { sid } = await openPolling(url);
    const [first, second] = await Promise.all([
      request(url, polling(sid)),
      sleep(50).then(() => request(url, polling(sid, "&t=burst"))),
    ]);
    assert.equal(first.status, 200);
    assert.equal(first.text, "1", "the pending poll ends with a close packet");
    assert.ok([400, 500].includes(second.status), `the duplicate poll is refused, got ${second.status}`);
    assert.equal((await request(url, polling(sid))).status, 400, "the session is closed");
  });
});

describe("engine.io-protocol › message › WebSocket", () => {
  // Echo "4hello" → a Socket.IO CONNECT, answered by the CONNECT answer.
  test("sends and receives a plain text packet", T, async () => {
    const s = new RawSocket(url, WS);
    try {
      await s.handshake();
      s.send("40");
      assertConnect(await s.next(), s.trace());
    } finally {
      s.close();
    }
  });

  // Echo of a binary frame → a BINARY_EVENT header, then its attachment in
  // a binary frame: refused with invalid_payload; the connection goes on.
  // (A binary frame that no BINARY_EVENT announced closes the connection,
  // in Node as here: the Socket.IO parser rejects it.)
  test("sends and receives a binary packet", T, async () => {
    const s = new RawSocket(url, WS);
    try {
      await s.handshake();
      s.send("40");
      assertConnect(await s.next(), s.trace());
      s.send(BINARY_EVENT);
      s.send(ATTACHMENT);
      assertError(await s.next(), "invalid_payload");
      s.send(chat("after the binary event"));
      assertMessage(await s.next(), "after the binary event");
    } finally {
      s.close();
    }
  });

  test("closes the session upon invalid packet format", T, async () => {
    const s = new RawSocket(url, WS);
    await s.handshake();
    s.send("abc");
    await s.ended(2000);
  });
});

describe("engine.io-protocol › heartbeat › HTTP long-polling", () => {
  test("sends ping/pong packets (socket.io-protocol: should send ping/pong packets)", T, async () => {
    const { sid } = await openPolling(url);
    for (let i = 0; i < 3; i++) {
      const poll = await request(url, polling(sid));
      assert.equal(poll.status, 200);
      assert.equal(poll.text, "2", `ping ${i + 1}`);
      const push = await request(url, polling(sid), { method: "POST", body: "3" });
      assert.equal(push.status, 200);
    }
    await request(url, polling(sid), { method: "POST", body: "1" });
  });

  // The suite waits exactly pingInterval + pingTimeout; a little more here,
  // as the server's timers may fire late on a busy machine.
  test("closes the session upon ping timeout (socket.io-protocol: should close the session upon ping timeout)", T, async () => {
    const { sid } = await openPolling(url);
    await sleep(PING_INTERVAL + PING_TIMEOUT + 300);
    const poll = await request(url, polling(sid));
    assert.equal(poll.status, 400, `${poll.status} ${poll.text}`);
  });
});

describe("engine.io-protocol › heartbeat › WebSocket", () => {
  test("sends ping/pong packets (socket.io-protocol: should send ping/pong packets)", T, async () => {
    const s = new RawSocket(url, WS, { autoPong: false });
    try {
      await s.handshake();
      for (let i = 0; i < 3; i++) {
        assert.equal(await s.next(PING_INTERVAL + 1000, () => false), "2", `ping ${i + 1}`);
        s.send("3");
      }
      assert.equal(s.end, null, "still open after three pongs");
    } finally {
      s.close();
    }
  });

  test("closes the session upon ping timeout (socket.io-protocol: should close the session upon ping timeout)", T, async () => {
    const s = new RawSocket(url, WS, { autoPong: false });
    await s.handshake();
    assert.equal(await s.next(PING_INTERVAL + 1000, () => false), "2", "a ping first");
    await s.ended(PING_TIMEOUT + 1000);
  });
});

describe("engine.io-protocol › close › HTTP long-polling", () => {
  // The suite sends the close with the poll; 50 ms after it here, so that
  // the poll is pending (and gets the noop) on a busy machine too.
  test("forcefully closes the session (socket.io-protocol: should forcefully close the session)", T, async () => {
    const { sid } = await openPolling(url);
    const [poll] = await Promise.all([
      request(url, polling(sid)),
      sleep(50).then(() => request(url, polling(sid), { method: "POST", body: "1" })),
    ]);
    assert.equal(poll.status, 200);
    assert.equal(poll.text, "6", "the pending poll ends with a noop");
    assert.equal((await request(url, polling(sid))).status, 400, "the session is closed");
  });
});

describe("engine.io-protocol › close › WebSocket", () => {
  // As in the suite, the client sends a close packet and answers no ping.
  // Node 4.8 acts on a close packet only over polling (engine.io 6.6's
  // WebSocket transport ignores it), so there the connection ends at the
  // ping timeout, which is what the suite observes; a server that closes at
  // once passes too.
  test("forcefully closes the session (socket.io-protocol: should forcefully close the session)", T, async () => {
    const s = new RawSocket(url, WS, { autoPong: false });
    await s.handshake();
    s.send("1");
    await s.ended(PING_INTERVAL + PING_TIMEOUT + 1000);
  });
});

describe("engine.io-protocol › upgrade", () => {
  /** Reads polls until one holds the noop; answers a ping meanwhile. */
  async function pollForNoop(sid) {
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const poll = await request(url, polling(sid));
      assert.equal(poll.status, 200, `a poll during the upgrade: ${poll.status} ${poll.text}`);
      seen.push(...poll.packets);
      if (poll.packets.includes("6")) return seen;
      if (poll.packets.includes("2")) await request(url, polling(sid), { method: "POST", body: "3" });
    }
    assert.fail(`no noop in the polls during the upgrade: ${JSON.stringify(seen)}`);
  }

  test("successfully upgrades from HTTP long-polling to WebSocket (socket.io-protocol: should successfully upgrade from HTTP long-polling to WebSocket)", T, async () => {
    const { sid } = await openPolling(url);
    const s = new RawSocket(url, `${WS}&sid=${sid}`);
    try {
      await s.opened();
      s.send("2probe");
      assert.equal(await s.next(), "3probe");
      const polled = await pollForNoop(sid);
      assert.deepEqual(polled.filter((p) => !isNoise(p)), ["6"], "the poll is ended by a noop");
      s.send("5");
      s.send("40");
      assertConnect(await s.next(), s.trace());
    } finally {
      s.close();
    }
  });

  // The suite polls right after sending the probe and the upgrade packet.
  // Node 4.8 answers 400 when it has read the upgrade packet first (its one
  // thread mostly does); a GET the server takes before it is a poll during
  // the upgrade, ended by the noop, or by the close packet that Node's
  // polling transport sends to a pending GET when the upgrade closes it. So
  // that first GET may get any of the three; once the WebSocket answered,
  // polling must be refused.
  test("ignores HTTP requests with same sid after upgrade (socket.io-protocol: should ignore HTTP requests with same sid after upgrade)", T, async () => {
    const { sid } = await openPolling(url);
    const s = new RawSocket(url, `${WS}&sid=${sid}`);
    try {
      await s.opened();
      s.send("2probe");
      s.send("5");
      const poll = await request(url, polling(sid));
      assert.ok(
        poll.status === 400 || (poll.status === 200 && ["6", "1"].includes(poll.text)),
        `a poll right after the upgrade: 400 (or a noop or close packet), got ${poll.status} ${JSON.stringify(poll.text)}`,
      );
      s.send("40");
      assertConnect(await s.next(3000, (p) => isNoise(p) || p === "3probe"), s.trace());
      const late = await request(url, polling(sid));
      assert.equal(late.status, 400, `a poll after the upgrade: ${late.status} ${JSON.stringify(late.text)}`);
      s.send(chat("over the upgraded transport"));
      assertMessage(await s.next(), "over the upgraded transport");
    } finally {
      s.close();
    }
  });

  // As Node's engine.io: the second WebSocket's handshake succeeds, and a
  // close frame without a status code (ws's close(): 1005 at the client)
  // ends it at once, with no packet; the session goes on over the first.
  test("ignores WebSocket connection with same sid after upgrade (socket.io-protocol: should ignore WebSocket connection with same sid after upgrade)", T, async () => {
    const { sid } = await openPolling(url);
    const s = new RawSocket(url, `${WS}&sid=${sid}`);
    try {
      await s.opened();
      s.send("2probe");
      s.send("5");
      assert.equal(await s.next(), "3probe");
      const second = new RawSocket(url, `${WS}&sid=${sid}`);
      await second.opened();
      const end = await second.ended(3000);
      assert.equal(end.code, 1005, `the second WebSocket is closed without a code: ${second.trace()}`);
      assert.deepEqual(second.packets.filter((p) => typeof p === "string"), [], "nothing for the second WebSocket");
      s.send("40");
      assertConnect(await s.next(), s.trace());
    } finally {
      s.close();
    }
  });
});
