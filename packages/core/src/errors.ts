import type { ErrorCode, FieldIssue } from "@bosun/contracts";

/** A failure the caller can act on. The API maps `code` to a status and problem+json. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors?: FieldIssue[],
  ) {
    super(message);
    this.name = "AppError";
  }
}

export const notFound = (what: string) => new AppError("NOT_FOUND", `${what} not found`);
export const forbidden = (why: string) => new AppError("FORBIDDEN", why);
export const conflict = (why: string) => new AppError("CONFLICT", why);
export const validation = (message: string, errors?: FieldIssue[]) => new AppError("VALIDATION", message, errors);
