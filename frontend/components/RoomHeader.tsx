"use client";

import { useState } from "react";
import { isMe, liveOf, type OnlineUser } from "@/lib/live-state";
import { GLOBAL, roomTitle, type Room } from "@/lib/rooms-state";
import { useChat } from "./ChatProvider";

/**
 * RoomHeader names the open room and what the user may do in it: invite
 * (a private room's owner or a moderator; any member of a public room),
 * leave, and delete it (its owner or a moderator). The server checks each.
 * The results are said in a status line.
 */
export function RoomHeader({ room, owner }: { room: Room; owner: boolean }) {
  const { rooms, live, userId, username, canModerate } = useChat();
  const [inviting, setInviting] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [said, setSaid] = useState<string | null>(null);
  const title = roomTitle(room);
  const manage = owner || canModerate;
  const canInvite = !!userId && room.member && ((room.kind === "private" && manage) || room.kind === "public");
  const canDelete = !!userId && manage && (room.kind === "public" || room.kind === "private");
  const kind =
    room.kind === "global" ? "everyone" : room.kind === "direct" ? "direct messages" : room.kind === "private" ? "private room" : "public room";

  // Whom to invite: who is online in the global room and not in this one.
  const here = liveOf(live, room.id).users ?? [];
  const candidates = (liveOf(live, GLOBAL).users ?? []).filter(
    (u): u is OnlineUser & { userId: string } =>
      !!u.userId && !isMe(u, username ?? null, userId) && !here.some((h) => h.userId === u.userId),
  );

  return (
    <div className="room-head" data-testid="room-head" data-room={room.id}>
      <h2>
        <span className="mark" aria-hidden="true">
          {room.kind === "direct" ? "@" : "#"}
        </span>
        {title}
      </h2>
      <span className="muted kind">{kind}</span>
      {room.id !== GLOBAL && (
        <div className="actions">
          {canInvite && (
            <button type="button" className="link" aria-expanded={inviting} onClick={() => setInviting(!inviting)}>
              Invite
            </button>
          )}
          {room.member && (
            <button
              type="button"
              className="link"
              onClick={async () => {
                const p = await rooms.leave(room.id);
                if (p) setSaid(p);
              }}
            >
              Leave
            </button>
          )}
          {canDelete && !confirming && (
            <button type="button" className="link danger" onClick={() => setConfirming(true)}>
              Delete room
            </button>
          )}
        </div>
      )}
      {confirming && (
        <p className="confirm" role="group" aria-label="Delete the room">
          Delete “{title}” and its messages, for everyone?{" "}
          <button
            type="button"
            className="danger"
            autoFocus
            onClick={async () => {
              setConfirming(false);
              const p = await rooms.deleteRoom(room.id);
              if (p) setSaid(p);
            }}
          >
            Delete
          </button>{" "}
          <button type="button" className="link" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </p>
      )}
      {inviting && (
        <section className="panel invite" aria-label={`Invite to ${title}`} onKeyDown={(e) => e.key === "Escape" && setInviting(false)}>
          <h3>Invite someone who is online</h3>
          {candidates.length === 0 ? (
            <p className="muted">Everyone online who signed in is here already.</p>
          ) : (
            <ul data-testid="invite-list">
              {candidates.map((u) => (
                <li key={u.userId} data-name={u.name}>
                  <span className="name">{u.name}</span>
                  <button
                    type="button"
                    className="link"
                    aria-label={`Invite ${u.name}`}
                    onClick={async () => setSaid(await rooms.invite(room.id, u.userId, u.name))}
                  >
                    Invite
                  </button>
                </li>
              ))}
            </ul>
          )}
          <button type="button" className="link" onClick={() => setInviting(false)}>
            Done
          </button>
        </section>
      )}
      <p className="said" role="status" data-testid="room-said">
        {said}
      </p>
    </div>
  );
}
