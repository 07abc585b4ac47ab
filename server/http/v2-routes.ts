/**
 * The KServe v2 / Triton HTTP routes as a fastify plugin. Each handler
 * decodes, calls the engine facade, and encodes; nothing else.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { asSwitchyardError, boundedMessage, serverError } from '../../engine/errors.ts';
import type { InferenceServer } from '../../engine/server.ts';
import { DEFAULT_MAX_BYTES_ELEMENTS } from '../../engine/bytes-tensor.ts';
import { decodedInfer, HEADER_LENGTH_HEADER, headerLength } from './infer-codec.ts';
import type { JsonCodecPool } from './json-codec-pool.ts';
import { decodeRawBinaryRequest, type RawRequestModel } from './raw-binary-request.ts';
import { decompressRequest } from './request-decompression.ts';
import { compressedBody, responseCompression } from './response-compression.ts';
import { jsonOutputBytes, plainResponse } from './json-codec-task.ts';
import {
  loadOptionsFromParameters, parametersFromJson, unloadOptionsFromParameters, type RepositoryParameter,
} from '../repository-parameters.ts';

export interface V2RoutesOptions {
  readonly server: InferenceServer;
  /** Where JSON bodies and responses are decoded and encoded: in this thread when small, in a codec process when large. */
  readonly codec: JsonCodecPool;
  /** Elements one BYTES input may hold; default DEFAULT_MAX_BYTES_ELEMENTS. */
  readonly maxBytesElements?: number;
  /** The body limit (--http-max-input-size), which also bounds an infer body once decompressed. */
  readonly maxInputSize: number;
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
    if (!reply.raw.writableFinished) controller.abort(new Error('the client closed the connection'));
  });
  return controller.signal;
}

/** What a raw binary request's deduction reads from the model's config. */
function rawRequestModel(server: InferenceServer, model: string, version?: string): RawRequestModel {
  const maxBatchSize = server.modelConfig(model, version)['max_batch_size'];
  return { inputs: server.modelMetadata(model, version).inputs, maxBatchSize: typeof maxBatchSize === 'number' ? maxBatchSize : 0 };
}

export const v2Routes: FastifyPluginAsync<V2RoutesOptions> = async (app: FastifyInstance, { server, codec, maxBytesElements, maxInputSize }) => {
  const health = (check: () => boolean) => async (_req: FastifyRequest, reply: FastifyReply) =>
    reply.code(check() ? 200 : 400).send();
  app.get('/v2/health/live', health(() => server.isLive()));
  app.get('/v2/health/ready', health(() => server.isReady()));
  app.get('/v2', async (_req, reply) => reply.type('application/json').send(JSON.stringify(server.serverMetadata())));

  /** A GET that answers the engine's value as JSON, or its catalogue error. */
  const modelJson = (read: (model: string, version?: string) => unknown) => async (req: ModelRequest, reply: FastifyReply) => {
    try {
      return reply.type('application/json').send(JSON.stringify(read(req.params.model, req.params.version)));
    } catch (err) {
      return sendError(reply, err, req.params.model);
    }
  };
  const metadata = modelJson((model, version) => server.modelMetadata(model, version));
  const config = modelJson((model, version) => server.modelConfig(model, version));
  const ready = async (req: ModelRequest, reply: FastifyReply) => {
    if (server.isModelReady(req.params.model, req.params.version)) return reply.code(200).send();
    return sendError(reply, serverError('MODEL_VERSION_NOT_READY', {}), req.params.model);
  };
  const infer = async (req: ModelRequest, reply: FastifyReply) => {
    const { model, version } = req.params;
    try {
      server.assertModelReady(model, version);
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const signal = disconnectSignal(reply);
      const lengthHeader = req.headers[HEADER_LENGTH_HEADER];
      const jsonLength = headerLength(lengthHeader, body.byteLength);
      const target = { model, ...(version ? { version } : {}) };
      const bytesElements = maxBytesElements ?? DEFAULT_MAX_BYTES_ELEMENTS;
      // Only an explicit 0 asks for a raw request; an empty body without the header is an empty JSON request.
      const decoded = decodedInfer(lengthHeader !== undefined && jsonLength === 0
        ? decodeRawBinaryRequest(body, rawRequestModel(server, model, version), target, bytesElements)
        : await codec.run({ kind: 'infer-request', body, headerLength: lengthHeader, target, maxBytesElements: bytesElements }, jsonLength), signal);
      const response = await server.infer({ ...decoded.request, ownsPooledOutputs: true });
      const binaryOutputs = response.outputs.filter((t) => decoded.binaryOutput(t.name));
      let encoded;
      try {
        encoded = await codec.run({ kind: 'infer-response', response: plainResponse(response), binaryOutputs: binaryOutputs.map((t) => t.name) },
          jsonOutputBytes(response.outputs.filter((t) => !decoded.binaryOutput(t.name))));
      } finally {
        // The body holds copies of the outputs, so their pooled memory can serve the next request.
        server.releaseOutputs(response.outputs);
      }
      const pending = compressedBody(encoded.body, responseCompression(req.headers['accept-encoding']));
      // Awaited only when large: a small reply is sent in the turn its result arrives (see SYNC_COMPRESSION_MAX_BYTES).
      const compressed = pending instanceof Promise ? await pending : pending;
      return reply.headers({ ...encoded.headers, ...compressed.headers }).send(compressed.body);
    } catch (err) {
      return sendError(reply, err, model);
    }
  };

  const stats = modelJson((model, version) => server.modelStatistics(model, version));
  for (const prefix of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.get(prefix, metadata);
    app.get(`${prefix}/ready`, ready);
    app.get(`${prefix}/config`, config);
    app.get(`${prefix}/stats`, stats);
    app.post<{ Params: ModelParams }>(`${prefix}/infer`, { preParsing: decompressRequest(maxInputSize) }, infer);
  }
  app.get('/v2/models/stats', async (_req, reply) => {
    try {
      return reply.type('application/json').send(JSON.stringify(server.modelStatistics()));
    } catch (err) {
      return sendError(reply, err);
    }
  });

  app.post('/v2/repository/index', async (req, reply) => {
    try {
      const { ready } = await repositoryRequestBody(codec, req.body, { ready: 'boolean' });
      const index = server.repositoryIndex().filter((e) => ready !== true || e.state === 'READY');
      return reply.type('application/json').send(JSON.stringify(index));
    } catch (err) {
      return sendError(reply, err);
    }
  });
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
  app.post('/v2/repository/models/:model/load', control((model, p) => server.loadModel(model, loadOptionsFromParameters(p))));
  app.post('/v2/repository/models/:model/unload', control((model, p) => server.unloadModel(model, unloadOptionsFromParameters(p))));
};

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
