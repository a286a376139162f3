"use client";

import { describeError, type ServerError } from "@/lib/chat-state";

/** ErrorBanner shows the last error the server reported, until dismissed. */
export function ErrorBanner({ error, onDismiss }: { error: (ServerError & { at: number }) | null; onDismiss: () => void }) {
  if (!error) return null;
  return (
    <div className="banner" role="alert" data-testid="server-error" data-code={error.code}>
      <p>{describeError(error)}</p>
      <button type="button" className="link" onClick={onDismiss} aria-label="Dismiss the error">
        Dismiss
      </button>
    </div>
  );
}
