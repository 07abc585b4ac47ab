/**
 * The JSON codec pool: the same task gives the same result and the same
 * error in the event loop's thread and in a codec process, for every
 * datatype (INT64 and UINT64 beyond 2^53 exact); a task that needs more heap
 * than a process has fails that process with 413 naming the limit and a
 * replacement serves the next; a full queue answers 503 naming its flag.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { bytesStrings, bytesTensor } from '../../../engine/bytes-tensor.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { isSwitchyardError } from '../../../engine/errors.ts';
import { silentLogger } from '../../../engine/logger.ts';
import { JsonCodecPool } from '../../../server/http/json-codec-pool.ts';
import type { JsonCodecTask } from '../../../server/http/json-codec-task.ts';

const inThread = new JsonCodecPool({ minBytes: Number.MAX_SAFE_INTEGER });
const warnings: string[] = [];
const inProcess = new JsonCodecPool({ minBytes: 0, processes: 1, heapMb: 64, queue: 1 }, { ...silentLogger, warn: (line) => warnings.push(line) });
/** The default heap, for tasks too large for 64 MiB. */
const roomy = new JsonCodecPool({ minBytes: 0 });

after(async () => {
  await inProcess.close();
  await roomy.close();
});

const body = (json: string): Buffer => Buffer.from(json);

const EVERY_DATATYPE = body(JSON.stringify({
  id: 'all',
  parameters: { p: 'x' },
  inputs: [
    { name: 'bool', datatype: 'BOOL', shape: [2], data: [true, false] },
    { name: 'u8', datatype: 'UINT8', shape: [2], data: [0, 255] },
    { name: 'u16', datatype: 'UINT16', shape: [2], data: [0, 65535] },
    { name: 'u32', datatype: 'UINT32', shape: [2], data: [0, 4294967295] },
    { name: 'i8', datatype: 'INT8', shape: [2], data: [-128, 127] },
    { name: 'i16', datatype: 'INT16', shape: [2], data: [-32768, 32767] },
    { name: 'i32', datatype: 'INT32', shape: [1, 2], data: [[-2147483648, 2147483647]] },
    { name: 'fp16', datatype: 'FP16', shape: [2], data: [1.5, -0.25] },
    { name: 'bf16', datatype: 'BF16', shape: [2], data: [1.5, -0.25] },
    { name: 'fp32', datatype: 'FP32', shape: [2], data: [0.1, -3e38] },
    { name: 'fp64', datatype: 'FP64', shape: [2], data: [0.1, 1e308] },
    { name: 'bytes', datatype: 'BYTES', shape: [3], data: ['', 'déjà vu', 'x'.repeat(300)] },
  ],
  outputs: [{ name: 'o', parameters: { binary_data: true } }],
// INT64 and UINT64 values past 2^53, written as literals so JSON.stringify cannot round them.
}).replace('"inputs":[', '"inputs":[{"name":"i64","datatype":"INT64","shape":[3],"data":[-9223372036854775808,9007199254740993,9223372036854775807]},{"name":"u64","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},'));

const inferTask = (json: Buffer): Extract<JsonCodecTask, { kind: 'infer-request' }> => ({ kind: 'infer-request', body: json, headerLength: undefined, target: { model: 'm' }, maxBytesElements: 1000 });

/** What a run gave: its result, or its error's class, message and status. */
async function outcome(pool: JsonCodecPool, task: JsonCodecTask): Promise<unknown> {
  try {
    return { result: await pool.run(task, 1) };
  } catch (err) {
    assert.ok(err instanceof Error);
    return { error: err.message, status: isSwitchyardError(err) ? err.httpStatus : 'not a catalogue error' };
  }
}

/** Typed arrays compared by their bytes, not by which buffer they view. */
function comparable(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return [value.constructor.name === 'Buffer' ? 'Uint8Array' : value.constructor.name, Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')];
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, comparable(v)]));
  if (Array.isArray(value)) return value.map(comparable);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, comparable(v)]));
  return value;
}

async function assertSameBothWays(task: JsonCodecTask, pool = inProcess): Promise<unknown> {
  const here = await outcome(inThread, task);
  const there = await outcome(pool, task);
  assert.deepEqual(comparable(there), comparable(here));
  return here;
}

describe('JSON codec pool', () => {
  test('an infer body of every datatype decodes to the same tensors in a process as in this thread, 64-bit integers exact', async () => {
    const here = await assertSameBothWays(inferTask(EVERY_DATATYPE)) as { result: { request: { inputs: { name: string; raw: Uint8Array }[] } } };
    const i64 = here.result.request.inputs.find((t) => t.name === 'i64')!;
    const values = new BigInt64Array(new Uint8Array(i64.raw).buffer);
    assert.deepEqual([...values], [-9223372036854775808n, 9007199254740993n, 9223372036854775807n]);
    assert.equal(inProcess.size, 1);
  });

  test('tensors over 1 MiB (BYTES data and offsets, INT64) cross in pieces and arrive whole', async () => {
    const count = 300_000;
    const strings = Array.from({ length: count }, (_, i) => `s${i % 1000}`);
    const json = body(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[${count}],"data":${JSON.stringify(strings)}},`
      + `{"name":"n","datatype":"INT64","shape":[${count}],"data":[${Array.from({ length: count }, (_, i) => `${9007199254740993n + BigInt(i)}`).join(',')}]}]}`);
    const here = await assertSameBothWays({ ...inferTask(json), maxBytesElements: count }, roomy) as { result: { request: { inputs: Tensor[] } } };
    const [s, n] = here.result.request.inputs as [Tensor, Tensor];
    assert.ok(s.datatype === 'BYTES' && s.offsets.byteLength > 1024 * 1024);
    assert.deepEqual(bytesStrings(s).slice(998, 1001), ['s998', 's999', 's0']);
    assert.equal(new BigInt64Array(new Uint8Array(n.raw).buffer)[count - 1], 9007199254740993n + BigInt(count - 1));
  });

  test('errors are the same in a process as in this thread: message and status', async () => {
    const cases = [
      '{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"data":[300]}]}',
      '{"inputs":[{"name":"a","datatype":"INT64","shape":[1],"data":[9223372036854775808]}]}',
      '{"inputs":[{"name":"a","datatype":"BYTES","shape":[2000],"data":[]}]}',
      '{"inputs":[{"name":"a","datatype":"FP32","shape":[2],"data":[1]}]}',
      '{"inputs": [1,}',
      '[]',
    ];
    for (const json of cases) {
      const here = await assertSameBothWays(inferTask(body(json))) as { error?: string };
      assert.ok(here.error, `${json} should fail`);
    }
  });

  test('generate bodies, control bodies and JSON responses are the same both ways', async () => {
    const inputs = [{ name: 'text', datatype: 'BYTES', shape: [-1] }, { name: 'n', datatype: 'INT64', shape: [1] }];
    await assertSameBothWays({ kind: 'generate-request', body: body('{"text":["a","b"],"n":9007199254740993,"temperature":0.5}'), inputs, target: { model: 'g' }, maxBytesElements: 1000 });
    await assertSameBothWays({ kind: 'generate-request', body: body('{"text":["a","b","c"]}'), inputs, target: { model: 'g' }, maxBytesElements: 2 });
    await assertSameBothWays({ kind: 'json-object', body: body('{"parameters":{"config":"{}"}}'), what: 'the request body' });
    await assertSameBothWays({ kind: 'json-object', body: body(`{"a":[${'0,'.repeat(100_000)}0]}`), what: 'the request body' });
    const fp32 = new Float32Array(300_000).map((_, i) => i / 7);
    const response = {
      modelName: 'm', modelVersion: '1', id: 'r',
      outputs: [
        { name: 'f', datatype: 'FP32' as const, shape: [fp32.length], raw: new Uint8Array(fp32.buffer) },
        bytesTensor('s', [2], ['a', 'é']),
        { name: 'bin', datatype: 'INT8' as const, shape: [2], raw: new Uint8Array([1, 2]) },
      ],
    };
    const encoded = await assertSameBothWays({ kind: 'infer-response', response, binaryOutputs: ['bin'] }) as { result: { body: Buffer; headers: Record<string, string> } };
    const jsonLength = Number(encoded.result.headers['inference-header-content-length']);
    assert.equal(JSON.parse(encoded.result.body.toString('utf8', 0, jsonLength)).outputs[0].data.length, fp32.length);
    await assertSameBothWays({ kind: 'generate-response', response: { ...response, outputs: response.outputs.slice(0, 2) } });
  });

  test('a body that needs more heap than a process has fails with 413 naming the limit; a fresh process serves the next', async () => {
    const nested = body(`{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"data":[${'{},'.repeat(8_000_000)}{}]}]}`);
    await assert.rejects(inProcess.run(inferTask(nested), nested.byteLength), (err: Error) => {
      assert.ok(isSwitchyardError(err));
      assert.equal(err.httpStatus, 413);
      assert.equal(err.message, `decoding the JSON request of ${nested.byteLength} bytes needed more than the 64 MiB of heap a JSON codec process may use (--http-json-codec-heap-mb); send tensor data as binary (binary_data_size, binary_data_output) or in smaller requests`);
      return true;
    });
    assert.equal(inProcess.size, 0);
    assert.deepEqual(warnings, [`a JSON codec process ended (SIGABRT, out of its 64 MiB heap) while decoding the JSON request of ${nested.byteLength} bytes; the next large task starts a new one`]);
    await assertSameBothWays(inferTask(EVERY_DATATYPE));
    assert.equal(inProcess.size, 1);
  });

  test('with every process busy and the queue full, one more large task is refused with 503 naming the flag', async () => {
    const big = body(`{"inputs":[{"name":"a","datatype":"INT8","shape":[1000000],"data":[${'1,'.repeat(999_999)}1]}]}`);
    const first = inProcess.run(inferTask(big), big.byteLength);
    const second = inProcess.run(inferTask(big), big.byteLength);
    await assert.rejects(inProcess.run(inferTask(big), big.byteLength), (err: Error) => {
      assert.ok(isSwitchyardError(err));
      assert.equal(err.httpStatus, 503);
      assert.match(err.message, /^1 large JSON bodies are already waiting for a JSON codec process \(the limit is 1, --http-json-codec-queue\)/);
      return true;
    });
    for (const done of await Promise.all([first, second])) assert.equal(done.request.inputs[0]!.raw.byteLength, 1_000_000);
  });

  test('after close, large tasks are refused and small ones still run in this thread', async () => {
    const pool = new JsonCodecPool({ minBytes: 100 });
    await pool.run(inferTask(EVERY_DATATYPE), 100);
    await pool.close();
    assert.equal(pool.size, 0);
    await assert.rejects(pool.run(inferTask(EVERY_DATATYPE), 100), /Server exiting/);
    assert.equal((await pool.run(inferTask(EVERY_DATATYPE), 99)).request.id, 'all');
  });
});
