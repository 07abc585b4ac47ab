/**
 * The HTTP frontend: a fastify instance carrying the v2 routes. Every body
 * is read as raw bytes whatever its Content-Type (Triton never looks at it),
 * bounded by the body limit. Before any handler runs, two hooks guard every
 * route: the restricted-API check (by the route's API category, see
 * restricted-apis.ts) and the model name check on a `:model` path parameter.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isSwitchyardError, quoted, serverError } from '../../engine/errors.ts';
import { ServerLogger } from '../../engine/logger.ts';
import { checkModelName } from '../../engine/repository/model-name.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { HeaderForwardPattern } from '../header-forwarding.ts';
import { httpApiCategory, isApiCategory, restrictionFailure, type RestrictedApis } from '../restricted-apis.ts';
import { generateRoutes } from './generate-routes.ts';
import { JsonCodecPool, type JsonCodecPoolOptions } from './json-codec-pool.ts';
import { loggingRoutes } from './logging-routes.ts';
import { traceRoutes } from './trace-routes.ts';
import { VerboseRequestLog } from './request-log.ts';
import { errorBody, sendError, v2Routes } from './v2-routes.ts';

export const DEFAULT_MAX_INPUT_SIZE = 64 * 1024 * 1024;
/** --http-header-timeout-secs: time from a connection's start (or its previous request) to a complete request head. */
export const DEFAULT_HTTP_HEADER_TIMEOUT_MS = 60_000;
/** --http-request-timeout-secs: time to receive a whole request, body included; a stalled upload is dropped with its buffers. */
export const DEFAULT_HTTP_REQUEST_TIMEOUT_MS = 300_000;
/** --http-keepalive-timeout-secs: how long an idle keep-alive connection waits for its next request. */
export const DEFAULT_HTTP_KEEPALIVE_TIMEOUT_MS = 75_000;
/** --http-max-connections: open connections at most; further ones are closed as they arrive. */
export const DEFAULT_HTTP_MAX_CONNECTIONS = 4096;

/** Longest path parameter (a model name or version in the URL), in characters; fastify's own default is 100. */
export const MAX_PATH_PARAMETER_LENGTH = 1024;

export interface HttpServerOptions {
  /** Largest request body in bytes. Default 64 MiB, as tritonserver's --http-max-input-size. */
  readonly maxInputSize?: number;
  /** API categories that need a header (--http-restricted-api). Default: none, every API is open. */
  readonly restrictedApis?: RestrictedApis;
  /** Default DEFAULT_HTTP_HEADER_TIMEOUT_MS; at most the request timeout. */
  readonly headerTimeoutMs?: number;
  /** Default DEFAULT_HTTP_REQUEST_TIMEOUT_MS. Only receiving the request counts, never the time a model takes. */
  readonly requestTimeoutMs?: number;
  /** Default DEFAULT_HTTP_KEEPALIVE_TIMEOUT_MS. */
  readonly keepAliveTimeoutMs?: number;
  /** Default DEFAULT_HTTP_MAX_CONNECTIONS. */
  readonly maxConnections?: number;
  /** Elements one BYTES input may hold (--max-bytes-elements). Default DEFAULT_MAX_BYTES_ELEMENTS (1,048,576). */
  readonly maxBytesElements?: number;
  /** The --http-json-codec-* flags: where large JSON bodies and responses are decoded and encoded (json-codec-pool.ts). */
  readonly jsonCodec?: JsonCodecPoolOptions;
  /** --http-header-forward-pattern: infer request headers whose name matches become request parameters. Default: none are. */
  readonly headerForwardPattern?: string;
}

/** Statuses for the errors Node's HTTP parser reports before any route runs (timeouts, oversized or malformed heads). */
function clientErrorStatus(code: string | undefined): [status: number, message: string] {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'request timeout: the request head or body did not arrive in time (--http-header-timeout-secs, --http-request-timeout-secs)'];
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'request header fields too large'];
  return [400, `malformed HTTP request${code ? ` (${code})` : ''}`];
}

/** Answers a malformed or late request in Triton's error shape, then closes the connection. */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] = clientErrorStatus(err.code);
  const body = errorBody(message);
  const head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  // Destroyed once written, not merely ended: a stalled client may never close its side.
  if (socket.writable) socket.end(head + body, () => socket.destroy());
  else socket.destroy();
}

/** A route's API category: its own `config.api` when it sets one, else the one its URL shape implies. */
function routeCategory(req: FastifyRequest) {
  const config = req.routeOptions.config as { api?: unknown } | undefined;
  return isApiCategory(config?.api) ? config.api : httpApiCategory(req.routeOptions.url ?? '');
}

const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;

/** The methods some route serves at the request's path (empty when none does). */
function allowedMethods(app: FastifyInstance, req: FastifyRequest): string[] {
  const path = req.url.split('?', 1)[0]!;
  return ROUTE_METHODS.filter((method) => method !== req.method && app.findRoute({ method, url: path }) !== null);
}

function headerValues(req: FastifyRequest, name: string): string[] {
  const value = req.headers[name];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

export async function createHttpServer(engine: InferenceEngine, options: HttpServerOptions = {}): Promise<FastifyInstance> {
  const bodyLimit = options.maxInputSize ?? DEFAULT_MAX_INPUT_SIZE;
  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_HTTP_REQUEST_TIMEOUT_MS;
  const headersTimeout = Math.min(options.headerTimeoutMs ?? DEFAULT_HTTP_HEADER_TIMEOUT_MS, requestTimeout);
  const limits = {
    bodyLimit,
    forceCloseConnections: true,
    requestTimeout,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_HTTP_KEEPALIVE_TIMEOUT_MS,
    // Node checks the header and request timeouts on this interval (default 30 s); check often enough for short timeouts.
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.min(1000, Math.max(100, headersTimeout / 4)) },
    clientErrorHandler: onClientError,
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => reply.code(400).type('application/json')
      .send(errorBody(`bad request URL ${quoted(req.url)}: ${err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? `a path parameter is longer than ${MAX_PATH_PARAMETER_LENGTH} characters` : 'it is not a valid URL (bad percent-encoding?)'}`)),
    routerOptions: { maxParamLength: MAX_PATH_PARAMETER_LENGTH },
  };
  // Fastify logs through the engine's pino logger, and /v2/logging changes its settings; with a
  // plain Logger (tests, embedders) fastify stays silent and /v2/logging answers 501.
  const logger = engine.logger instanceof ServerLogger ? engine.logger : undefined;
  const app = (logger
    ? Fastify({ ...limits, loggerInstance: logger.pino, logController: new VerboseRequestLog(logger) })
    : Fastify({ ...limits, logger: false })) as unknown as FastifyInstance;
  app.server.maxConnections = options.maxConnections ?? DEFAULT_HTTP_MAX_CONNECTIONS;
  const restricted = options.restrictedApis;
  // Callback style, not async: this runs on every request, and an async hook costs a promise and a microtask each time.
  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const header = restricted ? restrictionFailure(restricted, routeCategory(req), (name) => headerValues(req, name)) : undefined;
    if (header !== undefined) {
      sendError(reply, serverError('API_RESTRICTED', { header, kind: 'API' }));
      return;
    }
    const model = (req.params as { model?: unknown } | undefined)?.model;
    try {
      if (typeof model === 'string') checkModelName(model, 'the URL path');
    } catch (err) {
      sendError(reply, err);
      return;
    }
    done();
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
  app.setNotFoundHandler((req, reply) => {
    // As Triton: a known path called with another method is 405, only an unknown path is 404.
    const allowed = allowedMethods(app, req);
    if (allowed.length > 0) {
      return reply.code(405).header('allow', allowed.join(', ')).type('application/json')
        .send(errorBody(`Method Not Allowed: ${req.method} ${quoted(req.url)} takes ${allowed.join(' or ')}`));
    }
    return reply.code(404).type('application/json').send(errorBody(`Not Found: no route for ${req.method} ${quoted(req.url)}`));
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    // Catalogue errors from a body's preParsing stream (request-decompression.ts) keep their own status.
    if (isSwitchyardError(err)) return sendError(reply, err);
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const length = Number(req.headers['content-length']);
      return sendError(reply, serverError('BODY_TOO_LARGE', { limit: bodyLimit, ...(Number.isFinite(length) ? { got: length } : {}) }));
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return reply.code(status).type('application/json').send(errorBody(err.message));
  });
  const codec = new JsonCodecPool(options.jsonCodec, engine.logger);
  app.addHook('onClose', () => codec.close());
  const bytesLimit = options.maxBytesElements !== undefined ? { maxBytesElements: options.maxBytesElements } : {};
  const forward = options.headerForwardPattern !== undefined ? { headerForward: HeaderForwardPattern.compile(options.headerForwardPattern) } : {};
  await app.register(v2Routes, { engine, codec, maxInputSize: bodyLimit, ...bytesLimit, ...forward });
  await app.register(generateRoutes, { engine, codec, ...bytesLimit });
  await app.register(loggingRoutes, { logger });
  await app.register(traceRoutes, { engine });
  return app;
}
