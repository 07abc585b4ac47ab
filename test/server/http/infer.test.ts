/**
 * Inference over real HTTP on real ONNX models: JSON and binary tensor
 * data, requested outputs, every datatype through an identity model,
 * batches and concurrent requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel, ORT_DATA_TYPES } from '../../../generator/models.ts';
import type { DataType } from '../../../engine/tensor.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { EchoBackend, withTestBackends } from '../../helpers/test-backends.ts';

const ADD_SUB_CONFIG = addSubConfig('add_sub', `dynamic_batching { }\n`);

const configType = (t: DataType): string => (t === 'BYTES' ? 'TYPE_STRING' : `TYPE_${t}`);

/** Every datatype ONNX Runtime carries, echoed by the in-memory backend: the codec is what is under test. */
const IDENTITY_CONFIG = `
name: "identity"
backend: "test_echo"
max_batch_size: 4
input [
${ORT_DATA_TYPES.map((t) => `  { name: "IN_${t}" data_type: ${configType(t)} dims: [ -1 ] }`).join(',\n')}
]
output [
${ORT_DATA_TYPES.map((t) => `  { name: "OUT_${t}" data_type: ${configType(t)} dims: [ -1 ] }`).join(',\n')}
]
`;

interface OutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

interface InferResponse {
  id?: string;
  model_name: string;
  model_version: string;
  outputs: OutputTensor[];
}

interface ParsedResponse {
  json: InferResponse;
  /** Binary data per output name, for outputs sent as binary. */
  binary: Map<string, Buffer>;
  contentType: string;
  headerLength: string | null;
}

/** Reads a v2 infer response, JSON alone or JSON header plus binary data. */
async function readInfer(res: Response): Promise<ParsedResponse> {
  const body = Buffer.from(await res.arrayBuffer());
  const contentType = res.headers.get('content-type') ?? '';
  const headerLength = res.headers.get('inference-header-content-length');
  assert.equal(res.status, 200, body.toString('utf8'));
  const jsonLength = headerLength === null ? body.byteLength : Number(headerLength);
  const json = JSON.parse(body.toString('utf8', 0, jsonLength)) as InferResponse;
  const binary = new Map<string, Buffer>();
  let offset = jsonLength;
  for (const output of json.outputs) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary.set(output.name, body.subarray(offset, offset + size));
    offset += size;
  }
  assert.equal(offset, body.byteLength, 'the binary section holds exactly the announced outputs');
  return { json, binary, contentType, headerLength };
}

/** A request body with a JSON header followed by binary chunks. */
function binaryRequest(header: unknown, chunks: readonly Uint8Array[]): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  return {
    body: Buffer.concat([json, ...chunks]),
    headers: { 'inference-header-content-length': String(json.byteLength), 'content-type': 'application/octet-stream' },
  };
}

const int32Bytes = (values: readonly number[]): Buffer => Buffer.from(new Int32Array(values).buffer);
const int32Values = (bytes: Buffer): number[] => {
  const out: number[] = [];
  for (let i = 0; i < bytes.byteLength; i += 4) out.push(bytes.readInt32LE(i));
  return out;
};

const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

/** BYTES elements as length-prefixed binary. */
function bytesBinary(values: readonly string[]): Buffer {
  return Buffer.concat(values.flatMap((v) => {
    const data = Buffer.from(v, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(data.byteLength, 0);
    return [length, data];
  }));
}

function parseBytesBinary(bytes: Buffer): string[] {
  const out: string[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const length = bytes.readUInt32LE(offset);
    out.push(bytes.toString('utf8', offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return out;
}

/** Test values per datatype: three elements each, covering the edges of each type. */
const VALUES: Readonly<Record<string, readonly unknown[]>> = {
  BOOL: [true, false, true],
  UINT8: [0, 255, 7],
  UINT16: [0, 65535, 300],
  UINT32: [0, 4294967295, 65536],
  UINT64: [0, Number.MAX_SAFE_INTEGER, 2 ** 40 + 3],
  INT8: [-128, 127, 0],
  INT16: [-32768, 32767, -1],
  INT32: [-2147483648, 2147483647, 42],
  INT64: [-(2 ** 40) - 7, 2 ** 33 + 1, Number.MIN_SAFE_INTEGER],
  FP16: [1.5, -2, 0.25],
  FP32: [1.5, -3.25, 16777216],
  FP64: [0.1, -1e300, Math.PI],
  BYTES: ['hello', '', 'ünïcødé ✓'],
};

/** The little-endian wire bytes of VALUES[datatype]. */
function fixedBinary(datatype: DataType, values: readonly unknown[]): Buffer {
  const n = values.length;
  switch (datatype) {
    case 'BOOL': return Buffer.from(values.map((v) => (v ? 1 : 0)));
    case 'UINT8': return Buffer.from(new Uint8Array(values as number[]).buffer);
    case 'INT8': return Buffer.from(new Int8Array(values as number[]).buffer);
    case 'UINT16': return Buffer.from(new Uint16Array(values as number[]).buffer);
    case 'INT16': return Buffer.from(new Int16Array(values as number[]).buffer);
    case 'UINT32': return Buffer.from(new Uint32Array(values as number[]).buffer);
    case 'INT32': return Buffer.from(new Int32Array(values as number[]).buffer);
    case 'UINT64': return Buffer.from(new BigUint64Array((values as number[]).map(BigInt)).buffer);
    case 'INT64': return Buffer.from(new BigInt64Array((values as number[]).map(BigInt)).buffer);
    case 'FP32': return Buffer.from(new Float32Array(values as number[]).buffer);
    case 'FP64': return Buffer.from(new Float64Array(values as number[]).buffer);
    case 'FP16': {
      // 1.5 = 0x3e00, -2 = 0xc000, 0.25 = 0x3400
      const bits: Record<number, number> = { 1.5: 0x3e00, [-2]: 0xc000, 0.25: 0x3400 };
      const out = Buffer.alloc(n * 2);
      (values as number[]).forEach((v, i) => out.writeUInt16LE(bits[v]!, i * 2));
      return out;
    }
    default: throw new Error(`no fixed binary for ${datatype}`);
  }
}

/** Decodes wire bytes back into JS values comparable with VALUES. */
function decodeBinary(datatype: DataType, bytes: Buffer): unknown[] {
  const copy = new Uint8Array(bytes).buffer;
  switch (datatype) {
    case 'BOOL': return [...bytes].map((b) => b !== 0);
    case 'UINT8': return [...new Uint8Array(copy)];
    case 'INT8': return [...new Int8Array(copy)];
    case 'UINT16': return [...new Uint16Array(copy)];
    case 'INT16': return [...new Int16Array(copy)];
    case 'UINT32': return [...new Uint32Array(copy)];
    case 'INT32': return [...new Int32Array(copy)];
    case 'UINT64': return [...new BigUint64Array(copy)].map(Number);
    case 'INT64': return [...new BigInt64Array(copy)].map(Number);
    case 'FP32': return [...new Float32Array(copy)];
    case 'FP64': return [...new Float64Array(copy)];
    case 'FP16': {
      const half: Record<number, number> = { 0x3e00: 1.5, 0xc000: -2, 0x3400: 0.25 };
      return [...new Uint16Array(copy)].map((b) => half[b] ?? Number.NaN);
    }
    case 'BYTES': return parseBytesBinary(bytes);
    default: throw new Error(`no decoder for ${datatype}`);
  }
}

const addSubInputs = (a: readonly unknown[], b: readonly unknown[], rows = 1) => [
  { name: 'INPUT0', datatype: 'INT32', shape: [rows, 16], data: a },
  { name: 'INPUT1', datatype: 'INT32', shape: [rows, 16], data: b },
];

describe('v2 infer', () => {
  let root: string;
  let http: HttpFixture;
  const a = range(16, (i) => i);
  const b = range(16, (i) => 100 - 3 * i);
  const sum = a.map((v, i) => v + b[i]!);
  const diff = a.map((v, i) => v - b[i]!);

  before(async () => {
    root = await makeRepository({
      add_sub: { config: ADD_SUB_CONFIG, versions: { 1: addSubModel('INT32', 16) } },
      identity: { config: IDENTITY_CONFIG, versions: { 1: null } },
    });
    http = await startHttp(root, { backends: withTestBackends(new EchoBackend()) });
  });

  after(async () => {
    await http?.close();
    if (root) await removeRepository(root);
  });

  const infer = (model: string, body: string | Buffer, headers: Record<string, string> = {}, path = `/v2/models/${model}/infer`) =>
    fetch(`${http.url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { 'content-type': 'application/json', ...headers } });

  describe('add_sub', () => {
    test('flat JSON data gives both outputs as JSON', async () => {
      const res = await infer('add_sub', JSON.stringify({ inputs: addSubInputs(a, b) }));
      const { json, contentType, headerLength } = await readInfer(res);
      assert.match(contentType, /^application\/json/);
      assert.equal(headerLength, null);
      assert.equal(json.model_name, 'add_sub');
      assert.equal(json.model_version, '1');
      assert.equal(json.id, undefined);
      assert.deepEqual(json.outputs, [
        { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], data: sum },
        { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], data: diff },
      ]);
    });

    test('nested JSON data is taken in row-major order', async () => {
      const res = await infer('add_sub', JSON.stringify({ inputs: addSubInputs([a], [b]) }));
      const { json } = await readInfer(res);
      assert.deepEqual(json.outputs[0]!.data, sum);
      assert.deepEqual(json.outputs[1]!.data, diff);
    });

    test('the versioned infer path works and the request id is echoed', async () => {
      const res = await infer('add_sub', JSON.stringify({ id: 'req-42', inputs: addSubInputs(a, b) }), {}, '/v2/models/add_sub/versions/1/infer');
      const { json } = await readInfer(res);
      assert.equal(json.id, 'req-42');
      assert.equal(json.model_version, '1');
      assert.deepEqual(json.outputs[0]!.data, sum);
    });

    test('a requested subset of outputs gives only those outputs', async () => {
      const res = await infer('add_sub', JSON.stringify({ inputs: addSubInputs(a, b), outputs: [{ name: 'OUTPUT1' }] }));
      const { json } = await readInfer(res);
      assert.deepEqual(json.outputs, [{ name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], data: diff }]);
    });

    test('binary_data_output: true sends every output as binary', async () => {
      const res = await infer('add_sub', JSON.stringify({ inputs: addSubInputs(a, b), parameters: { binary_data_output: true } }));
      const parsed = await readInfer(res);
      assert.equal(parsed.contentType, 'application/octet-stream');
      assert.ok(parsed.headerLength !== null && Number(parsed.headerLength) > 0);
      assert.deepEqual(parsed.json.outputs.map((o) => [o.name, o.datatype, o.shape, o.parameters, o.data]), [
        ['OUTPUT0', 'INT32', [1, 16], { binary_data_size: 64 }, undefined],
        ['OUTPUT1', 'INT32', [1, 16], { binary_data_size: 64 }, undefined],
      ]);
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT0')!), sum);
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT1')!), diff);
    });

    test('per-output binary_data chooses binary for one output and JSON for the other', async () => {
      const res = await infer('add_sub', JSON.stringify({
        inputs: addSubInputs(a, b),
        outputs: [{ name: 'OUTPUT0', parameters: { binary_data: false } }, { name: 'OUTPUT1', parameters: { binary_data: true } }],
      }));
      const parsed = await readInfer(res);
      assert.equal(parsed.contentType, 'application/octet-stream');
      const [out0, out1] = parsed.json.outputs;
      assert.equal(out0!.name, 'OUTPUT0');
      assert.deepEqual(out0!.data, sum);
      assert.equal(out0!.parameters, undefined);
      assert.equal(out1!.name, 'OUTPUT1');
      assert.equal(out1!.data, undefined);
      assert.deepEqual(out1!.parameters, { binary_data_size: 64 });
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT1')!), diff);
    });

    test('per-output binary_data: false overrides binary_data_output: true', async () => {
      const res = await infer('add_sub', JSON.stringify({
        inputs: addSubInputs(a, b),
        parameters: { binary_data_output: true },
        outputs: [{ name: 'OUTPUT0', parameters: { binary_data: false } }, { name: 'OUTPUT1', parameters: { binary_data: true } }],
      }));
      const parsed = await readInfer(res);
      assert.deepEqual(parsed.json.outputs[0]!.data, sum);
      assert.deepEqual(parsed.json.outputs[1]!.parameters, { binary_data_size: 64 });
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT1')!), diff);
    });

    test("binary_data_output: true does not reach an output listed without binary_data (Triton's precedence)", async () => {
      const res = await infer('add_sub', JSON.stringify({
        inputs: addSubInputs(a, b),
        parameters: { binary_data_output: true },
        outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1', parameters: { binary_data: true } }],
      }));
      const parsed = await readInfer(res);
      assert.deepEqual(parsed.json.outputs[0]!.data, sum);
      assert.equal(parsed.json.outputs[0]!.parameters, undefined);
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT1')!), diff);
    });

    test('binary_data_output: false with an output listed as binary_data: true: only that one is binary', async () => {
      const res = await infer('add_sub', JSON.stringify({
        inputs: addSubInputs(a, b),
        parameters: { binary_data_output: false },
        outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }, { name: 'OUTPUT1' }],
      }));
      const parsed = await readInfer(res);
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT0')!), sum);
      assert.deepEqual(parsed.json.outputs[1]!.data, diff);
    });

    test('a binary input mixed with a JSON input', async () => {
      const { body, headers } = binaryRequest({
        inputs: [
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: b },
        ],
      }, [int32Bytes(a)]);
      const { json } = await readInfer(await infer('add_sub', body, headers));
      assert.deepEqual(json.outputs[0]!.data, sum);
      assert.deepEqual(json.outputs[1]!.data, diff);
    });

    test('two binary inputs in order, binary outputs back', async () => {
      const { body, headers } = binaryRequest({
        inputs: [
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
        ],
        outputs: [{ name: 'OUTPUT1', parameters: { binary_data: true } }, { name: 'OUTPUT0', parameters: { binary_data: true } }],
      }, [int32Bytes(b), int32Bytes(a)]);
      const res = await infer('add_sub', body, headers);
      const parsed = await readInfer(res);
      assert.equal(parsed.contentType, 'application/octet-stream');
      assert.equal(Number(parsed.headerLength), Buffer.byteLength(JSON.stringify(parsed.json)));
      assert.deepEqual(parsed.json.outputs.map((o) => o.name), ['OUTPUT1', 'OUTPUT0']);
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT0')!), sum);
      assert.deepEqual(int32Values(parsed.binary.get('OUTPUT1')!), diff);
    });

    test('a batch of 3 rows in one request', async () => {
      const rowsA = [a, a.map((v) => v * 2), a.map((v) => -v)];
      const rowsB = [b, b.map(() => 1), b.map((v) => v + 1000)];
      const res = await infer('add_sub', JSON.stringify({ inputs: addSubInputs(rowsA, rowsB, 3) }));
      const { json } = await readInfer(res);
      assert.deepEqual(json.outputs[0]!.shape, [3, 16]);
      assert.deepEqual(json.outputs[1]!.shape, [3, 16]);
      assert.deepEqual(json.outputs[0]!.data, rowsA.flatMap((row, r) => row.map((v, i) => v + rowsB[r]![i]!)));
      assert.deepEqual(json.outputs[1]!.data, rowsA.flatMap((row, r) => row.map((v, i) => v - rowsB[r]![i]!)));
    });

    test('20 concurrent requests each get their own answer', async () => {
      const requests = range(20, (k) => k).map(async (k) => {
        const rows = (k % 3) + 1;
        const x = range(16 * rows, (i) => i * (k + 1));
        const y = range(16 * rows, (i) => k - i);
        const binary = k % 2 === 1;
        const res = await infer('add_sub', JSON.stringify({
          id: `c${k}`, inputs: addSubInputs(x, y, rows), ...(binary ? { parameters: { binary_data_output: true } } : {}),
        }));
        const parsed = await readInfer(res);
        assert.equal(parsed.json.id, `c${k}`);
        assert.deepEqual(parsed.json.outputs.map((o) => o.shape), [[rows, 16], [rows, 16]]);
        const out0 = binary ? int32Values(parsed.binary.get('OUTPUT0')!) : parsed.json.outputs[0]!.data;
        const out1 = binary ? int32Values(parsed.binary.get('OUTPUT1')!) : parsed.json.outputs[1]!.data;
        assert.deepEqual(out0, x.map((v, i) => v + y[i]!));
        assert.deepEqual(out1, x.map((v, i) => v - y[i]!));
      });
      await Promise.all(requests);
    });
  });

  describe('identity: every datatype', () => {
    const jsonInputs = (rows = 1) => ORT_DATA_TYPES.map((t) => ({
      name: `IN_${t}`, datatype: t, shape: [rows, VALUES[t]!.length],
      data: range(rows, () => 0).flatMap(() => VALUES[t]!),
    }));

    test('all datatypes round-trip as JSON', async () => {
      const res = await infer('identity', JSON.stringify({ inputs: jsonInputs() }));
      const { json } = await readInfer(res);
      assert.equal(json.outputs.length, ORT_DATA_TYPES.length);
      for (const t of ORT_DATA_TYPES) {
        const out = json.outputs.find((o) => o.name === `OUT_${t}`);
        assert.ok(out, `OUT_${t} is in the response`);
        assert.equal(out.datatype, t);
        assert.deepEqual(out.shape, [1, 3], `shape of OUT_${t}`);
        assert.deepEqual(out.data, VALUES[t], `data of OUT_${t}`);
      }
    });

    test('all datatypes round-trip as binary, BYTES length-prefixed', async () => {
      const chunks = ORT_DATA_TYPES.map((t) => (t === 'BYTES' ? bytesBinary(VALUES[t] as string[]) : fixedBinary(t, VALUES[t]!)));
      const { body, headers } = binaryRequest({
        inputs: ORT_DATA_TYPES.map((t, i) => ({
          name: `IN_${t}`, datatype: t, shape: [1, 3], parameters: { binary_data_size: chunks[i]!.byteLength },
        })),
        parameters: { binary_data_output: true },
      }, chunks);
      const parsed = await readInfer(await infer('identity', body, headers));
      assert.equal(parsed.contentType, 'application/octet-stream');
      for (const [i, t] of ORT_DATA_TYPES.entries()) {
        const out = parsed.json.outputs.find((o) => o.name === `OUT_${t}`);
        assert.ok(out, `OUT_${t} is in the response`);
        assert.equal(out.datatype, t);
        assert.deepEqual(out.shape, [1, 3]);
        assert.deepEqual(out.parameters, { binary_data_size: chunks[i]!.byteLength }, `binary_data_size of OUT_${t}`);
        const bytes = parsed.binary.get(`OUT_${t}`)!;
        assert.deepEqual(bytes, chunks[i], `bytes of OUT_${t}`);
        assert.deepEqual(decodeBinary(t, bytes), VALUES[t], `values of OUT_${t}`);
      }
    });

    test('JSON in, binary out and binary in, JSON out agree', async () => {
      const toBinary = await readInfer(await infer('identity', JSON.stringify({
        inputs: jsonInputs(), parameters: { binary_data_output: true },
      })));
      for (const t of ORT_DATA_TYPES) {
        assert.deepEqual(decodeBinary(t, toBinary.binary.get(`OUT_${t}`)!), VALUES[t], `OUT_${t}`);
      }
      const chunks = ORT_DATA_TYPES.map((t) => toBinary.binary.get(`OUT_${t}`)!);
      const { body, headers } = binaryRequest({
        inputs: ORT_DATA_TYPES.map((t, i) => ({
          name: `IN_${t}`, datatype: t, shape: [1, 3], parameters: { binary_data_size: chunks[i]!.byteLength },
        })),
      }, chunks);
      const toJson = await readInfer(await infer('identity', body, headers));
      for (const t of ORT_DATA_TYPES) {
        assert.deepEqual(toJson.json.outputs.find((o) => o.name === `OUT_${t}`)!.data, VALUES[t], `OUT_${t}`);
      }
    });

    test('64-bit integers beyond 2^53 go in as binary and come back exact in JSON text', async () => {
      const int64 = [-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n];
      const uint64 = [2n ** 64n - 1n, 2n ** 63n + 5n, 2n ** 32n];
      const chunks = ORT_DATA_TYPES.map((t) => {
        if (t === 'INT64') return Buffer.from(new BigInt64Array(int64).buffer);
        if (t === 'UINT64') return Buffer.from(new BigUint64Array(uint64).buffer);
        return t === 'BYTES' ? bytesBinary(VALUES[t] as string[]) : fixedBinary(t, VALUES[t]!);
      });
      const { body, headers } = binaryRequest({
        inputs: ORT_DATA_TYPES.map((t, i) => ({
          name: `IN_${t}`, datatype: t, shape: [1, 3], parameters: { binary_data_size: chunks[i]!.byteLength },
        })),
        outputs: [{ name: 'OUT_INT64' }, { name: 'OUT_UINT64' }],
      }, chunks);
      const res = await infer('identity', body, headers);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.ok(text.includes(`"data":[${int64.join(',')}]`), text);
      assert.ok(text.includes(`"data":[${uint64.join(',')}]`), text);
    });

    test('a batch of 3 rows of every datatype', async () => {
      const res = await infer('identity', JSON.stringify({ inputs: jsonInputs(3) }));
      const { json } = await readInfer(res);
      for (const t of ORT_DATA_TYPES) {
        const out = json.outputs.find((o) => o.name === `OUT_${t}`)!;
        assert.deepEqual(out.shape, [3, 3], `shape of OUT_${t}`);
        assert.deepEqual(out.data, [...VALUES[t]!, ...VALUES[t]!, ...VALUES[t]!], `data of OUT_${t}`);
      }
    });

    test('FP16 rounds to the nearest half-precision value', async () => {
      const inputs = jsonInputs().map((input) => (input.name === 'IN_FP16' ? { ...input, data: [0.1, 65504, 1e-8] } : input));
      const res = await infer('identity', JSON.stringify({ inputs, outputs: [{ name: 'OUT_FP16' }] }));
      const { json } = await readInfer(res);
      // 0.1 is 0x2e66 in binary16 = 0.0999755859375; 1e-8 underflows to 0.
      assert.deepEqual(json.outputs, [{ name: 'OUT_FP16', datatype: 'FP16', shape: [1, 3], data: [0.0999755859375, 65504, 0] }]);
    });
  });
});
