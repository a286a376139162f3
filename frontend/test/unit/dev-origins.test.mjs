// Unit tests of the origins next dev allows (pure logic; compiled by run.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { devOrigins } from "../../test-results/unit-build/dev-origins.js";

test("the host name, its mDNS name and every interface address", () => {
  const got = devOrigins("Build-Box", {
    lo: [
      { address: "127.0.0.1", family: "IPv4" },
      { address: "::1", family: "IPv6" },
    ],
    eth0: [
      { address: "192.168.1.20", family: "IPv4" },
      { address: "2001:DB8::20", family: 6 },
      { address: "fe80::1%eth0", family: "IPv6" },
    ],
  });
  assert.deepEqual(got, ["build-box", "build-box.local", "127.0.0.1", "[::1]", "192.168.1.20", "[2001:db8::20]"]);
});

test("a dotted host name is kept as it is; localhost and missing lists add nothing", () => {
  assert.deepEqual(devOrigins("box.example.org", { eth0: undefined }), ["box.example.org"]);
  assert.deepEqual(devOrigins("localhost", {}), []);
  assert.deepEqual(devOrigins(" ", { lo: [{ address: "127.0.0.1", family: "IPv4" }, { address: "127.0.0.1", family: "IPv4" }] }), ["127.0.0.1"]);
});

test("no wildcard: only names and addresses of this machine", () => {
  for (const o of devOrigins("vm", { lo: [{ address: "127.0.0.1", family: "IPv4" }] })) assert.doesNotMatch(o, /\*/);
});
