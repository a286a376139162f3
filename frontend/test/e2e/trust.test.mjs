// The web client with sign-in and moderation (issue 13), in real Chromium
// against the real Go server with AUTH_JWT_SECRET and AUTH_GUEST=on: a
// guest signs in by name (a held name is refused), a moderator signs in
// with a token and deletes a message with the Delete control (it goes for
// everyone), and a banned user sees why; with AUTH_MODE=optional, an
// anonymous sender's messages are marked and "own" is the user's id.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { io } from "socket.io-client";
import { enterRoom, openUser, say, screenshot, socketPortForBuild, startGoServer, startNext, tempDir, untilMessages } from "./harness.mjs";

const secret = randomBytes(32).toString("hex");
const adminToken = randomBytes(32).toString("hex");
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
function hs256(payload) {
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64(payload);
  return `${head}.${body}.${createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url")}`;
}

let app, server, data, socketPort;
const users = [];

before(async () => {
  socketPort = await socketPortForBuild();
  app = await startNext();
  data = tempDir("chat-trust-");
  server = await startGoServer({
    port: socketPort,
    dataDir: data.dir,
    env: { AUTH_JWT_SECRET: secret, AUTH_GUEST: "on", ADMIN_TOKEN: adminToken },
  });
});

after(async () => {
  for (const u of users) {
    assert.deepEqual(u.pageErrors, [], "no uncaught page error");
    assert.deepEqual(u.external, [], "no request left this machine");
    await u.close();
  }
  await server?.stop();
  await app?.stop();
  data?.remove();
});

test("guests sign in by name, a moderator deletes a message for everyone, a banned user sees why", async () => {
  const ann = await openUser();
  users.push(ann);
  await enterRoom(ann, app.url, "Ann");
  await say(ann, "hello from Ann");
  await untilMessages(ann, (ms) => ms.some((m) => m.text === "hello from Ann" && m.delivery === "stored"), "Ann's message stored");

  // The name is Ann's while her session lives: another guest is refused.
  const other = await openUser();
  users.push(other);
  await other.page.goto(app.url);
  await other.page.getByLabel("Your name").fill("ann");
  await other.page.getByRole("button", { name: "Continue" }).click();
  await other.page.getByRole("alert").filter({ hasText: "Another guest uses this name" }).waitFor();

  // A moderator, with a token; guests see no Delete control.
  assert.equal(await ann.page.getByTestId("delete").count(), 0, "a guest sees no Delete control");
  const mod = await openUser();
  users.push(mod);
  await mod.page.goto(app.url);
  await mod.page.getByLabel("Your name").fill("Mod");
  await mod.page.getByText("Sign in with a token (moderators)").click();
  await mod.page.getByLabel("Token").fill(hs256({ sub: "mod-1", name: "Mod", roles: ["moderator"], exp: Math.floor(Date.now() / 1000) + 3600 }));
  await mod.page.getByRole("button", { name: "Continue" }).click();
  await untilMessages(mod, (ms) => ms.some((m) => m.text === "hello from Ann"), "Ann's message at the moderator");
  await screenshot(mod, "moderator.png");
  await mod.page.locator("li.msg", { hasText: "hello from Ann" }).getByTestId("delete").click();
  await untilMessages(ann, (ms) => !ms.some((m) => m.text === "hello from Ann"), "the message gone for Ann");
  await untilMessages(mod, (ms) => !ms.some((m) => m.text === "hello from Ann"), "the message gone for the moderator");

  // Banned: Ann is told why, and until when.
  const res = await fetch(`http://127.0.0.1:${socketPort}/api/bans`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ username: "Ann", durationSec: 600, reason: "spam" }),
  });
  assert.equal(res.status, 201);
  const banner = ann.page.locator("[data-testid=server-error][data-code=banned]");
  await banner.waitFor({ timeout: 10_000 });
  assert.match(await banner.innerText(), /banned: spam until/);
  await screenshot(ann, "banned.png");
});

// Issue 29: the page never showed verified: false, and it took a message
// as the user's own when the name matched (an anonymous client, or another
// verified user, under the user's name looked like the user's own).
test("AUTH_MODE=optional: an anonymous sender is marked, and own messages are the user's id, not its name", async () => {
  await server.stop();
  server = await startGoServer({
    port: socketPort,
    dataDir: data.dir,
    env: { AUTH_JWT_SECRET: secret, AUTH_GUEST: "on", AUTH_MODE: "optional" },
  });
  const zoe = await openUser();
  users.push(zoe);
  await enterRoom(zoe, app.url, "Zoë");
  await say(zoe, "from the guest Zoë");
  await untilMessages(zoe, (ms) => ms.some((m) => m.text === "from the guest Zoë" && m.delivery === "stored"), "Zoë's message stored");

  const url = `http://127.0.0.1:${socketPort}`;
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const connected = (s) => new Promise((resolve, reject) => s.once("connect", () => resolve(s)).once("connect_error", reject));
  const namesake = io(url, { auth: { token: hs256({ sub: "another-zoe", name: "Zoë", exp }) }, transports: ["websocket"], forceNew: true });
  const anon = io(url, { auth: { username: "Bob" }, transports: ["websocket"], forceNew: true });
  // Listen at once: either may connect while the other is awaited.
  const both = Promise.all([connected(namesake), connected(anon)]);
  try {
    await both;
    assert.equal((await namesake.timeout(5000).emitWithAck("event:message", { message: "from the other Zoë", username: "Zoë" })).ok, true);
    assert.equal((await anon.timeout(5000).emitWithAck("event:message", { message: "from anonymous Bob", username: "Bob" })).ok, true);
    const ms = await untilMessages(zoe, (ms) => ms.some((m) => m.text === "from anonymous Bob") && ms.some((m) => m.text === "from the other Zoë"), "both messages");
    const by = Object.fromEntries(ms.map((m) => [m.text, m]));
    assert.deepEqual(
      [by["from the guest Zoë"].own, by["from the other Zoë"].own, by["from anonymous Bob"].own],
      [true, false, false],
      "own is the guest's id: another verified Zoë's message is not hers",
    );
    assert.deepEqual(
      [by["from anonymous Bob"].unverifiedMark, by["from the other Zoë"].unverifiedMark, by["from the guest Zoë"].unverifiedMark],
      [true, false, false],
      "only the anonymous sender is marked",
    );
    // The online list marks the guest only as "(you)", not the other Zoë.
    await zoe.page.locator("[data-testid=online-users] li[data-name='Zoë']").nth(1).waitFor({ timeout: 10_000 });
    const you = await zoe.page.locator("[data-testid=online-users] li.you").count();
    assert.equal(you, 1, "one (you) in the online list");
    await screenshot(zoe, "unverified.png");
  } finally {
    namesake.close();
    anon.close();
  }
});
