"use client";

import { useId, useMemo, useState } from "react";
import { useChat } from "./ChatProvider";
import { ConnectionBadge } from "./ConnectionBadge";
import { ErrorBanner } from "./ErrorBanner";
import { MessageList } from "./MessageList";
import { Composer } from "./Composer";
import { OnlineList } from "./OnlineList";
import { RoomHeader } from "./RoomHeader";
import { RoomList, unreadElsewhere } from "./RoomList";
import { itemsOf } from "@/lib/chat-state";
import { liveOf, typingLine, type OnlineUser } from "@/lib/live-state";
import { listedRooms, roomById, roomTitle } from "@/lib/rooms-state";

/**
 * ChatRoom is the chat: the header, the server's errors and room notices,
 * the room list (when the server has rooms; on a phone behind the Rooms
 * button), the open room's messages, who is typing there and the input, and
 * who is online in it beside them, with a direct message to each (and, for
 * the room's owner, their removal).
 */
export function ChatRoom({ me }: { me: string }) {
  const { state, status, send, retry, remove, dismissError, setUsername, live, typing, stopTyping, canModerate, userId, deleteMessage, rooms, isOwn } =
    useChat();
  const [navOpen, setNavOpen] = useState(false);
  const [said, setSaid] = useState<string | null>(null);
  const navId = useId();
  const active = rooms.active;
  const hasRooms = rooms.state.availability === "yes";
  const room = roomById(rooms.state, active);
  const roomLive = liveOf(live, active);
  const items = useMemo(() => itemsOf(state.items, active), [state.items, active]);
  const typingNow = status === "live" ? typingLine(roomLive.typing, me) : "";
  const owner = !!userId && room.createdBy === userId;
  const elsewhere = hasRooms ? unreadElsewhere(listedRooms(rooms.state, active), active, state.items, isOwn) : 0;
  const notice = rooms.state.notice;

  // What the user may do with someone online: a direct message; their
  // removal from this room (its owner, or a moderator).
  const canDM = hasRooms && !!userId;
  const canRemove = hasRooms && !!userId && (owner || canModerate) && (room.kind === "public" || room.kind === "private");
  const actions = (u: OnlineUser) => {
    const uid = u.userId;
    if (!uid || uid === userId) return null;
    return (
      <>
        {canDM && (
          <button
            type="button"
            className="link"
            aria-label={`Message ${u.name}`}
            onClick={async () => {
              setSaid(await rooms.directMessage(uid, u.name));
              setNavOpen(false);
            }}
          >
            Message
          </button>
        )}
        {canRemove && (
          <button type="button" className="link danger" aria-label={`Remove ${u.name} from the room`} onClick={async () => setSaid(await rooms.remove(room.id, uid, u.name))}>
            Remove
          </button>
        )}
      </>
    );
  };

  return (
    <main className={hasRooms ? "room with-rooms" : "room"}>
      <header className="top">
        {hasRooms && (
          <button type="button" className="rooms-toggle secondary" aria-expanded={navOpen} aria-controls={navId} onClick={() => setNavOpen(!navOpen)}>
            Rooms
            {elsewhere > 0 && (
              <span className="unread" data-testid="unread-elsewhere">
                {elsewhere}
                <span className="visually-hidden"> unread</span>
              </span>
            )}
          </button>
        )}
        <h1>Chat</h1>
        <ConnectionBadge status={status} online={status === "live" ? roomLive.online : null} />
        <p className="me">
          <span>
            You are <strong data-testid="me">{me}</strong>
          </span>
          <button type="button" className="link" onClick={() => void setUsername(null)}>
            Change name
          </button>
        </p>
      </header>
      <ErrorBanner error={state.lastError} onDismiss={dismissError} />
      {(notice || said) && (
        <div className="notice" role="status" data-testid="room-notice">
          <p>{notice?.text ?? said}</p>
          <button
            type="button"
            className="link"
            onClick={() => {
              rooms.dismissNotice();
              setSaid(null);
            }}
          >
            Dismiss
          </button>
        </div>
      )}
      <div className="body">
        {hasRooms && <RoomList id={navId} open={navOpen} onChoose={() => setNavOpen(false)} />}
        <section className="conversation" aria-label={`Messages of ${roomTitle(room)}`}>
          {hasRooms && <RoomHeader key={`head ${active}`} room={room} owner={owner} />}
          <MessageList
            key={`list ${active}`}
            items={items}
            me={me}
            meId={userId}
            connected={status === "live"}
            onRetry={retry}
            onRemove={remove}
            onDelete={canModerate || (owner && (room.kind === "public" || room.kind === "private")) ? deleteMessage : undefined}
            paging={rooms.state.paging[active]}
            onLoadOlder={hasRooms ? () => rooms.loadOlder(active) : undefined}
            onSeen={rooms.setSeen}
          />
          <p className="typing" data-testid="typing" aria-live="polite">
            {typingNow}
          </p>
          <Composer key={`input ${active}`} status={status} onSend={send} onTyping={typing} onStopTyping={stopTyping} />
        </section>
        <OnlineList
          users={roomLive.users}
          online={status === "live" ? roomLive.online : null}
          notices={roomLive.notices}
          me={me}
          meId={userId}
          actions={canDM || canRemove ? actions : undefined}
        />
      </div>
    </main>
  );
}
