/**
 * The closed error taxonomy. Every error that leaves the API is one of these codes, as an
 * RFC 9457 problem+json body. The console and SDKs switch on `code`, never on messages.
 */
export const errorCodes = {
  BAD_REQUEST: 400,
  VALIDATION: 422,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  OUTSIDE_DOMAIN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  IDEMPOTENCY_CONFLICT: 422,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  BUDGET_EXCEEDED: 402,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof errorCodes;

export const errorTitles: Record<ErrorCode, string> = {
  BAD_REQUEST: "Bad request",
  VALIDATION: "Validation failed",
  UNAUTHORIZED: "Unauthorized",
  FORBIDDEN: "Forbidden",
  OUTSIDE_DOMAIN: "Outside the agent's domains",
  NOT_FOUND: "Not found",
  METHOD_NOT_ALLOWED: "Method not allowed",
  CONFLICT: "Conflict",
  IDEMPOTENCY_CONFLICT: "Idempotency key reused with a different request",
  PAYLOAD_TOO_LARGE: "Payload too large",
  UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
  RATE_LIMITED: "Rate limited",
  BUDGET_EXCEEDED: "Budget exceeded",
  SERVICE_UNAVAILABLE: "Service unavailable",
  INTERNAL: "Internal error",
};

/** One invalid field: `path` is the dotted path into the request body (`spec.model.name`). */
export interface FieldIssue {
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  instance?: string;
  requestId?: string;
  errors?: FieldIssue[];
}
