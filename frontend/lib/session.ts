// Sign-in with the chat server, when it asks for one. GET /api/config says
// whether tokens are wanted (auth "off", "optional" or "required") and
// whether the server signs guests in; POST /api/session {username} gives a
// guest a token for a name no other live guest holds (409 otherwise). A
// server without /api/config (the original) wants nothing: auth "off".
// The token goes in the Socket.IO CONNECT's auth; the server checks it.

/** What the server asks of clients. */
export interface AuthConfig {
  auth: "off" | "optional" | "required";
  guest: boolean;
}

/** A token and when it expires (epoch ms). */
export interface Session {
  token: string;
  expiresAt: number;
  username: string;
}

export const AUTH_OFF: AuthConfig = { auth: "off", guest: false };

/** Reads GET /api/config; any failure means the original protocol (auth off). */
export async function fetchAuthConfig(url: string, signal?: AbortSignal): Promise<AuthConfig> {
  try {
    const res = await fetch(`${url}/api/config`, { signal });
    if (!res.ok) return AUTH_OFF;
    const body = (await res.json()) as Record<string, unknown>;
    const auth = body.auth === "optional" || body.auth === "required" ? body.auth : "off";
    return { auth, guest: body.guest === true };
  } catch {
    return AUTH_OFF;
  }
}

/** Why a guest sign-in failed: the server's code and a sentence. */
export class SignInError extends Error {
  constructor(
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Signs a guest in as username; current renews a session of the same name. */
export async function signInGuest(url: string, username: string, current?: Session | null): Promise<Session> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (current && current.username === username) headers.Authorization = `Bearer ${current.token}`;
  let res: Response;
  try {
    res = await fetch(`${url}/api/session`, { method: "POST", headers, body: JSON.stringify({ username }) });
  } catch {
    throw new SignInError("unavailable", "The server cannot be reached.");
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const err = (body.error ?? {}) as Record<string, unknown>;
    const code = typeof err.code === "string" ? err.code : "internal";
    const reason = typeof err.reason === "string" ? err.reason : `the server answered ${res.status}`;
    throw new SignInError(code, reason);
  }
  const expiresAt = typeof body.expiresAt === "string" ? Date.parse(body.expiresAt) : NaN;
  if (typeof body.token !== "string" || Number.isNaN(expiresAt)) throw new SignInError("internal", "The server's answer could not be read.");
  return { token: body.token, expiresAt, username: typeof body.username === "string" ? body.username : username };
}

/**
 * The roles a token claims, read without verifying it: only to show a
 * moderator the delete control. The server verifies every action.
 */
export function tokenRoles(token: string | null | undefined): string[] {
  const roles = tokenClaims(token).roles;
  if (Array.isArray(roles)) return roles.filter((r): r is string => typeof r === "string");
  if (typeof roles === "string") return roles.split(/\s+/).filter(Boolean);
  return [];
}

/**
 * The user id a token names (its sub), read without verifying it: the
 * server puts the verified sender's id on every message (userId), and the
 * page tells its own messages by it. Null when there is no token.
 */
export function tokenSubject(token: string | null | undefined): string | null {
  const sub = tokenClaims(token).sub;
  return typeof sub === "string" && sub !== "" ? sub : null;
}

/** A JWT's claims, decoded and not verified; {} for anything else. */
function tokenClaims(token: string | null | undefined): Record<string, unknown> {
  const part = token?.split(".")[1];
  if (!part) return {};
  try {
    const claims: unknown = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : {};
  } catch {
    return {}; // not a JWT
  }
}

/** Whether a token's roles name a moderator. */
export function isModeratorToken(token: string | null | undefined): boolean {
  const roles = tokenRoles(token);
  return roles.includes("moderator") || roles.includes("admin");
}

const TOKEN_KEY = "chat.token";

/** A token the user pasted (a moderator's, say), kept for this tab. */
export function readPastedToken(): string | null {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function writePastedToken(token: string | null): void {
  try {
    if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
    else window.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // this tab only, then
  }
}
