"use client";

import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { isOwn, type ChatItem } from "@/lib/chat-state";
import type { Paging } from "@/lib/rooms-state";
import { MessageItem } from "./MessageItem";

/** How close to the bottom (px) still counts as "at the newest message". */
const NEAR_BOTTOM = 48;
/** How close to the top (px) asks for older messages. */
const NEAR_TOP = 80;
/** How long the list must stay unchanged before a list too short to scroll asks for older messages. */
const SETTLE_MS = 600;

/**
 * MessageList shows the messages of a room, oldest first. It stays scrolled
 * to the newest one unless the user scrolled up; then a button offers to
 * jump down. A message the user sends always brings the list down. Scrolled
 * to the top, it asks for older messages (onLoadOlder), and keeps what the
 * reader sees in place when they come. onSeen says whether the newest
 * messages are in view.
 */
export function MessageList({
  items,
  me,
  meId,
  connected,
  onRetry,
  onRemove,
  onDelete,
  paging,
  onLoadOlder,
  onSeen,
}: {
  items: ChatItem[];
  me: string;
  /** The user's verified user id (its token's sub); null without a token. */
  meId: string | null;
  connected: boolean;
  onRetry: (clientId: string) => void;
  onRemove: (clientId: string) => void;
  /** Set for moderators (and a room's owner): deletes a message for everyone. */
  onDelete?: (id: string) => void;
  /** Where the paging of older messages stands; onLoadOlder asks for the next page (none: no older history here). */
  paging?: Paging;
  onLoadOlder?: () => void;
  onSeen?: (seen: boolean) => void;
}) {
  const ref = useRef<HTMLOListElement>(null);
  const atBottom = useRef(true);
  const [showJump, setShowJump] = useState(false);
  // The first item and the height before this render: older messages that
  // came above keep the view where it was.
  const before = useRef<{ first?: string; height: number }>({ height: 0 });
  const askedAlone = useRef(false);
  const last = items.length > 0 ? items[items.length - 1] : undefined;
  const first = items[0]?.key;
  const lastIsNewOwn = last?.out?.delivery === "pending" && last.out.attempts === 0;
  const beginning = paging?.next === null;
  const loading = paging?.loading === true;

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const prev = before.current;
    if (prev.first !== undefined && first !== prev.first && !atBottom.current) {
      el.scrollTop += el.scrollHeight - prev.height;
    } else if (atBottom.current || lastIsNewOwn) {
      el.scrollTop = el.scrollHeight;
      atBottom.current = true;
    }
    before.current = { first, height: el.scrollHeight };
  }, [first, last?.key, items.length, lastIsNewOwn]);

  // Too few to scroll, once the history stopped coming: the older ones are
  // asked for once, so the top says whether there are more.
  const unasked = !!onLoadOlder && paging?.next === undefined && !loading;
  const loadOlder = useRef(onLoadOlder);
  useEffect(() => {
    loadOlder.current = onLoadOlder;
  });
  useEffect(() => {
    if (!unasked || askedAlone.current || items.length === 0) return;
    const t = setTimeout(() => {
      const el = ref.current;
      if (!el || el.scrollHeight > el.clientHeight) return;
      askedAlone.current = true;
      loadOlder.current?.();
    }, SETTLE_MS);
    return () => clearTimeout(t);
  }, [unasked, items.length]);

  useEffect(() => {
    onSeen?.(true);
  }, [onSeen]);

  function onScroll() {
    const el = ref.current;
    if (!el) return;
    before.current.height = el.scrollHeight;
    const near = el.scrollHeight - el.scrollTop - el.clientHeight <= NEAR_BOTTOM;
    if (near !== atBottom.current) onSeen?.(near);
    atBottom.current = near;
    if (near === showJump) setShowJump(!near);
    if (el.scrollTop <= NEAR_TOP && onLoadOlder && !beginning && !loading && !paging?.failed) onLoadOlder();
  }

  function jump() {
    const el = ref.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    atBottom.current = true;
    onSeen?.(true);
    setShowJump(false);
  }

  return (
    <div className="list-wrap">
      {/* Before the list, not in it: from the input, Shift+Tab reaches the list itself. */}
      {onLoadOlder && items.length > 0 && !beginning && !loading && (
        <button type="button" className="link older-more" data-testid="load-older" onClick={onLoadOlder}>
          {paging?.failed ? "Older messages did not load: try again" : "Load older messages"}
        </button>
      )}
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
        {onLoadOlder && items.length > 0 && (beginning || loading) && (
          <li className="older muted" data-testid="older" data-state={beginning ? "beginning" : "loading"}>
            {beginning ? "This is the beginning of the room." : "Loading older messages…"}
          </li>
        )}
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
