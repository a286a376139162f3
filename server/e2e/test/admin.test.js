// The server side of the Socket.IO Admin UI (@socket.io/admin-ui): the
// /admin namespace as the UI speaks it, with the real socket.io-client,
// across two Go nodes on Redis, and beside a Node socket.io server of the
// same cluster (Node's official sharded adapter).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createClient } from "redis";
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { io } from "socket.io-client";
import { redisURL, startServer, connect, until, sleep, requireEnv } from "../lib/harness.js";
import { newSecret, claims, hs256 } from "../lib/jwt.js";

// A test credential (not a secret): bcrypt, cost 10, of PASSWORD.
const USERNAME = "admin";
const PASSWORD = "admin-ui-test-password";
const HASH = "$2a$10$EQ.4qXw8YghfFbdbsGpakO/KeMDgkcEl/JATJuZn21SeTMNAD63oK";
const ADMIN_ENV = { ADMIN_UI: "on", ADMIN_UI_USERNAME: USERNAME, ADMIN_UI_PASSWORD_HASH: HASH };

/** Connects to /admin as the Admin UI does, recording every event. Rejects with the connect_error. */
function admin(url, auth, opts = {}) {
  const s = io(`${url}/admin`, { forceNew: true, reconnection: false, withCredentials: true, auth, ...opts });
  s.log = [];
  s.onAny((name, ...args) => s.log.push({ name, args }));
  s.named = (name) => s.log.filter((e) => e.name === name).map((e) => e.args);
  return new Promise((resolve, reject) => {
    s.once("connect", () => resolve(s));
    s.once("connect_error", (e) => {
      s.close();
      reject(e);
    });
  });
}

const ids = (list, nsp = "/") => list.filter((s) => s.nsp === nsp).map((s) => s.id).sort();
const lastAll = (a) => a.named("all_sockets").at(-1)?.[0];

/**
 * Runs fn({a, b, clients}) against two Go nodes of env once they see each
 * other; prints their logs when it fails; closes the clients fn adds and
 * stops the nodes.
 */
async function withTwoNodes(env, fn) {
  const a = await startServer(env);
  const b = await startServer(env);
  const clients = [];
  try {
    for (let i = 0; i < 100; i++) {
      if ((await (await fetch(`${b.url}/readyz`)).json()).servers === 2) break;
      await sleep(100);
    }
    await fn({ a, b, clients });
  } catch (e) {
    console.error(a.logs().slice(-3000), b.logs().slice(-3000));
    throw e;
  } finally {
    for (const c of clients) c.close();
    await a.stop();
    await b.stop();
  }
}

for (const mode of ["sharded", "streams"]) test(`the Admin UI's namespace across two Go nodes (${mode}): sign-in, config, all_sockets, live events, stats, _disconnect`, async () => {
  const env = { REDIS_URL: redisURL(), REDIS_KEY_PREFIX: `admin${Date.now()}`, REDIS_ADAPTER_MODE: mode, ...ADMIN_ENV };
  await withTwoNodes(env, async ({ a, b, clients }) => {
    // Wrong credentials are refused as instrument() refuses them.
    await assert.rejects(admin(a.url, { username: USERNAME, password: "wrong" }), /invalid credentials/);
    await assert.rejects(admin(a.url, {}), /invalid credentials/);

    const ann = await connect(a.url, { transports: ["websocket"], auth: { username: "ann" } });
    const bob = await connect(b.url, { auth: { username: "bob" } }); // long-polling, then the upgrade
    clients.push(ann, bob);

    const ui = await admin(a.url, { username: USERNAME, password: PASSWORD });
    clients.push(ui);
    await until(() => ui.named("all_sockets").length === 1, 10_000, "all_sockets");
    const [session] = ui.named("session")[0];
    assert.match(session, /^[0-9a-f]{32}$/, "a session id for the next page load");
    assert.deepEqual(ui.named("config")[0][0], { supportedFeatures: ["DISCONNECT", "MDISCONNECT"] });
    assert.ok(ui.log.findIndex((e) => e.name === "config") < ui.log.findIndex((e) => e.name === "all_sockets"), "config first");

    // all_sockets lists the chat sockets of both nodes, and the Admin UI's own.
    let all = lastAll(ui);
    assert.deepEqual(ids(all), [ann.id, bob.id].sort(), "both nodes' chat sockets");
    assert.deepEqual(ids(all, "/admin"), [ui.id], "the Admin UI's socket");
    const annS = all.find((s) => s.id === ann.id);
    const bobS = all.find((s) => s.id === bob.id);
    assert.deepEqual(annS.data, { name: "ann" });
    assert.deepEqual(bobS.data, { name: "bob" }, "a socket of the other node, with its data");
    assert.deepEqual(annS.rooms.sort(), [ann.id, "chat:live"].sort());
    assert.deepEqual(bobS.rooms.sort(), [bob.id, "chat:live"].sort());
    assert.equal(annS.transport, "websocket");
    assert.equal(annS.handshake.address, "127.0.0.1");
    assert.equal(bobS.handshake.address, "127.0.0.1");
    assert.equal(typeof annS.handshake.issued, "number");
    assert.ok(Math.abs(annS.handshake.issued - Date.now()) < 60_000, "issued in ms");
    assert.deepEqual(annS.handshake.headers, {});
    assert.equal(annS.clientId, ann.id.slice(0, 12));
    assert.ok(!("auth" in annS.handshake) || annS.handshake.auth == null, "no auth shown");

    // server_stats from both nodes, every 2 s.
    await until(() => new Set(ui.named("server_stats").map(([s]) => s.serverId)).size === 2, 8000, "stats of both nodes");
    const stats = ui.named("server_stats").map(([s]) => s);
    for (const s of stats) {
      assert.equal(typeof s.hostname, "string");
      assert.equal(typeof s.pid, "number");
      assert.equal(typeof s.uptime, "number");
      assert.equal(typeof s.clientsCount, "number");
      assert.equal(typeof s.pollingClientsCount, "number");
      assert.deepEqual(s.namespaces.map((n) => n.name), ["/", "/admin"]);
    }
    const statsOfA = stats.filter((s) => s.namespaces.find((n) => n.name === "/admin").socketsCount === 1);
    assert.ok(statsOfA.length > 0, "node a counts the Admin UI");

    // A newcomer on the other node: socket_connected and room_joined.
    const cid = await connect(b.url, { transports: ["websocket"] });
    clients.push(cid);
    await until(() => ui.named("room_joined").some(([, room, id]) => id === cid.id && room === "chat:live"), 8000, "room_joined for cid");
    const [cidS, cidAt] = ui.named("socket_connected").find(([s]) => s.id === cid.id);
    assert.equal(cidS.nsp, "/");
    assert.deepEqual(cidS.rooms, [cid.id]);
    assert.deepEqual(cidS.data, {}, "no name yet");
    assert.ok(!Number.isNaN(Date.parse(cidAt)), "a time");
    assert.deepEqual(ui.named("room_joined").find(([, , id]) => id === cid.id).slice(0, 3), ["/", "chat:live", cid.id]);

    // It names itself by sending a message: socket_updated with its data.
    cid.emit("event:message", { message: "hello", username: "cid" });
    await until(() => ui.named("socket_updated").some(([u]) => u.id === cid.id && u.data?.name === "cid"), 8000, "socket_updated data");
    assert.equal(ui.named("socket_updated").find(([u]) => u.id === cid.id).at(0).nsp, "/");

    // A polling newcomer upgrades: socket_updated with the transport. The
    // client probes WebSocket as soon as it has a session; when the upgrade
    // is done before the node handles its CONNECT (seen on a busy machine),
    // the UI rightly sees websocket at once and nothing is updated: that
    // newcomer leaves and another one tries, five at most.
    let dan;
    for (let attempt = 1; ; attempt++) {
      dan = await connect(b.url, { auth: { username: "dan" } });
      clients.push(dan);
      const id = dan.id;
      await until(() => ui.named("socket_connected").some(([s]) => s.id === id), 8000, "dan connected");
      const transport = ui.named("socket_connected").find(([s]) => s.id === id)[0].transport;
      if (transport === "polling") break;
      assert.equal(transport, "websocket");
      assert.ok(attempt < 5, "five polling newcomers were all upgraded before their CONNECT was handled");
      dan.disconnect();
    }
    const danId = dan.id;
    await until(() => ui.named("socket_updated").some(([u]) => u.id === danId && u.transport === "websocket"), 8000, "dan upgraded");

    // _disconnect of a socket on the other node: it is disconnected from the
    // namespace (and stays so, as with socket.disconnect() in Node).
    const bobId = bob.id; // socket.io-client forgets it on disconnect
    const bobGone = new Promise((resolve) => bob.once("disconnect", resolve));
    ui.emit("_disconnect", "/", false, bobId);
    assert.equal(await bobGone, "io server disconnect");
    await until(() => ui.named("socket_disconnected").some(([, id]) => id === bobId), 8000, "socket_disconnected bob");
    const [nsp, , reason, at] = ui.named("socket_disconnected").find(([, id]) => id === bobId);
    assert.equal(nsp, "/");
    assert.equal(reason, "server namespace disconnect");
    assert.ok(!Number.isNaN(Date.parse(at)));
    await until(() => ui.named("room_left").some(([n, room, id]) => n === "/" && room === "chat:live" && id === bobId), 8000, "room_left bob");
    await sleep(500);
    assert.equal(bob.connected, false, "bob does not come back by itself");

    // _disconnect with close: the connection ends and the client reconnects.
    const cidDropped = new Promise((resolve) => cid.once("disconnect", resolve));
    ui.emit("_disconnect", "/", true, cid.id);
    assert.equal(await cidDropped, "transport close");
    await until(() => cid.connected, 10_000, "cid reconnected by itself");

    // A local socket too, by room: MDISCONNECT on chat:live disconnects every
    // chat socket of the cluster.
    const annGone = new Promise((resolve) => ann.once("disconnect", resolve));
    ui.emit("_disconnect", "/", false, "chat:live");
    assert.equal(await annGone, "io server disconnect");
    await until(() => !dan.connected && !cid.connected, 8000, "everyone on node b disconnected");

    // The session id signs in again on that node, without the password.
    const again = await admin(a.url, { sessionId: session });
    clients.push(again);
    await until(() => again.named("all_sockets").length === 1, 10_000, "all_sockets on the second sign-in");
    assert.equal(again.named("session").length, 0, "no new session");
    // ...and not on the other node (sessions live in a node's memory).
    await assert.rejects(admin(b.url, { sessionId: session }), /invalid credentials/);

    // An Admin UI on node b sees node a's Admin UI sockets.
    const uiB = await admin(b.url, { username: USERNAME, password: PASSWORD });
    clients.push(uiB);
    await until(() => uiB.named("all_sockets").length === 1, 10_000, "all_sockets on b");
    assert.deepEqual(ids(lastAll(uiB), "/admin"), [ui.id, again.id, uiB.id].sort(), "the Admin UI sockets of both nodes");
    const againId = again.id;
    again.disconnect();
    await until(() => uiB.named("socket_disconnected").some(([n, id]) => n === "/admin" && id === againId), 8000, "an admin socket left");
  });
});

test("ADMIN_UI is off by default: /admin is an invalid namespace, and the chat is as before", async () => {
  const a = await startServer({});
  try {
    await assert.rejects(admin(a.url, { username: USERNAME, password: PASSWORD }), /Invalid namespace/);
    const s = await connect(a.url, { transports: ["websocket"] });
    s.close();
  } finally {
    await a.stop();
  }
});

test("ADMIN_UI=noauth takes any Admin UI; a bad setting stops the start", async () => {
  const a = await startServer({ ADMIN_UI: "noauth" });
  try {
    const ui = await admin(a.url, {}, { transports: ["websocket"] });
    await until(() => ui.named("all_sockets").length === 1, 10_000, "all_sockets");
    assert.equal(ui.named("session").length, 0);
    ui.close();
  } finally {
    await a.stop();
  }
  await assert.rejects(startServer({ ADMIN_UI: "on" }), /ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH/);
  await assert.rejects(startServer({ ...ADMIN_ENV, ADMIN_UI_PASSWORD_HASH: PASSWORD }), /ADMIN_UI_PASSWORD_HASH/);
});

test("the Admin UI's long-polling passes CORS with credentials from an origin CORS_ORIGINS lists", async () => {
  const origin = "http://admin-ui.example";
  const a = await startServer({ ...ADMIN_ENV, CORS_ORIGINS: origin });
  try {
    const res = await fetch(`${a.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), origin);
    assert.equal(res.headers.get("access-control-allow-credentials"), "true");
    const other = await fetch(`${a.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: "http://evil.example" } });
    assert.equal(other.status, 403);
  } finally {
    await a.stop();
  }
});

test("beside a Node socket.io server of the cluster: it sees the Go node's real sockets, the Go Admin UI still works and reaches its sockets", async () => {
  const prefix = `admin-mixed${Date.now()}`;
  // A Node server does not answer the Go nodes' request for sockets: the Go
  // Admin UI waits REDIS_REQUEST_TIMEOUT for it.
  const env = { REDIS_URL: redisURL(), REDIS_KEY_PREFIX: prefix, REDIS_REQUEST_TIMEOUT: "1s", ...ADMIN_ENV };
  const go = await startServer(env);
  const pub = createClient({ url: env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const node = new Server(http, { adapter: createShardedAdapter(pub, sub, { channelPrefix: prefix }) });
  node.on("connection", (s) => {
    s.data.name = "from-node";
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  const nodeUrl = `http://127.0.0.1:${http.address().port}`;
  const clients = [];
  try {
    for (let i = 0; i < 100; i++) {
      if ((await (await fetch(`${go.url}/readyz`)).json()).servers === 2) break;
      await sleep(100);
    }
    const onGo = await connect(go.url, { transports: ["websocket"], auth: { username: "gopher" } });
    const onNode = await connect(nodeUrl, { transports: ["websocket"] });
    clients.push(onGo, onNode);

    // Node's fetchSockets() (what its instrument() lists) gets the Go
    // node's socket, as a remote socket with the data instrument() reads.
    const remote = await node.fetchSockets();
    const fromGo = remote.find((s) => s.id === onGo.id);
    assert.ok(fromGo, `the Go node's socket is listed: ${JSON.stringify(remote.map((s) => s.id))}`);
    assert.deepEqual(remote.map((s) => s.id).sort(), [onGo.id, onNode.id].sort(), "nothing else (no sink)");
    assert.equal(fromGo.data.name, "gopher");
    assert.deepEqual(fromGo.data._admin, { clientId: onGo.id.slice(0, 12), transport: "websocket" });
    assert.equal(fromGo.handshake.address, "127.0.0.1");
    assert.ok(fromGo.rooms.has("chat:live") && fromGo.rooms.has(onGo.id));
    // A fetch filtered by room gets none of the Go node's sockets.
    assert.deepEqual((await node.in(onGo.id).fetchSockets()).map((s) => s.id), []);

    // The Go Admin UI lists the Go node's sockets (the Node server's are not
    // asked for), after the request timeout.
    const ui = await admin(go.url, { username: USERNAME, password: PASSWORD });
    clients.push(ui);
    await until(() => ui.named("all_sockets").length === 1, 10_000, "all_sockets");
    assert.deepEqual(ids(lastAll(ui)), [onGo.id]);

    // _disconnect of the Node server's socket reaches it (DISCONNECT_SOCKETS).
    const gone = new Promise((resolve) => onNode.once("disconnect", resolve));
    ui.emit("_disconnect", "/", false, onNode.id);
    assert.equal(await gone, "io server disconnect");

    // The chat still crosses both ways.
    const onNode2 = await connect(nodeUrl, { transports: ["websocket"] });
    clients.push(onNode2);
    await sleep(200);
    onGo.emit("event:message", { message: "from go", username: "gopher" });
    await until(() => onNode2.messages.some((m) => m.message === "from go"), 8000, "a message from Go on the Node server");
    node.emit("message", { message: "from node", username: "n" });
    await until(() => onGo.messages.some((m) => m.message === "from node"), 8000, "a message from Node on the Go node");
  } catch (e) {
    console.error(go.logs().slice(-3000));
    throw e;
  } finally {
    for (const c of clients) c.close();
    node.close();
    await Promise.allSettled([pub.quit(), sub.quit()]);
    await go.stop();
  }
});

test("rooms in the Admin UI: room_joined and room_left, once each, as sockets of both nodes join and leave rooms", async () => {
  const secret = newSecret();
  const env = {
    REDIS_URL: redisURL(), REDIS_KEY_PREFIX: `admin-rooms${Date.now()}`, DATABASE_URL: requireEnv("DATABASE_URL"),
    AUTH_JWT_SECRET: secret, AUTH_MODE: "optional", ...ADMIN_ENV,
  };
  const run = Date.now().toString(36);
  const token = (name) => hs256(secret, claims({ sub: `${name}-${run}`, name }));
  const ask = (s, name, payload) => s.timeout(10_000).emitWithAck(name, payload);
  await withTwoNodes(env, async ({ a, b, clients }) => {
    const ann1 = await connect(a.url, { transports: ["websocket"], auth: { token: token("ann") } });
    const ann2 = await connect(b.url, { transports: ["websocket"], auth: { token: token("ann") } });
    const bob = await connect(b.url, { transports: ["websocket"], auth: { token: token("bob") } });
    const anon = await connect(a.url, { transports: ["websocket"], auth: { username: "anon" } });
    clients.push(ann1, ann2, bob, anon);
    const ui = await admin(a.url, { username: USERNAME, password: PASSWORD });
    clients.push(ui);
    await until(() => ui.named("all_sockets").length === 1, 10_000, "all_sockets");

    // Each socket's rooms as the UI keeps them: all_sockets, then the events.
    const roomsOf = () => {
      const rooms = new Map(lastAll(ui).filter((s) => s.nsp === "/").map((s) => [s.id, new Set(s.rooms)]));
      for (const { name, args } of ui.log) {
        if ((name === "room_joined" || name === "room_left") && args[0] === "/" && rooms.has(args[2])) {
          rooms.get(args[2])[name === "room_joined" ? "add" : "delete"](args[1]);
        }
      }
      return rooms;
    };
    const shows = (s, rooms) => [...(roomsOf().get(s.id) ?? [])].filter((r) => r !== s.id).sort().join() === [...rooms].sort().join();
    const untilShown = (want, what) =>
      until(() => want.every(([s, rooms]) => shows(s, rooms)), 10_000, what, () => JSON.stringify([...roomsOf()].map(([id, r]) => [id, [...r]])));

    // ann makes a private room on node a: both of ann's sockets are in it.
    const plans = (await ask(ann1, "room:create", { name: "plans", kind: "private" })).room.id;
    // bob is invited, on node b; a public room; the anonymous socket joins it.
    assert.equal((await ask(ann1, "room:invite", { room: plans, userId: `bob-${run}` })).ok, true);
    const lobby = (await ask(ann2, "room:create", { name: "lobby", kind: "public" })).room.id;
    assert.equal((await ask(anon, "room:join", { room: lobby })).ok, true);
    await untilShown([[ann1, ["chat:live", plans, lobby]], [ann2, ["chat:live", plans, lobby]], [bob, ["chat:live", plans]],
      [anon, ["chat:live", lobby]]], "every socket in its rooms");

    // Leaving (here and from another tab), removal and deletion.
    assert.equal((await ask(anon, "room:leave", { room: lobby })).ok, true);
    assert.equal((await ask(ann1, "room:leave", { room: lobby })).ok, true);
    assert.equal((await ask(ann1, "room:remove", { room: plans, userId: `bob-${run}` })).ok, true);
    await untilShown([[ann1, ["chat:live", plans]], [ann2, ["chat:live", plans]], [bob, ["chat:live"]], [anon, ["chat:live"]]],
      "left, removed");
    const del = await fetch(`${a.url}/api/rooms/${plans}`, { method: "DELETE", headers: { authorization: `Bearer ${token("ann")}` } });
    assert.equal(del.status, 204);
    await untilShown([[ann1, ["chat:live"]], [ann2, ["chat:live"]], [bob, ["chat:live"]], [anon, ["chat:live"]]], "the room deleted");

    // Each change was told once.
    await sleep(300);
    const seen = new Map();
    for (const { name, args } of ui.log) {
      if (name !== "room_joined" && name !== "room_left") continue;
      const k = `${name} ${args[1]} ${args[2]}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    const twice = [...seen].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "no room_joined or room_left twice");
    for (const [s, room] of [[ann1, plans], [ann2, plans], [bob, plans], [ann1, lobby], [ann2, lobby], [anon, lobby]]) {
      assert.equal(seen.get(`room_joined ${room} ${s.id}`), 1, `${s.id} joined ${room}`);
    }
    assert.equal(seen.get(`room_left ${lobby} ${ann2.id}`), 1, "ann's other tab left the public room with her");
  });
});
