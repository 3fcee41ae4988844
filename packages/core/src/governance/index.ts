export * from "./approvals";
export * from "./gate";
export * from "./inbox";
export * from "./policies";
export * from "./policy";
export * from "./sweep";
export * from "./tool-meta";
