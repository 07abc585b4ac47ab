/**
 * The JSON work of the HTTP frontend as plain-data tasks: decoding infer,
 * generate and repository bodies, and encoding responses as JSON. One
 * function runs a task, in the event loop's thread for small ones and in a
 * JSON codec process (json-codec-pool.ts) for large ones, so both give the
 * same results and the same errors. Tasks and results hold only what the
 * structured clone carries (typed arrays, Maps, bigints), never functions.
 */
import { asSwitchyardError, isSwitchyardError, serverError } from '../../engine/errors.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import type { TensorMetadata } from '../../engine/inference-engine.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { decodeGenerateBody, encodeGenerateResponse, type DecodedGenerate } from './generate-codec.ts';
import { decodeInferBody, encodeInferResponse, type EncodedInfer, type InferBody } from './infer-codec.ts';
import { jsonObjectBody } from './json-body.ts';
import { MAX_JSON_NESTING } from './json-tensor-data.ts';

type Target = { readonly model: string; readonly version?: string };

export type JsonCodecTask =
  | { readonly kind: 'infer-request'; readonly body: Uint8Array; readonly headerLength: string | string[] | undefined; readonly target: Target; readonly maxBytesElements: number }
  | { readonly kind: 'generate-request'; readonly body: Uint8Array; readonly inputs: readonly TensorMetadata[]; readonly target: Target; readonly maxBytesElements: number }
  | { readonly kind: 'json-object'; readonly body: Uint8Array; readonly what: string }
  | { readonly kind: 'infer-response'; readonly response: InferenceResponse; readonly binaryOutputs: readonly string[]; readonly sharedMemoryOutputs?: readonly string[] }
  | { readonly kind: 'generate-response'; readonly response: InferenceResponse };

export interface JsonCodecResults {
  'infer-request': InferBody;
  'generate-request': DecodedGenerate;
  'json-object': Record<string, unknown>;
  'infer-response': EncodedInfer;
  'generate-response': string;
}

export type JsonCodecResult<T extends JsonCodecTask> = JsonCodecResults[T['kind']];

/** A failure as it crosses from a codec process: a catalogue error's code, status class and message, or a bare message. */
export interface JsonCodecFailure {
  readonly code?: string;
  readonly status?: string;
  readonly message: string;
}

const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));

/**
 * Only the fields a codec process needs: a response as plain data for the
 * structured clone. Outputs named in `withoutData` (written to shared
 * memory) go without their bytes, which the encoding leaves out.
 */
export function plainResponse(response: InferenceResponse, withoutData: ReadonlySet<string> = new Set()): InferenceResponse {
  const plain = (t: Tensor): Tensor => {
    const raw = withoutData.has(t.name) ? new Uint8Array(0) : t.raw;
    return t.datatype === 'BYTES'
      ? { name: t.name, datatype: t.datatype, shape: t.shape, raw, offsets: raw === t.raw ? t.offsets : new Uint32Array(1) }
      : { name: t.name, datatype: t.datatype, shape: t.shape, raw };
  };
  return {
    modelName: response.modelName,
    modelVersion: response.modelVersion,
    ...(response.id !== undefined ? { id: response.id } : {}),
    outputs: response.outputs.map(plain),
    ...(response.parameters !== undefined ? { parameters: response.parameters } : {}),
  };
}

/** Bytes of tensor data a JSON encoding of these outputs covers: how the codec pool sizes the work. */
export function jsonOutputBytes(outputs: readonly Tensor[]): number {
  return outputs.reduce((n, t) => n + t.raw.byteLength, 0);
}

/**
 * An infer response encoded as it goes on the wire. JSON as bytes, not
 * text: they cross from a codec process as a view, the socket takes them as
 * they are, and fastify sends the Content-Type as it was set.
 */
export function inferResponseBytes(
  response: InferenceResponse, binaryOutput: (name: string) => boolean, inSharedMemory?: (name: string) => boolean,
): EncodedInfer {
  const encoded = encodeInferResponse(response, binaryOutput, inSharedMemory);
  return typeof encoded.body === 'string' ? { ...encoded, body: Buffer.from(encoded.body, 'utf8') } : encoded;
}

/** Runs one task where it is called. Throws what the client should get. */
export function runJsonCodecTask<T extends JsonCodecTask>(task: T): JsonCodecResult<T> {
  return run(task) as JsonCodecResult<T>;
}

function run(task: JsonCodecTask): JsonCodecResults[JsonCodecTask['kind']] {
  switch (task.kind) {
    case 'infer-request':
      return decodeInferBody(asBuffer(task.body), task.headerLength, task.target, task.maxBytesElements);
    case 'generate-request':
      return decodeGenerateBody(asBuffer(task.body), task.inputs, task.target, task.maxBytesElements);
    case 'json-object':
      return boundedJsonObject(jsonObjectBody(asBuffer(task.body), task.what), task.what);
    case 'infer-response': {
      const binary = new Set(task.binaryOutputs);
      const shared = new Set(task.sharedMemoryOutputs);
      return inferResponseBytes(task.response, (name) => binary.has(name), (name) => shared.has(name));
    }
    case 'generate-response':
      return encodeGenerateResponse(task.response);
  }
}

/**
 * JSON values one control body (a repository load request) may hold. Its
 * config and file overrides are a few hundred values; a body of millions
 * would cost the event loop a value each when it comes back from a codec
 * process.
 */
export const MAX_CONTROL_BODY_VALUES = 100_000;

/** The object, refused (400) when it holds more than MAX_CONTROL_BODY_VALUES values, counted without recursion. */
function boundedJsonObject(record: Record<string, unknown>, what: string): Record<string, unknown> {
  const stack: Array<{ readonly value: unknown; readonly depth: number }> = [{ value: record, depth: 1 }];
  let count = 1;
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    // Triton's bound and words; deeper values would also overflow the stack that carries them back from a codec process.
    if (depth > MAX_JSON_NESTING) throw serverError('BAD_REQUEST', { detail: `JSON nesting depth exceeds maximum allowed limit (${MAX_JSON_NESTING}) in ${what}` });
    const children: unknown[] = Array.isArray(value) ? value : Object.values(value);
    count += children.length;
    if (count > MAX_CONTROL_BODY_VALUES) {
      throw serverError('MALFORMED_JSON', { detail: `${what} holds more than ${MAX_CONTROL_BODY_VALUES} JSON values` });
    }
    for (const child of children) stack.push({ value: child, depth: depth + 1 });
  }
  return record;
}

/** A thrown value as it crosses from a codec process. */
export function codecFailure(err: unknown): JsonCodecFailure {
  if (isSwitchyardError(err)) return { code: err.code, status: err.status, message: err.message };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** The thrown value again, on this side: a catalogue error as itself, anything else as an Error with its message. */
export function codecError(failure: JsonCodecFailure): Error {
  return isSwitchyardError(failure) ? asSwitchyardError(failure) : new Error(failure.message);
}
