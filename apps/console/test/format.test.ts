import { describe, expect, it } from "vitest";
import { newestById, tasksInStatuses } from "../src/format";

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

describe("tasksInStatuses", () => {
  it("finds a task that moves on while the statuses are read, reading them one after another in order", async () => {
    // The task goes from in progress to in review 2 ms in. The server answers a status as it
    // stands when it answers: in review at once, in progress after 5 ms. Asked all at once,
    // in review is answered before the task gets there and in progress after it left.
    let status = "in_progress";
    const moved = new Promise<void>((r) =>
      setTimeout(() => {
        status = "in_review";
        r();
      }, 2),
    );
    const page = async (s: string) => {
      if (s === "in_progress") await new Promise((r) => setTimeout(r, 5));
      const updatedAt = status === "in_review" ? "2026-11-21T10:00:01.000Z" : "2026-11-21T10:00:00.000Z";
      return { items: s === status ? [{ id: "tsk_a", status, updatedAt }] : [] };
    };
    const found = await tasksInStatuses(["queued", "in_progress", "in_review"], page);
    await moved;
    expect(found.map((t) => [t.id, t.status])).toEqual([["tsk_a", "in_review"]]);
  });

  it("asks for each status once, in the order given, and only after the previous answer", async () => {
    const asked: string[] = [];
    let pending = 0;
    await tasksInStatuses(["queued", "claimed", "in_progress"], async (status) => {
      expect(pending).toBe(0);
      pending++;
      asked.push(status);
      await new Promise((r) => setTimeout(r, 1));
      pending--;
      return { items: [] };
    });
    expect(asked).toEqual(["queued", "claimed", "in_progress"]);
  });
});
