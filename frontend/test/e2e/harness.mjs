// End-to-end harness: the real Go chat server (or the original-protocol Node
// fixture), the real Next.js production build served by `next start`, and
// Debian's Chromium driven by playwright-core with a fresh profile per user.
//
// Environment:
//   CHAT_SERVER_BIN   a built chat-server binary (default: built here with go build)
//   E2E_SOCKET_PORT   the port the app was built for: `next build` already ran with
//                     NEXT_PUBLIC_SOCKET_URL=http://127.0.0.1:$E2E_SOCKET_PORT
//                     (default: a free port is picked and the app is built here)
//   CHROMIUM          the browser (default /usr/bin/chromium)
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync, mkdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, normalize, extname } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import net from "node:net";
import { chromium } from "playwright-core";
import { chatServerBinary, freePort, redisURL, sleep, startChatServer, startProcess } from "../../../scripts/lib/harness.mjs";

export { chatServerBinary, freePort, redisURL, sleep };

export const frontendDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const repoDir = join(frontendDir, "..");
export const artifactsDir = join(frontendDir, "test-results");

/** Starts the Go chat server on 127.0.0.1:port with its data in dataDir. */
export function startGoServer({ port, dataDir, env = {} }) {
  return startChatServer({ PORT: String(port), MAX_CONNECTIONS_PER_IP: "10000", LOG_LEVEL: "warn", ...env }, { dataDir });
}

/** Starts the original-protocol Node fixture (server/e2e/fixtures/original-server.js) on port. */
export function startOriginalServer({ port }) {
  const e2eDir = join(repoDir, "server", "e2e");
  if (!existsSync(join(e2eDir, "node_modules", "socket.io"))) {
    throw new Error(`socket.io is not installed in ${e2eDir}: run npm ci there first`);
  }
  return startProcess("original-server", process.execPath, ["fixtures/original-server.js"], {
    cwd: e2eDir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: "127.0.0.1", PORT: String(port) },
    readyUrl: `http://127.0.0.1:${port}/healthz`,
  });
}

const nextBin = () => join(frontendDir, "node_modules", "next", "dist", "bin", "next");

/**
 * The port the production build talks to. Builds the app for a free port
 * unless E2E_SOCKET_PORT says it was built already; either way checks that
 * the built bundle really holds that URL.
 */
export function socketPortForBuild() {
  let port = Number(process.env.E2E_SOCKET_PORT || 0);
  return (async () => {
    if (!port) {
      port = await freePort();
      execFileSync(process.execPath, [nextBin(), "build"], {
        cwd: frontendDir,
        env: { ...process.env, NEXT_PUBLIC_SOCKET_URL: `http://127.0.0.1:${port}`, NEXT_TELEMETRY_DISABLED: "1" },
        stdio: "inherit",
      });
    }
    const url = `http://127.0.0.1:${port}`;
    if (!bundleContains(join(frontendDir, ".next", "static"), url)) {
      throw new Error(`the production build in ${frontendDir}/.next does not contain ${url}: build it with NEXT_PUBLIC_SOCKET_URL=${url}`);
    }
    return port;
  })();
}

function bundleContains(dir, needle) {
  if (!existsSync(dir)) return false;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() ? bundleContains(p, needle) : e.name.endsWith(".js") && readFileSync(p, "utf8").includes(needle)) return true;
  }
  return false;
}

/** Serves the production build with `next start` on a free port; returns {url, stop}. */
export async function startNext() {
  const port = await freePort();
  const p = await startProcess("next start", process.execPath, [nextBin(), "start", "-H", "127.0.0.1", "-p", String(port)], {
    cwd: frontendDir,
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1", NODE_ENV: "production" },
    readyUrl: `http://127.0.0.1:${port}/`,
  });
  return { ...p, url: `http://127.0.0.1:${port}/` };
}

function isLoopback(u) {
  return ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname) || ["data:", "blob:", "about:"].includes(u.protocol);
}

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/**
 * Opens a user: a fresh Chromium profile (persistent context on a temp dir)
 * with one page. Records page errors, console errors, dialogs, and requests
 * that leave loopback. With `proxy` (a startPortProxy), every request of the
 * browser goes through it, loopback too. With `blockExternal`, requests that
 * would leave loopback are aborted (and still recorded). The host names in
 * `loopbackNames` resolve to 127.0.0.1 in this browser, whatever DNS says,
 * and count as loopback.
 * Returns {context, page, dialogs, pageErrors, external, close()}.
 */
export async function openUser({ viewport = { width: 1000, height: 760 }, proxy, blockExternal = false, loopbackNames = [] } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "chat-profile-"));
  const args = [...CHROMIUM_FLAGS];
  if (proxy) args.push(`--proxy-server=${proxy.url}`, "--proxy-bypass-list=<-loopback>");
  if (loopbackNames.length) args.push(`--host-resolver-rules=${loopbackNames.map((n) => `MAP ${n} 127.0.0.1`).join(",")}`);
  const isLocal = (u) => isLoopback(u) || loopbackNames.includes(u.hostname);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
    viewport,
    timeout: 60_000,
  });
  if (blockExternal) {
    await context.route(
      (u) => !isLocal(u),
      (route) => route.abort(),
    );
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const user = { context, page, dialogs: [], pageErrors: [], external: [] };
  page.on("dialog", (d) => {
    user.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => user.pageErrors.push(String(e)));
  context.on("request", (r) => {
    if (!isLocal(new URL(r.url()))) user.external.push(r.url());
  });
  user.close = async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return user;
}

/** Opens the app, enters name and presses Continue; waits for the room. */
export async function enterRoom(user, appUrl, name) {
  const { page } = user;
  await page.goto(appUrl);
  await page.getByLabel("Your name").fill(name);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByTestId("me").filter({ hasText: name }).waitFor();
}

/** Types a message into the input and presses Enter. */
export async function say(user, text) {
  const input = user.page.getByLabel("Message", { exact: true });
  await input.fill(text);
  await input.press("Enter");
}

/** The message list as [{author, text, own, verified, unverifiedMark, id, time, delivery}] in order. */
export function messages(user) {
  return user.page.$$eval("[data-testid=messages] li.msg", (lis) =>
    lis.map((li) => ({
      author: li.querySelector(".author")?.textContent ?? "",
      text: li.querySelector(".text")?.textContent ?? "",
      own: li.getAttribute("data-own") === "true",
      verified: li.getAttribute("data-verified") ?? "",
      unverifiedMark: li.querySelector("[data-testid=unverified]") !== null,
      id: li.getAttribute("data-id") ?? "",
      time: li.querySelector("time")?.getAttribute("datetime") ?? "",
      delivery: li.querySelector("[data-delivery]")?.getAttribute("data-delivery") ?? "",
    })),
  );
}

/** Waits until pred(await messages(user)) holds; throws with the list on time-out. */
export async function untilMessages(user, pred, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last = [];
  for (;;) {
    last = await messages(user);
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; list is ${JSON.stringify(last, null, 1)}`);
    await sleep(100);
  }
}

/**
 * Waits until pred() gives something truthy, and returns it; on time-out
 * (ms) throws, saying what was awaited and what seen() gives then.
 */
export async function until(pred, what, { ms = 15_000, every = 100, seen = async () => "" } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) {
      const more = await seen();
      throw new Error(`timed out waiting for ${what}${more ? `; ${more}` : ""}`);
    }
    await sleep(every);
  }
}

/** Waits for the connection badge to show status; on time-out says what it shows. */
export async function untilStatus(user, status, ms = 30_000) {
  try {
    await user.page.locator(`[data-testid=connection][data-status=${status}]`).waitFor({ timeout: ms });
  } catch (e) {
    const shown = await user.page
      .locator("[data-testid=connection]")
      .getAttribute("data-status", { timeout: 1000 })
      .catch(() => "(no badge)");
    throw new Error(`the connection badge did not show ${status} within ${ms} ms; it shows ${shown}`, { cause: e });
  }
}

/** Saves a screenshot under test-results/ and prints its path. */
export async function screenshot(user, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, name);
  await user.page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
  return path;
}

/** A temp dir removed by the returned function. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * An HTTP proxy for a browser (openUser's `proxy`) that sends what is meant
 * for 127.0.0.1:from to 127.0.0.1:to, and everything else on unchanged:
 * plain requests and CONNECT tunnels (WebSocket). So a page built for one
 * chat server talks to another one. Returns {url, close()}.
 */
export async function startPortProxy(from, to) {
  const target = (host, port) => (host === "127.0.0.1" && Number(port) === from ? to : Number(port));
  const server = http.createServer((req, res) => {
    let u;
    try {
      u = new URL(req.url);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const up = http.request(
      { host: "127.0.0.1", port: target(u.hostname, u.port || 80), path: u.pathname + u.search, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  server.on("connect", (req, socket, head) => {
    const [host, port] = req.url.split(":");
    const up = net.connect(target(host, port), "127.0.0.1", () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
  });
  const sockets = new Set();
  server.on("connection", (c) => {
    sockets.add(c);
    c.on("close", () => sockets.delete(c));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close() {
      for (const c of sockets) c.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml", ".map": "application/json" };

/** Serves the files of dir on a free port of 127.0.0.1 (GET only). Returns {url, close()}. */
export async function serveStatic(dir) {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = normalize(join(dir, path.endsWith("/") ? path + "index.html" : path));
    if (req.method !== "GET" || !file.startsWith(normalize(dir)) || !existsSync(file) || statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}
