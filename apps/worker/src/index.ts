export { createRuntime, smtpMailer, startWorker, type Worker, type WorkerOptions, workerId } from "./worker";
export { loadWorkerConfig, type WorkerConfig } from "./config";
