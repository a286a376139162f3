// Compiles the pure logic (lib/chat-state.ts, lib/live-state.ts,
// lib/dev-origins.ts, lib/rooms-state.ts) with the project's TypeScript into
// test-results/unit-build, then runs the unit tests on it with node's
// test runner. Exits with the runner's status.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = join(root, "test-results", "unit-build");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
execFileSync(
  process.execPath,
  [
    join(root, "node_modules", "typescript", "bin", "tsc"),
    "lib/chat-state.ts",
    "lib/live-state.ts",
    "lib/dev-origins.ts",
    "lib/rooms-state.ts",
    "--outDir", out,
    "--module", "es2022",
    "--target", "es2022",
    "--strict",
    "--skipLibCheck",
  ],
  { cwd: root, stdio: "inherit" },
);
const tests = readdirSync(join(root, "test", "unit"))
  .filter((f) => f.endsWith(".test.mjs"))
  .map((f) => join("test", "unit", f));
const r = spawnSync(process.execPath, ["--test", ...tests], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
