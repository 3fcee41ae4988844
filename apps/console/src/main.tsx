import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

/**
 * The console's placeholder: proves the SPA is built and served by the API, and shows
 * whether the API is healthy. The pages themselves land with the console issue.
 */
function App() {
  const [health, setHealth] = useState<"checking" | "ok" | "down">("checking");
  useEffect(() => {
    fetch("/healthz")
      .then((r) => setHealth(r.ok ? "ok" : "down"))
      .catch(() => setHealth("down"));
  }, []);
  return (
    <main style={{ fontFamily: "system-ui, sans-serif", maxWidth: 640, margin: "4rem auto", padding: "0 1rem" }}>
      <h1>Bosun</h1>
      <p>The operations layer for your agent fleet.</p>
      <p>
        API status: <strong data-testid="health">{health}</strong>
      </p>
      <p>
        The console is on its way. Meanwhile, the REST API is documented at <a href="/docs">/docs</a>.
      </p>
    </main>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
