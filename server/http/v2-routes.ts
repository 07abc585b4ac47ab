/**
 * The KServe v2 / Triton HTTP routes as a fastify plugin. Each handler
 * decodes, calls the engine facade, and encodes; nothing else.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { asSwitchyardError, serverError } from '../../engine/errors.ts';
import type { InferenceServer } from '../../engine/server.ts';
import { decodeInferRequest, encodeInferResponse, HEADER_LENGTH_HEADER } from './infer-codec.ts';

export interface V2RoutesOptions {
  readonly server: InferenceServer;
}

interface ModelParams {
  model: string;
  version?: string;
}

type ModelRequest = FastifyRequest<{ Params: ModelParams }>;

/** Sends a catalogue error as Triton does: {"error": "..."} with the mapped status. */
export function sendError(reply: FastifyReply, err: unknown, model?: string): FastifyReply {
  const error = asSwitchyardError(err, model);
  return reply.code(error.httpStatus).type('application/json').send(JSON.stringify({ error: error.message }));
}

/** An AbortSignal that fires when the client goes away before the reply is written. */
function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('the client closed the connection'));
  });
  return controller.signal;
}

export const v2Routes: FastifyPluginAsync<V2RoutesOptions> = async (app: FastifyInstance, { server }) => {
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
      const decoded = decodeInferRequest(body, req.headers[HEADER_LENGTH_HEADER], { model, version }, disconnectSignal(reply));
      const response = await server.infer(decoded.request);
      const encoded = encodeInferResponse(response, decoded.binaryOutput);
      return reply.headers(encoded.headers).send(encoded.body);
    } catch (err) {
      return sendError(reply, err, model);
    }
  };

  for (const prefix of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.get(prefix, metadata);
    app.get(`${prefix}/ready`, ready);
    app.get(`${prefix}/config`, config);
    app.post(`${prefix}/infer`, infer);
  }
};
