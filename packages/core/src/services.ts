import type { Database } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import { agentService } from "./agents/service";
import { apiKeyService } from "./api-keys";
import { budgetService } from "./costs/budgets";
import { costService } from "./costs/service";
import { identityService } from "./identity";
import { runService } from "./runtime/runs-service";
import { createLucia } from "./sessions";
import { taskService } from "./tasks/service";

/** The domain services, wired once per process (API and worker alike). */
export function createServices(deps: { database: Database; jobs: Pick<Jobs, "enqueue">; secureCookies: boolean }) {
  const lucia = createLucia(deps.database, { secureCookies: deps.secureCookies });
  return {
    database: deps.database,
    identity: identityService({ database: deps.database, lucia }),
    apiKeys: apiKeyService({ database: deps.database }),
    agents: agentService({ database: deps.database, jobs: deps.jobs }),
    tasks: taskService({ database: deps.database, jobs: deps.jobs }),
    runs: runService({ database: deps.database, jobs: deps.jobs }),
    budgets: budgetService({ database: deps.database }),
    costs: costService({ database: deps.database }),
  };
}

export type DomainServices = ReturnType<typeof createServices>;
