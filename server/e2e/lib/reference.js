// Starts the original-protocol reference server (fixtures/original-server.js).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, sleep } from "./harness.js";

export async function startReference(env = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(new URL("../fixtures/original-server.js", import.meta.url))], {
    env: { PATH: process.env.PATH, PORT: String(port), ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let logs = "";
  child.stderr.on("data", (d) => (logs += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`reference server exited:\n${logs}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {}
    if (i > 400) throw new Error(`reference server did not start:\n${logs}`);
    await sleep(25);
  }
  return {
    url,
    logs: () => logs,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}
