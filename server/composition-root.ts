/**
 * The composition root: the one place that builds the backends, the engine
 * and the frontends and wires them together. Dependencies point down from
 * here: the engine gets its backends in a registry and never imports them;
 * the frontends get the engine. The CLI (server/cli.ts startServer), the
 * test fixtures and the benchmarks all start servers through these
 * functions, so they run what `switchyard` runs.
 */
import type { FastifyInstance } from 'fastify';
import type { Server as GrpcServer } from '@grpc/grpc-js';
import { defaultBackends, type DefaultBackendSettings } from '../backends/default-backends.ts';
import type { BackendRegistry } from '../engine/backend-registry.ts';
import { InferenceEngine, type InferenceEngineOptions } from '../engine/inference-engine.ts';
import { closeGrpc, createGrpcServer, listenGrpc, type GrpcServerOptions } from './grpc/grpc-server.ts';
import { createHttpServer, type HttpServerOptions } from './http/http-server.ts';
import { DEFAULT_METRICS_PORT, startMetricsServer, type MetricsServer, type MetricsServerOptions } from './metrics/metrics-server.ts';

export interface EngineOptions extends Omit<InferenceEngineOptions, 'backends'> {
  /** The backends models may name. Default: defaultBackends(backendSettings). */
  readonly backends?: BackendRegistry;
  /** Settings for the default backends; give them to defaultBackends() instead when passing `backends`. */
  readonly backendSettings?: DefaultBackendSettings;
}

/** The engine over its backends: the default ones unless `backends` says otherwise. */
export function createEngine(options: EngineOptions): Promise<InferenceEngine> {
  const { backends, backendSettings, ...rest } = options;
  if (backends && backendSettings) throw new Error('backendSettings configure the default backends: pass them to defaultBackends() when giving backends');
  return InferenceEngine.create({ ...rest, backends: backends ?? defaultBackends(backendSettings) });
}

/** Where a frontend listens; port 0 picks a free one. */
export interface ListenAddress {
  readonly port: number;
  readonly host: string;
}

/** Which frontends to start over an engine; one left out is not started. */
export interface FrontendOptions {
  readonly http?: HttpServerOptions & ListenAddress;
  readonly grpc?: GrpcServerOptions & ListenAddress;
  /** The Prometheus endpoint; its own port and address are in the options. */
  readonly metrics?: MetricsServerOptions;
}

export interface Frontends {
  readonly http: FastifyInstance | undefined;
  /** The port HTTP listens on (useful with port 0). */
  readonly httpPort: number | undefined;
  readonly grpc: GrpcServer | undefined;
  /** The port gRPC listens on (useful with port 0). */
  readonly grpcPort: number | undefined;
  readonly metrics: MetricsServer | undefined;
  /**
   * Stops every frontend; gRPC calls still open get `grpcGraceMs` (default
   * closeGrpc's) to finish before they are cut. The engine stays open.
   */
  close(grpcGraceMs?: number): Promise<void>;
}

/** A frontend could not listen; the ones started before it are closed again, the engine is left open. */
export class FrontendStartError extends Error {}

/** Starts the frontends asked for over `engine`, each logging where it listens. */
export async function startFrontends(engine: InferenceEngine, options: FrontendOptions): Promise<Frontends> {
  let http: FastifyInstance | undefined;
  let httpPort: number | undefined;
  let grpc: GrpcServer | undefined;
  let grpcPort: number | undefined;
  let metrics: MetricsServer | undefined;
  const close = async (grpcGraceMs?: number): Promise<void> => {
    await Promise.all([http?.close(), grpc ? closeGrpc(grpc, grpcGraceMs) : undefined, metrics?.close()]);
  };
  const failed = async (what: string, at: string, err: unknown): Promise<never> => {
    await close();
    throw new FrontendStartError(`${what}: cannot listen on ${at}: ${err instanceof Error ? err.message : String(err)}`);
  };
  if (options.http) {
    const { port, host } = options.http;
    http = await createHttpServer(engine, options.http);
    try {
      await http.listen({ port, host });
    } catch (err) {
      return failed('HTTP', `${host}:${port}`, err);
    }
    const address = http.server.address();
    httpPort = typeof address === 'object' && address ? address.port : port;
    engine.logger.info(`Started HTTPService at ${host}:${httpPort}`);
  }
  if (options.grpc) {
    const { port, host } = options.grpc;
    grpc = createGrpcServer(engine, options.grpc);
    try {
      grpcPort = await listenGrpc(grpc, host, port);
    } catch (err) {
      return failed('gRPC', `${host}:${port}`, err);
    }
    engine.logger.info(`Started GRPCInferenceService at ${host}:${grpcPort}`);
  }
  if (options.metrics) {
    const host = options.metrics.address ?? '0.0.0.0';
    try {
      metrics = await startMetricsServer(engine, options.metrics);
    } catch (err) {
      return failed('metrics', `${host}:${options.metrics.port ?? DEFAULT_METRICS_PORT}`, err);
    }
    engine.logger.info(`Started Metrics Service at ${host}:${metrics.port}`);
  }
  return { http, httpPort, grpc, grpcPort, metrics, close };
}
