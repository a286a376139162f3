"use client";

import { useId, useState, type FormEvent } from "react";
import { useChat } from "./ChatProvider";

/** UsernameForm asks for the name shown with the user's messages (the original's first screen). */
export function UsernameForm() {
  const { setUsername } = useChat();
  const [name, setName] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const inputId = useId();
  const problemId = useId();

  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (name.trim() === "") {
      setProblem("Please enter a name.");
      return;
    }
    setUsername(name);
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
        <button type="submit">Continue</button>
      </form>
    </main>
  );
}
