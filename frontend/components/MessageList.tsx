"use client";

import { useLayoutEffect, useRef, useState } from "react";
import { isOwn, type ChatItem } from "@/lib/chat-state";
import { MessageItem } from "./MessageItem";

/** How close to the bottom (px) still counts as "at the newest message". */
const NEAR_BOTTOM = 48;

/**
 * MessageList shows the messages, oldest first. It stays scrolled to the
 * newest one unless the user scrolled up; then a button offers to jump down.
 * A message the user sends always brings the list down.
 */
export function MessageList({
  items,
  me,
  meId,
  connected,
  onRetry,
  onRemove,
  onDelete,
}: {
  items: ChatItem[];
  me: string;
  /** The user's verified user id (its token's sub); null without a token. */
  meId: string | null;
  connected: boolean;
  onRetry: (clientId: string) => void;
  onRemove: (clientId: string) => void;
  /** Set for moderators: deletes a message for everyone. */
  onDelete?: (id: string) => void;
}) {
  const ref = useRef<HTMLOListElement>(null);
  const atBottom = useRef(true);
  const [showJump, setShowJump] = useState(false);
  const last = items.length > 0 ? items[items.length - 1] : undefined;
  const lastKey = last?.key;
  const lastIsNewOwn = last?.out?.delivery === "pending" && last.out.attempts === 0;

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (atBottom.current || lastIsNewOwn) {
      el.scrollTop = el.scrollHeight;
      atBottom.current = true;
    }
  }, [lastKey, items.length, lastIsNewOwn]);

  function onScroll() {
    const el = ref.current;
    if (!el) return;
    const near = el.scrollHeight - el.scrollTop - el.clientHeight <= NEAR_BOTTOM;
    atBottom.current = near;
    if (near === showJump) setShowJump(!near);
  }

  function jump() {
    const el = ref.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    atBottom.current = true;
    setShowJump(false);
  }

  return (
    <div className="list-wrap">
      <ol
        ref={ref}
        className="messages"
        role="log"
        aria-label="Messages"
        aria-live="polite"
        tabIndex={0}
        onScroll={onScroll}
        data-testid="messages"
      >
        {items.length === 0 && <li className="empty">No messages yet. Say hello!</li>}
        {items.map((it) => (
          <MessageItem key={it.key} item={it} own={isOwn(it, me, meId)} connected={connected} onRetry={onRetry} onRemove={onRemove} onDelete={onDelete} />
        ))}
      </ol>
      {showJump && (
        <button type="button" className="jump" onClick={jump}>
          Newest messages ↓
        </button>
      )}
    </div>
  );
}
