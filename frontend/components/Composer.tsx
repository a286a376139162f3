"use client";

import { useId, useState, type FormEvent } from "react";
import type { ConnectionStatus } from "@/lib/chat-state";

/**
 * Composer is the message input: Enter (or the Send button) sends; while
 * offline messages queue. Typing in it tells the others (onTyping), leaving
 * it stops that (onStopTyping).
 */
export function Composer({
  status,
  onSend,
  onTyping,
  onStopTyping,
}: {
  status: ConnectionStatus;
  onSend: (text: string) => void;
  onTyping?: (hasText: boolean) => void;
  onStopTyping?: () => void;
}) {
  const [text, setText] = useState("");
  const inputId = useId();
  const hintId = useId();
  const live = status === "live";

  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (text.trim() === "") return;
    onSend(text);
    setText("");
  }

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor={inputId} className="visually-hidden">
        Message
      </label>
      <input
        id={inputId}
        name="message"
        type="text"
        autoComplete="off"
        autoFocus
        placeholder={live ? "Type a message and press Enter" : "Not connected: messages wait and go out when back"}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          onTyping?.(e.target.value.trim() !== "");
        }}
        onBlur={onStopTyping}
        aria-describedby={live ? undefined : hintId}
      />
      <button type="submit" disabled={text.trim() === ""}>
        Send
      </button>
      {!live && (
        <p id={hintId} className="visually-hidden">
          Not connected. Messages you send now are queued and sent when the connection is back.
        </p>
      )}
    </form>
  );
}
