/**
 * Builds small model repositories in a temporary folder for tests, with
 * real ONNX models from our generator, and starts real servers on them.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Server as GrpcServer } from '@grpc/grpc-js';
import { silentLogger } from '../../engine/logger.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { createEngine, startFrontends, type EngineOptions, type FrontendOptions, type Frontends } from '../../server/composition-root.ts';
import type { GrpcServerOptions } from '../../server/grpc/grpc-server.ts';
import type { HttpServerOptions } from '../../server/http/http-server.ts';

export interface FixtureModel {
  /** Config text; written as config.pbtxt unless configFile says otherwise. Omit for no config file. */
  readonly config?: string;
  readonly configFile?: string;
  /** Version number -> model bytes (or null for an empty version folder). */
  readonly versions: Readonly<Record<number, Uint8Array | null>>;
}

export async function makeRepository(models: Readonly<Record<string, FixtureModel>>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'switchyard-test-'));
  for (const [name, model] of Object.entries(models)) {
    const dir = join(root, name);
    await mkdir(dir, { recursive: true });
    if (model.config !== undefined) await writeFile(join(dir, model.configFile ?? 'config.pbtxt'), model.config);
    for (const [version, bytes] of Object.entries(model.versions)) {
      await mkdir(join(dir, version), { recursive: true });
      if (bytes) await writeFile(join(dir, version, 'model.onnx'), bytes);
    }
  }
  return root;
}

export async function removeRepository(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}

/** Engine options for tests: what createEngine takes, with the repository given separately. */
export type EngineFixtureOptions = Partial<EngineOptions>;

/** The engine over `root`, with the default backends unless options.backends says otherwise; no frontend. */
export async function startEngine(root: string, options: EngineFixtureOptions = {}): Promise<InferenceEngine> {
  return createEngine({ modelRepositories: [root], logger: silentLogger, ...options });
}

export interface HttpFixture {
  readonly engine: InferenceEngine;
  readonly app: FastifyInstance;
  /** e.g. http://127.0.0.1:40123 */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the engine and the frontends asked for on loopback, as `switchyard` wires them; closes the engine if a frontend fails. */
async function startWired(root: string, options: EngineFixtureOptions, frontends: FrontendOptions): Promise<{ engine: InferenceEngine; frontends: Frontends }> {
  const engine = await startEngine(root, options);
  try {
    return { engine, frontends: await startFrontends(engine, frontends) };
  } catch (err) {
    await engine.close();
    throw err;
  }
}

const LOOPBACK = { port: 0, host: '127.0.0.1' } as const;

/** A real HTTP server on an ephemeral loopback port. */
export async function startHttp(root: string, options: EngineFixtureOptions & HttpServerOptions = {}): Promise<HttpFixture> {
  const { engine, frontends } = await startWired(root, options, { http: { ...options, ...LOOPBACK } });
  return {
    engine, app: frontends.http!, url: `http://127.0.0.1:${frontends.httpPort!}`,
    async close() {
      await frontends.close();
      await engine.close();
    },
  };
}

export interface GrpcFixture {
  readonly engine: InferenceEngine;
  readonly grpcServer: GrpcServer;
  /** host:port for a grpc-js client. */
  readonly address: string;
  close(): Promise<void>;
}

/** A real gRPC frontend on a free loopback port. */
export async function startGrpc(root: string, options: EngineFixtureOptions & GrpcServerOptions = {}): Promise<GrpcFixture> {
  const { engine, frontends } = await startWired(root, options, { grpc: { ...options, ...LOOPBACK } });
  return {
    engine, grpcServer: frontends.grpc!, address: `127.0.0.1:${frontends.grpcPort!}`,
    async close() {
      await frontends.close(1000);
      await engine.close();
    },
  };
}

export interface DualFixture {
  readonly engine: InferenceEngine;
  /** http://127.0.0.1:<port> */
  readonly httpUrl: string;
  /** 127.0.0.1:<port> */
  readonly grpcAddress: string;
  close(): Promise<void>;
}

/** Both frontends over one engine, as `switchyard` runs them. */
export async function startBoth(root: string, options: EngineFixtureOptions & HttpServerOptions & GrpcServerOptions = {}): Promise<DualFixture> {
  const { engine, frontends } = await startWired(root, options, { http: { ...options, ...LOOPBACK }, grpc: { ...options, ...LOOPBACK } });
  return {
    engine, httpUrl: `http://127.0.0.1:${frontends.httpPort!}`, grpcAddress: `127.0.0.1:${frontends.grpcPort!}`,
    async close() {
      await frontends.close(1000);
      await engine.close();
    },
  };
}
