/**
 * Restricted APIs over real HTTP and gRPC ports, set up from tritonserver's
 * flags: every category, with the unlocking header missing, wrong, from
 * another group, and right; the categories left open stay open; a refused
 * call never reaches its handler; and every HTTP route the server has
 * belongs to a category.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { addSubModel } from '../../../generator/models.ts';
import { createLogger, type ServerLogger } from '../../../engine/logger.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { parseCliOptions } from '../../../server/cli-options.ts';
import { closeGrpc, createGrpcServer, listenGrpc } from '../../../server/grpc/grpc-server.ts';
import { createHttpServer } from '../../../server/http/http-server.ts';
import type { RestrictedApis } from '../../../server/restricted-apis.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';
import { rawHttp } from '../../helpers/raw-http.ts';

const ONES = Array.from({ length: 16 }, (_, i) => i + 1);
const INFER_BODY = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: ONES },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: ONES },
  ],
});
const GENERATE_BODY = JSON.stringify({ INPUT0: 3, INPUT1: 4 });
const INFER_MESSAGE: Message = {
  model_name: 'add_sub',
  inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], contents: { int_contents: ONES } })),
};

interface Fixture {
  readonly engine: InferenceEngine;
  readonly app: FastifyInstance;
  readonly url: string;
  readonly grpcAddress: string;
  readonly logger: ServerLogger;
  close(): Promise<void>;
}

let root: string;
let logDir: string;

before(async () => {
  const model = addSubModel('INT32', 16);
  root = await makeRepository({
    add_sub: { config: addSubConfig('add_sub'), versions: { 1: model } },
    add1: { config: 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n', versions: { 1: addSubModel('INT32', 1) } },
  });
  logDir = await mkdtemp(join(tmpdir(), 'switchyard-restricted-'));
});
after(async () => {
  await removeRepository(root);
  await rm(logDir, { recursive: true, force: true });
});

/** One engine behind both frontends, each with its own restrictions, as `switchyard` runs them. */
async function start(flags: readonly string[]): Promise<Fixture> {
  const options = parseCliOptions(['--model-repository=/unused', ...flags]);
  const logger = createLogger({ file: join(logDir, `${Math.random().toString(36).slice(2)}.log`) });
  const engine = await startEngine(root, { logger });
  const app = await createHttpServer(engine, { restrictedApis: options.httpRestrictedApis });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const grpcServer = createGrpcServer(engine, { restrictedApis: options.grpcRestrictedApis });
  const grpcPort = await listenGrpc(grpcServer, '127.0.0.1', 0);
  return {
    engine, app, logger, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, grpcAddress: `127.0.0.1:${grpcPort}`,
    async close() {
      await Promise.all([app.close(), closeGrpc(grpcServer, 1000)]);
      await engine.close();
      logger.close();
    },
  };
}

const forbidden = (header: string): string => JSON.stringify({ error: `This API is restricted, expecting header '${header}'` });

type HttpCase = readonly [method: string, path: string, body: string | undefined, okStatus: number];

/** Missing, wrong, the other group's, and the right header, for each route. */
async function checkHttpRestricted(
  fixture: Fixture, header: string, value: string, other: readonly [string, string], cases: readonly HttpCase[],
): Promise<void> {
  for (const [method, path, body, okStatus] of cases) {
    const what = `${method} ${path}`;
    const send = (headers: Record<string, string>) => rawHttp(fixture.url, path, { method, headers, ...(body === undefined ? {} : { body }) });
    const missing = await send({});
    assert.equal(missing.status, 403, `${what} without the header`);
    if (method !== 'HEAD') assert.equal(missing.body, forbidden(header), what);
    assert.match(String(missing.headers['content-type']), /^application\/json/, what);
    assert.equal((await send({ [header]: `${value}x` })).status, 403, `${what} with a wrong value`);
    assert.equal((await send({ [header]: value.slice(0, -1) })).status, 403, `${what} with a prefix of the value`);
    assert.equal((await send({ [other[0]]: other[1] })).status, 403, `${what} with another group's header`);
    const right = await send({ [header.toUpperCase()]: value });
    assert.equal(right.status, okStatus, `${what} with the right header (any case): ${right.body}`);
  }
}

async function checkHttpOpen(fixture: Fixture, cases: readonly HttpCase[]): Promise<void> {
  for (const [method, path, body, okStatus] of cases) {
    const res = await rawHttp(fixture.url, path, { method, ...(body === undefined ? {} : { body }) });
    assert.equal(res.status, okStatus, `${method} ${path} stays open: ${res.body}`);
  }
}

function metadata(entries: Readonly<Record<string, string>>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) m.set(key, value);
  return m;
}

type GrpcCase = readonly [rpc: string, request: Message, okCode: number];

async function checkGrpcRestricted(
  client: RawGrpcClient, header: string, value: string, other: readonly [string, string], cases: readonly GrpcCase[],
): Promise<void> {
  const message = `This protocol is restricted, expecting header '${header}'`;
  for (const [rpc, request, okCode] of cases) {
    for (const [what, sent] of [['no metadata', {}], ['a wrong value', { [header]: `${value}x` }], ["another group's key", { [other[0]]: other[1] }]] as const) {
      const { error } = await client.call(rpc, request, {}, metadata(sent));
      assert.equal(error?.code, grpc.status.PERMISSION_DENIED, `${rpc} with ${what}`);
      assert.equal(error.details, message, rpc);
    }
    const { error } = await client.call(rpc, request, {}, metadata({ [header]: value }));
    assert.equal(error?.code ?? 0, okCode, `${rpc} with the right key: ${error?.details}`);
  }
}

async function checkGrpcOpen(client: RawGrpcClient, cases: readonly GrpcCase[]): Promise<void> {
  for (const [rpc, request, okCode] of cases) {
    const { error } = await client.call(rpc, request);
    assert.equal(error?.code ?? 0, okCode, `${rpc} stays open: ${error?.details}`);
  }
}

describe('restricting inference, model config, model repository and logging', () => {
  let fixture: Fixture;
  let client: RawGrpcClient;
  const ADMIN = ['admin-key', 's3cret'] as const;
  const INFER = ['infer-key', 'k:v=1'] as const;
  const GRPC_ADMIN = ['triton-grpc-protocol-admin-key', 's3cret'] as const;

  before(async () => {
    fixture = await start([
      '--http-restricted-api=model-repository,model-config,logging:admin-key=s3cret',
      '--http-restricted-api=inference:infer-key=k:v=1',
      '--grpc-restricted-protocol=model-repository,model-config,logging:admin-key=s3cret',
      '--grpc-restricted-api=inference:infer-key=k:v=1',
    ]);
    client = new RawGrpcClient(fixture.grpcAddress);
  });
  after(async () => {
    client.close();
    await fixture.close();
  });

  test('HTTP: the admin group needs admin-key', async () => {
    await checkHttpRestricted(fixture, ...ADMIN, INFER, [
      ['POST', '/v2/repository/index', '', 200],
      ['POST', '/v2/repository/models/add_sub/unload', '', 503],
      ['POST', '/v2/repository/models/add_sub/load', '{}', 503],
      ['GET', '/v2/models/add_sub/config', undefined, 200],
      ['HEAD', '/v2/models/add_sub/config', undefined, 200],
      ['GET', '/v2/models/add_sub/versions/1/config', undefined, 200],
      ['GET', '/v2/logging', undefined, 200],
      ['POST', '/v2/logging', '{}', 200],
    ]);
  });

  test('HTTP: inference needs infer-key, whose value holds : and =', async () => {
    await checkHttpRestricted(fixture, ...INFER, ADMIN, [
      ['POST', '/v2/models/add_sub/infer', INFER_BODY, 200],
      ['POST', '/v2/models/add_sub/versions/1/infer', INFER_BODY, 200],
      ['POST', '/v2/models/add1/generate', GENERATE_BODY, 200],
      ['POST', '/v2/models/add1/generate_stream', GENERATE_BODY, 200],
    ]);
  });

  test('HTTP: health, metadata, statistics and trace stay open', async () => {
    await checkHttpOpen(fixture, [
      ['GET', '/v2/health/live', undefined, 200],
      ['GET', '/v2/health/ready', undefined, 200],
      ['GET', '/v2/models/add_sub/ready', undefined, 200],
      ['GET', '/v2', undefined, 200],
      ['GET', '/v2/models/add_sub', undefined, 200],
      ['GET', '/v2/models/add_sub/stats', undefined, 200],
      ['GET', '/v2/models/stats', undefined, 200],
      ['GET', '/v2/trace/setting', undefined, 200],
      ['POST', '/v2/models/add_sub/trace/setting', '{"trace_count":"-1"}', 200],
    ]);
  });

  test('a refused call never runs: POST /v2/logging without the header changes nothing', async () => {
    const res = await rawHttp(fixture.url, '/v2/logging', { method: 'POST', body: '{"log_verbose_level":3}' });
    assert.equal(res.status, 403);
    assert.equal(fixture.logger.settings().log_verbose_level, 0);
    const { error } = await client.call('LogSettings', { settings: { log_verbose_level: { uint32_param: 3 } } });
    assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(fixture.logger.settings().log_verbose_level, 0);
  });

  test('gRPC: --grpc-restricted-protocol keys carry Triton\'s triton-grpc-protocol- prefix', async () => {
    await checkGrpcRestricted(client, ...GRPC_ADMIN, INFER, [
      ['RepositoryIndex', {}, 0],
      ['RepositoryModelUnload', { model_name: 'add_sub' }, grpc.status.UNAVAILABLE],
      ['ModelConfig', { name: 'add_sub' }, 0],
      ['LogSettings', {}, 0],
    ]);
    // The bare key (what HTTP takes) does not unlock gRPC here.
    const { error } = await client.call('ModelConfig', { name: 'add_sub' }, {}, metadata({ 'admin-key': 's3cret' }));
    assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
  });

  test('gRPC: --grpc-restricted-api keys are used as given', async () => {
    await checkGrpcRestricted(client, ...INFER, GRPC_ADMIN, [['ModelInfer', INFER_MESSAGE, 0]]);
  });

  test('gRPC: ModelStreamInfer is refused as a whole without the key, and serves with it', async () => {
    await assert.rejects(client.streamAll([INFER_MESSAGE]), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.PERMISSION_DENIED);
      assert.equal(err.details, "This protocol is restricted, expecting header 'infer-key'");
      return true;
    });
    const stream = client.stream({}, metadata({ 'infer-key': 'k:v=1' }));
    const replies: Message[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: Message) => replies.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    stream.write(INFER_MESSAGE);
    stream.end();
    await done;
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!['error_message'], '');
  });

  test('gRPC: health, metadata, statistics, shared memory and trace stay open', async () => {
    await checkGrpcOpen(client, [
      ['ServerLive', {}, 0], ['ServerReady', {}, 0], ['ModelReady', { name: 'add_sub' }, 0], ['Check', {}, 0],
      ['ServerMetadata', {}, 0], ['ModelMetadata', { name: 'add_sub' }, 0], ['ModelStatistics', {}, 0],
      ['SystemSharedMemoryStatus', {}, 0], ['TraceSetting', {}, 0], ['TraceSetting', { model_name: 'add_sub' }, 0],
    ]);
  });
});

describe('restricting health, metadata, statistics, shared memory and trace', () => {
  let fixture: Fixture;
  let client: RawGrpcClient;
  const OPS = ['ops-key', 'ops-value'] as const;

  before(async () => {
    fixture = await start([
      '--http-restricted-api=health,metadata:ops-key=ops-value',
      '--http-restricted-api=statistics,shared-memory,trace:ops-key=ops-value',
      '--grpc-restricted-api=health,metadata,statistics,shared-memory,trace:ops-key=ops-value',
    ]);
    client = new RawGrpcClient(fixture.grpcAddress);
  });
  after(async () => {
    client.close();
    await fixture.close();
  });

  test('HTTP: each route of these categories needs ops-key', async () => {
    await checkHttpRestricted(fixture, ...OPS, ['admin-key', 'x'], [
      ['GET', '/v2/health/live', undefined, 200],
      ['GET', '/v2/health/ready', undefined, 200],
      ['GET', '/v2/models/add_sub/ready', undefined, 200],
      ['GET', '/v2/models/add_sub/versions/1/ready', undefined, 200],
      ['GET', '/v2', undefined, 200],
      ['GET', '/v2/models/add_sub', undefined, 200],
      ['GET', '/v2/models/add_sub/versions/1', undefined, 200],
      ['GET', '/v2/models/stats', undefined, 200],
      ['GET', '/v2/models/add_sub/stats', undefined, 200],
      ['GET', '/v2/models/add_sub/versions/1/stats', undefined, 200],
      ['GET', '/v2/trace/setting', undefined, 200],
      ['POST', '/v2/trace/setting', '{"trace_count":"-1"}', 200],
      ['GET', '/v2/models/add_sub/trace/setting', undefined, 200],
      ['POST', '/v2/models/add_sub/trace/setting', '{"trace_rate":"5"}', 200],
    ]);
  });

  test('HTTP: inference, config, repository and logging stay open', async () => {
    await checkHttpOpen(fixture, [
      ['POST', '/v2/models/add_sub/infer', INFER_BODY, 200],
      ['POST', '/v2/models/add1/generate', GENERATE_BODY, 200],
      ['GET', '/v2/models/add_sub/config', undefined, 200],
      ['POST', '/v2/repository/index', '', 200],
      ['GET', '/v2/logging', undefined, 200],
    ]);
  });

  test('a refused trace setting change never runs, over either protocol', async () => {
    const before = fixture.engine.tracer.settings.view('add_sub');
    const res = await rawHttp(fixture.url, '/v2/models/add_sub/trace/setting', { method: 'POST', body: '{"trace_rate":"77"}' });
    assert.equal(res.status, 403);
    const { error } = await client.call('TraceSetting', { model_name: 'add_sub', settings: { trace_rate: { value: ['77'] } } });
    assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
    assert.deepEqual(fixture.engine.tracer.settings.view('add_sub'), before);
  });

  test('gRPC: each RPC of these categories needs ops-key, the grpc.health.v1 Check included', async () => {
    await checkGrpcRestricted(client, ...OPS, ['admin-key', 'x'], [
      ['ServerLive', {}, 0], ['ServerReady', {}, 0], ['ModelReady', { name: 'add_sub' }, 0], ['Check', {}, 0],
      ['ServerMetadata', {}, 0], ['ModelMetadata', { name: 'add_sub' }, 0],
      ['ModelStatistics', {}, 0], ['ModelStatistics', { name: 'add_sub' }, 0],
      ['SystemSharedMemoryStatus', {}, 0], ['CudaSharedMemoryRegister', { name: 'r' }, grpc.status.UNIMPLEMENTED],
      ['TraceSetting', {}, 0], ['TraceSetting', { model_name: 'add_sub', settings: { trace_rate: { value: ['5'] } } }, 0],
    ]);
  });

  test('gRPC: inference, config, repository and logging stay open', async () => {
    await checkGrpcOpen(client, [['ModelInfer', INFER_MESSAGE, 0], ['ModelConfig', { name: 'add_sub' }, 0], ['RepositoryIndex', {}, 0], ['LogSettings', {}, 0]]);
  });
});

/** Every route in fastify's route tree, as [method, full path]. */
function routesOf(app: FastifyInstance): Array<[string, string]> {
  const routes: Array<[string, string]> = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    const path = (depth === 0 ? '' : stack[depth - 1]!) + match[2]!;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of match[3]?.split(', ') ?? []) routes.push([method, path]);
  }
  return routes;
}

describe('every HTTP route belongs to an API category', () => {
  let fixture: Fixture;
  const categories = 'health,metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging';

  before(async () => {
    fixture = await start([`--http-restricted-api=${categories}:all-key=all`]);
  });
  after(() => fixture.close());

  test('with every category restricted, every route refuses a caller without the header, and none refuses one with it', async () => {
    const routes = routesOf(fixture.app).filter(([, path]) => path.startsWith('/v2'));
    assert.ok(routes.length >= 25, `found the routes: ${routes.length}`);
    for (const [method, pattern] of routes) {
      const path = pattern.replace(':model', 'add_sub').replace(':version', '1');
      const missing = await rawHttp(fixture.url, path, { method, ...(method === 'POST' ? { body: '' } : {}) });
      assert.equal(missing.status, 403, `${method} ${pattern} has no API category`);
      const right = await rawHttp(fixture.url, path, { method, headers: { 'all-key': 'all' }, ...(method === 'POST' ? { body: '' } : {}) });
      assert.notEqual(right.status, 403, `${method} ${pattern}`);
    }
  });
});

test('with no restrictions every category is open, over both protocols', async () => {
  const fixture = await start([]);
  const client = new RawGrpcClient(fixture.grpcAddress);
  try {
    const options: RestrictedApis = parseCliOptions(['--model-repository=/m']).httpRestrictedApis;
    assert.deepEqual(options, {});
    await checkHttpOpen(fixture, [
      ['GET', '/v2/health/ready', undefined, 200], ['GET', '/v2/models/add_sub/config', undefined, 200],
      ['POST', '/v2/models/add_sub/infer', INFER_BODY, 200], ['GET', '/v2/logging', undefined, 200],
    ]);
    await checkGrpcOpen(client, [['ModelConfig', { name: 'add_sub' }, 0], ['LogSettings', {}, 0], ['ModelInfer', INFER_MESSAGE, 0]]);
  } finally {
    client.close();
    await fixture.close();
  }
});
