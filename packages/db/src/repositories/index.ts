export * from "./agents";
export * from "./api-keys";
export * from "./audit";
export * from "./idempotency";
export * from "./tasks";
export * from "./tenants";
export * as runtime from "./runtime";
export * as costs from "./costs";
