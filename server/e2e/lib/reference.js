// Starts the original-protocol reference server (fixtures/original-server.js).
import { fileURLToPath } from "node:url";
import { freePort, startProcess } from "../../../scripts/lib/harness.mjs";

export async function startReference(env = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const p = await startProcess("reference server", process.execPath, [fileURLToPath(new URL("../fixtures/original-server.js", import.meta.url))], {
    env: { PATH: process.env.PATH, PORT: String(port), ...env },
    readyUrl: `${url}/healthz`,
    timeoutMs: 10_000,
  });
  return { ...p, url };
}
