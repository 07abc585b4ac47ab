/**
 * Padded batching (parameters padded_batching, padded_batching_pad_value,
 * padded_batching_bucket): which requests share a batch, the padded tensors
 * the backend sees (element by element), outputs per request, the log line
 * and counts, the config errors at load, and one run through a real ONNX
 * model (the generated Identity model, whose width is dynamic).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ExecuteRequest } from '../../../engine/backend.ts';
import type { SignatureTensor } from '../../../engine/config/model-signature.ts';
import { ModelConfigError } from '../../../engine/config/config-error.ts';
import type { Logger } from '../../../engine/logger.ts';
import { MAX_SCANNED_REQUESTS, planBatch } from '../../../engine/scheduling/batch-plan.ts';
import { concatBatch } from '../../../engine/scheduling/batch-tensors.ts';
import { typedView, type DataType, type FixedTensor, type Tensor } from '../../../engine/tensor.ts';
import { identityModel } from '../../../generator/models.ts';
import { startMetricsServer } from '../../../server/metrics/metrics-server.ts';
import { scrape, valueOf } from '../../helpers/prometheus-text.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { compileTestConfig, harness, harnessFor } from './scripted-instance.ts';

const MODEL_TYPES: Partial<Record<DataType, string>> = { FP32: 'float32', INT32: 'int32', UINT8: 'uint8', FP16: 'float16', BYTES: 'string' };

/** A signature of batched inputs (each with the batch dim in front of `dims`) and one FP32 output. */
function signature(inputs: ReadonlyArray<[string, DataType, number[]]>): { inputs: SignatureTensor[]; outputs: SignatureTensor[] } {
  return {
    inputs: inputs.map(([name, datatype, dims]) => ({ name, datatype, modelType: MODEL_TYPES[datatype]!, shape: [-1, ...dims] })),
    outputs: [{ name: 'OUTPUT', datatype: 'FP32', modelType: 'float32', shape: [-1, -1] }],
  };
}

function parameters(entries: Readonly<Record<string, string>>): string {
  return Object.entries(entries).map(([key, value]) => `parameters { key: "${key}" value: { string_value: "${value}" } }`).join('\n');
}

function tensor(name: string, datatype: 'FP32' | 'INT32', shape: number[], values: readonly number[]): FixedTensor {
  const data = datatype === 'FP32' ? new Float32Array(values) : new Int32Array(values);
  return { name, datatype, shape, raw: new Uint8Array(data.buffer) };
}

const values = (t: Tensor): number[] => [...(typedView(t.datatype as 'FP32', (t as FixedTensor).raw) as Float32Array)];
const input = (request: ExecuteRequest, name: string): Tensor => request.inputs.find((t) => t.name === name)!;
const row = (width: number, tag: number): number[] => Array.from({ length: width }, (_, i) => tag + i / 1000);

describe('padded batching: forming batches', () => {
  const WIDTH_MODEL = `max_batch_size: 8
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { }
${parameters({ padded_batching: 'INPUT', padded_batching_bucket: '64', padded_batching_pad_value: '-1' })}`;
  const widthRequest = (width: number, tag: number): Parameters<ReturnType<typeof harness>['send']>[0] =>
    ({ modelName: 'm', inputs: [tensor('INPUT', 'FP32', [1, width], row(width, tag))] });

  test('widths 100 and 120 share a batch padded to 120 with the pad value; 300 (another bucket) keeps its place for a later batch', async () => {
    const messages: string[] = [];
    const logger: Logger = { error: () => {}, warn: () => {}, info: () => {}, verbose: (m) => messages.push(m), verboseEnabled: true };
    const h = harnessFor(compileTestConfig(WIDTH_MODEL), 1, logger);
    const busy = h.send(widthRequest(8, 0));
    const queued = [h.send(widthRequest(100, 1)), h.send(widthRequest(300, 2)), h.send(widthRequest(120, 3))];
    h.executions[0]!.finish();
    await busy;
    await h.settle();
    const batch = h.executions[1]!;
    assert.deepEqual(batch.requests.map((r) => input(r, 'INPUT').shape), [[1, 120], [1, 120]], '100 and 120 went together, padded to 120');
    const padded = values(input(batch.requests[0]!, 'INPUT'));
    assert.deepEqual(padded.slice(0, 100), row(100, 1).map(Math.fround), 'the real values come first');
    assert.deepEqual(padded.slice(100), new Array(20).fill(-1), 'then the pad value');
    assert.deepEqual(values(input(batch.requests[1]!, 'INPUT')), row(120, 3).map(Math.fround), 'the widest member is not padded');
    batch.finish();
    await h.settle();
    assert.deepEqual(h.executions[2]!.requests.map((r) => input(r, 'INPUT').shape), [[1, 300]], '300 went alone, unpadded');
    h.executions[2]!.finish();
    const outcomes = (await Promise.all(queued)) as Tensor[][];
    assert.deepEqual(outcomes.map((o) => o[0]!.shape), [[1, 120], [1, 300], [1, 120]], 'each request gets its own output, at the padded size');
    assert.deepEqual(values(outcomes[0]![0]!).slice(98, 102), [Math.fround(1.098), Math.fround(1.099), -1, -1]);

    assert.deepEqual(h.stats.paddingCounts(), { batches: 1, elements: 240, paddingElements: 20 });
    const line = messages.find((m) => m.includes('padded'));
    assert.equal(line, "model 'm': batch of 2 request(s) padded 'INPUT' to [2, 120] (20 of 240 elements, 8.3%, are padding)");
  });

  test('an NCHW image padded along H and W: each row\'s values first, then the pad value, and pad rows at the bottom', async () => {
    const h = harnessFor(compileTestConfig(`max_batch_size: 4
input [ { name: "IMG" data_type: TYPE_FP32 dims: [ 1, -1, -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { }
${parameters({ padded_batching: 'IMG', padded_batching_bucket: '4', padded_batching_pad_value: '9' })}`, 'm', signature([['IMG', 'FP32', [1, -1, -1]]])));
    const image = (shape: number[], first: number): Parameters<typeof h.send>[0] => {
      const count = shape.reduce((a, b) => a * b, 1);
      return { modelName: 'm', inputs: [tensor('IMG', 'FP32', shape, Array.from({ length: count }, (_, i) => first + i))] };
    };
    const busy = h.send(image([1, 1, 1, 1], 0));
    const queued = [h.send(image([1, 1, 2, 3], 1)), h.send(image([2, 1, 3, 2], 11))];
    h.executions[0]!.finish();
    await busy;
    await h.settle();
    const batch = h.executions[1]!;
    const joined = concatBatch(batch.requests.map((r) => input(r, 'IMG')));
    assert.deepEqual(joined.shape, [3, 1, 3, 3]);
    assert.deepEqual(values(joined), [
      1, 2, 3, 4, 5, 6, 9, 9, 9,
      11, 12, 9, 13, 14, 9, 15, 16, 9,
      17, 18, 9, 19, 20, 9, 21, 22, 9,
    ]);
    batch.finish();
    assert.deepEqual(((await Promise.all(queued)) as Tensor[][]).map((o) => o[0]!.shape), [[1, 1, 3, 3], [2, 1, 3, 3]]);
  });

  test('per-input pad values; an input not listed must still match, and a mismatch there still splits batches', async () => {
    const h = harnessFor(compileTestConfig(`max_batch_size: 8
input [
  { name: "X" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "Y" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "Z" data_type: TYPE_INT32 dims: [ -1 ] }
]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { }
${parameters({ padded_batching: 'X, Y', padded_batching_pad_value: 'X=0.5,Y=-7' })}`, 'm', signature([['X', 'FP32', [-1]], ['Y', 'INT32', [-1]], ['Z', 'INT32', [-1]]])));
    const send = (x: number, y: number, z: number): ReturnType<typeof h.send> => h.send({
      modelName: 'm',
      inputs: [
        tensor('X', 'FP32', [1, x], new Array(x).fill(1)), tensor('Y', 'INT32', [1, y], new Array(y).fill(2)), tensor('Z', 'INT32', [1, z], new Array(z).fill(3)),
      ],
    });
    const busy = send(1, 1, 1);
    const queued = [send(3, 2, 2), send(3, 2, 5), send(2, 3, 2)];
    h.executions[0]!.finish();
    await busy;
    await h.settle();
    const first = h.executions[1]!;
    assert.equal(first.requests.length, 2, 'the request whose Z differs waits for a later batch');
    assert.deepEqual(first.requests.map((r) => r.inputs.map((t) => t.shape)), [[[1, 3], [1, 3], [1, 2]], [[1, 3], [1, 3], [1, 2]]]);
    assert.deepEqual(values(input(first.requests[1]!, 'X')), [1, 1, 0.5]);
    assert.deepEqual([...new Int32Array((input(first.requests[0]!, 'Y') as FixedTensor).raw.slice().buffer)], [2, 2, -7]);
    first.finish();
    await h.settle();
    assert.deepEqual(h.executions[2]!.requests.map((r) => input(r, 'Z').shape), [[1, 5]]);
    h.executions[2]!.finish();
    await Promise.all(queued);
  });

  test('the oldest request decides: a higher priority of another bucket goes first, and the queue delay is still honoured', async () => {
    const h = harnessFor(compileTestConfig(`max_batch_size: 8
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 10000 priority_levels: 2 default_priority_level: 2 }
${parameters({ padded_batching: 'INPUT', padded_batching_bucket: '64' })}`));
    const send = (width: number, priority?: number): ReturnType<typeof h.send> => h.send({
      modelName: 'm', inputs: [tensor('INPUT', 'FP32', [1, width], new Array(width).fill(1))], ...(priority ? { parameters: { priority } } : {}),
    });
    const queued = [send(10), send(200, 1), send(20)];
    assert.equal(h.executions.length, 0, 'the delay holds the batch');
    h.clock.advance(10);
    assert.deepEqual(h.executions.map((e) => e.requests.map((r) => input(r, 'INPUT').shape[1])), [[200]], 'the priority request first, alone in its bucket');
    h.executions[0]!.finish();
    await h.settle();
    assert.deepEqual(h.executions.slice(1).map((e) => e.requests.map((r) => input(r, 'INPUT').shape[1])), [[20, 20]]);
    h.executions[1]!.finish();
    await Promise.all(queued);
  });

  test(`a batch is formed from the queue's first MAX_SCANNED_REQUESTS (${MAX_SCANNED_REQUESTS}) requests`, () => {
    const plan = (others: number): number => {
      const queue = [{ enqueuedAt: 0, batchSize: 1, shapeKey: 'a' }, ...Array.from({ length: others }, () => ({ enqueuedAt: 0, batchSize: 1, shapeKey: 'b' })),
        { enqueuedAt: 0, batchSize: 1, shapeKey: 'a' }];
      const result = planBatch(queue, { maxBatchSize: 8, preferredBatchSizes: [8], maxQueueDelayMs: 0, now: 0, passOthers: true });
      assert.equal(result.kind, 'send');
      return result.kind === 'send' ? result.entries.length : 0;
    };
    // The second 'a' is request MAX_SCANNED_REQUESTS: it joins; one place later, it waits for the next batch.
    assert.equal(plan(MAX_SCANNED_REQUESTS - 2), 2);
    assert.equal(plan(MAX_SCANNED_REQUESTS - 1), 1);
  });

  test('through the batcher: an idle instance takes the full batch [200, 210] now, not after the head\'s 1 s delay', async () => {
    const h = harness(`max_batch_size: 2
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 1000000 }
parameters { key: "padded_batching" value: { string_value: "INPUT" } }
parameters { key: "padded_batching_bucket" value: { string_value: "64" } }`);
    const request = (width: number) => ({ modelName: 'm', inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, width], raw: new Uint8Array(width * 4) } as FixedTensor] });
    void h.send(request(10));
    void h.send(request(200));
    void h.send(request(210));
    await h.settle();
    assert.equal(h.executions.length, 1);
    assert.deepEqual(h.executions[0]!.requests.map((r) => r.inputs[0]!.shape), [[1, 210], [1, 210]]);
    h.executions[0]!.finish();
  });

  test('a full batch of one bucket does not wait behind a lone request of another that waits for company', () => {
    // Widths 10, then 200 and 210 (bucket 64): with a 1 s delay the head waits; the full [200, 210] goes now.
    const queue = [{ enqueuedAt: 0, batchSize: 1, shapeKey: 'w1' }, { enqueuedAt: 1, batchSize: 1, shapeKey: 'w4' }, { enqueuedAt: 2, batchSize: 1, shapeKey: 'w4' }];
    const options = { maxBatchSize: 2, preferredBatchSizes: [], maxQueueDelayMs: 1000, now: 5, passOthers: true };
    const first = planBatch(queue, options);
    assert.equal(first.kind, 'send');
    assert.deepEqual(first.kind === 'send' && first.entries.map((e) => e.enqueuedAt), [1, 2]);
    assert.equal(first.kind === 'send' && first.reason, 'max_batch_size');
    // Alone, the head waits for its own deadline; with its delay past it goes, before a younger group that is also due.
    assert.deepEqual(planBatch(queue.slice(0, 1), options), { kind: 'wait', until: 1000 });
    const due = planBatch([...queue.slice(0, 1), { enqueuedAt: 3, batchSize: 1, shapeKey: 'w4' }], { ...options, now: 2000 });
    assert.deepEqual(due.kind === 'send' && due.entries.map((e) => e.shapeKey), ['w1']);
    // Neither group ready: wait for the earlier deadline of the two.
    assert.deepEqual(planBatch([{ enqueuedAt: 40, batchSize: 1, shapeKey: 'w1' }, { enqueuedAt: 7, batchSize: 1, shapeKey: 'w4' }], options), { kind: 'wait', until: 1007 });
  });
});

describe('padded batching: refused at load', () => {
  const BASE = 'max_batch_size: 4\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\noutput [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]';
  const refused = (text: string, field: string, problem: RegExp, sig?: ReturnType<typeof signature>): void => {
    assert.throws(() => compileTestConfig(text, 'm', sig), (err: Error) => {
      assert.ok(err instanceof ModelConfigError, String(err));
      assert.equal(err.problem.field, field);
      assert.match(err.message, problem);
      assert.ok(err.message.startsWith('/repo/m/config.pbtxt:'), err.message);
      assert.ok(err.message.length < 500, 'bounded in length');
      return true;
    });
  };
  const padded = (extra: Readonly<Record<string, string>>, config = `${BASE}\ndynamic_batching { }`): string => `${config}\n${parameters(extra)}`;

  test('an unknown input, with a suggestion', () => {
    refused(padded({ padded_batching: 'INPUTS' }), 'parameters.padded_batching', /names 'INPUTS', which is not an input of the model\. Fix: did you mean 'INPUT'\?/);
    // BASE and dynamic_batching take lines 1-4; the other parameter line 5.
    assert.throws(() => compileTestConfig(padded({ other: '1', padded_batching: 'INPT' })),
      /\/repo\/m\/config\.pbtxt:6: parameters\.padded_batching: names 'INPT'/, 'the line of the parameter itself');
    refused(padded({ padded_batching: 'INPUT,,' }), 'parameters.padded_batching', /has an empty input name/);
    refused(padded({ padded_batching: 'INPUT,INPUT' }), 'parameters.padded_batching', /names input 'INPUT' twice/);
  });

  test('an input with no -1 dim, a BYTES input, a ragged input, a reshaped input', () => {
    refused(padded({ padded_batching: 'INPUT' }, `max_batch_size: 4\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\ndynamic_batching { }`), 'parameters.padded_batching',
    /whose dims \[3\] have no variable \(-1\) dim to pad along/, signature([['INPUT', 'FP32', [3]]]));
    refused(padded({ padded_batching: 'S' }, `max_batch_size: 4\ninput [ { name: "S" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\ndynamic_batching { }`), 'parameters.padded_batching', /'S', which is TYPE_STRING/,
    signature([['S', 'BYTES', [-1]]]));
    refused(padded({ padded_batching: 'INPUT' }, `max_batch_size: 4\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\ndynamic_batching { }`), 'parameters.padded_batching', /allow_ragged_batch/,
    { inputs: [{ name: 'INPUT', datatype: 'FP32', modelType: 'float32', shape: [-1] }], outputs: signature([]).outputs });
    refused(padded({ padded_batching: 'INPUT' }, `max_batch_size: 4\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] reshape: { shape: [ 1, -1 ] } } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\ndynamic_batching { }`), 'parameters.padded_batching', /has a reshape/,
    signature([['INPUT', 'FP32', [1, -1]]]));
  });

  test('a model without max_batch_size, without dynamic_batching, or with sequence_batching', () => {
    refused(padded({ padded_batching: 'INPUT' }, 'max_batch_size: 0\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\noutput [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]'),
      'parameters.padded_batching', /max_batch_size is 0/, { inputs: [{ name: 'INPUT', datatype: 'FP32', modelType: 'float32', shape: [-1] }], outputs: [{ name: 'OUTPUT', datatype: 'FP32', modelType: 'float32', shape: [-1] }] });
    refused(padded({ padded_batching: 'INPUT' }, BASE), 'parameters.padded_batching', /has no dynamic_batching/);
    refused(padded({ padded_batching: 'INPUT' }, `${BASE}\nsequence_batching { }`), 'parameters.padded_batching', /sequence_batching model/);
  });

  test('bad buckets, at and past the bounds', () => {
    for (const bucket of ['0', '-3', 'wide', '1.5', '2147483648', '']) {
      refused(padded({ padded_batching: 'INPUT', padded_batching_bucket: bucket }), 'parameters.padded_batching_bucket', /use a whole number from 1 to 2147483647/);
    }
    for (const bucket of ['1', '2147483647']) {
      const config = compileTestConfig(padded({ padded_batching: 'INPUT', padded_batching_bucket: bucket }));
      assert.equal(config.scheduling.kind === 'dynamic' && config.scheduling.batching?.padding?.bucketWidth, Number(bucket));
    }
    const defaults = compileTestConfig(padded({ padded_batching: 'INPUT' }));
    assert.equal(defaults.scheduling.kind === 'dynamic' && defaults.scheduling.batching?.padding?.bucketWidth, 32);
  });

  test('bad pad values: not a number, out of the datatype\'s range, malformed or for an input not listed', () => {
    const field = 'parameters.padded_batching_pad_value';
    refused(padded({ padded_batching: 'INPUT', padded_batching_pad_value: 'zero' }), field, /'INPUT' \(TYPE_FP32\) the pad value 'zero'\. Fix: use a finite number/);
    refused(padded({ padded_batching: 'INPUT', padded_batching_pad_value: '1e39' }), field, /the pad value '1e39'/);
    refused(padded({ padded_batching: 'INPUT', padded_batching_pad_value: 'INPUT=1,OTHER=2' }), field, /'OTHER', which parameters 'padded_batching' does not list/);
    refused(padded({ padded_batching: 'INPUT', padded_batching_pad_value: 'INPUT=1,3' }), field, /entry '3' is not input=value/);
    refused(padded({ padded_batching: 'INPUT', padded_batching_pad_value: 'x'.repeat(5000) }), field, /x{64}\.\.\./);
    const u8 = (pad: string): string => padded({ padded_batching: 'B', padded_batching_pad_value: pad },
      'max_batch_size: 4\ninput [ { name: "B" data_type: TYPE_UINT8 dims: [ -1 ] } ]\noutput [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\ndynamic_batching { }');
    refused(u8('256'), field, /use a whole number from 0 to 255/, signature([['B', 'UINT8', [-1]]]));
    refused(u8('-1'), field, /from 0 to 255/, signature([['B', 'UINT8', [-1]]]));
    refused(u8('1.5'), field, /from 0 to 255/, signature([['B', 'UINT8', [-1]]]));
    const ok = compileTestConfig(u8('255'), 'm', signature([['B', 'UINT8', [-1]]]));
    assert.deepEqual(ok.scheduling.kind === 'dynamic' && [...ok.scheduling.batching!.padding!.inputs.get('B')!.padElement], [255]);
    refused(padded({ padded_batching: 'H', padded_batching_pad_value: '70000' },
      'max_batch_size: 4\ninput [ { name: "H" data_type: TYPE_FP16 dims: [ -1 ] } ]\noutput [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\ndynamic_batching { }'),
    field, /\(TYPE_FP16\) the pad value '70000'/, signature([['H', 'FP16', [-1]]]));
  });

  test('a pad value or bucket without padded_batching', () => {
    refused(padded({ padded_batching_bucket: '8' }), 'parameters.padded_batching_bucket', /is set but parameters 'padded_batching' is not/);
    refused(padded({ padded_batching_pad_value: '1' }), 'parameters.padded_batching_pad_value', /is set but parameters 'padded_batching' is not/);
  });
});

describe('padded batching through ONNX Runtime', () => {
  test('two requests of widths 3 and 5 run as one batch of the Identity model; each answer is its own row at the padded width', async () => {
    const config = `name: "identity"
backend: "onnxruntime"
max_batch_size: 4
input [ { name: "IN_FP32" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT_FP32" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 10000000 }
${parameters({ padded_batching: 'IN_FP32', padded_batching_bucket: '8', padded_batching_pad_value: '-1' })}`;
    const root = await makeRepository({ identity: { config, versions: { 1: identityModel(['FP32']) } } });
    const engine = await startEngine(root);
    try {
      const send = (values: number[]): ReturnType<typeof engine.infer> =>
        engine.infer({ modelName: 'identity', inputs: [tensor('IN_FP32', 'FP32', [1, values.length], values)] });
      const [short, long] = await Promise.all([send([1, 2, 3]), send([4, 5, 6, 7, 8])]);
      assert.deepEqual(short.outputs[0]!.shape, [1, 5]);
      assert.deepEqual(values(short.outputs[0]!), [1, 2, 3, -1, -1]);
      assert.deepEqual(values(long.outputs[0]!), [4, 5, 6, 7, 8]);
      assert.equal(engine.modelStatistics('identity', '1').model_stats[0]!.execution_count, 1, 'one execution for both');
      const metrics = await startMetricsServer(engine, { port: 0, address: '127.0.0.1', processMetrics: false, cpuMetrics: false });
      try {
        const scraped = await scrape(metrics.url);
        const labels = { model: 'identity', version: '1' };
        assert.equal(valueOf(scraped, 'switchyard_padded_batch_elements_total', { ...labels, part: 'padding' }), 2);
        assert.equal(valueOf(scraped, 'switchyard_padded_batch_elements_total', { ...labels, part: 'data' }), 8);
      } finally {
        await metrics.close();
      }
    } finally {
      await engine.close();
      await removeRepository(root);
    }
  });
});
