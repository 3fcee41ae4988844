import { describe, expect, it } from "vitest";
import { newestById } from "../src/format";

describe("newestById", () => {
  it("keeps each id once, the newer row of a task fetched by two status requests", () => {
    const a1 = { id: "tsk_a", status: "in_progress", updatedAt: "2026-11-21T10:00:00.000Z" };
    const a2 = { id: "tsk_a", status: "in_review", updatedAt: "2026-11-21T10:00:01.500Z" };
    const b = { id: "tsk_b", status: "queued", updatedAt: "2026-11-21T09:00:00.000Z" };
    expect(newestById([a1, b, a2])).toEqual([a2, b]);
    // Whichever request answered first.
    expect(newestById([a2, b, a1])).toEqual([a2, b]);
    expect(newestById([])).toEqual([]);
  });
});
