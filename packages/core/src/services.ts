import type { Database } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import { agentService } from "./agents/service";
import { apiKeyService } from "./api-keys";
import { auditService } from "./audit-service";
import { budgetService } from "./costs/budgets";
import { deploymentService } from "./deployment";
import { gatewayService } from "./gateway/service";
import { approvalService } from "./governance/approvals";
import { inboxService } from "./governance/inbox";
import { policyService } from "./governance/policies";
import { costService } from "./costs/service";
import { identityService } from "./identity";
import { proposalService } from "./proposals/service";
import { driveService } from "./memory/drives";
import { memoryService } from "./memory/service";
import { messageService } from "./messaging/service";
import { runService } from "./runtime/runs-service";
import { createLucia } from "./sessions";
import { taskService } from "./tasks/service";

/** The domain services, wired once per process (API and worker alike). */
export function createServices(deps: { database: Database; jobs: Pick<Jobs, "enqueue">; secureCookies: boolean }) {
  const lucia = createLucia(deps.database, { secureCookies: deps.secureCookies });
  const agents = agentService({ database: deps.database, jobs: deps.jobs });
  const tasks = taskService({ database: deps.database, jobs: deps.jobs });
  return {
    database: deps.database,
    identity: identityService({ database: deps.database, lucia }),
    apiKeys: apiKeyService({ database: deps.database }),
    agents,
    tasks,
    proposals: proposalService({ database: deps.database, jobs: deps.jobs, tasks, agents }),
    audit: auditService({ database: deps.database }),
    runs: runService({ database: deps.database, jobs: deps.jobs }),
    messages: messageService({ database: deps.database, jobs: deps.jobs }),
    memory: memoryService({ database: deps.database }),
    drives: driveService({ database: deps.database, jobs: deps.jobs }),
    budgets: budgetService({ database: deps.database }),
    costs: costService({ database: deps.database }),
    gateway: gatewayService({ database: deps.database }),
    policies: policyService({ database: deps.database }),
    approvals: approvalService({ database: deps.database, jobs: deps.jobs }),
    inbox: inboxService({ database: deps.database }),
    deployment: deploymentService({ database: deps.database }),
  };
}

export type DomainServices = ReturnType<typeof createServices>;
