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
import { InferenceServer, type InferenceServerOptions } from '../../engine/server.ts';
import { closeGrpc, createGrpcServer, listenGrpc, type GrpcServerOptions } from '../../server/grpc/grpc-server.ts';
import { createHttpServer, type HttpServerOptions } from '../../server/http/http-server.ts';

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

export async function startEngine(root: string, options: Partial<InferenceServerOptions> = {}): Promise<InferenceServer> {
  return InferenceServer.create({ modelRepositories: [root], logger: silentLogger, ...options });
}

export interface HttpFixture {
  readonly server: InferenceServer;
  readonly app: FastifyInstance;
  /** e.g. http://127.0.0.1:40123 */
  readonly url: string;
  close(): Promise<void>;
}

/** A real HTTP server on an ephemeral loopback port. */
export async function startHttp(root: string, options: Partial<InferenceServerOptions> & HttpServerOptions = {}): Promise<HttpFixture> {
  const server = await startEngine(root, options);
  const app = await createHttpServer(server, options);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    server, app, url: `http://127.0.0.1:${port}`,
    async close() {
      await app.close();
      await server.close();
    },
  };
}

export interface GrpcFixture {
  readonly server: InferenceServer;
  readonly grpcServer: GrpcServer;
  /** host:port for a grpc-js client. */
  readonly address: string;
  close(): Promise<void>;
}

/** A real gRPC frontend on a free loopback port. */
export async function startGrpc(root: string, options: Partial<InferenceServerOptions> & GrpcServerOptions = {}): Promise<GrpcFixture> {
  const server = await startEngine(root, options);
  const grpcServer = createGrpcServer(server, options);
  const port = await listenGrpc(grpcServer, '127.0.0.1', 0);
  return {
    server, grpcServer, address: `127.0.0.1:${port}`,
    async close() {
      await closeGrpc(grpcServer, 1000);
      await server.close();
    },
  };
}

export interface DualFixture {
  readonly server: InferenceServer;
  /** http://127.0.0.1:<port> */
  readonly httpUrl: string;
  /** 127.0.0.1:<port> */
  readonly grpcAddress: string;
  close(): Promise<void>;
}

/** Both frontends over one engine, as `switchyard` runs them. */
export async function startBoth(root: string, options: Partial<InferenceServerOptions> & HttpServerOptions & GrpcServerOptions = {}): Promise<DualFixture> {
  const server = await startEngine(root, options);
  const app = await createHttpServer(server, options);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : 0;
  const grpcServer = createGrpcServer(server, options);
  const grpcPort = await listenGrpc(grpcServer, '127.0.0.1', 0);
  return {
    server, httpUrl: `http://127.0.0.1:${httpPort}`, grpcAddress: `127.0.0.1:${grpcPort}`,
    async close() {
      await Promise.all([app.close(), closeGrpc(grpcServer, 1000)]);
      await server.close();
    },
  };
}
