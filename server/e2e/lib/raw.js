// Raw Engine.IO v4 / Socket.IO v5 clients for the protocol conformance
// tests: long-polling requests with fetch, WebSocket frames with ws, and a
// small Socket.IO packet decoder for assertions. Every helper sends exactly
// the bytes it is given; none of them retries or reorders anything.
import WebSocket from "ws";

/** The heartbeat both protocol test suites expect of the server. */
export const PING_INTERVAL = 300;
export const PING_TIMEOUT = 200;
/** The maxPayload both suites expect in the handshake. */
export const MAX_PAYLOAD = 1_000_000;

/**
 * The settings the protocol suites' server runs with, on top of which each
 * case adds what it needs: the suites' heartbeat and payload limit, no
 * history (a newcomer's first packets are then only its CONNECT answer and
 * its `presence`), no presence ticks to interleave with the answers under
 * test, and a rate limit no case reaches.
 */
export const SUITE_ENV = {
  PING_INTERVAL: `${PING_INTERVAL}ms`,
  PING_TIMEOUT: `${PING_TIMEOUT}ms`,
  MAX_HTTP_BUFFER_SIZE: String(MAX_PAYLOAD),
  HISTORY_LIMIT: "0",
  PRESENCE_INTERVAL: "60s",
  RATE_LIMIT_PER_SEC: "1000",
  RATE_LIMIT_BURST: "1000",
};

/** The record separator between the packets of a polling payload. */
export const RS = "\x1e";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The URL of the Engine.IO endpoint with the query. */
export function eioURL(base, query) {
  return `${base}/socket.io/?${query}`;
}

/**
 * One HTTP request to the Engine.IO endpoint. Resolves with {status, text,
 * packets} (packets: the payload of a 200 GET split into its packets); a
 * request the server aborts resolves with status 0 and the error.
 */
export async function request(base, query, { method = "GET", body, signal } = {}) {
  try {
    const res = await fetch(eioURL(base, query), { method, body, signal });
    const text = await res.text();
    const packets = method === "GET" && res.status === 200 ? text.split(RS) : [];
    return { status: res.status, text, packets, headers: res.headers };
  } catch (error) {
    if (signal?.aborted) throw error;
    return { status: 0, text: "", packets: [], error };
  }
}

/** Opens a long-polling session and returns its open packet, parsed. */
export async function openPolling(base) {
  const r = await request(base, "EIO=4&transport=polling");
  if (r.status !== 200 || !r.text.startsWith("0")) throw new Error(`polling handshake: HTTP ${r.status} ${r.text}`);
  return JSON.parse(r.text.slice(1));
}

/** A printable form of a packet (binary frames as their bytes). */
export function show(p) {
  if (typeof p === "string") return JSON.stringify(p);
  if (typeof p === "symbol") return "<websocket open>";
  return `<binary ${[...p].join(",")}>`;
}

/** A ping, or a `presence` event: what a case waiting for an answer skips. */
export function isNoise(p) {
  return p === "2" || (typeof p === "string" && /^42\["presence",/.test(p));
}

/**
 * The packets one connection received, in order, and how it ended. next()
 * reads them one at a time; every wait is bounded.
 */
class Received {
  constructor() {
    this.packets = [];
    this.pos = 0;
    this.end = null;
    this.waiters = new Set();
  }

  push(p) {
    this.packets.push(p);
    this.#wake();
  }

  finish(info) {
    if (this.end) return;
    this.end = { ...info, at: Date.now() };
    this.#wake();
  }

  #wake() {
    for (const w of this.waiters) w();
  }

  async #wait(deadline) {
    const left = deadline - Date.now();
    if (left <= 0) return;
    await new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, left);
      this.waiters.add(done);
    });
  }

  /** What was received, for failure messages. */
  trace() {
    const got = this.packets.map(show).join(" ");
    return `received [${got}]${this.end ? `, then ended (${JSON.stringify(this.end.why)})` : ""}`;
  }

  /**
   * The next packet that skip() does not reject (pings and presence by
   * default). Throws when none arrives within ms, or when the connection
   * ended before one did.
   */
  async next(ms = 3000, skip = isNoise) {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.pos < this.packets.length) {
        const p = this.packets[this.pos++];
        if (!skip(p)) return p;
      }
      if (this.end) throw new Error(`the connection ended while a packet was awaited; ${this.trace()}`);
      if (Date.now() >= deadline) throw new Error(`no packet within ${ms} ms; ${this.trace()}`);
      await this.#wait(deadline);
    }
  }

  /** The next n packets skip() does not reject. */
  async take(n, ms = 3000, skip = isNoise) {
    const out = [];
    const deadline = Date.now() + ms;
    while (out.length < n) out.push(await this.next(Math.max(deadline - Date.now(), 1), skip));
    return out;
  }

  /** Resolves with how the connection ended, or throws when it is still open after ms. */
  async ended(ms = 3000) {
    const deadline = Date.now() + ms;
    while (!this.end) {
      if (Date.now() >= deadline) throw new Error(`the connection is still open after ${ms} ms; ${this.trace()}`);
      await this.#wait(deadline);
    }
    return this.end;
  }

  /** Throws when the connection ends within ms. */
  async staysOpen(ms) {
    const deadline = Date.now() + ms;
    while (!this.end && Date.now() < deadline) await this.#wait(deadline);
    if (this.end) throw new Error(`the connection ended within ${ms} ms; ${this.trace()}`);
  }
}

/**
 * A long-polling session driven as a client does: one GET always pending,
 * each ping answered with a pong, POSTs one at a time. The received packets
 * (pings included) are read with next(); the session ends when a GET is
 * refused or returns a close packet.
 */
export class Poller extends Received {
  constructor(base, sid) {
    super();
    this.base = base;
    this.sid = sid;
    this.query = `EIO=4&transport=polling&sid=${sid}`;
    this.posts = Promise.resolve();
    this.abort = new AbortController();
    this.loop = this.#run();
  }

  async #run() {
    while (!this.abort.signal.aborted && !this.end) {
      let r;
      try {
        r = await request(this.base, this.query, { signal: this.abort.signal });
      } catch {
        return; // stopped
      }
      if (r.status !== 200) {
        this.finish({ why: `GET answered HTTP ${r.status} ${r.text}` });
        return;
      }
      for (const p of r.packets) {
        this.push(p);
        if (p === "2") void this.post("3");
        if (p === "1") this.finish({ why: "close packet" });
      }
    }
  }

  /** POSTs body after the POSTs before it; resolves with {status, text}. */
  post(body) {
    const r = this.posts.then(() => request(this.base, this.query, { method: "POST", body }));
    this.posts = r.catch(() => {});
    return r;
  }

  /** Stops polling (the session itself is left to its ping timeout). */
  async stop() {
    this.abort.abort();
    await this.loop;
  }
}

/**
 * A raw WebSocket to the Engine.IO endpoint. Text frames are received as
 * strings, binary frames as Buffers. With autoPong (the default) every ping
 * is answered with a pong at once, as a client does.
 */
export class RawSocket extends Received {
  constructor(base, query, { autoPong = true } = {}) {
    super();
    this.isOpen = false;
    this.ws = new WebSocket(eioURL(base.replace(/^http/, "ws"), query));
    this.ws.on("open", () => {
      this.isOpen = true;
      this.push(OPEN);
    });
    this.ws.on("message", (data, isBinary) => {
      const p = isBinary ? Buffer.from(data) : data.toString();
      if (autoPong && p === "2") this.ws.send("3");
      this.push(p);
    });
    this.ws.on("error", (err) => this.finish({ why: err.message }));
    this.ws.on("close", (code, reason) => this.finish({ why: `close ${code} ${reason}`.trim(), code }));
  }

  /** Waits for the WebSocket handshake; throws when it fails. */
  async opened(ms = 3000) {
    const p = await this.next(ms, () => false);
    if (p !== OPEN) throw new Error(`expected the WebSocket to open first; ${this.trace()}`);
  }

  /** Waits for the Engine.IO open packet and returns it, parsed. */
  async handshake(ms = 3000) {
    await this.opened(ms);
    const p = await this.next(ms, () => false);
    if (typeof p !== "string" || !p.startsWith("0")) throw new Error(`expected the open packet; ${this.trace()}`);
    return JSON.parse(p.slice(1));
  }

  send(data) {
    this.ws.send(data);
  }

  /** Drops the connection (a test's clean-up). */
  close() {
    this.ws.terminate();
  }
}

/** The marker RawSocket records when its WebSocket handshake succeeds. */
const OPEN = Symbol("websocket open");

/**
 * Decodes the Socket.IO packet an Engine.IO message carries: {type,
 * attachments, nsp, id, data}, or null when it is not one.
 */
export function decodeSio(p) {
  if (typeof p !== "string") return null;
  const m = /^4([0-6])(?:(\d+)-)?(\/[^,]*,)?(\d+)?(.*)$/s.exec(p);
  if (!m) return null;
  return {
    type: Number(m[1]),
    attachments: m[2] ? Number(m[2]) : 0,
    nsp: m[3] ? m[3].slice(0, -1) : "/",
    id: m[4] ? Number(m[4]) : undefined,
    data: m[5] ? JSON.parse(m[5]) : undefined,
  };
}

/** The [name, ...args] of a Socket.IO EVENT packet, or null. */
export function eventOf(p) {
  const d = decodeSio(p);
  return d && d.type === 2 && Array.isArray(d.data) ? d.data : null;
}

/**
 * Opens a WebSocket session and connects it to the main namespace with
 * the CONNECT packet (auth appended when given). Returns the socket and
 * the CONNECT answer's payload.
 */
export async function connectWebSocket(base, { auth } = {}) {
  const sock = new RawSocket(base, "EIO=4&transport=websocket");
  await sock.handshake();
  sock.send(auth === undefined ? "40" : `40${JSON.stringify(auth)}`);
  const answer = await sock.next();
  const d = decodeSio(answer);
  if (!d || d.type !== 0) throw new Error(`expected a CONNECT answer; ${sock.trace()}`);
  return { sock, connect: d.data };
}

export { sleep };
