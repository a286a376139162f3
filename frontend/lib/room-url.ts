// The open room is the page's URL (`?room=<id>`; none: the global room), read
// through useSyncExternalStore: a reload or a shared link opens the room,
// the browser's back and forward buttons move between rooms, and the server
// render (which has no URL to read here) shows the global room.

import { GLOBAL, roomFromSearch, roomHref } from "./rooms-state";

const listeners = new Set<() => void>();

export function subscribeRoom(onChange: () => void): () => void {
  listeners.add(onChange);
  window.addEventListener("popstate", onChange);
  return () => {
    listeners.delete(onChange);
    window.removeEventListener("popstate", onChange);
  };
}

export function readRoom(): string {
  return roomFromSearch(window.location.search);
}

export function readRoomOnServer(): string {
  return GLOBAL;
}

/** Opens room id: a new history entry, or, with replace, instead of the current one (a room that went away). */
export function goToRoom(id: string, replace = false): void {
  if (readRoom() === id) return;
  const href = roomHref(id);
  if (replace) window.history.replaceState(null, "", href);
  else window.history.pushState(null, "", href);
  for (const l of listeners) l();
}
