"use client";

import { useChat } from "./ChatProvider";
import { ChatRoom } from "./ChatRoom";
import { UsernameForm } from "./UsernameForm";

/** Chat shows the name screen until the user has a name, then the room. */
export function Chat() {
  const { username } = useChat();
  if (username === undefined) {
    return (
      <main className="welcome" aria-busy="true">
        <p>Loading…</p>
      </main>
    );
  }
  return username === null ? <UsernameForm /> : <ChatRoom me={username} />;
}
