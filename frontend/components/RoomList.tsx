"use client";

import type { MouseEvent } from "react";
import { GLOBAL, listedRooms, roomHref, roomTitle, unreadLabel, unreadOf, type Room } from "@/lib/rooms-state";
import type { ChatItem } from "@/lib/chat-state";
import { useChat } from "./ChatProvider";
import { BrowseRooms } from "./BrowseRooms";
import { NewRoomForm } from "./NewRoomForm";

/** The mark before a room's name, by kind (its kind is also said in words, for screen readers). */
function KindMark({ room }: { room: Room }) {
  const mark = room.kind === "direct" ? "@" : "#";
  const words = room.kind === "direct" ? "direct messages" : room.kind === "private" ? "private room" : "room";
  return (
    <>
      <span className="mark" aria-hidden="true">
        {mark}
      </span>
      <span className="visually-hidden">{words}: </span>
    </>
  );
}

/** Whether a click on a link should be left to the browser (a new tab or window). */
const leftToBrowser = (e: MouseEvent) => e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey;

/**
 * RoomList is the side list of rooms: the global room first, then the
 * user's rooms, each with its unread count, as links (a room's URL opens it
 * after a reload, or in another tab); below, making a room and finding
 * public ones. An anonymous user is told why it sees public rooms only.
 * On a phone it folds away behind the header's Rooms button (open).
 */
export function RoomList({ id, open, onChoose }: { id: string; open: boolean; onChoose: () => void }) {
  const { rooms, state, isOwn, userId, auth } = useChat();
  const active = rooms.active;
  const list = listedRooms(rooms.state, active);
  return (
    <nav id={id} className={open ? "rooms open" : "rooms"} aria-label="Rooms">
      <h2>Rooms</h2>
      <ul data-testid="room-list">
        {list.map((r) => {
          // The open room's messages are read as they come.
          const n = r.id === active ? 0 : unreadOf(r, state.items, isOwn);
          return (
            <li key={r.id}>
              <a
                href={roomHref(r.id)}
                data-room={r.id}
                data-kind={r.kind}
                aria-current={r.id === active ? "page" : undefined}
                onClick={(e) => {
                  if (leftToBrowser(e)) return;
                  e.preventDefault();
                  rooms.open(r.id);
                  onChoose();
                }}
              >
                <KindMark room={r} />
                <span className="name" title={roomTitle(r)}>
                  {roomTitle(r)}
                </span>
                {r.kind === "private" && <span className="tag">private</span>}
                {n > 0 && (
                  <span className="unread" data-testid="unread" data-count={n}>
                    {unreadLabel(n)}
                    <span className="visually-hidden"> unread</span>
                  </span>
                )}
              </a>
            </li>
          );
        })}
      </ul>
      {userId ? (
        <NewRoomForm onDone={onChoose} />
      ) : (
        <p className="muted anonymous" data-testid="anonymous-rooms">
          You are not signed in, so you see the public rooms only: private rooms, direct messages and unread counts need a
          verified name.{" "}
          {auth?.auth === "off"
            ? "This server does not sign users in."
            : auth?.guest
              ? "Choose your name again (Change name) to sign in as a guest."
              : "Sign in with a token (Change name) to get them."}
        </p>
      )}
      <BrowseRooms onDone={onChoose} />
    </nav>
  );
}

/** The unread messages of every room but the open one, for the phone's Rooms button. */
export function unreadElsewhere(roomsList: Room[], active: string, items: readonly ChatItem[], own: (it: ChatItem) => boolean): number {
  let n = 0;
  for (const r of roomsList) if (r.id !== active && r.id !== GLOBAL) n += unreadOf(r, items, own);
  return n;
}
