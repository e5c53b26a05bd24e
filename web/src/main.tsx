// The dashboard's shell: sign-in, the top bar, and the screen the URL fragment names.
// Routes: #/ (services), #/services/NAME, #/services/NAME/shadow, #/experiments/NAME, #/flags,
// #/flags/NAME. A sign-in link carries #code=...; it is exchanged at once and dropped from the
// address bar and history (history.replaceState).
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import {
  ApiError,
  currentSession,
  type SessionInfo,
  setSession,
  signIn,
  signOut,
  whenSignedOut,
} from "./api";
import { connect, disconnect, useLive } from "./live";
import { ExperimentScreen } from "./screens/experiment";
import { FlagScreen, FlagsScreen } from "./screens/flags";
import { ServiceScreen } from "./screens/service";
import { ServicesScreen } from "./screens/services";
import { ShadowScreen } from "./screens/shadow";
import { useHash } from "./ui";
import "./styles.css";

function SignIn(props: { onSignedIn: (s: SessionInfo) => void; error?: string | null }) {
  const [token, setToken] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(props.error ?? null);
  const [busy, setBusy] = useState(false);
  return (
    <main>
      <form
        className="panel signin"
        aria-labelledby="signin-title"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const s = await signIn({
              token: token.trim(),
              ...(name.trim() ? { name: name.trim() } : {}),
            });
            setToken("");
            props.onSignedIn(s);
          } catch (err) {
            setError(
              err instanceof ApiError && err.status === 401
                ? "That token is not right."
                : (err as Error).message,
            );
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1 id="signin-title">Sign in to Turnout</h1>
        <p className="muted small">
          Paste the admin token (the file <code>token</code> in Turnout's data dir,{" "}
          <code>.turnout/token</code> by default), or run <code>turnout dashboard</code> for a
          one-time sign-in link.
        </p>
        <div className="field" style={{ marginTop: "1rem" }}>
          <label htmlFor="token">Token</label>
          <input
            id="token"
            type="password"
            autoComplete="current-password"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            required
          />
        </div>
        <div className="field">
          <label htmlFor="name">Your name (recorded with what you do)</label>
          <input
            id="name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            maxLength={64}
            placeholder="admin"
          />
        </div>
        {error ? (
          <p className="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" className="primary" disabled={busy || token.trim() === ""}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

function route(hash: string) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return parts;
}

function Screen({ hash }: { hash: string }) {
  const p = route(hash);
  if (p[0] === "services" && p[1] && p[2] === "shadow") return <ShadowScreen service={p[1]} />;
  if (p[0] === "services" && p[1]) return <ServiceScreen name={p[1]} />;
  if (p[0] === "experiments" && p[1]) return <ExperimentScreen name={p[1]} />;
  if (p[0] === "flags" && p[1]) return <FlagScreen name={p[1]} />;
  if (p[0] === "flags") return <FlagsScreen />;
  return <ServicesScreen />;
}

function TopBar(props: { session: SessionInfo; onSignOut: () => void; hash: string }) {
  const live = useLive();
  const p = route(props.hash);
  const current = p[0] === "flags" ? "flags" : "services";
  return (
    <header className="top">
      <a className="brand" href="#/">
        Turnout
      </a>
      <nav aria-label="Screens">
        <a href="#/" aria-current={current === "services" ? "page" : undefined}>
          Services
        </a>
        <a href="#/flags" aria-current={current === "flags" ? "page" : undefined}>
          Flags
        </a>
      </nav>
      <span className="spacer" />
      <span
        className={`conn ${live.conn === "live" ? "live" : live.conn === "down" ? "down" : ""}`}
        role="status"
      >
        <span className="dot" aria-hidden="true" />
        {live.conn === "live" ? "live" : live.conn === "down" ? "disconnected" : "reconnecting…"}
      </span>
      <span className="who">signed in as {props.session.name}</span>
      <button type="button" onClick={props.onSignOut}>
        Sign out
      </button>
    </header>
  );
}

function App() {
  const hash = useHash();
  const [session, setS] = useState<SessionInfo | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const adopt = (s: SessionInfo | null) => {
    setSession(s);
    setS(s);
    if (s) connect();
    else disconnect();
  };
  // biome-ignore lint/correctness/useExhaustiveDependencies: once, at start (the sign-in link or the session in force)
  useEffect(() => {
    whenSignedOut(() => adopt(null));
    const m = /^#code=([\w-]+)/.exec(window.location.hash);
    if (m) {
      // The code must not stay in the address bar or in history.
      window.history.replaceState(null, "", `${window.location.pathname}#/`);
      signIn({ code: m[1]! })
        .then(adopt)
        .catch((err) => {
          setError((err as Error).message);
          adopt(null);
        });
      return;
    }
    currentSession()
      .then(adopt)
      .catch(() => adopt(null));
  }, []);
  if (session === undefined) return <main className="muted">Loading…</main>;
  if (session === null) return <SignIn onSignedIn={adopt} error={error} />;
  return (
    <>
      {/* The fragment is the route, so skipping moves focus instead of following "#content". */}
      <button
        type="button"
        className="skip"
        onClick={() => document.getElementById("content")?.focus()}
      >
        Skip to content
      </button>
      <TopBar
        session={session}
        hash={hash}
        onSignOut={() => {
          void signOut().finally(() => adopt(null));
        }}
      />
      <main id="content" tabIndex={-1}>
        <Screen hash={hash} />
      </main>
    </>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
