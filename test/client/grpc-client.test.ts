/**
 * The client over gRPC against a real Switchyard server: the common suite
 * with raw and with typed tensor contents, then what only gRPC has: status
 * codes on errors, agreement with the HTTP transport, and ModelStreamInfer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { InferenceClient, InferenceServerError, tensor, type StreamResult } from '../../client/index.ts';
import { HEAVY_ROWS, HEAVY_WIDTH, startClientFixture, type ClientFixture } from './client-fixture.ts';
import { describeTransport } from './transport-suite.ts';

describeTransport('gRPC, raw contents', (f) => ({ url: f.grpcUrl }));
describeTransport('gRPC, typed contents', (f) => ({ url: f.grpcAddress, protocol: 'grpc', rawContents: false }));

const addSubInputs = (k: number) => {
  const a = Int32Array.from({ length: 16 }, (_, i) => i + k);
  return [tensor('INPUT0', 'INT32', [1, 16], a), tensor('INPUT1', 'INT32', [1, 16], a)];
};

async function collect(stream: AsyncIterable<StreamResult>): Promise<StreamResult[]> {
  const out: StreamResult[] = [];
  for await (const message of stream) out.push(message);
  return out;
}

describe('gRPC specifics', () => {
  let fixture: ClientFixture;
  let grpc: InferenceClient;
  let http: InferenceClient;

  before(async () => {
    fixture = await startClientFixture();
    grpc = new InferenceClient({ url: fixture.grpcUrl });
    http = new InferenceClient({ url: fixture.httpUrl });
  });

  after(async () => {
    grpc?.close();
    http?.close();
    await fixture?.cleanup();
  });

  test('the protocol follows the URL', () => {
    assert.equal(grpc.protocol, 'grpc');
    assert.equal(new InferenceClient({ url: 'localhost:8001', protocol: 'grpc' }).protocol, 'grpc');
  });

  test('errors carry the gRPC status code and name', async () => {
    const err = await grpc.modelMetadata('nope').catch((e: unknown) => e);
    assert.ok(err instanceof InferenceServerError);
    assert.deepEqual([err.code, err.grpcCode, err.httpStatus], ['NOT_FOUND', 5, undefined]);
    assert.equal(err.message, "Request for unknown model: 'nope' is not found");
  });

  test('both transports give deep-equal metadata, config and index for every model', async () => {
    assert.deepEqual(await grpc.serverMetadata(), await http.serverMetadata());
    for (const model of ['add_sub', 'add_sub_int64', 'identity', 'identity_bytes', 'heavy']) {
      assert.deepEqual(await grpc.modelMetadata(model), await http.modelMetadata(model), model);
      const [viaGrpc, viaHttp] = [await grpc.modelConfig(model), await http.modelConfig(model)];
      assert.deepEqual(viaGrpc, viaHttp, model);
      assert.equal(JSON.stringify(viaGrpc), JSON.stringify(viaHttp), `${model}: key order`);
    }
    assert.deepEqual(await grpc.repositoryIndex(), await http.repositoryIndex());
  });

  test('both transports give the same inference results', async () => {
    const inputs = addSubInputs(3);
    const [viaGrpc, viaHttp] = [await grpc.infer('add_sub', inputs), await http.infer('add_sub', inputs)];
    assert.deepEqual(viaGrpc.outputs.map((o) => [o.name, o.datatype, o.shape, o.typed()]), viaHttp.outputs.map((o) => [o.name, o.datatype, o.shape, o.typed()]));
  });

  test('a stream answers every request; a failed one comes back as an error with its id', async () => {
    const stream = grpc.streamInfer();
    for (let k = 0; k < 5; k++) stream.send('add_sub', addSubInputs(k), { id: `s${k}` });
    stream.send('nope', addSubInputs(0), { id: 'bad' });
    stream.send('add_sub', addSubInputs(9), { id: 'last', outputs: ['OUTPUT1'] });
    stream.end();
    const messages = await collect(stream);
    assert.equal(messages.length, 7);
    const byId = new Map(messages.map((m) => [m.id, m]));
    for (let k = 0; k < 5; k++) {
      const result = byId.get(`s${k}`)?.result;
      assert.ok(result, `s${k} answered`);
      assert.equal(result.id, `s${k}`);
      assert.deepEqual(result.output('OUTPUT0').numbers(), Array.from({ length: 16 }, (_, i) => 2 * (i + k)));
    }
    assert.deepEqual(byId.get('last')?.result?.outputs.map((o) => o.name), ['OUTPUT1']);
    const failed = byId.get('bad');
    assert.equal(failed?.result, undefined);
    assert.ok(failed?.error instanceof InferenceServerError);
    assert.equal(failed.error.message, "Request for unknown model: 'nope' is not found");
    assert.throws(() => stream.send('add_sub', addSubInputs(0)), (err: unknown) => err instanceof InferenceServerError && /ended or cancelled/.test(err.message));
  });

  test('a stream with typed contents and one with nothing sent both end cleanly', async () => {
    const typed = new InferenceClient({ url: fixture.grpcUrl, rawContents: false });
    const stream = typed.streamInfer();
    stream.send('add_sub_int64', [tensor('INPUT0', 'INT64', [1, 4], [2n ** 62n, 1n, 2n, 3n]), tensor('INPUT1', 'INT64', [1, 4], [2n ** 62n, 1n, 1n, 1n])]);
    stream.end();
    const [only, ...rest] = await collect(stream);
    assert.deepEqual(rest, []);
    assert.deepEqual(only?.result?.output('OUTPUT0').bigints(), [2n ** 63n, 2n, 3n, 4n].map((v) => BigInt.asIntN(64, v)));
    const empty = typed.streamInfer();
    empty.end();
    assert.deepEqual(await collect(empty), []);
    typed.close();
  });

  test('cancel() ends a stream at once, with requests still running', async () => {
    const heavy = tensor('INPUT', 'FP32', [HEAVY_ROWS, HEAVY_WIDTH], new Float32Array(HEAVY_ROWS * HEAVY_WIDTH).fill(0.1));
    // One execution goes through; the rest wait at the gate, still running when the stream is cancelled.
    fixture.heavy.close();
    fixture.heavy.release(1);
    try {
      const stream = grpc.streamInfer();
      for (let k = 0; k < 16; k++) stream.send('heavy', [heavy], { id: `h${k}` });
      const iterator = stream[Symbol.asyncIterator]();
      const first = await iterator.next();
      assert.equal(first.done, false);
      await fixture.heavy.untilWaiting(1);
      stream.cancel();
      assert.deepEqual(await iterator.next(), { value: undefined, done: true });
      assert.throws(() => stream.send('heavy', [heavy]), InferenceServerError);
      assert.equal(await grpc.isServerLive(), true, 'the client still works');
    } finally {
      fixture.heavy.open();
    }
  });

  test('breaking out of the loop cancels the stream', async () => {
    const stream = grpc.streamInfer();
    for (let k = 0; k < 3; k++) stream.send('add_sub', addSubInputs(k), { id: `b${k}` });
    let seen = 0;
    for await (const message of stream) {
      assert.ok(message.result);
      seen++;
      break;
    }
    assert.equal(seen, 1);
    assert.throws(() => stream.send('add_sub', addSubInputs(0)), InferenceServerError);
  });

  test('a server that is not there is UNAVAILABLE, for calls and for streams', async () => {
    const closed = new InferenceClient({ url: 'grpc://127.0.0.1:1' });
    await assert.rejects(closed.isServerLive(), (err: unknown) => err instanceof InferenceServerError && err.code === 'UNAVAILABLE' && err.grpcCode === 14);
    const stream = closed.streamInfer();
    stream.send('add_sub', addSubInputs(0));
    await assert.rejects(collect(stream), (err: unknown) => err instanceof InferenceServerError && err.code === 'UNAVAILABLE');
    closed.close();
  });
});
