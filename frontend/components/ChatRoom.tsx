"use client";

import { useChat } from "./ChatProvider";
import { ConnectionBadge } from "./ConnectionBadge";
import { ErrorBanner } from "./ErrorBanner";
import { MessageList } from "./MessageList";
import { Composer } from "./Composer";
import { OnlineList } from "./OnlineList";
import { typingLine } from "@/lib/live-state";

/**
 * ChatRoom is the one global room: header, the server's errors, the
 * messages, who is typing and the input, with who is online beside them.
 */
export function ChatRoom({ me }: { me: string }) {
  const { state, status, send, retry, remove, dismissError, setUsername, live, typing, stopTyping, canModerate, userId, deleteMessage } =
    useChat();
  const typingNow = status === "live" ? typingLine(live.typing, me) : "";
  return (
    <main className="room">
      <header className="top">
        <h1>Chat</h1>
        <ConnectionBadge status={status} online={status === "live" ? state.online : null} />
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
      <div className="body">
        <section className="conversation" aria-label="Messages">
          <MessageList
            items={state.items}
            me={me}
            meId={userId}
            connected={status === "live"}
            onRetry={retry}
            onRemove={remove}
            onDelete={canModerate ? deleteMessage : undefined}
          />
          <p className="typing" data-testid="typing" aria-live="polite">
            {typingNow}
          </p>
          <Composer status={status} onSend={send} onTyping={typing} onStopTyping={stopTyping} />
        </section>
        <OnlineList users={live.users} online={status === "live" ? state.online : null} notices={live.notices} me={me} meId={userId} />
      </div>
    </main>
  );
}
