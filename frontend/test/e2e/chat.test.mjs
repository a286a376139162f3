// The web client in real Chromium against the real Go server and the real
// Next.js production build; then the same page against the original-protocol
// Node server (server/e2e/fixtures/original-server.js).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  enterRoom,
  messages,
  openUser,
  say,
  screenshot,
  sleep,
  socketPortForBuild,
  startGoServer,
  startNext,
  startOriginalServer,
  tempDir,
  untilMessages,
  untilStatus,
} from "./harness.mjs";

const XSS = "<img src=x onerror=alert(1)>";
const PHONE = { width: 390, height: 760 };

let socketPort;
let app;

before(async () => {
  socketPort = await socketPortForBuild();
  app = await startNext();
});

after(async () => {
  await app?.stop();
});

describe("against the Go server", () => {
  let data;
  let server;
  const users = [];
  let alice;
  let bob;

  before(async () => {
    data = tempDir("chat-data-");
    server = await startGoServer({ port: socketPort, dataDir: data.dir });
  });

  after(async () => {
    for (const u of users) {
      assert.deepEqual(u.dialogs, [], "no dialog ever opened");
      assert.deepEqual(u.pageErrors, [], "no uncaught page error");
      assert.deepEqual(u.external, [], "no request left this machine");
      await u.close();
    }
    await server?.stop();
    data?.remove();
  });

  test("two users chat; own messages on the right, acknowledged; online count", async () => {
    alice = await openUser();
    bob = await openUser({ viewport: PHONE });
    users.push(alice, bob);
    await enterRoom(alice, app.url, "alice");
    await enterRoom(bob, app.url, "bob");
    await untilStatus(alice, "live");
    await untilStatus(bob, "live");
    await alice.page.getByTestId("online").filter({ hasText: "2 online" }).waitFor();

    await say(alice, "hello from alice");
    await untilMessages(bob, (l) => l.some((m) => m.author === "alice" && m.text === "hello from alice" && !m.own), "bob sees alice");
    const mine = await untilMessages(alice, (l) => l.some((m) => m.text === "hello from alice" && m.delivery === "stored"), "alice's message acknowledged");
    assert.equal(mine.filter((m) => m.text === "hello from alice").length, 1, "the echo is merged, not shown twice");
    assert.ok(mine[0].own && mine[0].id && mine[0].time, "own, with the server's id and time");

    await say(bob, "hi alice, bob here");
    await untilMessages(alice, (l) => l.some((m) => m.author === "bob" && m.text === "hi alice, bob here"), "alice sees bob");

    // Own messages sit on the right, others' on the left.
    const boxes = await alice.page.$$eval("[data-testid=messages] li.msg", (lis) =>
      lis.map((li) => {
        const r = li.getBoundingClientRect();
        const list = li.parentElement.getBoundingClientRect();
        return { own: li.dataset.own === "true", left: r.left - list.left, right: list.right - r.right };
      }),
    );
    const ownBox = boxes.find((b) => b.own);
    const otherBox = boxes.find((b) => !b.own);
    assert.ok(ownBox.right < ownBox.left, `own message on the right: ${JSON.stringify(ownBox)}`);
    assert.ok(otherBox.left < otherBox.right, `other message on the left: ${JSON.stringify(otherBox)}`);

    // Phone width: nothing overflows sideways.
    const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal overflow at phone width (${overflow}px)`);
  });

  test("markup in a message is shown as text and runs nothing", async () => {
    await say(alice, XSS);
    for (const u of [alice, bob]) {
      await untilMessages(u, (l) => l.some((m) => m.text === XSS), "the markup as text");
      assert.equal(await u.page.locator("[data-testid=messages] img").count(), 0, "no img element was created");
    }
    await sleep(500);
    assert.deepEqual(alice.dialogs, []);
    assert.deepEqual(bob.dialogs, []);
    await screenshot(alice, "chat.png");
  });

  test("the list follows new messages unless the reader scrolled up", async () => {
    const atBottom = () =>
      bob.page.$eval("[data-testid=messages]", (el) => el.scrollHeight - el.scrollTop - el.clientHeight <= 2);
    for (let i = 1; i <= 20; i++) await say(alice, `filler ${i}`);
    await untilMessages(bob, (l) => l.some((m) => m.text === "filler 20"), "the fillers");
    await sleep(200);
    assert.ok(await atBottom(), "bob follows the newest message");
    assert.ok(await bob.page.$eval("[data-testid=messages]", (el) => el.scrollHeight > el.clientHeight * 2), "the list overflows");

    await bob.page.locator("[data-testid=messages]").hover();
    await bob.page.mouse.wheel(0, -1500);
    await bob.page.waitForFunction(() => document.querySelector("[data-testid=messages]").scrollTop < 100);
    const before = await bob.page.$eval("[data-testid=messages]", (el) => el.scrollTop);
    await say(alice, "filler 21");
    await untilMessages(bob, (l) => l.some((m) => m.text === "filler 21"), "filler 21");
    await sleep(200);
    assert.equal(await bob.page.$eval("[data-testid=messages]", (el) => el.scrollTop), before, "bob's position is kept");
    await bob.page.getByRole("button", { name: "Newest messages ↓" }).click();
    await bob.page.waitForFunction(() => {
      const el = document.querySelector("[data-testid=messages]");
      return el.scrollHeight - el.scrollTop - el.clientHeight <= 2;
    });
    await say(alice, "filler 22");
    await untilMessages(bob, (l) => l.some((m) => m.text === "filler 22"), "filler 22");
    await sleep(200);
    assert.ok(await atBottom(), "following again after the jump");
  });

  test("a user who joins later sees the history, with times, and keeps the name across a reload", async () => {
    const carol = await openUser();
    users.push(carol);
    // Keyboard only: the name field has the focus, Enter continues, and the
    // focus lands in the message input; Tab goes on to Send.
    await carol.page.goto(app.url);
    await carol.page.getByLabel("Your name").waitFor();
    await carol.page.keyboard.type("carol");
    await carol.page.keyboard.press("Enter");
    await carol.page.getByTestId("me").filter({ hasText: "carol" }).waitFor();
    assert.equal(await carol.page.evaluate(() => document.activeElement?.getAttribute("name")), "message");
    await carol.page.keyboard.press("Shift+Tab");
    assert.equal(await carol.page.evaluate(() => document.activeElement?.getAttribute("aria-label")), "Messages", "the list is focusable for scrolling");
    await carol.page.keyboard.press("Tab");
    assert.equal(await carol.page.evaluate(() => document.activeElement?.getAttribute("name")), "message");
    await carol.page.keyboard.type("draft");
    await carol.page.keyboard.press("Tab");
    assert.equal(await carol.page.evaluate(() => document.activeElement?.textContent), "Send", "Send is next once there is text");
    await carol.page.keyboard.press("Shift+Tab");
    await carol.page.keyboard.press("Control+A");
    await carol.page.keyboard.press("Backspace");
    const fillers = Array.from({ length: 22 }, (_, i) => `filler ${i + 1}`);
    const want = ["hello from alice", "hi alice, bob here", XSS, ...fillers];
    const list = await untilMessages(carol, (l) => want.every((t) => l.some((m) => m.text === t)), "history");
    assert.deepEqual(
      list.map((m) => m.text),
      want,
      "history in order, once each",
    );
    for (const m of list) assert.ok(!Number.isNaN(Date.parse(m.time)), `a time on ${m.text}`);

    await carol.page.reload();
    await carol.page.getByTestId("me").filter({ hasText: "carol" }).waitFor();
    await untilMessages(carol, (l) => l.length === want.length, "history again after the reload");
    await carol.close();
    users.splice(users.indexOf(carol), 1);
  });

  test("an over-long message shows the server's error and reaches nobody", async () => {
    await say(alice, "x".repeat(2001));
    const banner = alice.page.getByRole("alert").filter({ hasText: "message is 2001 characters long; the limit is 2000" });
    await banner.waitFor();
    assert.equal(await banner.getAttribute("data-code"), "message_too_long");
    await untilMessages(alice, (l) => l.some((m) => m.text.length === 2001 && m.delivery === "failed"), "the message marked not sent");
    await say(bob, "after the long one");
    await untilMessages(alice, (l) => l.some((m) => m.text === "after the long one"), "a later message");
    assert.ok(!(await messages(bob)).some((m) => m.text.length === 2001), "bob never got it");
    await alice.page.getByRole("button", { name: "Dismiss the error" }).click();
    await alice.page.getByTestId("server-error").waitFor({ state: "detached" });
  });

  test("the server stops: offline, messages queue; it restarts: live again, the queue goes out", async () => {
    await server.stop();
    await untilStatus(alice, "offline");
    await untilStatus(bob, "offline");
    await say(alice, "written while offline");
    await untilMessages(alice, (l) => l.some((m) => m.text === "written while offline" && m.delivery === "pending"), "queued while offline");
    await alice.page.getByText("Waiting for the connection…").waitFor();
    assert.equal(await alice.page.getByTestId("online").count(), 0, "no stale online count while offline");
    await screenshot(alice, "chat-offline.png");

    server = await startGoServer({ port: socketPort, dataDir: data.dir });
    await untilStatus(alice, "live");
    await untilStatus(bob, "live");
    await untilMessages(alice, (l) => l.some((m) => m.text === "written while offline" && m.delivery === "stored"), "the queued message acknowledged", 30_000);
    await untilMessages(bob, (l) => l.some((m) => m.text === "written while offline"), "bob gets the queued message", 30_000);

    await say(bob, "we are back");
    await untilMessages(alice, (l) => l.some((m) => m.text === "we are back"), "chat continues");
    for (const u of [alice, bob]) {
      const texts = (await messages(u)).map((m) => m.text);
      assert.equal(new Set(texts).size, texts.length, `no message shown twice: ${JSON.stringify(texts)}`);
    }
    // The same history for a newcomer after the restart (stored in DATA_DIR).
    const dave = await openUser();
    users.push(dave);
    await enterRoom(dave, app.url, "dave");
    await untilMessages(dave, (l) => ["filler 22", "written while offline", "we are back"].every((t) => l.some((m) => m.text === t)), "history after restart");
    await screenshot(alice, "chat-after-restart.png");
    await screenshot(bob, "chat-phone.png");
  });
});

describe("against a Go server with a tight rate limit", () => {
  let data;
  let server;
  let gina;

  before(async () => {
    data = tempDir("chat-data-");
    server = await startGoServer({ port: socketPort, dataDir: data.dir, env: { RATE_LIMIT_PER_SEC: "2", RATE_LIMIT_BURST: "2" } });
  });

  after(async () => {
    if (gina) {
      assert.deepEqual(gina.pageErrors, []);
      await gina.close();
    }
    await server?.stop();
    data?.remove();
  });

  test("rate limited: the error is shown and the messages go out once each when allowed", async () => {
    gina = await openUser();
    await enterRoom(gina, app.url, "gina");
    await untilStatus(gina, "live");
    const texts = ["one", "two", "three", "four", "five"];
    for (const t of texts) await say(gina, t);
    await gina.page.getByTestId("server-error").filter({ hasText: "You are sending too fast" }).waitFor();
    const list = await untilMessages(gina, (l) => l.length === texts.length && l.every((m) => m.delivery === "stored"), "every message acknowledged", 30_000);
    assert.deepEqual(list.map((m) => m.text).sort(), [...texts].sort());
    // What the server stored: each once (retries reuse the clientId).
    const res = await fetch(`http://127.0.0.1:${socketPort}/api/messages?limit=50`);
    const body = await res.json();
    assert.deepEqual(body.messages.map((m) => m.message).sort(), [...texts].sort());
  });
});

describe("against the original-protocol Node server (no ids, acks, history or presence)", () => {
  let server;
  const users = [];

  before(async () => {
    server = await startOriginalServer({ port: socketPort });
  });

  after(async () => {
    for (const u of users) {
      assert.deepEqual(u.dialogs, []);
      assert.deepEqual(u.pageErrors, []);
      assert.deepEqual(u.external, []);
      await u.close();
    }
    await server?.stop();
  });

  test("two users chat; own messages show once, as sent without confirmation", async () => {
    const erin = await openUser();
    const frank = await openUser();
    users.push(erin, frank);
    await enterRoom(erin, app.url, "erin");
    await enterRoom(frank, app.url, "frank");
    await untilStatus(erin, "live");
    await untilStatus(frank, "live");

    await say(erin, "hi from erin");
    await untilMessages(frank, (l) => l.some((m) => m.author === "erin" && m.text === "hi from erin" && !m.own), "frank sees erin");
    await untilMessages(erin, (l) => l.length === 1 && l[0].own && l[0].delivery === "echoed", "erin's echo merged and marked sent");

    await say(frank, XSS);
    await untilMessages(erin, (l) => l.some((m) => m.author === "frank" && m.text === XSS), "erin sees frank");
    assert.equal(await erin.page.locator("[data-testid=messages] img").count(), 0);

    // Past the acknowledgement timeout nothing changes: no retry, no duplicate.
    await sleep(6000);
    const list = await messages(frank);
    assert.deepEqual(
      list.map((m) => [m.author, m.text, m.delivery]),
      [
        ["erin", "hi from erin", ""],
        ["frank", XSS, "echoed"],
      ],
    );
    assert.equal(await erin.page.getByTestId("online").count(), 0, "no online count without presence events");
    await screenshot(erin, "chat-original-server.png");
  });
});
