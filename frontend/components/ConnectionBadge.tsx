"use client";

import type { ConnectionStatus } from "@/lib/chat-state";

const LABELS: Record<ConnectionStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/** ConnectionBadge shows the connection state, announced to screen readers when it changes. */
export function ConnectionBadge({ status, online }: { status: ConnectionStatus; online: number | null }) {
  return (
    <p className="status-line">
      <span className={`badge badge-${status}`} role="status" data-testid="connection" data-status={status}>
        <span className="dot" aria-hidden="true" />
        {LABELS[status]}
      </span>
      {online !== null && (
        <span className="online" data-testid="online">
          {online} online
        </span>
      )}
    </p>
  );
}
