/**
 * What every transport mode of the client must do, run against a real
 * server: HTTP binary, HTTP JSON, gRPC raw contents and gRPC typed contents
 * each run this suite (see http-client.test.ts and grpc-client.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  InferenceClient, InferenceServerError, tensor, type ClientOptions, type DataType, type Tensor,
} from '../../client/index.ts';
import { ORT_DATA_TYPES } from '../../generator/models.ts';
import { HEAVY_ROWS, HEAVY_WIDTH, startClientFixture, type ClientFixture } from './client-fixture.ts';
import { pollFor } from '../helpers/wait.ts';

/** Values per datatype covering each type's edges. */
const EDGE_VALUES: Readonly<Record<string, readonly unknown[]>> = {
  BOOL: [true, false, true],
  UINT8: [0, 255, 7],
  UINT16: [0, 65535, 300],
  UINT32: [0, 4294967295, 65536],
  UINT64: [0n, 2n ** 53n - 1n, 2n ** 40n + 3n],
  INT8: [-128, 127, 0],
  INT16: [-32768, 32767, -1],
  INT32: [-2147483648, 2147483647, 42],
  INT64: [-(2n ** 40n) - 7n, 2n ** 33n + 1n, -(2n ** 53n) + 1n],
  FP16: [1.5, -2, 0.25],
  FP32: [1.5, -3.25, 16777216],
  FP64: [0.1, -1e300, Math.PI],
  BYTES: ['hello', '', 'ünïcødé ✓'],
};

/** Values JSON cannot carry: 64-bit integers past 2^53. */
const BIG_VALUES = {
  INT64: [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n],
  UINT64: [2n ** 64n - 1n, 2n ** 63n, 2n ** 53n + 1n],
};

const identityInput = (t: DataType, values: readonly unknown[], rows = 1): Tensor =>
  tensor(`IN_${t}`, t, [rows, values.length / rows], values as never);

function assertRejectsWith(promise: Promise<unknown>, code: string, message: string | RegExp): Promise<void> {
  return assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof InferenceServerError, `an InferenceServerError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

/** Runs the common client suite with the options `optionsFor` gives for the started fixture. */
export function describeTransport(label: string, optionsFor: (fixture: ClientFixture) => ClientOptions): void {
  describe(label, () => {
    let fixture: ClientFixture;
    let client: InferenceClient;
    let options: ClientOptions;
    const isJson = (): boolean => options.protocol !== 'grpc' && !options.url.startsWith('grpc:') && options.binary === false;

    before(async () => {
      fixture = await startClientFixture();
      options = optionsFor(fixture);
      client = new InferenceClient(options);
    });

    after(async () => {
      client?.close();
      await fixture?.cleanup();
    });

    test('health: server live and ready, model readiness by name and version', async () => {
      assert.equal(await client.isServerLive(), true);
      assert.equal(await client.isServerReady(), true);
      assert.equal(await client.isModelReady('add_sub'), true);
      assert.equal(await client.isModelReady('add_sub', '2'), true);
      assert.equal(await client.isModelReady('add_sub', '9'), false);
      assert.equal(await client.isModelReady('nope'), false);
      assert.equal(await client.isModelReady('broken'), false);
    });

    test('server and model metadata are the engine\'s', async () => {
      assert.deepEqual(await client.serverMetadata(), fixture.engine.serverMetadata());
      assert.deepEqual(await client.modelMetadata('add_sub'), fixture.engine.modelMetadata('add_sub'));
      assert.deepEqual(await client.modelMetadata('add_sub', '1'), fixture.engine.modelMetadata('add_sub', '1'));
      assert.deepEqual(await client.modelMetadata('identity'), fixture.engine.modelMetadata('identity'));
    });

    test('model config is the server\'s JSON form, keys in the same order', async () => {
      for (const model of ['add_sub', 'identity', 'heavy']) {
        const config = await client.modelConfig(model);
        const expected = fixture.engine.modelConfig(model);
        assert.deepEqual(config, expected, model);
        assert.equal(JSON.stringify(config), JSON.stringify(expected), `${model}: key order`);
      }
      assert.deepEqual(await client.modelConfig('add_sub', '2'), fixture.engine.modelConfig('add_sub', '2'));
    });

    test('repository index lists every version with its state; ready: true leaves out the failed model', async () => {
      const byName = (a: { name: string; version?: string }, b: { name: string; version?: string }) =>
        `${a.name}/${a.version}`.localeCompare(`${b.name}/${b.version}`);
      const expected = fixture.engine.repositoryIndex().map((e) => ({
        name: e.name, ...(e.version ? { version: e.version } : {}), state: e.state, ...(e.reason ? { reason: e.reason } : {}),
      }));
      const index = await client.repositoryIndex();
      assert.deepEqual([...index].sort(byName), [...expected].sort(byName));
      const broken = index.find((e) => e.name === 'broken');
      assert.equal(broken?.state, 'UNAVAILABLE');
      assert.ok(broken?.reason, 'the failed model says why');
      const ready = await client.repositoryIndex({ ready: true });
      assert.deepEqual([...ready].sort(byName), expected.filter((e) => e.state === 'READY').sort(byName));
    });

    test('statistics, load and unload pass on the server\'s answer', async () => {
      // Nothing else runs meanwhile, so the engine's statistics and the client's are the same moment's.
      assert.deepEqual(await client.modelStatistics(), fixture.engine.modelStatistics());
      assert.deepEqual(await client.modelStatistics('add_sub'), fixture.engine.modelStatistics('add_sub'));
      const one = await client.modelStatistics('add_sub', '1');
      assert.deepEqual(one, fixture.engine.modelStatistics('add_sub', '1'));
      assert.deepEqual(Object.keys(one.model_stats[0]!.batch_close_reasons).sort(),
        ['max_batch_size', 'preferred_batch_size', 'queue_delay', 'queue_empty', 'shape_mismatch']);
      await assertRejectsWith(client.modelStatistics('nope'), 'INVALID_ARGUMENT', "requested model 'nope' is not available");

      const loadError = await fixture.engine.loadModel('nope').then(() => undefined, (err: { message: string }) => err);
      assert.ok(loadError, 'loading a model that does not exist fails');
      await assert.rejects(client.loadModel('nope'), (err: InferenceServerError) => err.message === loadError.message);
      const unloadError = await fixture.engine.unloadModel('nope').then(() => undefined, (err: { message: string }) => err);
      if (unloadError) await assert.rejects(client.unloadModel('nope'), (err: InferenceServerError) => err.message === unloadError.message);
    });

    test('add_sub: outputs as typed arrays and numbers, version and id echoed', async () => {
      const a = Int32Array.from({ length: 32 }, (_, i) => i * 3 - 40);
      const b = Int32Array.from({ length: 32 }, (_, i) => 1000 - i);
      const result = await client.infer('add_sub', [tensor('INPUT0', 'INT32', [2, 16], a), tensor('INPUT1', 'INT32', [2, 16], b)], {
        id: 'req-7', modelVersion: '2',
      });
      assert.equal(result.modelName, 'add_sub');
      assert.equal(result.modelVersion, '2');
      assert.equal(result.id, 'req-7');
      assert.deepEqual(result.parameters, {});
      assert.deepEqual(result.outputs.map((o) => [o.name, o.datatype, o.shape]), [['OUTPUT0', 'INT32', [2, 16]], ['OUTPUT1', 'INT32', [2, 16]]]);
      assert.deepEqual(result.output('OUTPUT0').typed(), a.map((v, i) => v + b[i]!));
      assert.deepEqual(result.output('OUTPUT1').numbers(), Array.from(a, (v, i) => v - b[i]!));
      assert.deepEqual(result.output('OUTPUT1').bigints(), Array.from(a, (v, i) => BigInt(v - b[i]!)));
    });

    test('requested outputs only, and request parameters of every kind are accepted', async () => {
      const ones = new Int32Array(16).fill(1);
      const result = await client.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 16], ones), tensor('INPUT1', 'INT32', [1, 16], ones)], {
        outputs: ['OUTPUT1'], parameters: { flag: true, count: 3, ratio: 0.5, label: 'x', big: 2n ** 60n },
      });
      assert.deepEqual(result.outputs.map((o) => o.name), ['OUTPUT1']);
      assert.deepEqual(result.output('OUTPUT1').numbers(), new Array(16).fill(0));
      assert.throws(() => result.output('OUTPUT0'), (err: unknown) =>
        err instanceof InferenceServerError && err.code === 'NOT_FOUND' && /no output 'OUTPUT0'/.test(err.message));
    });

    test('every datatype round-trips through the identity model', async () => {
      const inputs = ORT_DATA_TYPES.map((t) => identityInput(t, [...EDGE_VALUES[t]!, ...EDGE_VALUES[t]!], 2));
      const result = await client.infer('identity', inputs);
      assert.equal(result.outputs.length, ORT_DATA_TYPES.length);
      for (const [i, t] of ORT_DATA_TYPES.entries()) {
        const out = result.output(`OUT_${t}`);
        assert.equal(out.datatype, t);
        assert.deepEqual(out.shape, [2, 3], `shape of OUT_${t}`);
        const expected = [...EDGE_VALUES[t]!, ...EDGE_VALUES[t]!];
        if (t === 'BYTES') {
          assert.deepEqual(out.strings(), expected);
          assert.throws(() => out.typed(), TypeError);
        } else if (t === 'BOOL') {
          assert.deepEqual(out.booleans(), expected);
          assert.deepEqual(out.typed(), new Uint8Array(expected.map((v) => (v ? 1 : 0))));
        } else if (t === 'FP16') {
          assert.deepEqual(out.numbers(), expected);
          assert.deepEqual(out.typed(), inputs[i]!.data);
        } else {
          assert.deepEqual(out.typed(), inputs[i]!.data, `data of OUT_${t}`);
        }
      }
    });

    test('64-bit integers past 2^53 stay exact (in JSON mode, unless the server refuses them)', async () => {
      const inputs = [identityInput('INT64', BIG_VALUES.INT64), identityInput('UINT64', BIG_VALUES.UINT64)];
      const sent = client.infer('identity_int64', inputs);
      if (isJson()) {
        // The request carries the exact digits; a server that reads JSON numbers as doubles refuses them.
        const refusal = await sent.then(() => undefined, (err: unknown) => err);
        if (refusal !== undefined) {
          assert.ok(refusal instanceof InferenceServerError, String(refusal));
          assert.equal(refusal.code, 'INVALID_ARGUMENT');
          assert.match(refusal.message, /input 'IN_INT64' is \d+, expected an integer in INT64 range/);
          return;
        }
      }
      const result = await sent;
      assert.deepEqual(result.output('OUT_INT64').bigints(), BIG_VALUES.INT64);
      assert.deepEqual(result.output('OUT_UINT64').bigints(), BIG_VALUES.UINT64);
    });

    test('an INT64 result past 2^53 is exact (JSON mode reads the digits exactly)', async () => {
      const max = BigInt(Number.MAX_SAFE_INTEGER);
      const x = [max, -max, 5n, max];
      const y = [max, -max, -7n, 2n];
      const result = await client.infer('add_sub_int64', [tensor('INPUT0', 'INT64', [1, 4], x), tensor('INPUT1', 'INT64', [1, 4], y)]);
      assert.deepEqual(result.output('OUTPUT0').bigints(), x.map((v, i) => v + y[i]!));
      assert.deepEqual(result.output('OUTPUT1').typed(), new BigInt64Array(x.map((v, i) => v - y[i]!)));
    });

    test('BYTES: strings and byte arrays; JSON mode refuses bytes that are not UTF-8', async () => {
      const strings = ['', 'a', '日本語テキスト', 'x'.repeat(70000), 'tab\tquote"backslash\\'];
      const text = await client.infer('identity_bytes', [identityInput('BYTES', strings)]);
      assert.deepEqual(text.output('OUT_BYTES').strings(), strings);
      // ONNX Runtime for Node holds strings, so only UTF-8 without NUL survives the model itself.
      const raw = [new Uint8Array([0xe2, 0x82, 0xac]), new Uint8Array([0x41, 0x7f]), new Uint8Array(0)];
      const bytes = await client.infer('identity_bytes', [identityInput('BYTES', raw)]);
      assert.deepEqual(bytes.output('OUT_BYTES').bytes().map((b) => [...b]), raw.map((b) => [...b]));
      assert.deepEqual(bytes.output('OUT_BYTES').strings(), ['€', 'A\x7f', '']);
      if (isJson()) {
        await assert.rejects(client.infer('identity_bytes', [identityInput('BYTES', [new Uint8Array([0xc3, 0x28])])]), {
          name: 'TypeError', message: "tensor 'IN_BYTES': BYTES element 0 is not valid UTF-8, which JSON cannot carry; use binary mode",
        });
      }
    });

    test('BF16 data reaches the server as BF16', async () => {
      await assertRejectsWith(client.infer('identity_fp16', [tensor('IN_FP16', 'BF16', [1, 2], [1, 2])]),
        'INVALID_ARGUMENT', "inference input 'IN_FP16' data-type is 'BF16', but model 'identity_fp16' expects 'FP16'");
    });

    test('server errors carry the server\'s message and code', async () => {
      await assertRejectsWith(client.infer('nope', []), 'NOT_FOUND', "Request for unknown model: 'nope' is not found");
      const ones = new Int32Array(16);
      await assertRejectsWith(client.infer('add_sub', [tensor('INPUT0', 'FP32', [1, 16], new Float32Array(16)), tensor('INPUT1', 'INT32', [1, 16], ones)]),
        'INVALID_ARGUMENT', "inference input 'INPUT0' data-type is 'FP32', but model 'add_sub' expects 'INT32'");
      await assertRejectsWith(client.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 16], ones)]),
        'INVALID_ARGUMENT', /^expected 2 inputs but got 1 inputs for model 'add_sub'/);
      await assertRejectsWith(client.modelConfig('nope'), 'NOT_FOUND', "Request for unknown model: 'nope' is not found");
      await assertRejectsWith(client.infer('add_sub', [], { modelVersion: '9' }), 'NOT_FOUND', /'add_sub' version 9/);
    });

    describe('cancellation and deadlines', () => {
      const heavyInput = tensor('INPUT', 'FP32', [HEAVY_ROWS, HEAVY_WIDTH], new Float32Array(HEAVY_ROWS * HEAVY_WIDTH).fill(0.1));
      /** Work that keeps the heavy model's instance busy (held at the gate), so a later request waits. */
      const keepBusy = async (): Promise<{ readonly done: Promise<unknown> }> => {
        fixture.heavy.close();
        const done = Promise.all(Array.from({ length: 16 }, () => client.infer('heavy', [heavyInput])));
        await fixture.heavy.untilWaiting(1);
        return { done };
      };
      /** Resolves once the heavy model holds `count` requests (queued or with its instance). */
      const untilHeld = (count: number): Promise<true> => pollFor(`${count} requests held by 'heavy'`, 5000,
        () => fixture.engine.pendingRequestCount('heavy') === count || undefined, () => `held: ${fixture.engine.pendingRequestCount('heavy')}`);

      test('an already aborted signal fails at once with CANCELLED', async () => {
        const controller = new AbortController();
        controller.abort();
        await assertRejectsWith(client.infer('heavy', [heavyInput], { signal: controller.signal }), 'CANCELLED', /cancelled by the client/);
      });

      test('aborting a waiting request rejects it with CANCELLED before the work ahead of it ends', async () => {
        const order: string[] = [];
        const busy = (await keepBusy()).done.then(() => order.push('busy done'));
        const controller = new AbortController();
        const waiting = client.infer('heavy', [heavyInput], { signal: controller.signal });
        await untilHeld(17);
        controller.abort(new Error('user pressed stop'));
        await assertRejectsWith(waiting, 'CANCELLED', 'the request was cancelled by the client: user pressed stop');
        order.push('aborted');
        fixture.heavy.open();
        await busy;
        assert.deepEqual(order, ['aborted', 'busy done']);
        const after = await client.infer('heavy', [heavyInput]);
        assert.deepEqual(after.output('OUTPUT').shape, [HEAVY_ROWS, 16], 'the client still works');
      });

      test('timeoutMs fails a request that runs past it with DEADLINE_EXCEEDED', async () => {
        const order: string[] = [];
        const busy = (await keepBusy()).done.then(() => order.push('busy done'));
        await assertRejectsWith(client.infer('heavy', [heavyInput], { timeoutMs: 5 }), 'DEADLINE_EXCEEDED', /deadline/i);
        order.push('timed out');
        fixture.heavy.open();
        await busy;
        assert.deepEqual(order, ['timed out', 'busy done']);
      });
    });
  });
}
