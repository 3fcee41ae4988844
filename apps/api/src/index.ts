export { buildApp, redactPaths } from "./app";
export { type ApiConfig, loadApiConfig } from "./config";
export { type ApiServer, startApi } from "./server";
