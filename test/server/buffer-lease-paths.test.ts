/**
 * Every path a response takes gives its pooled memory back exactly once
 * (ARCHITECTURE rule 14, engine/memory/buffer-lease.ts). The add_sub model
 * runs on ONNX Runtime, which writes a lone request's outputs into pool
 * buffers; after each request, over each frontend and through each caller
 * inside the engine, the pool's count of buffers lent out is back where it
 * started, while the pool did hand buffers out for the request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { chainEnsemble } from '../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';
import { rawHttp } from '../helpers/raw-http.ts';
import { scriptConfig, writeScript } from '../helpers/script-fixtures.ts';

const A = Array.from({ length: 16 }, (_, i) => i);
const B = Array.from({ length: 16 }, (_, i) => 100 - i);
const SUM = A.map((a, i) => a + B[i]!);

/** A script that answers X + 1 through ctx.inferStream on add_sub, which answers once (final). */
const STREAM_CALLER = `
export default class StreamCaller {
  async execute(requests: any[], ctx: any) {
    const out = [];
    for (const r of requests) {
      const x = r.inputs.X;
      const one = { datatype: 'INT32', shape: x.shape, data: new Int32Array(x.data.length).fill(1) };
      let y;
      for await (const part of ctx.inferStream({ model: 'add_sub', inputs: { INPUT0: x, INPUT1: one }, outputs: ['OUTPUT0'] })) y = part.outputs.OUTPUT0;
      out.push({ outputs: { Y: y } });
    }
    return out;
  }
}
`;

/** A script that answers X + 1 through ctx.infer on add_sub. */
const CALLER = `
export default class Caller {
  async execute(requests: any[], ctx: any) {
    const out = [];
    for (const r of requests) {
      const x = r.inputs.X;
      const one = { datatype: 'INT32', shape: x.shape, data: new Int32Array(x.data.length).fill(1) };
      const answer = await ctx.infer({ model: 'add_sub', inputs: { INPUT0: x, INPUT1: one }, outputs: ['OUTPUT0'] });
      out.push({ outputs: { Y: answer.outputs.OUTPUT0 } });
    }
    return out;
  }
}
`;

const INLINE = 'parameters { key: "execution_thread" value: { string_value: "inline" } }\n';
const jsonInput = (name: string, data: readonly number[]) => ({ name, datatype: 'INT32', shape: [1, 16], data });
const int32s = (bytes: Uint8Array): number[] => [...new Int32Array(Uint8Array.from(bytes).buffer)];

describe('pooled response memory goes back on every path', () => {
  let root: string;
  let fixture: DualFixture;
  let codecFixture: DualFixture;
  let grpc: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      cached: { config: addSubConfig('cached', 'response_cache { enable: true }\n'), versions: { 1: addSubModel('INT32', 16) } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
      caller: { config: scriptConfig(), versions: {} },
      add_sub_inline: { config: addSubConfig('add_sub_inline', INLINE), versions: { 1: addSubModel('INT32', 16) } },
      caller_inline: { config: scriptConfig(), versions: {} },
      stream_caller: { config: scriptConfig(), versions: {} },
    });
    await writeScript(root, 'stream_caller', 1, STREAM_CALLER);
    await writeScript(root, 'caller', 1, CALLER);
    await writeScript(root, 'caller_inline', 1, CALLER.replace("model: 'add_sub'", "model: 'add_sub_inline'"));
    fixture = await startBoth(root, { responseCache: { sizeBytes: 1 << 20 } });
    grpc = new RawGrpcClient(fixture.grpcAddress);
  });
  after(async () => {
    grpc?.close();
    await fixture?.close();
    await codecFixture?.close();
    if (root) await removeRepository(root);
  });

  /**
   * Runs one request and checks its answer; the pool must have lent buffers
   * for it (so the path is one where pooling happens) and have every one back.
   */
  async function balanced(engine: InferenceEngine, send: () => Promise<void>, lends = true): Promise<void> {
    const before = engine.bufferPoolStats();
    await send();
    const after = engine.bufferPoolStats();
    if (lends) assert.ok(after.allocated + after.reused > before.allocated + before.reused, 'the request used pool buffers');
    assert.equal(after.outstanding, before.outstanding, 'every buffer lent for the request came back');
  }

  async function httpJson(url: string, model: string, inputs: unknown[], expect: Record<string, number[]>): Promise<void> {
    const res = await rawHttp(url, `/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify({ inputs }) });
    assert.equal(res.status, 200, res.body);
    const outputs = (JSON.parse(res.body) as { outputs: Array<{ name: string; data: number[] }> }).outputs;
    for (const [name, data] of Object.entries(expect)) assert.deepEqual(outputs.find((o) => o.name === name)?.data, data, name);
  }

  test('HTTP JSON', async () => {
    await balanced(fixture.engine, () => httpJson(fixture.httpUrl, 'add_sub', [jsonInput('INPUT0', A), jsonInput('INPUT1', B)], { OUTPUT0: SUM }));
  });

  /** One request with binary tensors in and out, and its answer checked. */
  async function httpBinary(model: string): Promise<void> {
    const header = Buffer.from(JSON.stringify({
      inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } })),
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }],
    }));
    const body = Buffer.concat([header, Buffer.from(Int32Array.from(A).buffer), Buffer.from(Int32Array.from(B).buffer)]);
    const res = await rawHttp(fixture.httpUrl, `/v2/models/${model}/infer`, {
      method: 'POST', body, headers: { 'inference-header-content-length': String(header.byteLength), 'content-type': 'application/octet-stream' },
    });
    assert.equal(res.status, 200, res.body);
    const jsonLength = Number(res.headers['inference-header-content-length']);
    assert.deepEqual(int32s(res.raw.subarray(jsonLength)), SUM);
  }

  test('HTTP binary tensors in and out', async () => {
    await balanced(fixture.engine, () => httpBinary('add_sub'));
  });

  test('steady binary HTTP traffic on an inline model reuses pool buffers: none is allocated after the warm-up', async () => {
    const burst = (): Promise<unknown> => Promise.all(Array.from({ length: 32 }, () => httpBinary('add_sub_inline')));
    // The pool allocates only when more buffers are lent at once than ever before (each of the 32 requests holds
    // at most 3), so it warms up within a few rounds; a pool that dropped what it was given back never would.
    let quiet: { reused: number; outstanding: number } | undefined;
    for (let round = 0; round < 20 && !quiet; round++) {
      const before = fixture.engine.bufferPoolStats();
      for (let i = 0; i < 3; i++) await burst();
      const after = fixture.engine.bufferPoolStats();
      if (after.allocated === before.allocated) quiet = { reused: after.reused - before.reused, outstanding: after.outstanding - before.outstanding };
    }
    assert.ok(quiet, 'three bursts in a row allocated no pool buffer, once the pool was warm');
    assert.ok(quiet.reused >= 3 * 32 * 3, 'each request took its input copies and its output from the pool');
    assert.equal(quiet.outstanding, 0, 'every buffer lent came back');
  });

  test('gRPC unary', async () => {
    await balanced(fixture.engine, async () => {
      const { response, error } = await grpc.call('ModelInfer', grpcRequest('add_sub'));
      assert.equal(error, undefined);
      assert.deepEqual(int32s(response!['raw_output_contents'][0]), SUM);
    });
  });

  test('gRPC stream', async () => {
    await balanced(fixture.engine, async () => {
      const replies: Message[] = await grpc.streamAll([grpcRequest('add_sub'), grpcRequest('add_sub')]);
      assert.equal(replies.length, 2);
      for (const reply of replies) {
        assert.equal(reply['error_message'] ?? '', '');
        assert.deepEqual(int32s(reply['infer_response']['raw_output_contents'][0]), SUM);
      }
    });
  });

  test('an ensemble: its intermediate tensors and its answer', async () => {
    const twice = (v: readonly number[]): number[] => v.map((x) => 2 * x);
    await balanced(fixture.engine, () => httpJson(fixture.httpUrl, 'chain', [jsonInput('A', A), jsonInput('B', B)], { TWICE_A: twice(A), TWICE_B: twice(B) }));
    await balanced(fixture.engine, async () => {
      const { response, error } = await grpc.call('ModelInfer', {
        model_name: 'chain', inputs: [grpcInput('A'), grpcInput('B')], raw_input_contents: [int32Bytes(A), int32Bytes(B)],
      });
      assert.equal(error, undefined);
      assert.deepEqual(int32s(response!['raw_output_contents'][0]), twice(A));
    });
  });

  test("a script's ctx.infer answers", async () => {
    await balanced(fixture.engine, () => httpJson(fixture.httpUrl, 'caller', [{ name: 'X', datatype: 'INT32', shape: [1, 16], data: A }], { Y: A.map((a) => a + 1) }));
  });

  test("a script's ctx.inferStream answers: the last one comes with final, and still gives its memory back", async () => {
    await balanced(fixture.engine, () => httpJson(fixture.httpUrl, 'stream_caller', [{ name: 'X', datatype: 'INT32', shape: [1, 16], data: A }], { Y: A.map((a) => a + 1) }));
  });

  test('a cached model: the miss gives its memory back, and the hit never held any', async () => {
    const send = (): Promise<void> => httpJson(fixture.httpUrl, 'cached', [jsonInput('INPUT0', A), jsonInput('INPUT1', B)], { OUTPUT0: SUM });
    const hitsBefore = cacheHits(fixture.engine);
    await balanced(fixture.engine, send);
    await balanced(fixture.engine, send, false);
    await balanced(fixture.engine, async () => {
      const { response, error } = await grpc.call('ModelInfer', grpcRequest('cached'));
      assert.equal(error, undefined);
      assert.deepEqual(int32s(response!['raw_output_contents'][0]), SUM);
    }, false);
    assert.equal(cacheHits(fixture.engine) - hitsBefore, 2, 'the second and third requests were answered from the cache');
  });

  test('a model run inline on the event loop (execution_thread: inline): HTTP, gRPC, gRPC stream and ctx.infer', async () => {
    await balanced(fixture.engine, () => httpJson(fixture.httpUrl, 'add_sub_inline', [jsonInput('INPUT0', A), jsonInput('INPUT1', B)], { OUTPUT0: SUM }));
    await balanced(fixture.engine, async () => {
      const { response, error } = await grpc.call('ModelInfer', grpcRequest('add_sub_inline'));
      assert.equal(error, undefined);
      assert.deepEqual(int32s(response!['raw_output_contents'][0]), SUM);
    });
    await balanced(fixture.engine, async () => {
      const replies: Message[] = await grpc.streamAll([grpcRequest('add_sub_inline'), grpcRequest('add_sub_inline')]);
      assert.deepEqual(replies.map((r) => int32s(r['infer_response']['raw_output_contents'][0])), [SUM, SUM]);
    });
    await balanced(fixture.engine, () => httpJson(fixture.httpUrl, 'caller_inline', [{ name: 'X', datatype: 'INT32', shape: [1, 16], data: A }], { Y: A.map((a) => a + 1) }));
  });

  test('HTTP JSON through a codec process', async () => {
    codecFixture = await startBoth(root, { jsonCodec: { minBytes: 0, processes: 1 } });
    await balanced(codecFixture.engine, () => httpJson(codecFixture.httpUrl, 'add_sub', [jsonInput('INPUT0', A), jsonInput('INPUT1', B)], { OUTPUT0: SUM }));
  });
});

const int32Bytes = (values: readonly number[]): Buffer => Buffer.from(Int32Array.from(values).buffer);
const grpcInput = (name: string) => ({ name, datatype: 'INT32', shape: [1, 16] });
const grpcRequest = (model: string): Message => ({
  model_name: model, inputs: [grpcInput('INPUT0'), grpcInput('INPUT1')], raw_input_contents: [int32Bytes(A), int32Bytes(B)],
});

function cacheHits(engine: InferenceEngine): number {
  const stats = engine.modelStatistics('cached').model_stats[0]!;
  return Number(stats.inference_stats.cache_hit.count);
}
