import { type FormEvent, useId, useState } from "react";
import { parse } from "yaml";
import { type ApplyResult, api } from "../api";
import { ErrorBanner } from "../components";
import { useAction } from "../hooks";

export const DESCRIPTOR_TEMPLATE = `apiVersion: agent.os/v1
kind: Agent
metadata:
  name: my-agent
  owner: my-team
  description: What this agent is for
spec:
  model: { provider: scripted, name: scripted-small, pinned_revision: "2026-01-01" }
  soul: |
    Who the agent is, in a few sentences.
  drives:
    - name: inbox-zero
      question: Is every request answered within a day?
  memory: { type: persistent, retention_days: 90, working_tokens: 2000 }
  tools: []
  domains: [ my-team/* ]
  schedule: { every: 15m }
  budgets: { calls_per_hour: 100, usd_per_day: 10 }
`;

/** The agent's name from the pasted descriptor, or a reason why it cannot be read. */
function nameOf(text: string): { name?: string; problem?: string; json: boolean } {
  const json = text.trimStart().startsWith("{");
  let doc: unknown;
  try {
    doc = json ? JSON.parse(text) : parse(text);
  } catch (e) {
    return { json, problem: `the descriptor is not valid ${json ? "JSON" : "YAML"}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` };
  }
  const name = (doc as { metadata?: { name?: unknown } } | null)?.metadata?.name;
  if (typeof name !== "string" || name === "") return { json, problem: "the descriptor needs metadata.name" };
  return { name, json };
}

/**
 * Apply a descriptor (YAML or JSON) with PUT /v1/agents/{metadata.name}: a new agent,
 * a new revision, or no change when the spec is the same. The server validates it and
 * names the offending field on error.
 */
export function ApplyForm({
  initial,
  fixedName,
  onApplied,
  onCancel,
}: {
  initial: string;
  /** When editing an agent: the name must stay the same. */
  fixedName?: string;
  onApplied(result: ApplyResult): void;
  onCancel?: () => void;
}) {
  const [text, setText] = useState(initial);
  const [localError, setLocalError] = useState<string>();
  const action = useAction();
  const id = useId();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setLocalError(undefined);
    const { name, problem, json } = nameOf(text);
    if (problem || !name) return setLocalError(problem);
    if (fixedName && name !== fixedName) return setLocalError(`metadata.name must stay "${fixedName}" (apply a new agent from the Agents page)`);
    const result = await action.run(() => (json ? api.applyJson(name, JSON.parse(text)) : api.applyYaml(name, text)));
    if (result) onApplied(result);
  };

  return (
    <form className="apply-form" onSubmit={submit}>
      <label className="field" htmlFor={`${id}-descriptor`}>
        <span>Descriptor (YAML or JSON)</span>
      </label>
      <textarea
        id={`${id}-descriptor`}
        className="code-input"
        rows={Math.min(30, Math.max(12, text.split("\n").length + 1))}
        spellCheck={false}
        value={text}
        onChange={(e) => setText(e.target.value)}
        aria-describedby={`${id}-help`}
      />
      <p id={`${id}-help`} className="muted small">
        Applying the same spec again keeps the revision; a change makes a new one. Unknown fields are refused with their path.
      </p>
      {localError ? (
        <div className="error" role="alert">
          <p>{localError}</p>
        </div>
      ) : null}
      <ErrorBanner error={action.error} onDismiss={action.clear} />
      <div className="form-actions">
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? "Applying…" : "Apply descriptor"}
        </button>
        {onCancel ? (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
    </form>
  );
}
