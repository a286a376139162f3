// The username, kept in localStorage across reloads, read through
// useSyncExternalStore so that the server render and the first client render
// agree (the name is unknown on the server) and other tabs' changes show.

const KEY = "chat.username";
const listeners = new Set<() => void>();
/** Used when localStorage is unavailable (some private modes refuse it). */
let memory: string | null = null;

function notify(): void {
  for (const l of listeners) l();
}

/** Subscribes to changes of the name, here and in other tabs. */
export function subscribeUsername(onChange: () => void): () => void {
  listeners.add(onChange);
  const onStorage = (e: StorageEvent) => {
    if (e.key === KEY || e.key === null) onChange();
  };
  window.addEventListener("storage", onStorage);
  return () => {
    listeners.delete(onChange);
    window.removeEventListener("storage", onStorage);
  };
}

/** The stored name, or null when there is none. */
export function readUsername(): string | null {
  try {
    const v = window.localStorage.getItem(KEY);
    return v !== null && v.trim() !== "" ? v : null;
  } catch {
    return memory;
  }
}

/** On the server the name is unknown: undefined. */
export function readUsernameOnServer(): undefined {
  return undefined;
}

/** Stores the name (null forgets it). */
export function writeUsername(name: string | null): void {
  memory = name;
  try {
    if (name === null) window.localStorage.removeItem(KEY);
    else window.localStorage.setItem(KEY, name);
  } catch {
    // memory keeps it for this page
  }
  notify();
}
