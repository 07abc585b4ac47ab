/**
 * The one error type the SDK throws for failed calls. Its `code` is a gRPC
 * status name whichever transport carried the call, so callers match on
 * one set of codes.
 */

/** gRPC status names by code number. */
const GRPC_STATUS_NAMES: readonly string[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

const HTTP_STATUS_CODES: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  408: 'DEADLINE_EXCEEDED', 409: 'ALREADY_EXISTS', 413: 'RESOURCE_EXHAUSTED', 429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED', 500: 'INTERNAL', 501: 'UNIMPLEMENTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};

/** The gRPC status name for an HTTP status (UNKNOWN for statuses with no counterpart). */
export function codeForHttpStatus(status: number): string {
  return HTTP_STATUS_CODES[status] ?? 'UNKNOWN';
}

/** The gRPC status name for a gRPC status code number. */
export function codeForGrpcStatus(code: number): string {
  return GRPC_STATUS_NAMES[code] ?? 'UNKNOWN';
}

/** Where an error came from, beyond its code. */
export interface InferenceServerErrorDetails {
  /** The HTTP status, for errors the HTTP transport received. */
  readonly httpStatus?: number;
  /** The gRPC status code number, for errors the gRPC transport received. */
  readonly grpcCode?: number;
  /** The underlying error, such as a socket error. */
  readonly cause?: unknown;
}

/**
 * A failed call. `message` is the server's message verbatim; `code` is the
 * gRPC status name (HTTP statuses mapped: 400 INVALID_ARGUMENT, 404
 * NOT_FOUND, 413 RESOURCE_EXHAUSTED, 500 INTERNAL, 501 UNIMPLEMENTED, 503
 * UNAVAILABLE, 504 DEADLINE_EXCEEDED). A client-side abort is CANCELLED, a
 * client-side timeout DEADLINE_EXCEEDED, an unreachable server UNAVAILABLE.
 */
export class InferenceServerError extends Error {
  override readonly name = 'InferenceServerError';
  /** gRPC status name, e.g. 'INVALID_ARGUMENT'. */
  readonly code: string;
  /** The HTTP status, set for the HTTP transport. */
  declare readonly httpStatus?: number;
  /** The gRPC status code number, set for the gRPC transport. */
  declare readonly grpcCode?: number;

  constructor(message: string, code: string, details: InferenceServerErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.httpStatus !== undefined) this.httpStatus = details.httpStatus;
    if (details.grpcCode !== undefined) this.grpcCode = details.grpcCode;
  }
}

/** The error for a call the caller's AbortSignal stopped. */
export function cancelledError(reason: unknown, details: InferenceServerErrorDetails = {}): InferenceServerError {
  const why = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}`
    : typeof reason === 'string' ? `: ${reason}` : '';
  return new InferenceServerError(`the request was cancelled by the client${why}`, 'CANCELLED', { ...details, cause: reason });
}

/** The error for a call that ran past its deadline on the client side. */
export function deadlineError(timeoutMs: number, details: InferenceServerErrorDetails = {}): InferenceServerError {
  return new InferenceServerError(`Deadline Exceeded: no response within ${timeoutMs} ms`, 'DEADLINE_EXCEEDED', details);
}
