import { type Database, repo, withTenant } from "@bosun/db";
import { itemTokens } from "./store";

/** Fixed ids for the demo agent's seeded memories, so its scripted dream can name them. */
export const DEMO_MEMORY_IDS = {
  northwindDays: "mem_demo0000000000000000000001",
  northwindDupes: "mem_demo0000000000000000000002",
  oldErp: "mem_demo0000000000000000000003",
  acme: "mem_demo0000000000000000000004",
} as const;

const seeds: [keyof typeof DEMO_MEMORY_IDS, string, string][] = [
  ["northwindDays", "northwind", "Northwind's invoices arrive on Mondays, in one batch export from their ERP."],
  ["northwindDupes", "northwind duplicates", "Northwind sometimes sends the same invoice twice with different file names; match on the invoice number."],
  ["oldErp", "legacy ERP", "The legacy ERP export (v1 CSV) was used until the migration; the new ledger API replaced it."],
  ["acme", "acme", "Acme pays on the 5th of each month; a payment on the 6th is not late."],
];

/** What the demo agent's dream proposes (its scripted model's answer). */
export const demoDreamScript = [
  {
    call: "consolidate",
    input: {
      merges: [
        {
          items: [
            { id: DEMO_MEMORY_IDS.northwindDays, version: 1 },
            { id: DEMO_MEMORY_IDS.northwindDupes, version: 1 },
          ],
          title: "northwind",
          content: "Northwind: invoices on Mondays (one ERP batch); duplicates happen, match on invoice number.",
        },
      ],
      archive: [{ id: DEMO_MEMORY_IDS.oldErp, version: 1 }],
      note: "Merged the two Northwind notes; archived the legacy ERP note (no longer needed every day).",
    },
  },
];

/**
 * Seeds the demo agent's working memory and makes its first dream due now, so that soon
 * after the first start GET /v1/agents/{name}/memory shows the memory before and after a
 * dream cycle (merged items, one archived, the diff on the dream run's steps).
 */
export async function bootstrapMemoryDemo(database: Database, p: { tenantId: string; agentId: string }) {
  await withTenant(database, p.tenantId, async (tx) => {
    for (const [key, title, content] of seeds) {
      await repo.memory.insertItem(tx, {
        tenantId: p.tenantId,
        id: DEMO_MEMORY_IDS[key],
        agentId: p.agentId,
        layer: "working",
        title,
        content,
        tokens: itemTokens(title, content),
        source: "operator",
        ref: null,
        retentionDays: null,
      });
      await repo.memory.noteChange(tx, { tenantId: p.tenantId, agentId: p.agentId });
    }
    await tx.$client.query(`UPDATE agent_memory SET next_dream_at = now() WHERE tenant_id = $1 AND agent_id = $2`, [p.tenantId, p.agentId]);
  });
}
