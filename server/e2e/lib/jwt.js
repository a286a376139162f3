// Tokens for the tests, made with Node's own crypto: HS256 with a secret,
// EdDSA with an Ed25519 key pair generated at test time and served as a
// JWKS document on a local port. No key is ever written to the repository.
import { createHmac, generateKeyPairSync, randomBytes, sign as edSign } from "node:crypto";
import http from "node:http";

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

export const newSecret = () => randomBytes(32).toString("hex");

/** claims with defaults: sub, exp in an hour, iat now. */
export function claims(extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub: `user-${randomBytes(4).toString("hex")}`, iat: now, exp: now + 3600, ...extra };
}

export function hs256(secret, payload, header = {}) {
  const head = b64({ alg: "HS256", typ: "JWT", ...header });
  const body = b64(payload);
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** An unsigned token (alg none), which the server must refuse. */
export const algNone = (payload) => `${b64({ alg: "none", typ: "JWT" })}.${b64(payload)}.`;

/** Starts a JWKS server with one Ed25519 key; returns {url, sign(payload), close}. */
export async function startJWKS() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const jwk = { ...publicKey.export({ format: "jwk" }), kid: "ed-e2e", use: "sig", alg: "EdDSA" };
  let fetches = 0;
  const srv = http.createServer((req, res) => {
    fetches++;
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${srv.address().port}/jwks.json`,
    fetches: () => fetches,
    sign(payload) {
      const head = b64({ alg: "EdDSA", typ: "JWT", kid: "ed-e2e" });
      const body = b64(payload);
      const sig = edSign(null, Buffer.from(`${head}.${body}`), privateKey).toString("base64url");
      return `${head}.${body}.${sig}`;
    },
    close: () => new Promise((r) => srv.close(r)),
  };
}
