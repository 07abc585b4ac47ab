/**
 * The HTTP frontend: a fastify instance carrying the v2 routes. Every body
 * is read as raw bytes whatever its Content-Type (Triton never looks at it),
 * bounded by the body limit. Before any handler runs, two hooks guard every
 * route: the restricted-API check (by the route's API category, see
 * restricted-apis.ts) and the model name check on a `:model` path parameter.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { serverError } from '../../engine/errors.ts';
import { ServerLogger } from '../../engine/logger.ts';
import { checkModelName } from '../../engine/repository/model-name.ts';
import type { InferenceServer } from '../../engine/server.ts';
import { httpApiCategory, isApiCategory, restrictionFailure, type RestrictedApis } from '../restricted-apis.ts';
import { generateRoutes } from './generate-routes.ts';
import { loggingRoutes } from './logging-routes.ts';
import { VerboseRequestLog } from './request-log.ts';
import { sendError, v2Routes } from './v2-routes.ts';

export const DEFAULT_MAX_INPUT_SIZE = 64 * 1024 * 1024;

export interface HttpServerOptions {
  /** Largest request body in bytes. Default 64 MiB, as tritonserver's --http-max-input-size. */
  readonly maxInputSize?: number;
  /** API categories that need a header (--http-restricted-api). Default: none, every API is open. */
  readonly restrictedApis?: RestrictedApis;
  /** Elements one BYTES input may hold (--max-bytes-elements). Default DEFAULT_MAX_BYTES_ELEMENTS (1,048,576). */
  readonly maxBytesElements?: number;
}

/** A route's API category: its own `config.api` when it sets one, else the one its URL shape implies. */
function routeCategory(req: FastifyRequest) {
  const config = req.routeOptions.config as { api?: unknown } | undefined;
  return isApiCategory(config?.api) ? config.api : httpApiCategory(req.routeOptions.url ?? '');
}

function headerValues(req: FastifyRequest, name: string): string[] {
  const value = req.headers[name];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

export async function createHttpServer(server: InferenceServer, options: HttpServerOptions = {}): Promise<FastifyInstance> {
  const bodyLimit = options.maxInputSize ?? DEFAULT_MAX_INPUT_SIZE;
  // Fastify logs through the engine's pino logger, and /v2/logging changes its settings; with a
  // plain Logger (tests, embedders) fastify stays silent and /v2/logging answers 501.
  const logger = server.logger instanceof ServerLogger ? server.logger : undefined;
  const app = (logger
    ? Fastify({ bodyLimit, forceCloseConnections: true, loggerInstance: logger.pino, logController: new VerboseRequestLog(logger) })
    : Fastify({ bodyLimit, logger: false, forceCloseConnections: true })) as unknown as FastifyInstance;
  const restricted = options.restrictedApis;
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const header = restrictionFailure(restricted, routeCategory(req), (name) => headerValues(req, name));
    if (header !== undefined) return sendError(reply, serverError('API_RESTRICTED', { header, kind: 'API' }));
    const model = (req.params as { model?: unknown } | undefined)?.model;
    try {
      if (typeof model === 'string') checkModelName(model, 'the URL path');
    } catch (err) {
      return sendError(reply, err);
    }
    return undefined;
  });
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
  await app.register(v2Routes, { server, ...(options.maxBytesElements !== undefined ? { maxBytesElements: options.maxBytesElements } : {}) });
  await app.register(generateRoutes, { server });
  await app.register(loggingRoutes, { logger });
  return app;
}
