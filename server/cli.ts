/**
 * `switchyard` / `npm start`: serve a model repository, taking
 * tritonserver's flags. Exits non-zero with a clear message on bad flags,
 * and (with --exit-on-error, the default) when a model fails to load.
 */
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { BackendRegistry } from '../engine/backend-registry.ts';
import { createLogger } from '../engine/logger.ts';
import type { InferenceEngine, ModelIndexEntry } from '../engine/inference-engine.ts';
import type { Server as GrpcServer } from '@grpc/grpc-js';
import { CLI_FLAG_NAMES, CliError, parseCliOptions, type CliOptions } from './cli-options.ts';
import { createEngine, FrontendStartError, startFrontends, type Frontends } from './composition-root.ts';
import type { MetricsServer } from './metrics/metrics-server.ts';

export interface RunningServer {
  readonly engine: InferenceEngine;
  readonly http: FastifyInstance | undefined;
  /** The port HTTP listens on (useful with --http-port=0). */
  readonly httpPort: number | undefined;
  readonly grpc: GrpcServer | undefined;
  /** The port gRPC listens on (useful with --grpc-port=0). */
  readonly grpcPort: number | undefined;
  /** The Prometheus endpoint, unless --allow-metrics=false. */
  readonly metrics: MetricsServer | undefined;
  /** The port it listens on (useful with --metrics-port=0). */
  readonly metricsPort: number | undefined;
  close(): Promise<void>;
  /**
   * Graceful stop: readiness turns false and new requests are refused while
   * the listeners stay up (probes see it), in-flight requests get up to
   * --exit-timeout-secs to finish, then everything closes.
   */
  shutdown(): Promise<void>;
}

function modelTable(index: readonly ModelIndexEntry[]): string {
  const rows = index.map((e) => [e.name, e.version || '-', e.state === 'READY' ? 'READY' : `${e.state}: ${e.reason}`]);
  const header = ['Model', 'Version', 'Status'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const fmt = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line, fmt(header), line, ...rows.map(fmt), line].join('\n');
}

/** The one start-up line naming the tritonserver flags given that change nothing here; undefined when there are none. */
export function acceptedFlagsLine(options: Pick<CliOptions, 'acceptedWithoutEffect'>): string | undefined {
  return options.acceptedWithoutEffect.length > 0 ? `accepted without effect on this build: ${options.acceptedWithoutEffect.join(', ')}` : undefined;
}

/**
 * Starts what the flags ask for: the engine over `backends` (default: this
 * build's, with --backend-config applied), then the frontends. The CLI's
 * side of the composition root (see composition-root.ts).
 */
export async function startServer(options: CliOptions, backends?: BackendRegistry): Promise<RunningServer> {
  const logger = createLogger({
    verbose: options.logVerbose, info: options.logInfo, warning: options.logWarning, error: options.logError,
    format: options.logFormat, ...(options.logFile ? { file: options.logFile } : {}),
  });
  const accepted = acceptedFlagsLine(options);
  if (accepted) logger.info(accepted);
  for (const warning of options.warnings) logger.warn(warning);
  const engine = await createEngine({
    modelRepositories: options.modelRepositories,
    strictReadiness: options.strictReadiness,
    id: options.id,
    logger,
    modelControlMode: options.modelControlMode,
    repositoryPollSecs: options.repositoryPollSecs,
    ...(options.responseCache ? { responseCache: options.responseCache } : {}),
    streamBuffer: options.streamBuffer,
    configCompletion: options.configCompletion,
    rateLimiter: options.rateLimiter,
    sharedMemory: options.sharedMemory,
    ...(backends ? { backends } : { backendSettings: { onnxruntime: options.onnxBackendSettings } }),
    ...(options.modelConfigName !== undefined ? { modelConfigName: options.modelConfigName } : {}),
    modelLoadRetryCount: options.modelLoadRetryCount,
    modelLoadThreadCount: options.modelLoadThreadCount,
    modelNamespacing: options.modelNamespacing,
    trace: options.trace,
    ...(options.modelControlMode === 'explicit' && !options.loadModels.includes('*') ? { startupModels: options.loadModels } : {}),
  });
  const index = engine.repositoryIndex();
  process.stderr.write(`${modelTable(index)}\n`);
  const failures = engine.loadFailures();
  if (failures.length > 0 && options.exitOnError) {
    await engine.close();
    throw new CliError('creating server: Internal - failed to load all models (start with --exit-on-error=false to serve the others)');
  }
  let frontends: Frontends;
  try {
    frontends = await startFrontends(engine, {
      ...(options.allowHttp ? {
        http: {
          port: options.httpPort, host: options.httpAddress,
          maxInputSize: options.httpMaxInputSize, restrictedApis: options.httpRestrictedApis, maxBytesElements: options.maxBytesElements,
          jsonCodec: options.httpJsonCodec, ...options.httpConnectionLimits,
          ...(options.httpHeaderForwardPattern !== undefined ? { headerForwardPattern: options.httpHeaderForwardPattern } : {}),
        },
      } : {}),
      ...(options.allowGrpc ? {
        grpc: {
          port: options.grpcPort, host: options.grpcAddress,
          maxMessageSize: options.grpcMaxMessageSize, restrictedApis: options.grpcRestrictedApis, maxBytesElements: options.maxBytesElements,
          maxRequestFields: options.grpcMaxRequestFields,
          ...options.grpcConnectionLimits,
          ...(options.grpcHeaderForwardPattern !== undefined ? { headerForwardPattern: options.grpcHeaderForwardPattern } : {}),
        },
      } : {}),
      ...(options.allowMetrics ? { metrics: { ...options.metrics, port: options.metricsPort, address: options.metricsAddress } } : {}),
    });
  } catch (err) {
    await engine.close();
    throw err instanceof FrontendStartError ? new CliError(err.message) : err;
  }
  const { http, httpPort, grpc, grpcPort, metrics } = frontends;
  return {
    engine, http, httpPort, grpc, grpcPort, metrics, metricsPort: metrics?.port,
    async close() {
      await frontends.close();
      await engine.close();
    },
    async shutdown() {
      const left = await engine.drain(options.exitTimeoutSecs * 1000);
      if (left > 0) logger.warn(`exit timeout of ${options.exitTimeoutSecs} s passed with ${left} request(s) still running; they are cancelled`);
      else logger.info('every in-flight request has finished');
      await frontends.close(0);
      await engine.close();
    },
  };
}

/**
 * The `switchyard` command: `switchyard [tritonserver flags]` serves a
 * repository; `switchyard perf [perf_analyzer flags]` measures a running server.
 */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  if (argv[0] === 'perf') {
    const { runPerf } = await import('../client/perf/main.ts');
    process.exitCode = await runPerf(argv.slice(1));
    return;
  }
  let running: RunningServer;
  try {
    const options = parseCliOptions(argv, process.env['SWITCHYARD_DEFAULT_MODEL_REPOSITORY'] || undefined);
    if (options.help) {
      process.stdout.write(`usage: switchyard --model-repository=<path> [flags]\nflags (see the README's flag table): ${CLI_FLAG_NAMES.map((n) => `--${n}`).join(' ')}\n`);
      return;
    }
    running = await startServer(options);
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      running.engine.logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    running.engine.logger.info(`${signal}: no longer ready, draining in-flight requests before exit`);
    running.shutdown().then(() => process.exit(0), (err: unknown) => {
      running.engine.logger.error(`shutdown failed: ${(err as Error).message}`);
      process.exit(1);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
