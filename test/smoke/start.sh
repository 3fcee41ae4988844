#!/usr/bin/env bash
# Boots the README's start command on the embedded default with a fresh data folder,
# applies an agent over HTTP, waits for the demo fleet's tasks, approves the demo MCP
# agent's held call, stops it with SIGTERM and checks it stopped cleanly; then
# starts it again and checks the agent is still there (the second start reuses the data).
set -euo pipefail
cd "$(dirname "$0")/../.."

PORT=${SMOKE_PORT:-3917}
DATA="$PWD/.data/smoke-$$"
KEY="bsn_smoke$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 40)"
BASE="http://127.0.0.1:$PORT"
LOG="$DATA.log"
mkdir -p "$DATA"
PID=""
cleanup() {
  if [ -n "$PID" ] && pgrep -g "$PID" >/dev/null; then kill -TERM -- "-$PID"; sleep 3; pkill -KILL -g "$PID" 2>/dev/null || true; fi
  pkill -KILL -f "postgres -D $DATA/pg" 2>/dev/null || true
  rm -rf "$DATA"
  [ -n "${KEEP_LOG:-}" ] || rm -f "$LOG"
}
trap cleanup EXIT

start() {
  if curl -fsS "$BASE/healthz" >/dev/null 2>&1; then echo "smoke: port $PORT is already in use"; exit 1; fi
  env -u DATABASE_URL PORT="$PORT" BOSUN_DATA_DIR="$DATA" BOSUN_EMBEDDED_PG_PORT=54349 \
    BOSUN_INIT_API_KEY="$KEY" BOSUN_INIT_ADMIN_EMAIL=smoke@example.com BOSUN_INIT_ADMIN_PASSWORD=smoke-password-123 \
    LOG_LEVEL=warn setsid npm start >>"$LOG" 2>&1 &
  PID=$!
  for _ in $(seq 1 120); do
    # Ready, and the banner printed (the worker starts after the API listens).
    if curl -fsS "$BASE/readyz" >/dev/null 2>&1 && grep -q "Bosun is running" "$LOG"; then return 0; fi
    if ! kill -0 "$PID" 2>/dev/null; then echo "smoke: bosun exited during start"; cat "$LOG"; exit 1; fi
    sleep 0.5
  done
  echo "smoke: bosun did not become ready in 60 s"; cat "$LOG"; exit 1
}

# SIGTERM to the whole process group, as a terminal's Ctrl-C or a supervisor would.
stop() {
  kill -TERM -- "-$PID"
  for _ in $(seq 1 60); do
    if ! pgrep -g "$PID" >/dev/null; then
      # npm itself reports 143 when signalled; Bosun's own verdict is its last line.
      wait "$PID" || true
      grep -q "Bosun stopped cleanly." "$LOG" || { echo "smoke: no clean shutdown"; cat "$LOG"; exit 1; }
      if pgrep -f "postgres -D $DATA/pg" >/dev/null; then echo "smoke: embedded Postgres still running"; exit 1; fi
      : >"$LOG"
      return 0
    fi
    sleep 0.5
  done
  echo "smoke: bosun did not stop within 30 s of SIGTERM"; cat "$LOG"; exit 1
}

start
grep -q "Admin key  $KEY" "$LOG" || { echo "smoke: the banner does not show the admin key"; cat "$LOG"; exit 1; }
curl -fsS "$BASE/" | grep -q "<div id=\"root\">" || { echo "smoke: console not served at /"; exit 1; }
curl -fsS "$BASE/docs/json" | grep -q '"openapi":"3.1.0"' || { echo "smoke: no OpenAPI document at /docs/json"; exit 1; }
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT "$BASE/v1/agents/smoke-agent" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/yaml' --data-binary @- <<'YAML'
apiVersion: agent.os/v1
kind: Agent
metadata: { name: smoke-agent, owner: ci }
spec:
  model: { provider: scripted, name: scripted-small, pinned_revision: "2026-01-01" }
  soul: I exist to prove that Bosun starts.
  schedule: { every: 15m }
YAML
)
[ "$code" = 201 ] || { echo "smoke: applying an agent returned $code"; cat "$LOG"; exit 1; }
curl -fsS -H "Authorization: Bearer $KEY" "$BASE/v1/agents" | grep -q '"name":"reconciliation-finance"' || { echo "smoke: demo agents missing"; exit 1; }
# The demo fleet takes and finishes its starter tasks on its own.
for _ in $(seq 1 60); do
  done_count=$(curl -fsS -H "Authorization: Bearer $KEY" "$BASE/v1/tasks?status=done&limit=50" | grep -o '"status":"done"' | wc -l)
  [ "$done_count" -ge 4 ] && break
  sleep 0.5
done
[ "$done_count" -ge 4 ] || { echo "smoke: the demo agents finished $done_count of 4 tasks"; cat "$LOG"; exit 1; }
# The demo's MCP agent echoes through the gateway, then its get-sum call waits for a person:
# approve it, and the agent's task finishes with the sum from the real MCP server.
approval=""
for _ in $(seq 1 60); do
  approval=$(curl -fsS -H "Authorization: Bearer $KEY" "$BASE/v1/approvals?status=pending" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4 || true)
  [ -n "$approval" ] && break
  sleep 0.5
done
[ -n "$approval" ] || { echo "smoke: the demo's MCP call never waited for an approval"; cat "$LOG"; exit 1; }
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$BASE/v1/approvals/$approval/approve" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"comment":"smoke test approves"}')
[ "$code" = 200 ] || { echo "smoke: approving $approval returned $code"; cat "$LOG"; exit 1; }
for _ in $(seq 1 60); do
  curl -fsS -H "Authorization: Bearer $KEY" "$BASE/v1/tasks?status=done&limit=50" | grep -q "Add up this month's totals with the MCP tools" && break
  sleep 0.5
done
curl -fsS -H "Authorization: Bearer $KEY" "$BASE/v1/tasks?status=done&limit=50" | grep -q "Add up this month's totals with the MCP tools" ||
  { echo "smoke: the approved MCP call did not finish its task"; cat "$LOG"; exit 1; }
stop

start
curl -fsS -H "Authorization: Bearer $KEY" "$BASE/v1/agents/smoke-agent" | grep -q '"revision":1' || { echo "smoke: agent lost across restart"; cat "$LOG"; exit 1; }
stop
echo "smoke: start, apply, demo tasks, MCP call approved, SIGTERM, restart: ok"
