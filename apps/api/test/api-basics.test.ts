import { Writable } from "node:stream";
import { buildApp, loadApiConfig } from "@bosun/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, createTenant, createTestApp, PUBLIC_URL, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app);
});
afterAll(() => t.close());

describe("health and docs", () => {
  it("answers /healthz and /readyz without credentials", async () => {
    expect((await t.app.inject({ url: "/healthz" })).json()).toEqual({ status: "ok" });
    const ready = await t.app.inject({ url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: "ready" });
  });

  it("serves an OpenAPI 3.1 document that lists every /v1 route with its schemas", async () => {
    const res = await t.app.inject({ url: "/docs/json" });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe("3.1.0");
    const paths = Object.keys(doc.paths);
    for (const p of ["/v1/signup", "/v1/auth/login", "/v1/me", "/v1/api-keys", "/v1/api-keys/{id}", "/v1/agents", "/v1/agents/{name}", "/v1/agents/{name}/revisions/{revision}/diff"]) {
      expect(paths).toContain(p);
    }
    const put = doc.paths["/v1/agents/{name}"].put;
    expect(put.requestBody.content["application/json"].schema).toBeDefined();
    expect(Object.keys(put.responses)).toEqual(expect.arrayContaining(["200", "201", "401", "404", "422"]));
    expect(JSON.stringify(doc)).toContain("pinned_revision");
    expect((await t.app.inject({ url: "/docs" })).statusCode).toBeLessThan(400);
  });
});

describe("errors and request ids", () => {
  it("answers an unknown route with a problem+json 404 carrying the request id", async () => {
    const res = await t.app.inject({ url: "/v1/nothing-here", headers: acme.auth });
    expect(res.statusCode).toBe(404);
    const p = problem(res);
    expect(p.code).toBe("NOT_FOUND");
    expect(p.requestId).toBe(res.headers["x-request-id"]);
  });

  it("names a missing field as required, in the body, the query and the YAML of a descriptor alike", async () => {
    const body = problem(await t.app.inject({ method: "POST", url: "/v1/tasks", headers: acme.auth, payload: { domain: "ops/x" } }));
    expect(body.code).toBe("VALIDATION");
    expect(body.errors).toContainEqual({ path: "title", message: "required" });
    const query = problem(await t.app.inject({ url: "/v1/costs/export.csv?from=2026-11-01", headers: acme.auth }));
    expect(query.errors).toEqual([{ path: "query.to", message: "required" }]);
    expect(query.detail).toBe("request querystring is invalid: query.to: required");
    const yaml = problem(
      await t.app.inject({ method: "PUT", url: "/v1/agents/no-model", headers: { ...acme.auth, "content-type": "application/yaml" }, payload: "apiVersion: agent.os/v1\nkind: Agent\nmetadata:\n  name: no-model\n  owner: ops\nspec:\n  domains: [ops/*]\n" }),
    );
    expect(yaml.errors).toContainEqual({ path: "spec.model", message: "required" });
    // A missing choice lists the values it may take.
    const choice = problem(await t.app.inject({ method: "POST", url: "/v1/budgets", headers: acme.auth, payload: { scope: "tenant", metric: "usd", limit: 5 } }));
    expect(choice.errors).toContainEqual({ path: "window", message: 'required: one of "invocation", "hour", "day", "month"' });
    // A present value of the wrong type still says what was expected.
    const wrong = problem(await t.app.inject({ method: "POST", url: "/v1/tasks", headers: acme.auth, payload: { title: 7, domain: "ops/x" } }));
    expect(wrong.errors).toContainEqual({ path: "title", message: "Invalid input: expected string, received number" });
  });

  it("keeps a caller's x-request-id and replaces an unsafe one", async () => {
    const kept = await t.app.inject({ url: "/v1/me", headers: { ...acme.auth, "x-request-id": "trace-123" } });
    expect(kept.headers["x-request-id"]).toBe("trace-123");
    const replaced = await t.app.inject({ url: "/v1/me", headers: { ...acme.auth, "x-request-id": "bad id\twith spaces" } });
    expect(replaced.headers["x-request-id"]).toMatch(/^req_[0-9a-f]{20}$/);
  });
});

describe("rate limits", () => {
  it("limits each key separately and answers 429 problem+json", async () => {
    const limited = await buildApp(t.services, loadApiConfig({}, { publicUrl: PUBLIC_URL, rateLimitPerMinute: 5, consoleDir: "/nonexistent" }), { logger: false });
    try {
      const other = await createKey(t.app, acme, { scopes: ["read"] });
      const codes: number[] = [];
      for (let i = 0; i < 7; i++) codes.push((await limited.inject({ url: "/v1/me", headers: acme.auth })).statusCode);
      expect(codes).toEqual([200, 200, 200, 200, 200, 429, 429]);
      const res = await limited.inject({ url: "/v1/me", headers: acme.auth });
      expect(problem(res).code).toBe("RATE_LIMITED");
      expect(res.headers["retry-after"]).toBeDefined();
      expect((await limited.inject({ url: "/v1/me", headers: other.auth })).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe("logs", () => {
  it("never writes keys, cookies or passwords to the log", async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logged = await buildApp(t.services, loadApiConfig({}, { publicUrl: PUBLIC_URL, consoleDir: "/nonexistent", logLevel: "trace" }), {
      logger: { stream },
    });
    try {
      await logged.inject({ url: "/v1/me", headers: { ...acme.auth, cookie: acme.cookie } });
      await logged.inject({ method: "POST", url: "/v1/auth/login", payload: { email: acme.email, password: acme.password } });
      await logged.inject({ url: "/v1/me", headers: { authorization: "Bearer bsn_thisisnotarealkeybutlookslikeonexxxxxxxxxx" } });
    } finally {
      await logged.close();
    }
    const all = lines.join("");
    expect(all.length).toBeGreaterThan(100);
    expect(all).toContain("request completed");
    expect(all).not.toContain(acme.apiKey);
    expect(all).not.toContain(acme.cookie.split("=")[1]!);
    expect(all).not.toContain(acme.password);
    expect(all).not.toContain("bsn_thisisnotarealkey");
  });
});
