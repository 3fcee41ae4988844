export * from "./client";
export * from "./crypto";
export * from "./describe";
export * from "./execute";
export * from "./names";
export * from "./service";
export * from "./demo";
