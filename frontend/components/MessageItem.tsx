"use client";

import { memo } from "react";
import { describeError, isRetryable, type ChatItem } from "@/lib/chat-state";

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

function Delivery({
  item,
  connected,
  onRetry,
  onRemove,
}: {
  item: ChatItem;
  connected: boolean;
  onRetry: (id: string) => void;
  onRemove: (id: string) => void;
}) {
  const out = item.out;
  const clientId = item.clientId;
  if (!out || !clientId) return null;
  switch (out.delivery) {
    case "pending":
      return (
        <span className="delivery pending" data-delivery="pending">
          {!connected && !out.inFlight
            ? "Waiting for the connection…"
            : out.error
              ? `Retrying… (${describeError(out.error)})`
              : "Sending…"}
        </span>
      );
    case "stored":
      return (
        <span className="delivery" data-delivery="stored">
          Sent
        </span>
      );
    case "echoed":
      return (
        <span className="delivery" data-delivery="echoed" title="Delivered; this server does not confirm messages">
          Sent (unconfirmed)
        </span>
      );
    case "unconfirmed":
    case "failed": {
      const text =
        out.delivery === "failed" && out.error ? `Not sent: ${describeError(out.error)}` : "Not confirmed by the server";
      const canRetry = out.delivery === "unconfirmed" || (out.error !== undefined && isRetryable(out.error.code));
      return (
        <span className="delivery failed" data-delivery={out.delivery}>
          {text}
          {canRetry && (
            <button type="button" className="link" onClick={() => onRetry(clientId)}>
              Retry
            </button>
          )}
          <button type="button" className="link" onClick={() => onRemove(clientId)}>
            Remove
          </button>
        </span>
      );
    }
  }
}

/**
 * MessageItem is one message: author (marked "not signed in" when the server
 * says its sender was not verified), time, text (always as text, never as
 * HTML), and for own messages their delivery.
 */
export const MessageItem = memo(function MessageItem({
  item,
  own,
  connected,
  onRetry,
  onRemove,
  onDelete,
}: {
  item: ChatItem;
  own: boolean;
  connected: boolean;
  onRetry: (clientId: string) => void;
  onRemove: (clientId: string) => void;
  /** Set for moderators: the delete control. */
  onDelete?: (id: string) => void;
}) {
  const when = item.createdAt ? new Date(item.createdAt) : new Date(item.localAt);
  return (
    <li className={own ? "msg own" : "msg"} data-own={own} data-id={item.id ?? ""} data-verified={item.verified ?? ""}>
      <div className="meta">
        <span className="author">{item.username || "anonymous"}</span>
        {item.verified === false && (
          <span className="unverified" data-testid="unverified" title="Not signed in: anyone can type this name">
            not signed in
          </span>
        )}
        <time dateTime={when.toISOString()} title={fullFormat.format(when)}>
          {timeFormat.format(when)}
        </time>
        {onDelete && item.id && (
          <button
            type="button"
            className="link delete"
            data-testid="delete"
            aria-label={`Delete this message of ${item.username || "anonymous"} for everyone`}
            onClick={() => onDelete(item.id as string)}
          >
            Delete
          </button>
        )}
      </div>
      <p className="text">{item.text}</p>
      {own && <Delivery item={item} connected={connected} onRetry={onRetry} onRemove={onRemove} />}
    </li>
  );
});
