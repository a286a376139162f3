// compose.yaml, checked without Docker (no engine and no `docker compose` on
// these machines): parsed as compose parses it (YAML merge keys), then every
// service, port, health check, dependency and volume is checked, no secret is
// written in it, every variable it reads is listed in .env.example, and the
// balancer's configuration is the file scripts/lb-local runs and passes
// `haproxy -c` with compose's addresses. That the file loads with the
// Compose specification's own loader, that the nodes set only variables the
// server defines, and that what it builds and mounts exists is checked in Go
// (server/config/compose_test.go, with compose-spec/compose-go).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const composeText = readFileSync(join(repo, "compose.yaml"), "utf8");
const compose = parse(composeText, { merge: true, uniqueKeys: true });
const services = compose.services;
const NODES = ["chat1", "chat2", "chat3"];
const DATA_SERVICES = { postgres: "/var/lib/postgresql/data", redis: "/data", kafka: "/var/lib/kafka/data" };

/** environment as an object, whether written as a map or a list of NAME=value. */
function env(service) {
  const e = service.environment ?? {};
  if (!Array.isArray(e)) return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(e.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
}

/** The default compose gives ${NAME:-default} / ${NAME-default}, or the text as it is. */
function withDefaults(text) {
  return text.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?(?::?\?[^}]*)?\}/g, (_, name, def) => def ?? `<${name}>`);
}

/** Container port of a published "host:container" port. */
function published(service) {
  return (service.ports ?? []).map((p) => {
    const [host, container] = String(p).split(":").slice(-2);
    return { host: Number(host), container: Number(container) };
  });
}

test("the services, each with its image or build", () => {
  assert.deepEqual(Object.keys(services).sort(), ["chat1", "chat2", "chat3", "kafka", "lb", "postgres", "redis", "web"]);
  assert.match(services.postgres.image, /^postgres:\d+/);
  const redisMajor = Number(services.redis.image.match(/^redis:(\d+)/)?.[1]);
  assert.ok(redisMajor >= 7, `Redis 7+ (sharded pub/sub), got ${services.redis.image}`);
  assert.match(services.kafka.image, /^apache\/kafka:\d+\.\d+\.\d+$/, "the official Apache Kafka image, pinned");
  assert.match(services.lb.image, /^haproxy:2\.[6-9]/, "HAProxy 2.6 or newer (the Debian package is 2.6)");
  for (const name of NODES) {
    const s = services[name];
    assert.equal(resolve(repo, s.build.context), join(repo, "server"), `${name} is built from server/`);
    assert.equal(s.image, services.chat1.image, "the three nodes run one image");
  }
  assert.equal(resolve(repo, services.web.build.context), join(repo, "frontend"));
  for (const [dir, file] of [["server", "Dockerfile"], ["frontend", "Dockerfile"]]) {
    assert.ok(existsSync(join(repo, dir, file)), `${dir}/${file} exists`);
  }
});

test("Kafka is one KRaft node (broker and controller) that the nodes reach", () => {
  const k = env(services.kafka);
  assert.equal(k.KAFKA_PROCESS_ROLES, "broker,controller");
  assert.ok(k.CLUSTER_ID, "KRaft needs CLUSTER_ID");
  assert.match(k.KAFKA_CONTROLLER_QUORUM_VOTERS, new RegExp(`^${k.KAFKA_NODE_ID}@`));
  assert.ok(!Object.keys(k).some((n) => n.includes("ZOOKEEPER")), "no ZooKeeper");
  assert.match(k.KAFKA_ADVERTISED_LISTENERS, /PLAINTEXT:\/\/kafka:9092/);
  assert.equal(k.KAFKA_LOG_DIRS, DATA_SERVICES.kafka);
  for (const name of NODES) assert.equal(env(services[name]).KAFKA_BROKERS, "kafka:9092", `${name} uses the advertised listener`);
});

test("the chat nodes: PostgreSQL, Redis and Kafka, the port the balancer uses, trusted proxies", () => {
  const lb = env(services.lb);
  for (const [i, name] of NODES.entries()) {
    const e = env(services[name]);
    const url = new URL(withDefaults(e.DATABASE_URL));
    assert.equal(url.protocol, "postgresql:");
    assert.equal(url.hostname, "postgres");
    assert.equal(url.port, "5432");
    assert.equal(url.username, withDefaults(env(services.postgres).POSTGRES_USER));
    assert.equal(url.pathname, `/${withDefaults(env(services.postgres).POSTGRES_DB)}`);
    assert.equal(e.REDIS_URL, "redis://redis:6379");
    assert.match(e.REDIS_PASSWD, /^\$\{REDIS_PASSWORD:\?/, "the original's variable name, from .env");
    assert.equal(withDefaults(e.KAFKA_TOPIC), "MESSAGES");
    assert.equal(withDefaults(e.KAFKA_GROUP), "default");
    assert.ok(withDefaults(e.TRUSTED_PROXIES).split(",").length > 0, "TRUSTED_PROXIES set");
    assert.equal(lb[`NODE${i + 1}`], `${name}:${e.PORT}`, `the balancer's NODE${i + 1} is ${name}`);
    assert.equal(published(services[name]).length, 0, `${name} publishes no port (only through the balancer)`);
  }
});

test("ports: the balancer on 8000, the web client on 3000, nothing else", () => {
  assert.deepEqual(published(services.lb), [{ host: 8000, container: Number(env(services.lb).LB_BIND.split(":").pop()) }]);
  assert.deepEqual(published(services.web), [{ host: 3000, container: 3000 }]);
  for (const name of ["postgres", "redis", "kafka"]) assert.equal(published(services[name]).length, 0, `${name} publishes no port`);
  // The web client is built for the balanced backend on localhost:8000.
  assert.equal(withDefaults(services.web.build.args.NEXT_PUBLIC_SOCKET_URL), "http://localhost:8000");
  assert.match(readFileSync(join(repo, "frontend", "Dockerfile"), "utf8"), /^ARG NEXT_PUBLIC_SOCKET_URL/m);
});

test("every service has a health check; the nodes' probes GET /readyz", () => {
  for (const [name, s] of Object.entries(services)) {
    const hc = s.healthcheck;
    assert.ok(hc && Array.isArray(hc.test) && hc.test.length > 1, `${name} has a health check`);
    assert.ok(["CMD", "CMD-SHELL"].includes(hc.test[0]), `${name}: CMD or CMD-SHELL`);
    for (const k of ["interval", "timeout", "retries"]) assert.ok(hc[k], `${name}: healthcheck.${k}`);
    assert.ok(!hc.disable, `${name}: not disabled`);
  }
  const dockerfile = readFileSync(join(repo, "server", "Dockerfile"), "utf8");
  for (const name of NODES) {
    const t = services[name].healthcheck.test;
    assert.equal(t[1], "/usr/local/bin/healthcheck", `${name} runs the image's probe`);
    assert.equal(t[2], `http://127.0.0.1:${env(services[name]).PORT}/readyz`);
  }
  assert.match(dockerfile, /COPY --from=build [^\n]*\/out\/healthcheck[^\n]*\/usr\/local\/bin\//, "the image holds the probe");
  assert.match(dockerfile, /^HEALTHCHECK /m);
  assert.match(dockerfile, /^USER (?!0|root)/m, "the server runs as a non-root user");
  assert.match(dockerfile, /CGO_ENABLED=0/, "a static binary");
  assert.ok(existsSync(join(repo, "server", "cmd", "healthcheck", "main.go")));
  assert.ok(services.lb.healthcheck.test.join(" ").includes("/lb-healthz"), "the balancer checks its own monitor page");
});

test("every dependency waits until the other service is healthy", () => {
  const expected = {
    chat1: ["kafka", "postgres", "redis"],
    chat2: ["kafka", "postgres", "redis"],
    chat3: ["kafka", "postgres", "redis"],
    lb: ["chat1", "chat2", "chat3"],
    web: ["lb"],
  };
  for (const [name, s] of Object.entries(services)) {
    const deps = s.depends_on ?? {};
    assert.ok(!Array.isArray(deps), `${name}: depends_on with conditions, not a list`);
    assert.deepEqual(Object.keys(deps).sort(), expected[name] ?? [], `${name} depends on`);
    for (const [dep, how] of Object.entries(deps)) {
      assert.equal(how.condition, "service_healthy", `${name} waits for ${dep} to be healthy`);
      assert.ok(services[dep].healthcheck, `${dep} has the health check ${name} waits for`);
    }
  }
});

test("named volumes hold the data; the balancer mounts scripts/haproxy/haproxy.cfg", () => {
  const declared = Object.keys(compose.volumes ?? {});
  const used = [];
  for (const [name, path] of Object.entries(DATA_SERVICES)) {
    const mounts = services[name].volumes ?? [];
    const m = mounts.map(String).find((v) => v.split(":")[1] === path);
    assert.ok(m, `${name} keeps ${path} in a volume`);
    const source = m.split(":")[0];
    assert.ok(declared.includes(source), `${name}: ${source} is a named volume`);
    used.push(source);
  }
  assert.deepEqual(declared.sort(), used.sort(), "every named volume is used");

  const [source, target, mode] = services.lb.volumes[0].split(":");
  assert.equal(target, "/usr/local/etc/haproxy/haproxy.cfg", "the official image's configuration path");
  assert.equal(mode, "ro");
  const cfg = resolve(repo, source);
  assert.equal(cfg, join(repo, "scripts", "haproxy", "haproxy.cfg"));
  assert.ok(statSync(cfg).isFile());
  // scripts/lb-local runs the same file.
  const lbLocal = readFileSync(join(repo, "scripts", "lb-local"), "utf8");
  assert.match(lbLocal, /^readonly CONFIG=\$ROOT\/scripts\/haproxy\/haproxy\.cfg$/m);
  assert.match(lbLocal, /"\$HAPROXY" -f "\$CONFIG"/);
});

test("the balancer's configuration is valid with compose's addresses (haproxy -c)", () => {
  const which = spawnSync("haproxy", ["-v"], { encoding: "utf8" });
  if (which.error) throw new Error(`haproxy is not installed (${which.error.code}): scripts/test balancer installs Debian's package`);
  const r = spawnSync("haproxy", ["-c", "-f", join(repo, "scripts", "haproxy", "haproxy.cfg")], {
    env: { PATH: process.env.PATH, ...env(services.lb) },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  // The only warnings allowed: the node names do not resolve outside compose.
  const warnings = (r.stdout + r.stderr).split("\n").filter((l) => l.includes("[WARNING]"));
  for (const w of warnings) assert.match(w, /could not resolve address 'chat[123]'/);
  const text = readFileSync(join(repo, "scripts", "haproxy", "haproxy.cfg"), "utf8");
  assert.match(text, /^\s*balance source$/m);
  assert.match(text, /^\s*hash-type consistent$/m);
  assert.match(text, /http-check send meth GET uri \/readyz/);
  assert.match(text, /^\s*timeout tunnel /m);
  assert.match(text, /X-Forwarded-For/);
});

test("no secret is written in compose.yaml, and .env.example lists every variable it reads", () => {
  const secretName = /PASSW|SECRET|TOKEN|CREDENTIAL|AUTH/i;
  for (const [name, s] of Object.entries(services)) {
    for (const [k, v] of Object.entries(env(s))) {
      if (secretName.test(k)) assert.match(v, /^\$\{[A-Z0-9_]+:\?[^}]*\}$/, `${name}.${k} comes from .env, required`);
    }
    const e = env(s);
    if (e.DATABASE_URL) {
      const userinfo = e.DATABASE_URL.match(/^[a-z]+:\/\/([^@]*)@/)[1];
      assert.match(userinfo, /^\$\{[A-Z_]+(:-[a-z]+)?\}:\$\{POSTGRES_PASSWORD:\?[^}]*\}$/, `${name}: the URL's password comes from .env`);
    }
  }
  // No literal password anywhere: in a URL, an option or a command line.
  assert.doesNotMatch(composeText, /:\/\/[^/\s$]+:[^@\s$]+@/, "no user:password@ literal in a URL");
  assert.doesNotMatch(composeText, /(requirepass|--password|-a)\s+(?!\$\$)[^\s]/, "no password on a command line");

  const example = readFileSync(join(repo, ".env.example"), "utf8");
  const listed = new Map(
    example.split("\n").filter((l) => /^[A-Z0-9_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  const read = new Set([...composeText.matchAll(/(?<!\$)\$\{([A-Z0-9_]+)/g)].map((m) => m[1]));
  for (const v of read) assert.ok(listed.has(v), `.env.example lists ${v}`);
  for (const v of listed.keys()) assert.ok(read.has(v), `compose.yaml reads ${v} that .env.example lists`);
  for (const [v, value] of listed) {
    if (secretName.test(v)) assert.equal(value, "", `.env.example leaves ${v} empty`);
  }
  // A default in .env.example is the default in compose.yaml.
  for (const m of composeText.matchAll(/(?<!\$)\$\{([A-Z0-9_]+):-([^}]*)\}/g)) {
    assert.equal(listed.get(m[1]), m[2], `.env.example shows ${m[1]}'s default`);
  }
  // .env stays out of git.
  const ignored = spawnSync("git", ["check-ignore", "-q", ".env"], { cwd: repo });
  assert.equal(ignored.status, 0, ".env is ignored by git");
});
