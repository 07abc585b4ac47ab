/**
 * The one error catalogue. Each entry has a stable code, a status class and
 * a message template. Frontends map the status class to an HTTP status or a
 * gRPC code through STATUS_TABLE and nowhere else. Where Triton has a well
 * known wording for the same failure, the template keeps it so that clients
 * matching on text keep working.
 */

/** Status classes, named after TRITONSERVER_Error codes. */
export type StatusClass =
  | 'INVALID_ARG' | 'NOT_FOUND' | 'UNAVAILABLE' | 'INTERNAL' | 'UNSUPPORTED'
  | 'ALREADY_EXISTS' | 'CANCELLED' | 'TOO_LARGE' | 'DEADLINE_EXCEEDED' | 'PERMISSION_DENIED';

/** HTTP status and gRPC status code number per class. */
export const STATUS_TABLE: Readonly<Record<StatusClass, { readonly http: number; readonly grpc: number }>> = {
  INVALID_ARG: { http: 400, grpc: 3 },
  NOT_FOUND: { http: 404, grpc: 5 },
  ALREADY_EXISTS: { http: 400, grpc: 6 },
  UNAVAILABLE: { http: 503, grpc: 14 },
  INTERNAL: { http: 500, grpc: 13 },
  UNSUPPORTED: { http: 501, grpc: 12 },
  CANCELLED: { http: 400, grpc: 1 },
  TOO_LARGE: { http: 413, grpc: 8 },
  DEADLINE_EXCEEDED: { http: 504, grpc: 4 },
  PERMISSION_DENIED: { http: 403, grpc: 7 },
};

/** Longest piece of user-supplied text (a name, a key, a value) that a message quotes, in characters. */
export const MAX_QUOTED_LENGTH = 256;
/** Longest composed part of a message (a detail, a reason, a hint), in characters. */
export const MAX_DETAIL_LENGTH = 2048;
/**
 * Longest error message, in UTF-8 bytes, that any error carries and any
 * frontend sends: HTTP bodies, gRPC status details (which travel in HTTP/2
 * trailers, where a long one wedges the connection) and stream error_message.
 */
export const MAX_ERROR_MESSAGE_BYTES = 4096;

/**
 * The text cut to `max` characters, with an ellipsis and the original length
 * when cut. Every message that quotes user input goes through here (or
 * through serverError, which applies it to each parameter), so a 300 KB
 * model name costs a few hundred bytes in the error, not 300 KB.
 */
export function quoted(text: string, max = MAX_QUOTED_LENGTH): string {
  if (text.length <= max) return text;
  // Never end on half a surrogate pair.
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]!) ? max - 1 : max;
  return `${text.slice(0, end)}… (${text.length} characters, cut to ${end})`;
}

/** The message cut to at most `maxBytes` UTF-8 bytes, marked as cut; unchanged when it fits. */
export function boundedMessage(message: string, maxBytes = MAX_ERROR_MESSAGE_BYTES): string {
  if (message.length * 3 <= maxBytes) return message;
  const bytes = Buffer.byteLength(message);
  if (bytes <= maxBytes) return message;
  const suffix = ` … (message cut from ${bytes} bytes)`;
  const head = Buffer.from(message.slice(0, maxBytes)).subarray(0, maxBytes - Buffer.byteLength(suffix)).toString('utf8');
  return head.replace(/\uFFFD+$/, '') + suffix;
}

/** Parameters that hold composed text rather than one quoted value. */
const DETAIL_PARAMETERS: ReadonlySet<string> = new Set(['detail', 'reason', 'hint']);

/** Each string parameter (and each string in an array parameter) cut to its bound. */
function boundedParams<P>(params: P): P {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(params as Record<string, unknown>)) {
    const max = DETAIL_PARAMETERS.has(key) ? MAX_DETAIL_LENGTH : MAX_QUOTED_LENGTH;
    out[key] = typeof value === 'string' ? quoted(value, max)
      : Array.isArray(value) ? value.map((v: unknown) => (typeof v === 'string' ? quoted(v, max) : v)) : value;
  }
  return out as P;
}

interface CatalogueEntry<P> {
  readonly status: StatusClass;
  readonly message: (params: P) => string;
}

function entry<P>(status: StatusClass, message: (params: P) => string): CatalogueEntry<P> {
  return { status, message };
}

const versionPart = (version: string | undefined): string => (version ? ` version ${version}` : '');

export const CATALOGUE = {
  MODEL_NOT_FOUND: entry<{ model: string; version?: string }>('NOT_FOUND',
    (p) => `Request for unknown model: '${p.model}'${versionPart(p.version)} is not found`),
  MODEL_AMBIGUOUS: entry<{ model: string; count: number }>('INVALID_ARG',
    (p) => `There are ${p.count} identifiers of model '${p.model}' in global map, model namespace must be provided to resolve ambiguity.`),
  MODEL_VERSION_UNAVAILABLE: entry<{ model: string; version: string; state: string; reason?: string }>('UNAVAILABLE',
    (p) => `Request for unknown model: '${p.model}' version ${p.version} is not at ready state (${p.state}${p.reason ? `: ${p.reason}` : ''})`),
  MODEL_NO_VERSIONS: entry<{ model: string; reason?: string }>('NOT_FOUND',
    (p) => `Request for unknown model: '${p.model}' has no available versions${p.reason ? ` (${p.reason})` : ''}`),
  BAD_VERSION: entry<{ model: string; version: string }>('INVALID_ARG',
    (p) => (/^-?[0-9]+$/.test(p.version)
      ? `invalid model version specified '${p.version}' , version should be an integral value > 0 (model '${p.model}')`
      : `failed to get model version from specified version string '${p.version}' (details: not an integer), version should be an integral value > 0 (model '${p.model}')`)),
  STATS_NOT_AVAILABLE: entry<{ model: string; version?: string; ready: readonly string[] }>('INVALID_ARG',
    (p) => (p.version === undefined
      ? `requested model '${p.model}' is not available`
      : `requested model version is not available for model '${p.model}' (version ${p.version}; ready versions: ${p.ready.length > 0 ? p.ready.join(', ') : 'none'})`)),
  UNKNOWN_INPUT: entry<{ model: string; input: string }>('INVALID_ARG',
    (p) => `unexpected inference input '${p.input}' for model '${p.model}'`),
  DUPLICATE_INPUT: entry<{ model: string; input: string }>('INVALID_ARG',
    (p) => `input '${p.input}' appears more than once in the request for model '${p.model}'`),
  MISSING_INPUTS: entry<{ model: string; expected: number; got: readonly string[]; missing: readonly string[] }>('INVALID_ARG',
    (p) => `expected ${p.expected} inputs but got ${p.got.length} inputs for model '${p.model}'. ` +
      `Got input(s) [${p.got.map((n) => `'${n}'`).join(', ')}], but missing required input(s) ` +
      `[${p.missing.map((n) => `'${n}'`).join(', ')}]. Please provide all required input(s).`),
  INPUT_DATATYPE: entry<{ model: string; input: string; got: string; expected: string }>('INVALID_ARG',
    (p) => `inference input '${p.input}' data-type is '${p.got}', but model '${p.model}' expects '${p.expected}'`),
  INPUT_SHAPE: entry<{ model: string; input: string; expected: string; got: string; hint?: string }>('INVALID_ARG',
    (p) => `unexpected shape for input '${p.input}' for model '${p.model}'. Expected ${p.expected}, got ${p.got}.${p.hint ? ` ${p.hint}` : ''}`),
  BATCH_SIZE: entry<{ model: string; max: number; got: number }>('INVALID_ARG',
    (p) => `inference request batch-size must be <= ${p.max} for '${p.model}', got ${p.got}`),
  BATCH_MISMATCH: entry<{ model: string; input: string; got: number; expected: number }>('INVALID_ARG',
    (p) => `input '${p.input}' has batch size ${p.got} but other inputs of the request to model '${p.model}' have batch size ${p.expected}; all inputs must share the first dimension`),
  INPUT_BYTE_SIZE: entry<{ model: string; input: string; expected: number; got: number }>('INVALID_ARG',
    (p) => `input byte size mismatch for input '${p.input}' for model '${p.model}'. Expected ${p.expected}, got ${p.got}`),
  DUPLICATE_OUTPUT: entry<{ output: string; field: string }>('INVALID_ARG',
    (p) => `output '${p.output}' already exists in request (${p.field} names it again)`),
  CONTENTS_WITH_RAW: entry<{ input: string; model: string }>('INVALID_ARG',
    (p) => `contents field must not be specified when using raw_input_contents for '${p.input}' for model '${p.model}'`),
  SHAPE_OVERFLOW: entry<{ input: string; shape: string; max: string }>('INVALID_ARG',
    (p) => `invalid shape for input '${p.input}': shape ${p.shape} causes total element count to exceed maximum size of ${p.max}`),
  BYTE_SIZE_OVERFLOW: entry<{ input: string; count: string; size: number; max: string }>('INVALID_ARG',
    (p) => `byte size overflow for input '${p.input}': element count (${p.count}) * data type size (${p.size}) exceeds maximum allowed size (${p.max})`),
  UNKNOWN_OUTPUT: entry<{ model: string; output: string }>('INVALID_ARG',
    (p) => `unexpected inference output '${p.output}' for model '${p.model}'`),
  CLASSIFICATION_TYPE: entry<{ model: string; output: string; datatype: string }>('INVALID_ARG',
    (p) => `class result not available for output due to unsupported type '${p.datatype}' (output '${p.output}' of model '${p.model}')`),
  CLASSIFICATION_RESULTS: entry<{ model: string; output: string; results: number; limit: number }>('INVALID_ARG',
    (p) => `classification of output '${p.output}' of model '${p.model}' would return ${p.results} classes; ` +
      `the limit is ${p.limit} per output (rows x classes per row): ask for fewer classes`),
  CLASSIFICATION_COUNT: entry<{ field: string; got: string }>('INVALID_ARG',
    (p) => `${p.field}: classification count must be a positive integer, got ${p.got}`),
  TENSOR_SIZE: entry<{ tensor: string; detail: string }>('INVALID_ARG',
    (p) => `tensor '${p.tensor}': ${p.detail}`),
  BAD_REQUEST: entry<{ detail: string }>('INVALID_ARG', (p) => p.detail),
  HEADER_RESERVED: entry<{ header: string }>('INVALID_ARG',
    (p) => `Header '${p.header}' is reserved for Triton usage and cannot be forwarded.`),
  BYTES_ELEMENTS_LIMIT: entry<{ tensor: string; limit: number; got?: number }>('INVALID_ARG',
    (p) => `input '${p.tensor}' has ${p.got === undefined ? `more than ${p.limit}` : p.got} BYTES elements; the limit is ${p.limit} per tensor (--max-bytes-elements)`),
  MESSAGE_FIELDS_LIMIT: entry<{ message: string; field: string; limit: number }>('INVALID_ARG',
    (p) => `${p.message} holds more than ${p.limit} values (fields, repeated elements and map entries, at any depth), passing the limit at '${p.field}'; the limit is ${p.limit} per message (--grpc-max-request-fields)`),
  MALFORMED_JSON: entry<{ detail: string; offset?: number }>('INVALID_ARG',
    (p) => `failed to parse the request JSON buffer: ${p.detail}${p.offset === undefined ? '' : ` at ${p.offset}`}`),
  UNPARSABLE_FIELD: entry<{ field: string; detail: string }>('INVALID_ARG',
    (p) => `Unable to parse '${p.field}': ${p.detail}`),
  MODEL_VERSION_NOT_READY: entry<Record<string, never>>('INVALID_ARG', () => 'Model version not ready'),
  BODY_TOO_LARGE: entry<{ limit: number; got?: number; decompressed?: boolean }>('TOO_LARGE',
    (p) => `${p.decompressed ? 'decompressed request' : 'request JSON'} size${p.got === undefined ? '' : ` of ${p.got} bytes`} exceeds the maximum allowed input size of ${p.limit} bytes. ` +
      'Use --http-max-input-size to increase the limit.'),
  JSON_CODEC_MEMORY: entry<{ work: string; bytes: number; heapMb: number }>('TOO_LARGE',
    (p) => `${p.work} of ${p.bytes} bytes needed more than the ${p.heapMb} MiB of heap a JSON codec process may use (--http-json-codec-heap-mb); send tensor data as binary (binary_data_size, binary_data_output) or in smaller requests`),
  JSON_CODEC_BUSY: entry<{ waiting: number; limit: number }>('UNAVAILABLE',
    (p) => `${p.waiting} large JSON bodies are already waiting for a JSON codec process (the limit is ${p.limit}, --http-json-codec-queue); retry later, or send tensor data as binary (binary_data_size)`),
  UNSUPPORTED_DATATYPE: entry<{ model: string; tensor: string; datatype: string }>('UNSUPPORTED',
    (p) => `model '${p.model}' cannot take tensor '${p.tensor}' of datatype ${p.datatype}: the ONNX Runtime binding for Node has no ${p.datatype} tensors`),
  CANCELLED: entry<{ model: string; reason?: string }>('CANCELLED',
    (p) => `inference request for model '${p.model}' was cancelled${p.reason ? `: ${p.reason}` : ''}`),
  QUEUE_FULL: entry<{ model: string; level?: number; max: number }>('UNAVAILABLE',
    (p) => `Exceeds maximum queue size: model '${p.model}'${p.level ? ` priority level ${p.level}` : ''} holds at most ${p.max} queued request(s)`),
  SEQUENCE_BACKLOG_FULL: entry<{ model: string; max: number }>('UNAVAILABLE',
    (p) => `Exceeds maximum queue size: every sequence slot of model '${p.model}' is taken and ${p.max} new sequence(s) already wait for one ` +
      '(the model config parameter max_sequence_backlog); retry the START later'),
  QUEUE_TIMEOUT: entry<{ model: string; waitedMs: number; timeoutUs: number }>('UNAVAILABLE',
    (p) => `Request timeout expired: the request waited ${p.waitedMs.toFixed(1)} ms in the queue of model '${p.model}', longer than its timeout of ${p.timeoutUs} us`),
  BAD_PRIORITY: entry<{ model: string; got: string; levels: number; defaultLevel: number }>('INVALID_ARG',
    (p) => `invalid 'priority' parameter ${p.got} for model '${p.model}': the model has priority levels 1 (highest) to ${p.levels}; ` +
      `use one of them, or 0 for the default level ${p.defaultLevel}`),
  BAD_SCHEDULE_PARAMETER: entry<{ model: string; parameter: string; got: string }>('INVALID_ARG',
    (p) => `invalid value ${p.got} for the '${p.parameter}' parameter of a request to model '${p.model}': expected a non-negative integer` +
      (p.parameter === 'timeout' ? ' (microseconds)' : '')),
  SEQUENCE_PARAMETER: entry<{ parameter: string; expected: string; got: string }>('INVALID_ARG',
    (p) => `invalid value type for '${p.parameter}' parameter, expected ${p.expected}, got ${p.got}`),
  SEQUENCE_BATCH_SIZE: entry<{ model: string }>('INVALID_ARG',
    (p) => `inference request to model '${p.model}' must specify batch-size 1 due to requirements of sequence batcher`),
  SEQUENCE_NO_ID: entry<{ model: string }>('INVALID_ARG',
    (p) => `inference request to model '${p.model}' must specify a non-zero or non-empty correlation ID`),
  SEQUENCE_NOT_STARTED: entry<{ model: string; sequence: string }>('INVALID_ARG',
    (p) => `inference request for sequence ${p.sequence} to model '${p.model}' must specify the START flag on the first request of the sequence`),
  SEQUENCE_CORRID_TYPE: entry<{ model: string; sequence: string; input: string; datatype: string }>('INVALID_ARG',
    (p) => `sequence ${p.sequence} has a string correlation ID, but model '${p.model}' takes the correlation ID as ${p.datatype} ` +
      `in its CONTROL_SEQUENCE_CORRID input '${p.input}'; send sequence_id as an unsigned integer`),
  SEQUENCE_ENDED: entry<{ model: string; sequence: string; reason: string }>('UNAVAILABLE',
    (p) => `sequence ${p.sequence} of model '${p.model}' was ended before this request ran: ${p.reason}`),
  SERVER_STOPPING: entry<{ model: string }>('UNAVAILABLE',
    (p) => `model '${p.model}' is shutting down and takes no new requests`),
  SERVER_EXITING: entry<Record<string, never>>('UNAVAILABLE', () => 'Server exiting'),
  INFERENCE_FAILED: entry<{ model: string; detail: string }>('INTERNAL',
    (p) => `inference failed in model '${p.model}': ${p.detail}`),
  MODEL_LOAD_FAILED: entry<{ model: string; detail: string }>('INVALID_ARG',
    (p) => `failed to load '${p.model}': ${p.detail}`),
  MODEL_CONTROL_DISABLED: entry<{ mode: string }>('UNAVAILABLE',
    (p) => `explicit model load / unload is not allowed if polling is enabled (this server runs with model control mode '${p.mode}'` +
      `${p.mode === 'poll' ? ', so it loads what the repository folders hold: edit them instead' : ''}; ` +
      'start it with --model-control-mode=explicit to load and unload models at run time)'),
  CALL_CYCLE: entry<{ model: string; chain: readonly string[]; instances: number; limit: number }>('UNAVAILABLE',
    (p) => `call cycle: the call ${p.chain.map((m) => `'${m}'`).join(' -> ')} could wait forever: all ${p.instances} instance(s) of model '${p.model}' ` +
      `run their limit of ${p.limit} execute() calls at once (parameters.max_concurrent_executes), every one waiting on calls into the server; ` +
      'make fewer nested calls at once, or raise max_concurrent_executes or the instance_group count'),
  INFER_CALLS_IN_FLIGHT: entry<{ model: string; max: number }>('UNAVAILABLE',
    (p) => `ctx.infer from model '${p.model}': this execute() already has ${p.max} calls in flight, its limit ` +
      '(parameters.max_infer_calls_in_flight); await some before making more'),
  INFER_AFTER_EXECUTE: entry<{ model: string }>('UNAVAILABLE',
    (p) => `ctx.infer from model '${p.model}' outside a running execute(): the execute() that made it has returned or ran past its time limit, ` +
      'and its calls were cancelled; make and await calls inside execute(requests, ctx), with the ctx it was given'),
  CALL_DEPTH: entry<{ model: string; depth: number; max: number }>('INVALID_ARG',
    (p) => `call to model '${p.model}' is ${p.depth} calls deep, past the limit of ${p.max}; a script or ensemble is probably recursing without end`),
  DECOUPLED_UNARY: entry<{ model: string }>('UNSUPPORTED',
    (p) => `unary inference doesn't support models with decoupled transaction policy: model '${p.model}' may send any number ` +
      `of responses per request (model_transaction_policy { decoupled: true }); use the gRPC ModelStreamInfer RPC, ` +
      `or POST /v2/models/${p.model}/generate_stream`),
  GENERATE_RESPONSE_COUNT: entry<{ model: string; got: string }>('INVALID_ARG',
    (p) => `generate expects model to produce exactly 1 response, but model '${p.model}' produced ${p.got}; ` +
      `POST /v2/models/${p.model}/generate_stream takes any number`),
  API_RESTRICTED: entry<{ header: string; kind: 'API' | 'protocol' }>('PERMISSION_DENIED',
    (p) => `This ${p.kind} is restricted, expecting header '${p.header}'`),
  INVALID_MODEL_NAME: entry<{ name: string; source: string; reason: string }>('INVALID_ARG',
    (p) => `invalid model name ${JSON.stringify(p.name)} in ${p.source}: ${p.reason}; a model name is the name of one folder in the model repository`),
  TRACE_FILE_FIXED: entry<Record<string, never>>('UNSUPPORTED',
    () => 'trace file location can not be updated through network protocol'),
  TRACE_LEVEL_OFF_ALONE: entry<Record<string, never>>('INVALID_ARG', () => "Expect only one trace level 'OFF' is specified"),
  TRACE_SETTING_PARSE: entry<{ key: string; detail: string }>('INVALID_ARG', (p) => `Unable to parse '${p.key}', ${p.detail}`),
  TRACE_COUNT_BELOW: entry<{ got: string }>('INVALID_ARG', (p) => `Unable to parse 'trace_count'. Expecting value >= -1, got:${p.got}`),
  TRACE_SETTING_INVALID: entry<{ reason: string }>('INVALID_ARG', (p) => `Attempting to set invalid trace setting :${p.reason}`),
  TRACE_SETTING_TYPE: entry<{ expected: 'string' | 'array' }>('INTERNAL',
    (p) => `attempt to access JSON non-${p.expected} as ${p.expected}`),
  TRACE_VALUE_COUNT: entry<{ key: string }>('INVALID_ARG', (p) => `expect only 1 value for '${p.key}'`),
  /** Triton's words for a model in the repository that is not ready, as its trace setting endpoints say it (space before the colon). */
  TRACE_MODEL_NOT_READY: entry<{ model: string }>('INVALID_ARG', (p) => `Request for unknown model : ${p.model}`),
  LOG_SETTING: entry<{ setting: string; detail: string }>('INVALID_ARG',
    (p) => `invalid log setting '${p.setting}': ${p.detail}`),
  LOG_FILE_FIXED: entry<Record<string, never>>('UNSUPPORTED',
    () => 'log file location can not be updated through network protocol (set it at start with --log-file)'),
  CLIENT_SHM_DISABLED: entry<Record<string, never>>('UNSUPPORTED',
    () => "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."),
  SHM_REGION_EXISTS: entry<{ region: string }>('ALREADY_EXISTS',
    (p) => `shared memory region '${p.region}' already in manager`),
  SHM_REGION_NOT_FOUND: entry<{ region: string; kind: '' | 'system ' | 'cuda ' }>('NOT_FOUND',
    (p) => `Unable to find ${p.kind}shared memory region: '${p.region}'`),
  SHM_REGION_KIND: entry<{ region: string; registered: 'system' | 'CUDA'; asked: 'system' | 'CUDA' }>('NOT_FOUND',
    (p) => `The region named '${p.region}' is registered as ${p.registered} shared memory, not ${p.asked} shared memory`),
  SHM_OPEN_FAILED: entry<{ key: string; detail: string }>('INTERNAL',
    (p) => `Unable to open shared memory region: '${p.key}' (${p.detail})`),
  SHM_INVALID_REGION: entry<{ key: string; detail: string }>('INTERNAL',
    (p) => `Invalid shared memory region: '${p.key}' (${p.detail})`),
  SHM_ACCESS_FAILED: entry<{ region: string; detail: string }>('INTERNAL',
    (p) => `shared memory region '${p.region}': ${p.detail}`),
  SHM_REGION_LIMIT: entry<{ limit: number }>('UNAVAILABLE',
    (p) => `the server already holds ${p.limit} shared memory regions, its limit (--max-shm-regions); unregister one before registering another`),
  SHM_OUTPUT_TOO_SMALL: entry<{ output: string; size: number; needed: number }>('INTERNAL',
    (p) => `shared memory size specified with the request for output '${p.output}' (${p.size} bytes) should be at least ${p.needed} bytes to hold the results`),
  CUDA_SHM_UNSUPPORTED: entry<{ region: string }>('INVALID_ARG',
    (p) => `failed to register CUDA shared memory region: '${p.region}', GPUs not supported`),
  /** Triton's wording: one index covers every repository, and load/unload take no repository name. */
  REPOSITORY_NAME_UNSUPPORTED: entry<Record<string, never>>('UNSUPPORTED',
    () => "'repository_name' specification is not supported"),
  NOT_IMPLEMENTED: entry<{ feature: string; detail: string }>('UNSUPPORTED',
    (p) => `${p.feature} is not implemented yet: ${p.detail}`),
} as const;

export type ErrorCode = keyof typeof CATALOGUE;
type ParamsOf<C extends ErrorCode> = (typeof CATALOGUE)[C] extends CatalogueEntry<infer P> ? P : never;

/**
 * The error type every layer throws. `code` is the stable catalogue code;
 * match on it (or on `status`), never on the class, so errors that crossed a
 * worker or isolate boundary as plain objects still compare equal. Its
 * message is bounded (MAX_ERROR_MESSAGE_BYTES) whatever built it: a script
 * that throws a 50 MB string yields a 4 KiB message.
 */
export class SwitchyardError extends Error {
  override readonly name = 'SwitchyardError';
  constructor(
    readonly code: ErrorCode,
    readonly status: StatusClass,
    message: string,
  ) {
    super(boundedMessage(message));
  }

  get httpStatus(): number {
    return STATUS_TABLE[this.status].http;
  }

  get grpcCode(): number {
    return STATUS_TABLE[this.status].grpc;
  }
}

export function serverError<C extends ErrorCode>(code: C, params: ParamsOf<C>): SwitchyardError {
  const item = CATALOGUE[code] as CatalogueEntry<ParamsOf<C>>;
  return new SwitchyardError(code, item.status, item.message(boundedParams(params)));
}

export function isSwitchyardError(value: unknown): value is SwitchyardError {
  return typeof value === 'object' && value !== null && typeof (value as { code?: unknown }).code === 'string'
    && (value as { code: string }).code in CATALOGUE && typeof (value as { status?: unknown }).status === 'string';
}

/** Any thrown value as a catalogue error; unknown failures become INTERNAL with their message kept. */
export function asSwitchyardError(value: unknown, model = 'unknown'): SwitchyardError {
  if (value instanceof SwitchyardError) return value;
  if (isSwitchyardError(value)) return new SwitchyardError(value.code, value.status, value.message);
  const detail = value instanceof Error ? value.message : String(value);
  return serverError('INFERENCE_FAILED', { model, detail });
}
