// Rooms in the web client, in real Chromium, across two Go nodes on Redis
// sharing PostgreSQL (rooms need a shared database), with guest sign-in:
// alice's browser talks to the node the app was built for, bob's (two tabs)
// to the other one through a local proxy, and cid, anonymous, to a third
// node of the cluster that signs no guests in. They make rooms, invite,
// talk, send direct messages; unread badges rise and clear on every tab; a
// reload keeps the room; a removed member loses the room at once; history
// loads as one scrolls back; a phone folds the room list away.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  enterRoom,
  freePort,
  messages,
  openUser,
  redisURL,
  say,
  screenshot,
  sleep,
  socketPortForBuild,
  startGoServer,
  startNext,
  startPortProxy,
  tempDir,
  until,
  untilMessages,
  untilStatus,
} from "./harness.mjs";

const PHONE = { width: 390, height: 760 };
const run = randomBytes(3).toString("hex");

/** What a page's room list shows, for a failure's message. */
const showList = (page) => async () => `the list is ${JSON.stringify(await roomList(page))}`;

/** The rooms of a page's side list: [{id, name, unread, current}]. */
const roomList = (page) =>
  page.$$eval("[data-testid=room-list] a", (as) =>
    as.map((a) => ({
      id: a.getAttribute("data-room"),
      name: a.querySelector(".name")?.textContent ?? "",
      unread: Number(a.querySelector("[data-testid=unread]")?.getAttribute("data-count") ?? 0),
      current: a.getAttribute("aria-current") === "page",
    })),
  );
const entry = async (page, name) => (await roomList(page)).find((r) => r.name === name);
const roomLink = (page, name) => page.locator("[data-testid=room-list] a", { has: page.locator(".name", { hasText: name }) });
const openRoom = (user, name) => roomLink(user.page, name).click();
const roomOfUrl = (page) => new URL(page.url()).searchParams.get("room");
const texts = async (user) => (await messages(user)).map((m) => m.text);

describe("rooms in the web client, across two nodes", () => {
  let app;
  let data;
  let nodes = [];
  let proxies = [];
  const users = [];
  let alice;
  let bob;
  let bob2;
  let cid;
  const plans = `plans ${run}`;
  const lobby = `lobby ${run}`;

  before(async () => {
    const database = process.env.DATABASE_URL;
    assert.ok(database, 'DATABASE_URL is not set: rooms need PostgreSQL. Start it with: eval "$(scripts/services up redis postgres)" (or run scripts/test)');
    const socketPort = await socketPortForBuild();
    app = await startNext();
    data = [tempDir("rooms-a-"), tempDir("rooms-b-"), tempDir("rooms-c-")];
    const env = {
      REDIS_URL: redisURL(),
      REDIS_KEY_PREFIX: `web-rooms-${run}`,
      DATABASE_URL: database,
      AUTH_JWT_SECRET: randomBytes(32).toString("hex"),
      AUTH_MODE: "optional",
      AUTH_GUEST: "on",
      AUTH_GUEST_SIGNINS_PER_MIN: "0",
      AUTH_GUEST_NAMES_PER_IP: "0",
      PRESENCE_INTERVAL: "200ms",
      BATCH_WAIT: "5ms",
      HISTORY_LIMIT: "15",
    };
    const [portB, portC] = [await freePort(), await freePort()];
    nodes = [
      await startGoServer({ port: socketPort, dataDir: data[0].dir, env }),
      await startGoServer({ port: portB, dataDir: data[1].dir, env }),
      // The third node signs no guests in: its users are anonymous.
      await startGoServer({ port: portC, dataDir: data[2].dir, env: { ...env, AUTH_GUEST: "off" } }),
    ];
    proxies = [await startPortProxy(socketPort, portB), await startPortProxy(socketPort, portC)];
  });

  after(async () => {
    for (const u of users) {
      assert.deepEqual(u.dialogs, [], "no dialog ever opened");
      assert.deepEqual(u.pageErrors, [], "no uncaught page error");
      assert.deepEqual(u.external, [], "no request left this machine");
      await u.close();
    }
    for (const p of proxies) await p.close();
    for (const n of nodes) await n.stop();
    for (const d of data ?? []) d.remove();
    await app?.stop();
  });

  test("two users make a private room, invite, talk; badges rise and clear on every tab; a reload keeps the room", async () => {
    alice = await openUser({ viewport: { width: 1100, height: 760 } });
    bob = await openUser({ proxy: proxies[0], viewport: { width: 1100, height: 760 } });
    users.push(alice, bob);
    await enterRoom(alice, app.url, "alice");
    await enterRoom(bob, app.url, "bob");
    await untilStatus(alice, "live");
    await untilStatus(bob, "live");
    await until(async () => (await roomList(alice.page)).some((r) => r.id === "global" && r.current), "the global room, open");

    // alice makes a private room, keyboard only: the button, the name, Enter.
    await alice.page.getByRole("button", { name: "New room" }).focus();
    await alice.page.keyboard.press("Enter");
    await alice.page.keyboard.type(plans);
    await alice.page.getByLabel("Private: those you invite").check();
    await alice.page.getByLabel("Room name").press("Enter");
    await until(async () => (await entry(alice.page, plans))?.current, "alice in her new room");
    const plansId = roomOfUrl(alice.page);
    assert.match(plansId, /^[0-9a-f-]{36}$/, "the room's URL names it");
    await alice.page.getByTestId("room-head").filter({ hasText: "private room" }).waitFor();

    // She invites bob, who is on the other node.
    await alice.page.getByRole("button", { name: "Invite", exact: true }).click();
    await alice.page.getByRole("button", { name: "Invite bob" }).click();
    await alice.page.getByTestId("room-said").filter({ hasText: "bob is in the room now." }).waitFor();
    await until(async () => await entry(bob.page, plans), "the room in bob's list");

    // A second tab of bob's, the same guest.
    bob2 = { ...bob, page: await bob.context.newPage() };
    bob2.page.on("pageerror", (e) => bob.pageErrors.push(String(e)));
    await bob2.page.goto(app.url);
    await bob2.page.getByTestId("me").filter({ hasText: "bob" }).waitFor();
    await until(async () => await entry(bob2.page, plans), "the room in bob's second tab");

    // alice talks there: bob's badge rises on both tabs, nobody else's room gets it.
    await say(alice, "hello bob, welcome to the plans");
    await say(alice, "second thing");
    for (const page of [bob.page, bob2.page]) await until(async () => (await entry(page, plans))?.unread === 2, "bob's badge at 2", { seen: showList(page) });
    assert.ok(!(await texts(bob)).includes("second thing"), "not in bob's open (global) room");
    await screenshot(bob, "rooms-list.png");

    // bob opens it in one tab: he reads, and the badge clears on the other tab too.
    await openRoom(bob, plans);
    await untilMessages(bob, (l) => l.map((m) => m.text).join("|") === "hello bob, welcome to the plans|second thing", "the room's messages");
    assert.equal(roomOfUrl(bob.page), plansId);
    await until(async () => (await entry(bob.page, plans))?.unread === 0, "the badge gone where bob reads");
    await until(async () => (await entry(bob2.page, plans))?.unread === 0, "the badge gone on bob's other tab (room:read)");

    // Typing in the room shows in the room only.
    const input = bob.page.getByLabel("Message", { exact: true });
    await input.pressSequentially("hi al", { delay: 40 });
    await until(async () => (await alice.page.getByTestId("typing").textContent()) === "bob is typing…", "alice sees bob typing in the room");
    assert.equal(await bob2.page.getByTestId("typing").textContent(), "", "not in the global room");
    await input.pressSequentially("ice", { delay: 20 });
    await input.press("Enter");
    await untilMessages(alice, (l) => l.some((m) => m.author === "bob" && m.text === "hi alice"), "bob's answer, across the nodes");
    assert.equal((await entry(alice.page, plans)).unread, 0, "no badge for the room one has open");
    // Who is here: the room's own list.
    await until(async () => (await alice.page.$$eval("[data-testid=online-users] li", (l) => l.map((x) => x.dataset.name))).join() === "alice,bob", "the room's online list");
    await screenshot(alice, "rooms-room.png");

    // A reload keeps the room, and its history.
    await bob.page.reload();
    await bob.page.getByTestId("me").filter({ hasText: "bob" }).waitFor();
    await untilMessages(bob, (l) => l.some((m) => m.text === "hi alice") && l.some((m) => m.text === "second thing"), "the room after the reload");
    assert.equal(roomOfUrl(bob.page), plansId);
    assert.ok((await entry(bob.page, plans)).current);
  });

  test("a direct message from the online list; a removed member loses the room at once", async () => {
    // From the global room's online list.
    await openRoom(alice, "Global");
    await alice.page.getByRole("button", { name: "Message bob" }).click();
    await until(async () => (await entry(alice.page, "bob"))?.current, "alice in the direct room named bob");
    const dmId = roomOfUrl(alice.page);
    await alice.page.getByTestId("room-head").filter({ hasText: "direct messages" }).waitFor();
    await say(alice, "psst, bob");
    await until(async () => (await entry(bob2.page, "alice"))?.unread === 1, "the direct room, named alice, with a badge in bob's other tab");
    await openRoom(bob2, "alice");
    await untilMessages(bob2, (l) => l.some((m) => m.author === "alice" && m.text === "psst, bob"), "bob reads the DM");
    await say(bob2, "yes?");
    await untilMessages(alice, (l) => l.some((m) => m.author === "bob" && m.text === "yes?"), "alice gets the answer");
    assert.equal(roomOfUrl(bob2.page), dmId, "the same room for both");
    await screenshot(alice, "rooms-dm.png");

    // alice removes bob from her private room while he has it open (tab 1).
    await openRoom(alice, plans);
    assert.equal((await entry(bob.page, plans))?.current, true);
    await alice.page.getByRole("button", { name: "Remove bob from the room" }).click();
    await alice.page.getByTestId("room-notice").filter({ hasText: "bob was removed from the room." }).waitFor();
    for (const page of [bob.page, bob2.page]) {
      await until(async () => (await entry(page, plans)) === undefined, "the room gone from bob's list");
    }
    await bob.page.getByTestId("room-notice").filter({ hasText: `You were removed from “${plans}”.` }).waitFor();
    assert.equal(roomOfUrl(bob.page), null, "back in the global room");
    await say(alice, "after bob left");
    await sleep(500);
    assert.ok(!(await texts(bob)).includes("after bob left") && !(await texts(bob2)).includes("after bob left"));
  });

  test("an anonymous user sees public rooms only, joins one, and scrolls back through its history", async () => {
    // alice makes a public room with more messages than a newcomer is sent.
    await alice.page.getByRole("button", { name: "New room" }).click();
    await alice.page.getByLabel("Room name").fill(lobby);
    await alice.page.getByRole("button", { name: "Create" }).click();
    await until(async () => (await entry(alice.page, lobby))?.current, "alice in the lobby");
    const lobbyId = roomOfUrl(alice.page);
    const sent = Array.from({ length: 40 }, (_, i) => `lobby ${i + 1}`);
    for (const t of sent) await say(alice, t);
    await untilMessages(alice, (l) => l.filter((m) => m.delivery === "stored").length === sent.length, "alice's 40, stored");

    cid = await openUser({ proxy: proxies[1], viewport: { width: 1100, height: 600 } });
    users.push(cid);
    await enterRoom(cid, app.url, "cid");
    await untilStatus(cid, "live");
    await cid.page.getByTestId("anonymous-rooms").filter({ hasText: "you see the public rooms only" }).waitFor();
    assert.equal(await cid.page.getByRole("button", { name: "New room" }).count(), 0, "no rooms of one's own");
    // A link to the private room opens nothing, and says why.
    const plansId = (await entry(alice.page, plans)).id;
    await cid.page.goto(`${app.url}?room=${plansId}`);
    await cid.page.getByTestId("room-notice").filter({ hasText: "private rooms need a sign-in" }).waitFor();
    assert.equal(roomOfUrl(cid.page), null);

    // Found by the start of its name, and joined.
    await cid.page.getByRole("button", { name: "Find public rooms" }).click();
    await cid.page.getByLabel("Search public rooms").fill(`lobby ${run}`.slice(0, 9));
    await cid.page.getByRole("button", { name: `Join ${lobby}` }).click();
    await until(async () => (await entry(cid.page, lobby))?.current, "cid in the lobby");
    assert.equal(roomOfUrl(cid.page), lobbyId);
    const newest = await untilMessages(cid, (l) => l.length === 15, "the newest 15 (HISTORY_LIMIT)");
    assert.deepEqual(newest.map((m) => m.text), sent.slice(-15));

    // Scrolled back: the older pages come, in order, and what the reader
    // saw at the top stays in view.
    const list = cid.page.getByTestId("messages");
    await list.evaluate((el) => (el.scrollTop = 0));
    await until(async () => (await texts(cid)).length > 15, "an older page");
    const kept = await list.evaluate((el) => {
      const li = [...el.querySelectorAll("li.msg")].find((x) => x.querySelector(".text")?.textContent === "lobby 26");
      const r = li.getBoundingClientRect();
      const box = el.getBoundingClientRect();
      return el.scrollTop > 0 && r.top >= box.top - 5 && r.bottom <= box.bottom + 5;
    });
    assert.ok(kept, "lobby 26, at the top before, is in view after the older page came");
    await until(async () => {
      await list.evaluate((el) => (el.scrollTop = 0));
      return (await texts(cid)).length === sent.length;
    }, "every message after scrolling back");
    assert.deepEqual(await texts(cid), sent);
    await cid.page.getByTestId("older").filter({ hasText: "This is the beginning of the room." }).waitFor();

    // cid talks there, anonymously; alice sees it.
    await list.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await say(cid, "hello lobby");
    await untilMessages(alice, (l) => l.some((m) => m.author === "cid" && m.text === "hello lobby" && m.unverifiedMark), "cid's message, marked");

    // The room is deleted: cid is told, and back in the global room.
    await alice.page.getByRole("button", { name: "Delete room" }).click();
    await alice.page.getByRole("group", { name: "Delete the room" }).getByRole("button", { name: "Delete" }).click();
    await cid.page.getByTestId("room-notice").filter({ hasText: `“${lobby}” was deleted.` }).waitFor();
    assert.equal(roomOfUrl(cid.page), null);
    await until(async () => (await entry(alice.page, lobby)) === undefined, "the lobby gone from alice's list");
  });

  test("on a phone the room list folds away; the Rooms button shows unread elsewhere", async () => {
    // bob's other tab, which has the direct room open, would read it: away.
    await openRoom(bob2, "Global");
    await openRoom(bob, "Global");
    await bob.page.setViewportSize(PHONE);
    assert.equal(await bob.page.locator("nav.rooms").isVisible(), false, "the list is folded away");
    await openRoom(alice, "bob");
    await say(alice, "on your phone?");
    await bob.page.getByTestId("unread-elsewhere").filter({ hasText: "1" }).waitFor();
    await bob.page.getByRole("button", { name: /^Rooms/ }).click();
    await until(async () => (await entry(bob.page, "alice"))?.unread === 1, "the DM's badge in the open list", { seen: showList(bob.page) });
    await screenshot(bob, "rooms-phone.png");
    await openRoom(bob, "alice");
    assert.equal(await bob.page.locator("nav.rooms").isVisible(), false, "folded again once a room is chosen");
    await untilMessages(bob, (l) => l.some((m) => m.text === "on your phone?"), "the DM on the phone");
    await screenshot(bob, "rooms-phone-dm.png");
  });
});
