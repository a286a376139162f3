"use client";

import { useChat } from "./ChatProvider";
import { ConnectionBadge } from "./ConnectionBadge";
import { ErrorBanner } from "./ErrorBanner";
import { MessageList } from "./MessageList";
import { Composer } from "./Composer";

/** ChatRoom is the one global room: header, the server's errors, the messages and the input. */
export function ChatRoom({ me }: { me: string }) {
  const { state, status, send, retry, remove, dismissError, setUsername, canModerate, deleteMessage } = useChat();
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
      <MessageList
        items={state.items}
        me={me}
        connected={status === "live"}
        onRetry={retry}
        onRemove={remove}
        onDelete={canModerate ? deleteMessage : undefined}
      />
      <Composer status={status} onSend={send} />
    </main>
  );
}
