"use client";

import { useId, useState, type FormEvent } from "react";
import { useChat } from "./ChatProvider";

/** NewRoomForm makes a room: a name, public (anyone may join) or private (those the owner invites). */
export function NewRoomForm({ onDone }: { onDone: () => void }) {
  const { rooms } = useChat();
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [kind, setKind] = useState<"public" | "private">("public");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const nameId = useId();
  const formId = useId();

  // Each new room starts afresh: no name, public.
  function close() {
    setOpen(false);
    setName("");
    setKind("public");
    setProblem(null);
  }

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (name.trim() === "") {
      setProblem("A room needs a name.");
      return;
    }
    setBusy(true);
    const p = await rooms.create(name.trim(), kind);
    setBusy(false);
    setProblem(p);
    if (p === null) {
      close();
      onDone();
    }
  }

  if (!open) {
    return (
      <button type="button" className="secondary" aria-expanded={false} aria-controls={formId} onClick={() => setOpen(true)}>
        New room
      </button>
    );
  }
  return (
    <form
      id={formId}
      className="panel"
      onSubmit={submit}
      onKeyDown={(e) => e.key === "Escape" && close()}
      aria-label="New room"
      noValidate
    >
      <label htmlFor={nameId}>Room name</label>
      <input id={nameId} type="text" autoComplete="off" autoFocus value={name} onChange={(e) => setName(e.target.value)} />
      <fieldset>
        <legend>Who may join</legend>
        <label>
          <input type="radio" name="kind" value="public" checked={kind === "public"} onChange={() => setKind("public")} /> Public: anyone
        </label>
        <label>
          <input type="radio" name="kind" value="private" checked={kind === "private"} onChange={() => setKind("private")} /> Private: those
          you invite
        </label>
      </fieldset>
      {problem && (
        <p className="problem" role="alert">
          {problem}
        </p>
      )}
      <div className="row">
        <button type="submit" disabled={busy}>
          Create
        </button>
        <button type="button" className="link" onClick={close}>
          Cancel
        </button>
      </div>
    </form>
  );
}
