export * from "./agents";
export * from "./api-keys";
export * from "./audit";
export * from "./idempotency";
export * from "./tenants";
export * from "./runs";
export * from "./tasks";
export * from "./costs";
