// scripts/services, two checkouts side by side: each gets services of its
// own (state and ports derived from its path, shown by `status`), both start
// at once, and what one does to its services (an outage test's stop, then
// down --purge) leaves the other's running and answering. The two
// checkouts are copies of scripts/services in temporary directories; the
// Kafka jars come from the shared download cache.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import net from "node:net";
import { repoDir } from "../lib/harness.mjs";

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), "services-test-"));
const env = { ...process.env, SERVICES_KAFKA_HEAP_OPTS: "-Xms128m -Xmx320m" };
for (const k of ["SERVICES_MODE", "SERVICES_DIR", "SERVICES_PG_PORT", "SERVICES_REDIS_PORT", "SERVICES_KAFKA_PORT", "SERVICES_KAFKA_CONTROLLER_PORT", "SERVICES_REDIS_CLUSTER_PORT"]) {
  delete env[k];
}

/** A checkout at dir with this repository's scripts/services (and what it sources). */
function checkout(name) {
  const dir = join(root, name);
  mkdirSync(join(dir, "scripts", "lib"), { recursive: true });
  cpSync(join(repoDir, "scripts", "services"), join(dir, "scripts", "services"));
  cpSync(join(repoDir, "scripts", "lib", "ports.sh"), join(dir, "scripts", "lib", "ports.sh"));
  const services = (...args) => run(join(dir, "scripts", "services"), args, { env, timeout: 300_000 });
  return { name, dir, services };
}

/** `status` of c: {header, lines: {postgres: {state, port}, ...}, cluster: [{state, port}, ...]}. */
async function status(c) {
  const r = await c.services("status").catch((e) => e); // exit 3 while one is stopped
  const [header, ...rest] = r.stdout.trim().split("\n");
  const lines = {};
  const cluster = [];
  for (const l of rest) {
    const m = /^([\w-]+)\s+(\w+)\s+pid (\S+)\s+127\.0\.0\.1:(\d+)/.exec(l);
    if (!m) continue;
    const line = { state: m[2], pid: m[3], port: Number(m[4]) };
    if (m[1] === "redis-cluster") cluster.push(line);
    else lines[m[1]] = line;
  }
  return { header, lines, cluster, text: r.stdout };
}

const answers = (port) =>
  new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.on("connect", () => (c.destroy(), resolve(true)));
    c.on("error", () => resolve(false));
  });

const ports = (s) => [...["postgres", "redis", "kafka"].map((n) => s.lines[n].port), ...s.cluster.map((n) => n.port)];

const made = [];
after(async () => {
  for (const c of made) await c.services("down", "--purge").catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

test("two checkouts' services side by side do not touch each other", { timeout: 600_000 }, async () => {
  // Two checkouts whose ports differ from each other's and from whatever
  // listens here already (this checkout's own services, say).
  let a, b, sa, sb;
  for (let i = 0; ; i++) {
    a = checkout(`clone-a${i}`);
    b = checkout(`clone-b${i}`);
    [sa, sb] = [await status(a), await status(b)];
    const all = [...ports(sa), ...ports(sb)];
    const taken = await Promise.all(all.map(answers));
    if (new Set(all).size === all.length && !taken.some(Boolean)) break;
    assert.ok(i < 5, `no two checkouts with ports of their own: ${sa.text} ${sb.text}`);
  }
  made.push(a, b);
  for (const [c, s] of [[a, sa], [b, sb]]) {
    assert.match(s.header, new RegExp(`^checkout ${c.dir}: its own services .*state in .*/checkouts/${c.name}-\\d+/services$`), s.text);
    for (const p of ports(s)) assert.ok(p >= 20000 && p < 30000, `${c.name}: port ${p} in 20000-29999`);
  }

  // Both start at once: neither waits for the other's lock.
  const [ea, eb] = await Promise.all([a.services("up", "postgres", "redis", "kafka", "redis-cluster"),
    b.services("up", "postgres", "redis", "kafka", "redis-cluster")]);
  const exports = (r) => Object.fromEntries(r.stdout.trim().split("\n").map((l) => /^export (\w+)='?([^']*)'?$/.exec(l).slice(1)));
  const [xa, xb] = [exports(ea), exports(eb)];
  assert.equal(xa.REDIS_URL, `redis://127.0.0.1:${sa.lines.redis.port}`);
  assert.equal(xb.KAFKA_BROKERS, `127.0.0.1:${sb.lines.kafka.port}`);
  assert.notEqual(xa.DATABASE_URL, xb.DATABASE_URL);
  assert.equal(xb.REDIS_CLUSTER_NODES, sb.cluster.map((n) => `127.0.0.1:${n.port}`).join(","));
  [sa, sb] = [await status(a), await status(b)];
  for (const s of [sa, sb]) {
    for (const n of ["postgres", "redis", "kafka"]) assert.equal(s.lines[n].state, "running", s.text);
    assert.deepEqual(s.cluster.map((n) => n.state), Array(6).fill("running"), s.text);
  }
  const pidsB = JSON.stringify(sb.lines);

  // A's outage stage stops and starts its services: B's keep running, the same processes.
  await a.services("stop", "kafka", "postgres");
  for (const p of ports(sb)) assert.ok(await answers(p), `B's port ${p} answers while A's services are stopped`);
  assert.equal(JSON.stringify((await status(b)).lines), pidsB, "B's services are the same processes");
  await a.services("start", "kafka", "postgres");

  // A goes down and deletes its state: B's services still run and answer.
  await a.services("down", "--purge");
  sb = await status(b);
  assert.equal(JSON.stringify(sb.lines), pidsB, sb.text);
  for (const p of ports(sb)) assert.ok(await answers(p), `B's port ${p} answers after A's down --purge`);
  const sa2 = await status(a);
  for (const n of ["postgres", "redis", "kafka"]) assert.equal(sa2.lines[n].state, "stopped", sa2.text);
  assert.deepEqual(sa2.cluster.map((n) => n.state), Array(6).fill("stopped"), sa2.text);
});

test("SERVICES_MODE=shared names the shared set, and a bad mode is refused", async () => {
  const c = checkout("shared-probe");
  const r = await run(join(c.dir, "scripts", "services"), ["status"], { env: { ...env, SERVICES_MODE: "shared" } }).catch((e) => e);
  assert.match(r.stdout, /^shared services \(SERVICES_MODE=shared\), state in .*\/scalable-chat-go\/services$/m);
  assert.match(r.stdout, /^postgres .* 127\.0\.0\.1:25432 /m);
  const bad = await run(join(c.dir, "scripts", "services"), ["status"], { env: { ...env, SERVICES_MODE: "mine" } }).catch((e) => e);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /SERVICES_MODE=mine: want checkout/);
});
