import type { DomainServices } from "@bosun/core";

/** What routes may call. Built once in the process's composition root. */
export type Services = DomainServices;
