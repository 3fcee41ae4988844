export * from "./agents";
export * from "./common";
export * from "./errors";
export * from "./identity";
export * from "./tasks";
export * from "./runs";
export * from "./costs";
