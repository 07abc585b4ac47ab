/**
 * Long user text in error messages (issue 15, class 9): a 300 KB model name,
 * input name, parameter key or header value, and a script that throws a
 * 50 MB message. Each answers promptly with a bounded message (a quoted
 * value is cut to MAX_QUOTED_LENGTH characters, a whole message to
 * MAX_ERROR_MESSAGE_BYTES), over HTTP and over gRPC unary and streaming
 * calls, and the next call on the same connection or channel answers. Before
 * the bound, the gRPC status details went into HTTP/2 trailers whole and
 * wedged the channel. The logger cuts its lines the same way.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { MAX_ERROR_MESSAGE_BYTES, MAX_QUOTED_LENGTH, boundedMessage, quoted, serverError } from '../../../engine/errors.ts';
import { createLogger, MAX_LOG_MESSAGE_BYTES } from '../../../engine/logger.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';
import { scriptConfig, writeScript } from '../../helpers/script-fixtures.ts';

const LONG = 'n'.repeat(300_000);
/** A bounded message, with room for the words around the quoted values. */
const MESSAGE_BOUND = MAX_ERROR_MESSAGE_BYTES;
/** Every call here must answer within this, on a loaded machine; the wedge it guards against never answers. */
const PROMPT_MS = 10_000;

const range16 = Array.from({ length: 16 }, (_, i) => i);

function assertBounded(message: string | undefined, mentions: RegExp): void {
  assert.ok(message !== undefined, 'an error message');
  assert.ok(Buffer.byteLength(message) <= MESSAGE_BOUND, `message of ${Buffer.byteLength(message)} bytes`);
  assert.match(message, mentions);
  assert.match(message, /300000 characters, cut to 256/, 'says the value was cut and how long it was');
}

describe('quoted and boundedMessage', () => {
  test('short text is untouched; long text is cut at the bound and marked with its length', () => {
    assert.equal(quoted('add_sub'), 'add_sub');
    const cut = quoted(LONG);
    assert.ok(cut.startsWith('n'.repeat(MAX_QUOTED_LENGTH)));
    assert.ok(cut.length < MAX_QUOTED_LENGTH + 64);
    assert.equal(boundedMessage('fine'), 'fine');
    const long = boundedMessage('é'.repeat(1_000_000));
    assert.ok(Buffer.byteLength(long) <= MAX_ERROR_MESSAGE_BYTES);
    assert.match(long, /message cut from 2000000 bytes/);
    assert.ok(!long.includes('\uFFFD'), 'never ends on half a character');
  });

  test('every catalogue parameter and every error message is bounded, however built', () => {
    const err = serverError('MODEL_NOT_FOUND', { model: LONG });
    assertBounded(err.message, /^Request for unknown model: 'n{256}… \(/);
    const huge = serverError('INFERENCE_FAILED', { model: 'm', detail: 'x'.repeat(50_000_000) });
    assert.ok(Buffer.byteLength(huge.message) <= MAX_ERROR_MESSAGE_BYTES);
  });
});

describe('long user text over HTTP and gRPC', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;
  let agent: Agent;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      loud_failure: { config: scriptConfig(), versions: {} },
    });
    // A script whose error message is 50 MB: whatever the isolate boundary lets through, the encoders cut it.
    await writeScript(root, 'loud_failure', 1, 'export default class { async execute() { throw new Error("boom ".repeat(10_000_000)); } }');
    fixture = await startBoth(root);
    client = new RawGrpcClient(fixture.grpcAddress);
    agent = new Agent({ keepAlive: true, maxSockets: 1 });
  });
  after(async () => {
    agent.destroy();
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  /** One request on the shared keep-alive connection: status, body text and the local port of the socket it went over. */
  function http(path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string; port: number }> {
    const { hostname, port } = new URL(fixture.httpUrl);
    return new Promise((resolve, reject) => {
      const req = request({ host: hostname, port, path, method: init.method ?? 'GET', headers: init.headers ?? {}, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), port: req.socket?.localPort ?? 0 }));
      });
      req.on('error', reject);
      req.end(init.body);
    });
  }

  const inferJson = (inputs: Message[], parameters?: Record<string, unknown>) =>
    JSON.stringify({ ...(parameters ? { parameters } : {}), inputs });
  const ordinaryInputs = [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: range16 },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: range16 },
  ];

  async function assertHttpServes(port: number): Promise<void> {
    const res = await http('/v2/models/add_sub/infer', { method: 'POST', body: inferJson(ordinaryInputs) });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body).outputs[0].data, range16.map((v) => v * 2));
    assert.equal(res.port, port, 'the same keep-alive connection');
  }

  test('HTTP: a 300 KB input name, parameter key and header value each get a bounded 400; the connection keeps serving', async () => {
    const cases: Array<[string, { method: string; headers?: Record<string, string>; body: string }, RegExp]> = [
      ['input name', { method: 'POST', body: inferJson([{ ...ordinaryInputs[0], name: LONG }, ordinaryInputs[1]!]) }, /input 'n{256}…/],
      ['parameter key', { method: 'POST', body: inferJson(ordinaryInputs, { [LONG]: { nested: true } }) }, /parameter 'n{256}…/],
      ['tensor parameter key', { method: 'POST', body: inferJson([{ ...ordinaryInputs[0], parameters: { [LONG]: [1] } }, ordinaryInputs[1]!]) }, /parameter 'n{256}…/],
    ];
    let port = 0;
    for (const [what, init, mentions] of cases) {
      const started = Date.now();
      const res = await http('/v2/models/add_sub/infer', init);
      assert.ok(Date.now() - started < PROMPT_MS, what);
      assert.equal(res.status, 400, `${what}: ${res.body.slice(0, 200)}`);
      assertBounded(JSON.parse(res.body).error, mentions);
      port ||= res.port;
      await assertHttpServes(port);
    }
    // A header value: Node caps a request head at 16 KiB, so this one is 12 KB.
    const res = await http('/v2/models/add_sub/infer', {
      method: 'POST', headers: { 'Inference-Header-Content-Length': 'n'.repeat(12_000) }, body: inferJson(ordinaryInputs),
    });
    assert.equal(res.status, 400);
    const message = JSON.parse(res.body).error as string;
    assert.ok(Buffer.byteLength(message) <= MESSAGE_BOUND);
    assert.match(message, /got: n{256}… \(12000 characters, cut to 256\)/);
    await assertHttpServes(port);
  });

  test('HTTP: a long model name in the URL gets a bounded 404 (up to 1024 characters) or 400 (longer)', async () => {
    const notFound = await http(`/v2/models/${'n'.repeat(1000)}/infer`, { method: 'POST', body: inferJson(ordinaryInputs) });
    assert.equal(notFound.status, 404);
    assert.match(JSON.parse(notFound.body).error, /^Request for unknown model: 'n{256}… \(1000 characters, cut to 256\)' is not found$/);
    const res = await http(`/v2/models/${'n'.repeat(12_000)}/infer`, { method: 'POST', body: inferJson(ordinaryInputs) });
    assert.equal(res.status, 400);
    const message = JSON.parse(res.body).error as string;
    assert.ok(Buffer.byteLength(message) <= MESSAGE_BOUND);
    assert.match(message, /^bad request URL \/v2\/models\/n{245}… \(12017 characters, cut to 256\): a path parameter is longer than 1024 characters$/);
    await assertHttpServes(res.port);
  });

  test('HTTP: a script that throws a 50 MB message gets a bounded 500', async () => {
    const res = await http('/v2/models/loud_failure/infer', { method: 'POST', body: inferJson([{ name: 'X', datatype: 'INT32', shape: [1, 16], data: range16 }]) });
    assert.equal(res.status, 500);
    const message = JSON.parse(res.body).error as string;
    assert.ok(Buffer.byteLength(message) <= MESSAGE_BOUND, `${Buffer.byteLength(message)} bytes`);
    assert.match(message, /boom boom/);
    await assertHttpServes(res.port);
  });

  const ordinaryGrpc = (): Message => ({
    model_name: 'add_sub',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16 } },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16 } },
    ],
  });

  async function assertGrpcServes(): Promise<void> {
    const live = await client.call('ServerLive', {}, { deadline: Date.now() + PROMPT_MS });
    assert.equal(live.response?.['live'], true, live.error?.message);
    const ok = await client.call('ModelInfer', ordinaryGrpc(), { deadline: Date.now() + PROMPT_MS });
    assert.ok(ok.response, ok.error?.message);
  }

  test('gRPC unary: a 300 KB model name, input name or parameter key each get a bounded status; the channel keeps serving', async () => {
    const cases: Array<[string, string, Message, number, RegExp]> = [
      ['unknown model', 'ModelInfer', { ...ordinaryGrpc(), model_name: LONG }, 5, /unknown model: 'n{256}…/],
      ['model metadata', 'ModelMetadata', { name: LONG }, 5, /unknown model: 'n{256}…/],
      ['input name', 'ModelInfer', { ...ordinaryGrpc(), inputs: [{ ...ordinaryGrpc()['inputs'][0], name: LONG }, ordinaryGrpc()['inputs'][1]] }, 3, /'n{256}…/],
      ['parameter key', 'ModelInfer', { ...ordinaryGrpc(), parameters: { [LONG]: {} } }, 3, /'n{256}…/],
    ];
    for (const [what, method, message, code, mentions] of cases) {
      const outcome = await client.call(method, message, { deadline: Date.now() + PROMPT_MS });
      assert.equal(outcome.error?.code, code, `${what}: ${outcome.error?.details?.slice(0, 200)}`);
      assertBounded(outcome.error?.details, mentions);
      await assertGrpcServes();
    }
  });

  test('gRPC stream: a 300 KB model name is a bounded error_message; later requests on the stream answer', async () => {
    const replies = await client.streamAll([{ ...ordinaryGrpc(), model_name: LONG, id: 'long' }, { ...ordinaryGrpc(), id: 'next' }],
      { deadline: Date.now() + PROMPT_MS });
    assert.equal(replies.length, 2);
    assertBounded(replies[0]!['error_message'], /unknown model: 'n{256}…/);
    assert.equal(replies[1]!['error_message'], '');
    assert.equal(replies[1]!['infer_response']['id'], 'next');
    await assertGrpcServes();
  });

  test('gRPC: a script that throws a 50 MB message gets a bounded INTERNAL', async () => {
    const outcome = await client.call('ModelInfer', {
      model_name: 'loud_failure', inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16 } }],
    }, { deadline: Date.now() + PROMPT_MS });
    assert.equal(outcome.error?.code, 13);
    assert.ok(Buffer.byteLength(outcome.error!.details) <= MESSAGE_BOUND);
    assert.match(outcome.error!.details, /boom boom/);
    await assertGrpcServes();
  });
});

test('the logger cuts each message to MAX_LOG_MESSAGE_BYTES', async () => {
  const dir = await makeRepository({});
  try {
    const file = join(dir, 'server.log');
    const logger = createLogger({ file });
    logger.error(`unknown model '${'n'.repeat(1_000_000)}'`);
    logger.info('after');
    logger.close();
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.ok(Buffer.byteLength(lines[0]!) < MAX_LOG_MESSAGE_BYTES + 200, `line of ${lines[0]!.length} bytes`);
    assert.ok(lines[0]!.endsWith("… (message cut from 1000016 bytes)"), lines[0]!.slice(-80));
    assert.match(lines[1]!, /switchyard\] after$/);
  } finally {
    await removeRepository(dir);
  }
});
