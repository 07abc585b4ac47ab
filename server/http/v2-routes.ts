/**
 * The KServe v2 / Triton HTTP routes as a fastify plugin. Each handler
 * decodes, calls the engine facade, and encodes; nothing else.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { asSwitchyardError, boundedMessage, serverError } from '../../engine/errors.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { InferenceRequest } from '../../engine/inference-request.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import type { SharedMemoryLease } from '../../engine/memory/shared-memory-lease.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { DEFAULT_MAX_BYTES_ELEMENTS } from '../../engine/bytes-tensor.ts';
import { HEADER_LENGTH_HEADER, headerLength, type EncodedInfer, type InferBody } from './infer-codec.ts';
import type { JsonCodecPool } from './json-codec-pool.ts';
import { decodeRawBinaryRequest, type RawRequestModel } from './raw-binary-request.ts';
import { headerText, type HeaderForwardPattern } from '../header-forwarding.ts';
import { decompressRequest } from './request-decompression.ts';
import { compressedBody, responseCompression } from './response-compression.ts';
import { inferResponseBytes, jsonOutputBytes, plainResponse, runJsonCodecTask } from './json-codec-task.ts';
import { noteRequestIdentity } from './request-log.ts';
import { traceHttpRequest } from './http-trace.ts';
import {
  loadOptionsFromParameters, parametersFromJson, unloadOptionsFromParameters, type RepositoryParameter,
} from '../repository-parameters.ts';

export interface V2RoutesOptions {
  readonly engine: InferenceEngine;
  /** Where JSON bodies and responses are decoded and encoded: in this thread when small, in a codec process when large. */
  readonly codec: JsonCodecPool;
  /** Elements one BYTES input may hold; default DEFAULT_MAX_BYTES_ELEMENTS. */
  readonly maxBytesElements?: number;
  /** The body limit (--http-max-input-size), which also bounds an infer body once decompressed. */
  readonly maxInputSize: number;
  /** --http-header-forward-pattern: which infer request headers become request parameters. Default: none. */
  readonly headerForward?: HeaderForwardPattern;
}

interface ModelParams {
  model: string;
  version?: string;
}

type ModelRequest = FastifyRequest<{ Params: ModelParams }>;

/** Sends a catalogue error as Triton does: {"error": "..."} with the mapped status, the message bounded. */
export function sendError(reply: FastifyReply, err: unknown, model?: string): FastifyReply {
  const error = asSwitchyardError(err, model);
  return reply.code(error.httpStatus).type('application/json').send(errorBody(error.message));
}

/** Triton's error body, {"error": "..."}, with the message cut to MAX_ERROR_MESSAGE_BYTES. */
export function errorBody(message: string): string {
  return JSON.stringify({ error: boundedMessage(message) });
}

/** An AbortSignal that fires when the client goes away before the reply is written. */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(clientGone());
  });
  return controller.signal;
}

const clientGone = (): Error => new Error('the client closed the connection');

/** One signal per keep-alive connection, made by its first infer request (see connectionSignal). */
const connectionSignals = new WeakMap<Socket, AbortSignal>();

/**
 * An AbortSignal that fires when the client's connection closes: one per
 * connection, shared by the infer requests it carries one after another.
 * For a request still running it fires exactly when disconnectSignal
 * would (a reply closes unfinished only with its connection), and it costs
 * one WeakMap lookup instead of an AbortController and a listener per
 * request. Only for answers that end with the request (infer): whoever
 * listens on it removes the listener when the request settles (the
 * schedulers, ensembles and script calls all do), so listeners do not pile
 * up on a long-lived connection.
 */
export function connectionSignal(reply: FastifyReply): AbortSignal {
  const socket = reply.raw.socket;
  if (!socket || socket.destroyed) return disconnectSignal(reply);
  let signal = connectionSignals.get(socket);
  if (!signal) {
    const controller = new AbortController();
    socket.once('close', () => controller.abort(clientGone()));
    signal = controller.signal;
    connectionSignals.set(socket, signal);
  }
  return signal;
}

/** What a raw binary request's deduction reads from the model's config. */
function rawRequestModel(engine: InferenceEngine, model: string, version?: string): RawRequestModel {
  const maxBatchSize = engine.modelConfig(model, version)['max_batch_size'];
  return { inputs: engine.modelMetadata(model, version).inputs, maxBatchSize: typeof maxBatchSize === 'number' ? maxBatchSize : 0 };
}

/** The request's headers as the client wrote them: names in their own case, in order, repeats kept. */
function* rawHeaders(req: FastifyRequest): Generator<[string, string]> {
  const raw = req.raw.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) yield [raw[i]!, headerText(raw[i + 1]!)];
}

const EMPTY_BODY = Buffer.alloc(0);

/** Whether an output goes back as binary data: its own binary_data when the request lists it, else binary_data_output. */
function binaryOutput(decoded: InferBody, name: string): boolean {
  return decoded.binaryByOutput.get(name) ?? decoded.binaryDefault;
}

/** Bytes of tensor data the JSON part of the response will hold: how the codec pool sizes the encoding. */
function jsonDataBytes(outputs: readonly Tensor[], decoded: InferBody): number {
  let bytes = 0;
  for (const tensor of outputs) if (!binaryOutput(decoded, tensor.name)) bytes += tensor.raw.byteLength;
  return bytes;
}

/**
 * The response body when no output goes to shared memory: encoded here and
 * now when small (no copy of the response for a codec process, no promise),
 * else in a codec process.
 */
function encodeResponse(codec: JsonCodecPool, response: InferenceResponse, decoded: InferBody): EncodedInfer | Promise<EncodedInfer> {
  const bytes = jsonDataBytes(response.outputs, decoded);
  if (codec.inThread(bytes)) return inferResponseBytes(response, (name) => binaryOutput(decoded, name));
  const binaryOutputs = response.outputs.filter((t) => binaryOutput(decoded, t.name)).map((t) => t.name);
  return codec.run({ kind: 'infer-response', response: plainResponse(response), binaryOutputs }, bytes);
}

/** The response body once the outputs the request placed in shared memory are written there; those go back without data. */
async function encodeWithSharedMemory(
  codec: JsonCodecPool, response: InferenceResponse, decoded: InferBody, lease: SharedMemoryLease,
): Promise<EncodedInfer> {
  await lease.writeOutputs(response.outputs);
  const shared = lease.outputNames;
  const binaryOutputs = response.outputs.filter((t) => !shared.has(t.name) && binaryOutput(decoded, t.name));
  return codec.run({
    kind: 'infer-response', response: plainResponse(response, shared), binaryOutputs: binaryOutputs.map((t) => t.name),
    ...(shared.size > 0 ? { sharedMemoryOutputs: [...shared] } : {}),
  }, jsonOutputBytes(response.outputs.filter((t) => !shared.has(t.name) && !binaryOutput(decoded, t.name))));
}

export const v2Routes: FastifyPluginAsync<V2RoutesOptions> = async (app: FastifyInstance, { engine, codec, maxBytesElements, maxInputSize, headerForward }) => {
  const health = (check: () => boolean) => async (_req: FastifyRequest, reply: FastifyReply) =>
    reply.code(check() ? 200 : 400).send();
  app.get('/v2/health/live', health(() => engine.isLive()));
  app.get('/v2/health/ready', health(() => engine.isReady()));
  app.get('/v2', async (_req, reply) => reply.type('application/json').send(JSON.stringify(engine.serverMetadata())));

  /** A GET that answers the engine's value as JSON, or its catalogue error. */
  const modelJson = (read: (model: string, version?: string) => unknown) => async (req: ModelRequest, reply: FastifyReply) => {
    try {
      return reply.type('application/json').send(JSON.stringify(read(req.params.model, req.params.version)));
    } catch (err) {
      return sendError(reply, err, req.params.model);
    }
  };
  const metadata = modelJson((model, version) => engine.modelMetadata(model, version));
  const config = modelJson((model, version) => engine.modelConfig(model, version));
  const ready = async (req: ModelRequest, reply: FastifyReply) => {
    if (engine.isModelReady(req.params.model, req.params.version)) return reply.code(200).send();
    return sendError(reply, serverError('MODEL_VERSION_NOT_READY', {}), req.params.model);
  };
  const bytesElements = maxBytesElements ?? DEFAULT_MAX_BYTES_ELEMENTS;
  const infer = async (req: ModelRequest, reply: FastifyReply) => {
    const { model, version } = req.params;
    const trace = traceHttpRequest(engine.tracer, model, req, reply);
    try {
      engine.assertModelReady(model, version);
      const body = Buffer.isBuffer(req.body) ? req.body : EMPTY_BODY;
      const signal = connectionSignal(reply);
      const lengthHeader = req.headers[HEADER_LENGTH_HEADER];
      const jsonLength = headerLength(lengthHeader, body.byteLength);
      const target = version ? { model, version } : { model };
      let decoded: InferBody;
      // Only an explicit 0 asks for a raw request; an empty body without the header is an empty JSON request.
      if (lengthHeader !== undefined && jsonLength === 0) {
        decoded = decodeRawBinaryRequest(body, rawRequestModel(engine, model, version), target, bytesElements);
      } else {
        const task = { kind: 'infer-request', body, headerLength: lengthHeader, target, maxBytesElements: bytesElements } as const;
        // Small bodies are decoded here and now: no promise, no microtask (see JsonCodecPool.inThread).
        decoded = codec.inThread(jsonLength) ? runJsonCodecTask(task) : await codec.run(task, jsonLength);
      }
      const lease = decoded.sharedMemory ? engine.sharedMemory.lease(decoded.sharedMemory) : undefined;
      if (engine.logger.verboseEnabled) noteRequestIdentity(req, decoded.request.id, trace?.logId);
      // As in Triton, forwarded headers are added once the body is read, over any body parameter of the same name.
      const forwarded = headerForward?.parameters(rawHeaders(req));
      const received: InferenceRequest = forwarded
        ? { ...decoded.request, parameters: { ...decoded.request.parameters, ...forwarded }, signal, ...(trace ? { trace } : {}) }
        : trace ? { ...decoded.request, signal, trace } : { ...decoded.request, signal };
      let encoded: EncodedInfer;
      try {
        const request = lease ? { ...received, inputs: await lease.readInputs(model, received.inputs, bytesElements) } : received;
        const response = await engine.infer(request);
        try {
          encoded = lease ? await encodeWithSharedMemory(codec, response, decoded, lease) : await encodeResponse(codec, response, decoded);
        } finally {
          // The body holds copies of the outputs (or the encoding failed): their pooled memory can serve the next request.
          response.lease?.release();
        }
      } finally {
        if (lease) await lease.release();
      }
      const coding = responseCompression(req.headers['accept-encoding']);
      trace?.mark('HTTP_SEND_START');
      if (coding === 'identity') return reply.headers(encoded.headers).send(encoded.body);
      const pending = compressedBody(encoded.body, coding);
      // Awaited only when large: a small reply is sent in the turn its result arrives (see SYNC_COMPRESSION_MAX_BYTES).
      const compressed = pending instanceof Promise ? await pending : pending;
      return reply.headers({ ...encoded.headers, ...compressed.headers }).send(compressed.body);
    } catch (err) {
      trace?.mark('HTTP_SEND_START');
      return sendError(reply, err, model);
    }
  };

  const stats = modelJson((model, version) => engine.modelStatistics(model, version));
  for (const prefix of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.get(prefix, metadata);
    app.get(`${prefix}/ready`, ready);
    app.get(`${prefix}/config`, config);
    app.get(`${prefix}/stats`, stats);
    app.post<{ Params: ModelParams }>(`${prefix}/infer`, { preParsing: decompressRequest(maxInputSize) }, infer);
  }
  app.get('/v2/models/stats', async (_req, reply) => {
    try {
      return reply.type('application/json').send(JSON.stringify(engine.modelStatistics()));
    } catch (err) {
      return sendError(reply, err);
    }
  });

  const index = async (req: FastifyRequest, reply: FastifyReply) => {
    try {
      const { ready } = await repositoryRequestBody(codec, req.body, { ready: 'boolean' });
      const index = engine.repositoryIndex().filter((e) => ready !== true || e.state === 'READY');
      return reply.type('application/json').send(JSON.stringify(index));
    } catch (err) {
      return sendError(reply, err);
    }
  };
  // Triton's paths may name a repository: the index ignores it (it covers every folder), load and unload refuse it.
  app.post('/v2/repository/index', index);
  app.post('/v2/repository/:repository/index', index);
  type Control = (model: string, parameters: Map<string, RepositoryParameter>) => Promise<void>;
  const control = (action: Control) => async (req: ModelRequest, reply: FastifyReply) => {
    try {
      const { parameters } = await repositoryRequestBody(codec, req.body, { parameters: 'object' });
      await action(req.params.model, parametersFromJson(parameters as Record<string, unknown> | undefined));
      return reply.code(200).send();
    } catch (err) {
      return sendError(reply, err, req.params.model);
    }
  };
  sharedMemoryRoutes(app, engine, codec);

  app.post('/v2/repository/models/:model/load', control((model, p) => engine.loadModel(model, loadOptionsFromParameters(p))));
  app.post('/v2/repository/models/:model/unload', control((model, p) => engine.unloadModel(model, unloadOptionsFromParameters(p))));
  const namedRepository = async (req: FastifyRequest, reply: FastifyReply) => sendError(reply, serverError('REPOSITORY_NAME_UNSUPPORTED', {}));
  app.post('/v2/repository/:repository/models/:model/load', namedRepository);
  app.post('/v2/repository/:repository/models/:model/unload', namedRepository);
};

type RegionRequest = FastifyRequest<{ Params: { region?: string } }>;

/**
 * The shared memory extension's routes, as Triton lays them out:
 * /v2/{system,cuda}sharedmemory[/region/<name>]/{status,register,unregister}.
 * CUDA shared memory is answered as a CPU-only tritonserver answers it (see
 * SharedMemoryManager).
 */
function sharedMemoryRoutes(app: FastifyInstance, engine: InferenceEngine, codec: JsonCodecPool): void {
  const manager = engine.sharedMemory;
  const answer = (action: (req: RegionRequest) => unknown) => async (req: RegionRequest, reply: FastifyReply) => {
    try {
      const result = await action(req);
      return result === undefined ? reply.code(200).send() : reply.type('application/json').send(JSON.stringify(result));
    } catch (err) {
      return sendError(reply, err);
    }
  };
  for (const prefix of ['', '/region/:region']) {
    app.get(`/v2/systemsharedmemory${prefix}/status`, answer((req) => manager.status(req.params.region)));
    app.post(`/v2/systemsharedmemory${prefix}/register`, answer(async (req) => {
      // Triton refuses a disabled extension before it looks at the region name or the body.
      if (!manager.allowClient) throw serverError('CLIENT_SHM_DISABLED', {});
      const name = req.params.region ?? '';
      if (name === '') throw serverError('BAD_REQUEST', { detail: "'region name' is necessary to register system shared memory region" });
      const { key, offset, byte_size: byteSize } = await registerRequestBody(codec, req.body);
      await manager.register(name, key, offset, byteSize);
      return undefined;
    }));
    app.post(`/v2/systemsharedmemory${prefix}/unregister`, answer((req) => manager.unregister(req.params.region)));
    app.get(`/v2/cudasharedmemory${prefix}/status`, answer((req) => manager.cudaStatus(req.params.region)));
    app.post(`/v2/cudasharedmemory${prefix}/register`, answer((req) => manager.cudaRegister(req.params.region ?? '')));
    app.post(`/v2/cudasharedmemory${prefix}/unregister`, answer(() => manager.cudaUnregister()));
  }
}

/** A system shared memory register body: {"key": string, "offset": integer (default 0), "byte_size": integer}, with Triton's errors. */
async function registerRequestBody(codec: JsonCodecPool, body: unknown): Promise<{ key: string; offset: number; byte_size: number }> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  const record = await codec.run({ kind: 'json-object', body: bytes, what: 'the request body' }, bytes.byteLength);
  const count = (field: string, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw serverError('UNPARSABLE_FIELD', { field, detail: 'expected a non-negative integer' });
    }
    return value;
  };
  if (record['key'] === undefined) throw serverError('BAD_REQUEST', { detail: "Shared memory register request has no 'key' field" });
  if (typeof record['key'] !== 'string') throw serverError('UNPARSABLE_FIELD', { field: 'key', detail: 'expected a string' });
  const offset = record['offset'] === undefined ? 0 : count('offset', record['offset']);
  if (record['byte_size'] === undefined) throw serverError('BAD_REQUEST', { detail: "Shared memory register request has no 'byte_size' field" });
  return { key: record['key'], offset, byte_size: count('byte_size', record['byte_size']) };
}

/** An optional JSON object body of a repository call, with each known key type-checked; large ones are parsed in a codec process. */
async function repositoryRequestBody(
  codec: JsonCodecPool, body: unknown, fields: Readonly<Record<string, 'boolean' | 'object'>>,
): Promise<Record<string, unknown>> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  const record = await codec.run({ kind: 'json-object', body: bytes, what: 'the request body' }, bytes.byteLength);
  for (const [key, type] of Object.entries(fields)) {
    const value = record[key];
    const ok = value === undefined || (type === 'object' ? typeof value === 'object' && value !== null && !Array.isArray(value) : typeof value === type);
    if (!ok && type === 'object') throw serverError('UNPARSABLE_FIELD', { field: key, detail: 'expected an object' });
    // Triton's wording for the index's 'ready', which its tests match on.
    if (!ok) throw serverError('BAD_REQUEST', { detail: `Invalid value for '${key}': expected a boolean` });
  }
  return record;
}
