// Who is online and who is typing in the web client, in real Chromium,
// across two Go nodes sharing Redis: alice's browser talks to the node the
// app was built for, bob's is sent to the other node through a local proxy.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  redisURL,
  enterRoom,
  freePort,
  openUser,
  screenshot,
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

/** The names in a user's side list, in order. */
const listed = (user) => user.page.$$eval("[data-testid=online-users] li", (lis) => lis.map((li) => li.getAttribute("data-name")));

const typingText = (user) => user.page.getByTestId("typing").textContent();

async function connectionsOn(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^chat_connections (\d+)/m.exec(text)?.[1] ?? -1);
}

describe("who is online and who is typing, across two nodes", () => {
  let app;
  let data;
  let nodeA;
  let nodeB;
  let proxy;
  const users = [];

  before(async () => {
    const socketPort = await socketPortForBuild();
    app = await startNext();
    data = tempDir("chat-live-");
    const env = { REDIS_URL: redisURL(), REDIS_KEY_PREFIX: `web-live${Date.now()}`, PRESENCE_INTERVAL: "200ms" };
    nodeA = await startGoServer({ port: socketPort, dataDir: `${data.dir}`, env });
    const portB = await freePort();
    const dirB = tempDir("chat-live-b-");
    data.others = [dirB];
    nodeB = await startGoServer({ port: portB, dataDir: dirB.dir, env });
    nodeA.url = `http://127.0.0.1:${socketPort}`;
    nodeB.url = `http://127.0.0.1:${portB}`;
    proxy = await startPortProxy(socketPort, portB);
  });

  after(async () => {
    for (const u of users) {
      assert.deepEqual(u.pageErrors, [], "no uncaught page error");
      assert.deepEqual(u.external, [], "no request left this machine");
      await u.close();
    }
    await proxy?.close();
    await nodeA?.stop();
    await nodeB?.stop();
    for (const d of data?.others ?? []) d.remove();
    data?.remove();
    await app?.stop();
  });

  test("the side list, typing and join/leave lines, on both nodes", async () => {
    const alice = await openUser();
    const bob = await openUser({ proxy });
    users.push(alice, bob);
    await enterRoom(alice, app.url, "alice");
    await enterRoom(bob, app.url, "bob");
    await untilStatus(alice, "live");
    await untilStatus(bob, "live");
    // One browser on each node.
    await until(async () => (await connectionsOn(nodeA.url)) === 1 && (await connectionsOn(nodeB.url)) === 1, "one connection on each node");

    // Each sees both, themselves first.
    await until(async () => (await listed(alice)).join() === "alice,bob", "alice's list");
    await until(async () => (await listed(bob)).join() === "bob,alice", "bob's list");
    await alice.page.locator("[data-testid=online-users] li.you").filter({ hasText: "(you)" }).waitFor();

    // bob types on node b: alice, on node a, sees it; bob does not see himself.
    const input = bob.page.getByLabel("Message", { exact: true });
    await input.click();
    await input.pressSequentially("hello al", { delay: 60 });
    await until(async () => (await typingText(alice)) === "bob is typing…", "alice sees bob typing");
    assert.equal(await typingText(bob), "", "no indicator of one's own typing");
    await screenshot(alice, "live-typing.png");

    // Sending ends it, at once.
    await input.pressSequentially("ice", { delay: 30 });
    await input.press("Enter");
    await untilMessages(alice, (l) => l.some((m) => m.author === "bob" && m.text === "hello alice"), "bob's message on node a");
    await until(async () => (await typingText(alice)) === "", "the indicator gone after the message");

    // Leaving the input ends it too.
    await input.pressSequentially("one more", { delay: 30 });
    await until(async () => (await typingText(alice)) === "bob is typing…", "bob typing again");
    await alice.page.getByLabel("Message", { exact: true }).click(); // focus moves in alice's page only
    await bob.page.getByRole("button", { name: "Change name" }).focus(); // bob's input loses focus
    await until(async () => (await typingText(alice)) === "", "the indicator gone after bob left the input");

    // cid comes (on node b too), quietly; then goes.
    const cid = await openUser({ proxy, viewport: PHONE });
    users.push(cid);
    await enterRoom(cid, app.url, "cid");
    await until(async () => (await listed(alice)).join() === "alice,bob,cid", "cid in alice's list");
    await alice.page.getByTestId("notices").filter({ hasText: "cid joined" }).waitFor();
    // A join is no message.
    assert.ok(!(await untilMessages(alice, () => true, "the list")).some((m) => /cid/.test(m.text)));
    await screenshot(alice, "live-online.png");
    await until(async () => (await listed(cid)).join() === "cid,alice,bob", "the phone's list");
    await screenshot(cid, "live-phone.png");
    await cid.close();
    users.pop();
    await until(async () => (await listed(alice)).join() === "alice,bob", "cid gone from the list");
    await alice.page.getByTestId("notices").filter({ hasText: "cid left" }).waitFor();

    // Typing that is not renewed ends by itself (bob's page stops telling).
    await input.click();
    await input.pressSequentially("x", { delay: 10 });
    await until(async () => (await typingText(alice)) === "bob is typing…", "bob typing once more");
    await until(async () => (await typingText(alice)) === "", "the indicator expired", 12_000);
  });
});
