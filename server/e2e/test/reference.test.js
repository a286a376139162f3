// The reference fixture speaks the original protocol (it is used as the
// baseline of benchmarks and browser tests, so it must keep working).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, connect, until } from "../lib/harness.js";

test("the original-protocol reference server broadcasts {message, username}", async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(new URL("../fixtures/original-server.js", import.meta.url))], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {}
      if (i > 200) throw new Error("reference server did not start");
      await new Promise((r) => setTimeout(r, 25));
    }
    const a = await connect(url);
    const b = await connect(url);
    a.emit("event:message", { message: "hi", username: "alice" });
    await until(() => b.messages.length === 1, 5000, "broadcast");
    assert.deepEqual(b.messages[0], { message: "hi", username: "alice" });
    a.disconnect();
    b.disconnect();
  } finally {
    child.kill("SIGTERM");
  }
});
