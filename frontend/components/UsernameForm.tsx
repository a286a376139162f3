"use client";

import { useId, useState, type FormEvent } from "react";
import { useChat } from "./ChatProvider";

/** UsernameForm asks for the name shown with the user's messages (the original's first screen). */
export function UsernameForm() {
  const { setUsername, auth } = useChat();
  const [name, setName] = useState("");
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const inputId = useId();
  const tokenId = useId();
  const problemId = useId();
  const signIn = auth !== null && auth.auth !== "off";

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (name.trim() === "") {
      setProblem("Please enter a name.");
      return;
    }
    setBusy(true);
    const p = await setUsername(name, token.trim() || undefined);
    setBusy(false);
    setProblem(p);
  }

  return (
    <main className="welcome">
      <form className="card" onSubmit={submit} noValidate>
        <h1>Chat</h1>
        <label htmlFor={inputId}>Your name</label>
        <input
          id={inputId}
          name="username"
          type="text"
          autoComplete="nickname"
          autoFocus
          value={name}
          onChange={(e) => {
            setName(e.target.value);
            setProblem(null);
          }}
          aria-invalid={problem !== null}
          aria-describedby={problem ? problemId : undefined}
        />
        {problem && (
          <p id={problemId} className="problem" role="alert">
            {problem}
          </p>
        )}
        {signIn && (
          <details className="token">
            <summary>Sign in with a token (moderators)</summary>
            <label htmlFor={tokenId}>Token</label>
            <input id={tokenId} name="token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} />
          </details>
        )}
        <button type="submit" disabled={busy}>
          Continue
        </button>
      </form>
    </main>
  );
}
