/**
 * The HTTP frontend: a fastify instance carrying the v2 routes. Every body
 * is read as raw bytes whatever its Content-Type (Triton never looks at it),
 * bounded by the body limit.
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { serverError } from '../../engine/errors.ts';
import type { InferenceServer } from '../../engine/server.ts';
import { generateRoutes } from './generate-routes.ts';
import { sendError, v2Routes } from './v2-routes.ts';

export const DEFAULT_MAX_INPUT_SIZE = 64 * 1024 * 1024;

export interface HttpServerOptions {
  /** Largest request body in bytes. Default 64 MiB, as tritonserver's --http-max-input-size. */
  readonly maxInputSize?: number;
}

export async function createHttpServer(server: InferenceServer, options: HttpServerOptions = {}): Promise<FastifyInstance> {
  const bodyLimit = options.maxInputSize ?? DEFAULT_MAX_INPUT_SIZE;
  const app = Fastify({ bodyLimit, logger: false, forceCloseConnections: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
  app.setNotFoundHandler((req, reply) => reply.code(404).type('application/json')
    .send(JSON.stringify({ error: `Not Found: no route for ${req.method} ${req.url}` })));
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const length = Number(req.headers['content-length']);
      return sendError(reply, serverError('BODY_TOO_LARGE', { limit: bodyLimit, ...(Number.isFinite(length) ? { got: length } : {}) }));
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return reply.code(status).type('application/json').send(JSON.stringify({ error: err.message }));
  });
  await app.register(v2Routes, { server });
  await app.register(generateRoutes, { server });
  return app;
}
