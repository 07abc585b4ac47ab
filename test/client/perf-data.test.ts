/**
 * The perf tool's request data: the model description from metadata and
 * config, shapes, generated data per datatype, perf_analyzer's JSON
 * input-data format, and batching of data entries into payloads.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fromFloat16Bits } from '../../client/index.ts';
import { UsageError } from '../../client/perf/args.ts';
import {
  buildPayloads, checkBatchSize, checkShapeNames, decodeBase64, describeModel, fromJsonValues, generateData, generatedStep, parseInputData, resolveDims,
  type ModelSpec,
} from '../../client/perf/data.ts';

const ADD_SUB_METADATA = {
  name: 'add_sub',
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] },
    { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] },
  ],
};

const VARIABLE: ModelSpec = {
  name: 'var',
  maxBatchSize: 4,
  isSequence: false,
  inputs: [
    { name: 'TEXT', datatype: 'BYTES', dims: [-1], optional: false },
    { name: 'IMAGE', datatype: 'FP32', dims: [3, -1, -1], optional: false },
    { name: 'MASK', datatype: 'BOOL', dims: [2], optional: true },
  ],
};

function throwsUsage(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof UsageError && pattern.test(error.message));
}

describe('model description', () => {
  test('drops the batch dim of batching models; reads max_batch_size given as a number or a string', () => {
    const spec = describeModel(ADD_SUB_METADATA, { max_batch_size: '8', input: [] });
    assert.equal(spec.maxBatchSize, 8);
    assert.deepEqual(spec.inputs.map((i) => i.dims), [[16], [16]]);
    assert.equal(spec.isSequence, false);
    const unbatched = describeModel({ name: 'x', inputs: [{ name: 'A', datatype: 'FP32', shape: [2, 3] }] }, { max_batch_size: 0 });
    assert.deepEqual(unbatched.inputs[0]?.dims, [2, 3]);
  });

  test('sequence_batching makes a sequence model; optional inputs come from the config', () => {
    const spec = describeModel(ADD_SUB_METADATA, {
      max_batch_size: 8, sequence_batching: {}, input: [{ name: 'INPUT1', optional: true }],
    });
    assert.equal(spec.isSequence, true);
    assert.deepEqual(spec.inputs.map((i) => i.optional), [false, true]);
  });

  test('batch size is checked against max_batch_size', () => {
    const spec = describeModel(ADD_SUB_METADATA, { max_batch_size: 8 });
    checkBatchSize(spec, 8);
    throwsUsage(() => checkBatchSize(spec, 9), /at most 8/);
    throwsUsage(() => checkBatchSize({ ...spec, maxBatchSize: 0 }, 2), /does not batch/);
  });

  test('variable dims need --shape; --shape must fit and name a real input', () => {
    const image = VARIABLE.inputs[1]!;
    throwsUsage(() => resolveDims(image, new Map()), /--shape IMAGE:3,N,N/);
    assert.deepEqual(resolveDims(image, new Map([['IMAGE', [3, 224, 200]]])), [3, 224, 200]);
    throwsUsage(() => resolveDims(image, new Map([['IMAGE', [4, 224, 200]]])), /does not fit/);
    throwsUsage(() => resolveDims(image, new Map([['IMAGE', [224, 200]]])), /does not fit/);
    throwsUsage(() => checkShapeNames(VARIABLE, new Map([['image', [1]]])), /no input 'image'; did you mean 'IMAGE'/);
  });
});

describe('generated data', () => {
  test('every datatype gets storage of the right kind and length', () => {
    const kinds: Record<string, string> = {
      BOOL: 'Uint8Array', UINT8: 'Uint8Array', UINT16: 'Uint16Array', UINT32: 'Uint32Array', UINT64: 'BigUint64Array',
      INT8: 'Int8Array', INT16: 'Int16Array', INT32: 'Int32Array', INT64: 'BigInt64Array',
      FP16: 'Uint16Array', BF16: 'Uint16Array', FP32: 'Float32Array', FP64: 'Float64Array', BYTES: 'Array',
    };
    for (const [datatype, kind] of Object.entries(kinds)) {
      const data = generateData(datatype as never, 6, { kind: 'random', stringLength: 4, stringData: undefined });
      assert.equal(data.constructor.name, kind, datatype);
      assert.equal(data.length, 6, datatype);
    }
  });

  test('random values stay in range; zero is all zeros', () => {
    const ints = generateData('INT8', 1000, { kind: 'random', stringLength: 0, stringData: undefined }) as Int8Array;
    assert.ok(ints.every((v) => v >= 0 && v < 100));
    const halves = generateData('FP16', 100, { kind: 'random', stringLength: 0, stringData: undefined }) as Uint16Array;
    assert.ok([...halves].every((bits) => Math.abs(fromFloat16Bits(bits)) <= 1));
    const zeros = generateData('FP32', 10, { kind: 'zero', stringLength: 0, stringData: undefined }) as Float32Array;
    assert.ok(zeros.every((v) => v === 0));
    const bools = generateData('BOOL', 100, { kind: 'random', stringLength: 0, stringData: undefined }) as Uint8Array;
    assert.ok(bools.every((v) => v === 0 || v === 1));
  });

  test('BYTES: random strings of --string-length, or --string-data everywhere', () => {
    const random = generateData('BYTES', 3, { kind: 'random', stringLength: 7, stringData: undefined }) as string[];
    assert.ok(random.every((s) => /^[A-Za-z0-9]{7}$/.test(s)));
    const fixed = generateData('BYTES', 3, { kind: 'random', stringLength: 7, stringData: 'hello' }) as string[];
    assert.deepEqual(fixed, ['hello', 'hello', 'hello']);
  });

  test('a generated step covers the required inputs at their resolved shapes', () => {
    const step = generatedStep(VARIABLE, new Map([['TEXT', [2]], ['IMAGE', [3, 4, 5]]]), { kind: 'zero', stringLength: 0, stringData: undefined });
    assert.deepEqual([...step.keys()], ['TEXT', 'IMAGE']);
    assert.deepEqual(step.get('IMAGE')?.shape, [3, 4, 5]);
    assert.equal(step.get('IMAGE')?.data.length, 60);
  });
});

describe('perf_analyzer input-data files', () => {
  const model = describeModel(ADD_SUB_METADATA, { max_batch_size: 8 });
  const ones = Array.from({ length: 16 }, () => 1);
  const counting = (k: number): number[] => Array.from({ length: 16 }, (_, i) => k * 100 + i);

  test('flat lists, nested lists and {"content", "shape"} all read as one stream', () => {
    const streams = parseInputData(model, {
      data: [
        { INPUT0: counting(0), INPUT1: ones },
        { INPUT0: [counting(1).slice(0, 8), counting(1).slice(8)], INPUT1: { content: ones, shape: [16] } },
      ],
    }, new Map(), 'in.json');
    assert.equal(streams.length, 1);
    const [first, second] = streams[0]!;
    assert.deepEqual([...(first!.get('INPUT0')!.data as Int32Array)], counting(0));
    assert.deepEqual([...(second!.get('INPUT0')!.data as Int32Array)], counting(1));
    assert.deepEqual(second!.get('INPUT1')!.shape, [16]);
  });

  test('a list of lists is one stream per sequence', () => {
    const streams = parseInputData(model, {
      data: [[{ INPUT0: ones, INPUT1: ones }, { INPUT0: ones, INPUT1: ones }], [{ INPUT0: ones, INPUT1: ones }]],
    }, new Map(), 'seq.json');
    assert.deepEqual(streams.map((s) => s.length), [2, 1]);
  });

  test('base64 content: little-endian elements, and length-prefixed BYTES', () => {
    const ints = Buffer.alloc(16 * 4);
    for (let i = 0; i < 16; i++) ints.writeInt32LE(i - 8, i * 4);
    const streams = parseInputData(model, { data: [{ INPUT0: { b64: ints.toString('base64') }, INPUT1: ones }] }, new Map(), 'b64.json');
    assert.deepEqual([...(streams[0]![0]!.get('INPUT0')!.data as Int32Array)], Array.from({ length: 16 }, (_, i) => i - 8));

    const strings = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('hi'), Buffer.from([0, 0, 0, 0])]);
    const decoded = decodeBase64('BYTES', strings.toString('base64'), 'x') as Uint8Array[];
    assert.deepEqual(decoded.map((b) => Buffer.from(b).toString()), ['hi', '']);
    throwsUsage(() => decodeBase64('INT32', Buffer.from([1, 2, 3]).toString('base64'), 'x'), /not a whole number of INT32/);
    throwsUsage(() => decodeBase64('BYTES', Buffer.from([9, 0, 0, 0, 1]).toString('base64'), 'x'), /x: BYTES base64 data: BYTES element 0 claims 9 bytes but only 1 remain/);
  });

  test('variable shapes come from "shape", --shape, or an unambiguous element count', () => {
    const spec = describeModel({ name: 'v', inputs: [{ name: 'X', datatype: 'FP16', shape: [-1, -1] }] }, { max_batch_size: 4 });
    const [stream] = parseInputData(spec, { data: [{ X: [0.5, 1, 2] }, { X: { content: [1, 2, 3, 4], shape: [4] } }] }, new Map(), 'v.json');
    assert.deepEqual(stream!.map((s) => s.get('X')!.shape), [[3], [4]]);
    assert.equal(fromFloat16Bits((stream![0]!.get('X')!.data as Uint16Array)[0]!), 0.5);
    const image = describeModel({ name: 'i', inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, -1] }] }, { max_batch_size: 0 });
    throwsUsage(() => parseInputData(image, { data: [{ X: [1, 2, 3, 4] }] }, new Map(), 'i.json'), /add "shape" to the data or give --shape/);
    const [withShape] = parseInputData(image, { data: [{ X: [1, 2, 3, 4] }] }, new Map([['X', [2, 2]]]), 'i.json');
    assert.deepEqual(withShape![0]!.get('X')!.shape, [2, 2]);
  });

  test('mistakes name the entry and input', () => {
    throwsUsage(() => parseInputData(model, { inputs: [] }, new Map(), 'f.json'), /f\.json: expected \{"data": \[\.\.\.\]\}/);
    throwsUsage(() => parseInputData(model, { data: [{ INPUT0: ones }] }, new Map(), 'f.json'), /data\[0\]: no data for input 'INPUT1'/);
    throwsUsage(() => parseInputData(model, { data: [{ INPUT0: ones, INPUT1: ones, EXTRA: [1] }] }, new Map(), 'f.json'), /no input 'EXTRA'/);
    throwsUsage(() => parseInputData(model, { data: [{ INPUT0: [1, 2], INPUT1: ones }] }, new Map(), 'f.json'), /data\[0\]\.INPUT0: 2 elements do not fill shape \[16\]/);
    throwsUsage(() => parseInputData(model, { data: [{ INPUT0: ['a', ...ones.slice(1)], INPUT1: ones }] }, new Map(), 'f.json'), /INPUT0\[0\]: expected a number for INT32/);
    throwsUsage(() => parseInputData(model, { data: [{ INPUT0: ones, INPUT1: ones }, [{ INPUT0: ones, INPUT1: ones }]] }, new Map(), 'f.json'), /mixes streams/);
    throwsUsage(() => parseInputData(model, { data: [{ INPUT0: [2 ** 31, ...ones.slice(1)], INPUT1: ones }] }, new Map(), 'f.json'), /INPUT0\[0\]: expected an integer in INT32 range/);
    throwsUsage(() => fromJsonValues('UINT8', [256], 'u8'), /u8\[0\]: expected an integer in UINT8 range/);
    throwsUsage(() => fromJsonValues('UINT64', ['-1'], 'u64'), /u64\[0\]: expected an integer in UINT64 range/);
  });
});

describe('payloads', () => {
  const model = describeModel(ADD_SUB_METADATA, { max_batch_size: 8 });
  const step = (k: number) => new Map([
    ['INPUT0', { shape: [16], data: Int32Array.from({ length: 16 }, () => k) }],
    ['INPUT1', { shape: [16], data: Int32Array.from({ length: 16 }, () => -k) }],
  ]);

  test('a batch takes consecutive entries round-robin, so the walk repeats after length/gcd(length, batch)', () => {
    const payloads = buildPayloads(model, [step(0), step(1), step(2)], 2);
    assert.equal(payloads.length, 3);
    const firstOfEachRow = payloads.map((p) => {
      const input = p.inputs[0]!;
      assert.deepEqual(input.shape, [2, 16]);
      const data = input.data as Int32Array;
      return [data[0], data[16]];
    });
    assert.deepEqual(firstOfEachRow, [[0, 1], [2, 0], [1, 2]]);
    assert.equal(buildPayloads(model, [step(0), step(1)], 2).length, 1);
    assert.equal(buildPayloads(model, [step(0), step(1), step(2), step(3)], 1).length, 4);
  });

  test('models without batching get no batch dimension', () => {
    const [payload] = buildPayloads({ ...model, maxBatchSize: 0 }, [step(5)], 1);
    assert.deepEqual(payload!.inputs.map((t) => t.shape), [[16], [16]]);
  });

  test('entries of different shapes cannot share a batch', () => {
    const spec: ModelSpec = { ...model, inputs: [{ name: 'X', datatype: 'INT32', dims: [-1], optional: false }] };
    const a = new Map([['X', { shape: [2], data: new Int32Array(2) }]]);
    const b = new Map([['X', { shape: [3], data: new Int32Array(3) }]]);
    throwsUsage(() => buildPayloads(spec, [a, b], 2), /different shapes, so they cannot be batched together \(-b 2\)/);
    assert.equal(buildPayloads(spec, [a, b], 1).length, 2);
  });
});
