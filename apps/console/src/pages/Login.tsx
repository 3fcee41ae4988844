import { type FormEvent, useState } from "react";
import { api } from "../api";
import { ErrorBanner, useTitle } from "../components";

export function LoginPage({ onSignedIn, error: initialError }: { onSignedIn(): Promise<void>; error?: unknown }) {
  useTitle("Log in");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(initialError);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.login(email.trim(), password);
      await onSignedIn();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <form className="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">
          <span aria-hidden="true">⚓</span> Bosun
        </h1>
        <p className="muted">Log in to run your agent fleet.</p>
        <ErrorBanner error={error} />
        <label className="field">
          <span>Email</span>
          <input type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label className="field">
          <span>Password</span>
          <input type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <button type="submit" className="primary wide" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
        <p className="muted small">
          The first login is printed by <code>npm start</code>. The API reference is at <a href="/docs">/docs</a>.
        </p>
      </form>
    </main>
  );
}
