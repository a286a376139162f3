"use client";

import { useEffect, useId, useState } from "react";
import { roomTitle, type Room } from "@/lib/rooms-state";
import { useChat } from "./ChatProvider";

/** How long the search waits after a keystroke. */
const SEARCH_DELAY_MS = 250;

/** BrowseRooms finds public rooms by the start of their name, and joins them. */
export function BrowseRooms({ onDone }: { onDone: () => void }) {
  const { rooms, state } = useChat();
  const { search, open: openRoom } = rooms;
  const [open, setOpen] = useState(false);
  const [q, setQ] = useState("");
  const [found, setFound] = useState<{ rooms: Room[]; next: string | null; q: string } | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const inputId = useId();
  const panelId = useId();
  const connected = state.connection.connected;

  useEffect(() => {
    if (!open) return;
    let stopped = false;
    const t = setTimeout(() => {
      void search(q.trim()).then((r) => {
        if (stopped) return;
        if (typeof r === "string") setProblem(r);
        else {
          setProblem(null);
          setFound({ ...r, q });
        }
      });
    }, SEARCH_DELAY_MS);
    return () => {
      stopped = true;
      clearTimeout(t);
    };
    // connected: look again when the connection is back.
  }, [open, q, search, connected]);

  async function more() {
    if (!found?.next) return;
    const r = await search(found.q.trim(), found.next);
    if (typeof r === "string") setProblem(r);
    else setFound({ rooms: [...found.rooms, ...r.rooms], next: r.next, q: found.q });
  }

  if (!open) {
    return (
      <button type="button" className="secondary" aria-expanded={false} aria-controls={panelId} onClick={() => setOpen(true)}>
        Find public rooms
      </button>
    );
  }
  return (
    <section id={panelId} className="panel" aria-label="Find public rooms" onKeyDown={(e) => e.key === "Escape" && setOpen(false)}>
      <label htmlFor={inputId}>Search public rooms</label>
      <input id={inputId} type="search" autoComplete="off" autoFocus value={q} placeholder="Start of a name" onChange={(e) => setQ(e.target.value)} />
      {problem && (
        <p className="problem" role="alert">
          {problem}
        </p>
      )}
      {found && (
        <ul className="found" data-testid="found-rooms" aria-live="polite">
          {found.rooms.length === 0 && <li className="muted">No public room{found.q.trim() ? ` starts with “${found.q.trim()}”` : " yet"}.</li>}
          {found.rooms.map((r) => (
            <li key={r.id} data-room={r.id}>
              <span className="name"># {roomTitle(r)}</span>
              <button
                type="button"
                className="link"
                aria-label={`${r.member ? "Open" : "Join"} ${roomTitle(r)}`}
                onClick={() => {
                  openRoom(r.id);
                  setOpen(false);
                  onDone();
                }}
              >
                {r.member ? "Open" : "Join"}
              </button>
            </li>
          ))}
        </ul>
      )}
      <div className="row">
        {found?.next && (
          <button type="button" className="link" onClick={() => void more()}>
            More
          </button>
        )}
        <button type="button" className="link" onClick={() => setOpen(false)}>
          Close
        </button>
      </div>
    </section>
  );
}
