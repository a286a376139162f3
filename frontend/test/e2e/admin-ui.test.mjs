// The real Socket.IO Admin UI (@socket.io/admin-ui's built page, served
// here from server/e2e's node_modules) in Chromium against two Go nodes on
// Redis and PostgreSQL (rooms need a shared database): it signs in, lists
// the chat sockets of both nodes and both servers, every room with its
// sockets as they join, and disconnects a socket of the node it is not
// connected to.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { io } from "socket.io-client";
import { redisURL, freePort, openUser, repoDir, screenshot, serveStatic, sleep, startGoServer, tempDir, until as waitUntil } from "./harness.mjs";
import { claims, hs256, newSecret } from "../../../server/e2e/lib/jwt.js";

// A test credential (not a secret): bcrypt, cost 10, of PASSWORD.
const USERNAME = "admin";
const PASSWORD = "admin-ui-test-password";
const HASH = "$2a$10$EQ.4qXw8YghfFbdbsGpakO/KeMDgkcEl/JATJuZn21SeTMNAD63oK";

/** Waits for pred, with the UI's pace: its transitions and its 2 s stats. */
const until = (pred, what) => waitUntil(pred, what, { ms: 20_000, every: 200 });

const uiDist = join(repoDir, "server", "e2e", "node_modules", "@socket.io", "admin-ui", "ui", "dist");

const secret = newSecret();
const run = Date.now().toString(36);
/** The user id of the verified user named name, and its auth (a token) for chatClient. */
const userId = (name) => `${name}-${run}`;
const verified = (name) => ({ token: hs256(secret, claims({ sub: userId(name), name })) });

function chatClient(url, username, transports, auth = { username }) {
  const s = io(url, { forceNew: true, reconnection: false, auth, ...(transports ? { transports } : {}) });
  return new Promise((resolve, reject) => {
    s.once("connect", () => resolve(s));
    s.once("connect_error", reject);
  });
}

describe("the Socket.IO Admin UI in Chromium, against two Go nodes", () => {
  let ui;
  let dirs = [];
  let nodeA;
  let nodeB;
  const clients = [];
  let admin;

  before(async () => {
    if (!existsSync(join(uiDist, "index.html"))) {
      throw new Error(`the Admin UI's page is missing at ${uiDist}: run npm ci in server/e2e (@socket.io/admin-ui is its devDependency)`);
    }
    ui = await serveStatic(uiDist);
    const origin = new URL(ui.url).origin;
    const database = process.env.DATABASE_URL;
    assert.ok(database, 'DATABASE_URL is not set: rooms need PostgreSQL. Start it with: eval "$(scripts/services up redis postgres)" (or run scripts/test)');
    const env = {
      REDIS_URL: redisURL(), REDIS_KEY_PREFIX: `admin-ui${Date.now()}`, CORS_ORIGINS: origin, DATABASE_URL: database,
      AUTH_JWT_SECRET: secret, AUTH_MODE: "optional",
      ADMIN_UI: "on", ADMIN_UI_USERNAME: USERNAME, ADMIN_UI_PASSWORD_HASH: HASH,
    };
    dirs = [tempDir("admin-ui-a-"), tempDir("admin-ui-b-")];
    const [pa, pb] = [await freePort(), await freePort()];
    nodeA = await startGoServer({ port: pa, dataDir: dirs[0].dir, env });
    nodeB = await startGoServer({ port: pb, dataDir: dirs[1].dir, env });
    nodeA.url = `http://127.0.0.1:${pa}`;
    nodeB.url = `http://127.0.0.1:${pb}`;
    for (let i = 0; i < 100; i++) {
      if ((await (await fetch(`${nodeB.url}/readyz`)).json()).servers === 2) break;
      await sleep(100);
    }
  });

  after(async () => {
    for (const c of clients) c.close();
    await admin?.close();
    await nodeA?.stop();
    await nodeB?.stop();
    for (const d of dirs) d.remove();
    await ui?.close();
  });

  test("signs in, lists both nodes' sockets and servers, disconnects a socket of the other node", async () => {
    const ann = await chatClient(nodeA.url, "ann", ["websocket"]);
    const bob = await chatClient(nodeB.url, "bob"); // long-polling, then WebSocket
    clients.push(ann, bob);
    const bobId = bob.id;
    // Two verified users, one on each node, in a private room; dee's
    // public room, which ann joins once the UI is open.
    const dee = await chatClient(nodeA.url, "dee", ["websocket"], verified("dee"));
    const eve = await chatClient(nodeB.url, "eve", ["websocket"], verified("eve"));
    clients.push(dee, eve);
    const ask = (s, event, payload) => s.timeout(10_000).emitWithAck(event, payload);
    // eve is recorded as a user in the background of her CONNECT.
    let ops;
    await until(async () => (ops = await ask(dee, "room:create", { name: "ops", kind: "private", members: [userId("eve")] })).ok, "the private room, with eve");
    const hall = await ask(dee, "room:create", { name: "hall", kind: "public" });
    assert.equal(hall.ok, true, JSON.stringify(hall));

    // The page fetches a web font and an icon font from CDNs: blocked, so
    // nothing leaves the machine (the icons do not show).
    admin = await openUser({ viewport: { width: 1280, height: 800 }, blockExternal: true });
    const { page } = admin;
    await page.goto(ui.url);
    await page.getByLabel("Server URL").fill(nodeA.url);
    await page.getByLabel("Username").fill(USERNAME);
    await page.getByLabel("Password").fill("wrong");
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByText("Invalid credentials").waitFor();
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    const settle = () => sleep(700); // Vuetify's transitions, before a screenshot

    // Sockets: the chat sockets of both nodes, with their address.
    await page.goto(`${ui.url}#/sockets`);
    const row = (id) => page.locator("tr", { hasText: id });
    await row(ann.id).waitFor();
    await row(bobId).waitFor();
    assert.match(await row(bobId).textContent(), /127\.0\.0\.1/);
    await until(async () => /websocket/i.test(await row(bobId).innerHTML()), "bob's transport shown as WebSocket after the upgrade");
    await settle();
    await screenshot(admin, "admin-ui-sockets.png");

    // Its details: the name it gave, its rooms.
    await row(ann.id).click();
    await page.getByText('"name": "ann"').waitFor();
    await page.getByText("chat:live").first().waitFor();
    await settle();
    await screenshot(admin, "admin-ui-socket.png");

    // Rooms: chat:live with every socket of both nodes, and the chat's
    // rooms with theirs; ann joining the public room shows at once.
    await page.goto(`${ui.url}#/rooms`);
    const sockets = (room, n) => async () => new RegExp(`${room}\\s+\\S+\\s+${n}\\b`).test(await page.locator("tr", { hasText: room }).first().innerText());
    await until(sockets("chat:live", 4), "chat:live with 4 sockets");
    await until(sockets(ops.room.id, 2), "the private room with dee's and eve's sockets, on two nodes");
    await until(sockets(hall.room.id, 1), "the public room with dee's socket");
    assert.equal((await ask(ann, "room:join", { room: hall.room.id })).ok, true);
    await until(sockets(hall.room.id, 2), "ann in the public room (room_joined)");
    await settle();
    await screenshot(admin, "admin-ui-rooms.png");
    // The room's page lists its sockets.
    await page.locator("tr", { hasText: ops.room.id }).first().click();
    await page.getByText(eve.id).first().waitFor();
    await page.getByText(dee.id).first().waitFor();
    await settle();
    await screenshot(admin, "admin-ui-room.png");

    // Servers: both nodes, healthy.
    await page.goto(`${ui.url}#/servers`);
    await until(async () => (await page.locator("tbody tr").count()) === 2, "two servers");
    await settle();
    await screenshot(admin, "admin-ui-servers.png");

    // A newcomer on node b appears by itself.
    const cid = await chatClient(nodeB.url, "cid", ["websocket"]);
    clients.push(cid);
    await page.goto(`${ui.url}#/sockets`);
    await row(cid.id).waitFor();

    // Disconnect bob, on node b, from the UI connected to node a (the click
    // reaches the row too, which opens the socket's page).
    const gone = new Promise((resolve) => bob.once("disconnect", resolve));
    await row(bobId).getByRole("button").click();
    assert.equal(await gone, "io server disconnect");
    await page.getByText("disconnected").first().waitFor();
    await settle();
    await screenshot(admin, "admin-ui-disconnected.png");
    await page.goto(`${ui.url}#/sockets`);
    await row(cid.id).waitFor();
    await until(async () => (await page.locator("tr", { hasText: bobId }).count()) === 0, "bob gone from the list");
    assert.equal(await page.locator("tr", { hasText: ann.id }).count(), 1, "the others stay");

    assert.deepEqual(admin.pageErrors, [], "no uncaught page error");
    const hosts = [...new Set(admin.external.map((u) => new URL(u).hostname))].sort();
    assert.ok(hosts.every((h) => h === "fonts.googleapis.com" || h === "cdn.jsdelivr.net"), `only the UI's fonts were asked for: ${hosts}`);
  });
});
