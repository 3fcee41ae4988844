export { createRuntime, startWorker, type Worker, type WorkerOptions, workerId } from "./worker";
