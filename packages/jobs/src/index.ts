export * from "./boss";
export * from "./catalogue";
