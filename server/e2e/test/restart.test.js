// A client that outlives a server restart resumes after the last message it
// saw: its session is gone, but its recovery offset (a message id) tells
// the server where it stopped, so nothing is shown twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, connect, until, sleep, emitAck } from "../lib/harness.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

for (const [mode, opts] of Object.entries({ default: {}, websocket: { transports: ["websocket"] }, polling: { transports: ["polling"] } })) {
  test(`a client that outlives a restart gets no duplicate (${mode})`, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "chat-restart-"));
    try {
      let server = await startServer({}, { dataDir });
      const port = server.port;
      const writer = await connect(server.url, opts);
      for (let i = 0; i < 3; i++) await emitAck(writer, { message: `before ${i}`, username: "w" });
      const reader = await connect(server.url, opts);
      await until(() => reader.messages.length === 3, 5000, "history");
      writer.disconnect();
      await server.stopKeepData();
      await until(() => !reader.connected, 5000, "reader notices");
      server = await startServer({ PORT: String(port) }, { dataDir });
      await until(() => reader.connected, 15_000, "reader reconnects");
      const again = await connect(server.url, opts);
      await emitAck(again, { message: "after restart", username: "w" });
      await until(() => reader.messages.some((m) => m.message === "after restart"), 5000, "live after restart");
      await sleep(300);
      assert.deepEqual(
        reader.messages.map((m) => m.message),
        ["before 0", "before 1", "before 2", "after restart"],
        "no history replayed, no duplicate",
      );
      reader.disconnect();
      again.disconnect();
      await server.stopKeepData();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
}
