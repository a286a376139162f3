// The reference fixture speaks the original protocol (it is used as the
// baseline of benchmarks and browser tests, so it must keep working).
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, until } from "../lib/harness.js";
import { startReference } from "../lib/reference.js";

test("the original-protocol reference server broadcasts {message, username}", async () => {
  const ref = await startReference();
  try {
    const a = await connect(ref.url);
    const b = await connect(ref.url);
    a.emit("event:message", { message: "hi", username: "alice" });
    await until(() => b.messages.length === 1, 5000, "broadcast");
    assert.deepEqual(b.messages[0], { message: "hi", username: "alice" });
    a.disconnect();
    b.disconnect();
  } finally {
    await ref.stop();
  }
});
