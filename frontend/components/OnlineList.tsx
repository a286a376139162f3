"use client";

import type { ReactNode } from "react";
import { isMe, sortedUsers, type Notice, type OnlineUser } from "@/lib/live-state";

/**
 * OnlineList is the side list of who is online in the open room (each user
 * once, whatever their number of tabs), the user first, and a quiet line for
 * whoever else came or went lately; actions gives the controls beside each
 * other user (a direct message, a removal). Above the server's
 * PRESENCE_LIST_LIMIT it shows the count only; against a server that lists
 * no one (the original), nothing.
 */
export function OnlineList({
  users,
  online,
  notices,
  me,
  meId,
  actions,
}: {
  users: OnlineUser[] | null;
  online: number | null;
  notices: Notice[];
  me: string;
  /** The user's verified user id (its token's sub); null without a token. */
  meId: string | null;
  /** Controls beside another user. */
  actions?: (u: OnlineUser) => ReactNode;
}) {
  if (users === null && online === null) return null;
  const list = users === null ? null : sortedUsers(users, me, meId);
  // Connections beyond one per user listed: more tabs of a user, or
  // clients that gave no name (the original client, a name screen).
  const more = online !== null && list !== null ? Math.max(0, online - list.length) : 0;
  return (
    <aside className="people" aria-label="Who is online">
      <details open>
        <summary>
          <h2>Online</h2>
          {list !== null && <span className="count">{list.length}</span>}
        </summary>
        {list === null ? (
          <p className="muted">{online} connected</p>
        ) : (
          <ul data-testid="online-users">
            {list.map((u) => (
              <li key={u.userId ?? u.name} data-name={u.name} className={isMe(u, me, meId) ? "you" : undefined}>
                <span className="dot" aria-hidden="true" />
                <span className="name">{u.name}</span>
                {isMe(u, me, meId) ? <span className="muted"> (you)</span> : actions && <span className="user-actions">{actions(u)}</span>}
              </li>
            ))}
          </ul>
        )}
        {more > 0 && (
          <p className="muted" title="More tabs of these users, or clients that gave no name">
            and {more} more {more === 1 ? "connection" : "connections"}
          </p>
        )}
      </details>
      <ul className="notices" data-testid="notices" aria-live="polite">
        {notices
          .filter((n) => n.name !== me)
          .map((n) => (
            <li key={n.key} data-kind={n.kind}>
              {n.name} {n.kind === "join" ? "joined" : "left"}
            </li>
          ))}
      </ul>
    </aside>
  );
}
