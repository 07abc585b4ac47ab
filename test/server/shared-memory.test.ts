/**
 * The system shared memory extension over HTTP and gRPC against real
 * servers and real files in /dev/shm: Triton's simple_http_shm_client.py
 * and simple_grpc_shm_client.py call for call, mixed requests, BYTES
 * tensors, every route's and parameter's bad inputs, --allow-client-shm
 * off, and file descriptors let go on unregister and at close.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, readlink, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { addSubModel, identityModel } from '../../generator/models.ts';
import { bytesTensor } from '../../engine/bytes-tensor.ts';
import { SHARED_MEMORY_DIRECTORY } from '../../engine/memory/shared-memory-region.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, num, strings, type Message } from '../helpers/grpc-raw-client.ts';

const IDENTITY_BYTES_CONFIG = `name: "identity_bytes"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "IN_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUT_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
`;

/** A shm key unique to this process, so parallel test runs never share an object. */
const key = (name: string): string => `/switchyard_test_${process.pid}_${name}`;
const fileOf = (shmKey: string): string => join(SHARED_MEMORY_DIRECTORY, shmKey.slice(1));

/** What Triton's shm.create_shared_memory_region does: a zeroed object of `size` bytes. */
async function createRegion(shmKey: string, size: number): Promise<void> {
  await writeFile(fileOf(shmKey), Buffer.alloc(size));
}

async function destroyRegion(shmKey: string): Promise<void> {
  await rm(fileOf(shmKey), { force: true });
}

/** File descriptors of this process open on the object (via /proc/self/fd). */
async function openDescriptors(shmKey: string): Promise<number> {
  const target = fileOf(shmKey);
  let count = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const link = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (link === target || link === `${target} (deleted)`) count++;
  }
  return count;
}

async function int32sAt(shmKey: string, offset: number, count: number): Promise<number[]> {
  const bytes = await readFile(fileOf(shmKey));
  return [...new Int32Array(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + count * 4))];
}

const INPUT0 = Int32Array.from({ length: 16 }, (_, i) => i);
const INPUT1 = new Int32Array(16).fill(1);
const BYTE_SIZE = 64;

/** Fills the input object as the example does: INPUT0 at 0, INPUT1 right after. */
async function writeInputs(shmKey: string): Promise<void> {
  await writeFile(fileOf(shmKey), Buffer.concat([Buffer.from(INPUT0.buffer), Buffer.from(INPUT1.buffer)]));
}

interface HttpAnswer {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

async function http(base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<HttpAnswer> {
  const res = await fetch(`${base}${path}`, {
    method, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

const errorOf = (answer: HttpAnswer): string => (answer.body as { error?: string } | undefined)?.error ?? `(no error) ${answer.text}`;

/** An HTTP infer body over the simple model with both inputs and both outputs in shared memory, as the example sends it. */
function httpShmInfer(inputRegion: string, outputRegion: string): unknown {
  return {
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', parameters: { shared_memory_region: inputRegion, shared_memory_byte_size: BYTE_SIZE } },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', parameters: { shared_memory_region: inputRegion, shared_memory_byte_size: BYTE_SIZE, shared_memory_offset: BYTE_SIZE } },
    ],
    outputs: [
      { name: 'OUTPUT0', parameters: { binary_data: false, shared_memory_region: outputRegion, shared_memory_byte_size: BYTE_SIZE } },
      { name: 'OUTPUT1', parameters: { binary_data: false, shared_memory_region: outputRegion, shared_memory_byte_size: BYTE_SIZE, shared_memory_offset: BYTE_SIZE } },
    ],
  };
}

const stringParam = (value: string): Message => ({ string_param: value });
const int64Param = (value: number): Message => ({ int64_param: value });

/** The example's tensor parameters as tritonclient.grpc sets them (offset only when not 0). */
function grpcShmParameters(region: string, byteSize: number, offset = 0): Record<string, Message> {
  return {
    shared_memory_region: stringParam(region), shared_memory_byte_size: int64Param(byteSize),
    ...(offset !== 0 ? { shared_memory_offset: int64Param(offset) } : {}),
  };
}

function grpcShmInfer(inputRegion: string, outputRegion: string): Message {
  return {
    model_name: 'simple',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: grpcShmParameters(inputRegion, BYTE_SIZE) },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: grpcShmParameters(inputRegion, BYTE_SIZE, BYTE_SIZE) },
    ],
    outputs: [
      { name: 'OUTPUT0', parameters: grpcShmParameters(outputRegion, BYTE_SIZE) },
      { name: 'OUTPUT1', parameters: grpcShmParameters(outputRegion, BYTE_SIZE, BYTE_SIZE) },
    ],
  };
}

const SUM = [...INPUT0].map((v, i) => v + INPUT1[i]!);
const DIFFERENCE = [...INPUT0].map((v, i) => v - INPUT1[i]!);

let root: string;

before(async () => {
  const model = addSubModel('INT32', 16);
  root = await makeRepository({
    simple: { config: addSubConfig('simple'), versions: { 1: model } },
    identity_bytes: { config: IDENTITY_BYTES_CONFIG, versions: { 1: identityModel(['BYTES']) } },
  });
});

after(async () => {
  if (root) await removeRepository(root);
});

describe('shared memory with --allow-client-shm=true', () => {
  let fixture: DualFixture;
  let client: RawGrpcClient;
  const IN = key('input_simple');
  const OUT = key('output_simple');

  before(async () => {
    fixture = await startBoth(root, { sharedMemory: { allowClient: true, maxRegions: 8 } });
    client = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    client?.close();
    await fixture?.close();
    for (const k of [IN, OUT, key('bytes'), key('small'), key('link'), key('link_target'), key('cut')]) await destroyRegion(k);
  });

  test("simple_http_shm_client.py's calls, in its order, over HTTP", async () => {
    const base = fixture.httpUrl;
    assert.equal((await http(base, 'POST', '/v2/systemsharedmemory/unregister')).status, 200);
    assert.equal((await http(base, 'POST', '/v2/cudasharedmemory/unregister')).status, 200);
    await createRegion(OUT, BYTE_SIZE * 2);
    assert.equal((await http(base, 'POST', '/v2/systemsharedmemory/region/output_data/register', { key: OUT, offset: 0, byte_size: BYTE_SIZE * 2 })).status, 200);
    await createRegion(IN, BYTE_SIZE * 2);
    await writeInputs(IN);
    assert.equal((await http(base, 'POST', '/v2/systemsharedmemory/region/input_data/register', { key: IN, offset: 0, byte_size: BYTE_SIZE * 2 })).status, 200);

    const answer = await http(base, 'POST', '/v2/models/simple/infer', httpShmInfer('input_data', 'output_data'));
    assert.equal(answer.status, 200, answer.text);
    // As Triton answers: outputs in shared memory carry name, datatype and shape, and no data.
    assert.deepEqual((answer.body as { outputs: unknown[] }).outputs, [
      { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16] },
    ]);
    assert.deepEqual(await int32sAt(OUT, 0, 16), SUM);
    assert.deepEqual(await int32sAt(OUT, BYTE_SIZE, 16), DIFFERENCE);

    const status = await http(base, 'GET', '/v2/systemsharedmemory/status');
    assert.equal(status.status, 200);
    assert.deepEqual(new Set((status.body as unknown[]).map((r) => JSON.stringify(r))), new Set([
      JSON.stringify({ name: 'output_data', key: OUT, offset: 0, byte_size: 128 }),
      JSON.stringify({ name: 'input_data', key: IN, offset: 0, byte_size: 128 }),
    ]));
    assert.deepEqual((await http(base, 'GET', '/v2/systemsharedmemory/region/input_data/status')).body,
      [{ name: 'input_data', key: IN, offset: 0, byte_size: 128 }]);
    assert.equal(await openDescriptors(IN), 1, 'a registered region holds its object open');
    assert.equal((await http(base, 'POST', '/v2/systemsharedmemory/unregister')).status, 200);
    assert.deepEqual((await http(base, 'GET', '/v2/systemsharedmemory/status')).body, []);
    assert.equal(await openDescriptors(IN), 0, 'unregister closes the descriptor');
    assert.equal(await openDescriptors(OUT), 0);
  });

  test("simple_grpc_shm_client.py's calls, in its order, over gRPC", async () => {
    assert.ok((await client.call('SystemSharedMemoryUnregister', {})).response);
    assert.ok((await client.call('CudaSharedMemoryUnregister', {})).response);
    await createRegion(OUT, BYTE_SIZE * 2);
    assert.ok((await client.call('SystemSharedMemoryRegister', { name: 'output_data', key: OUT, byte_size: BYTE_SIZE * 2 })).response);
    await createRegion(IN, BYTE_SIZE * 2);
    await writeInputs(IN);
    assert.ok((await client.call('SystemSharedMemoryRegister', { name: 'input_data', key: IN, byte_size: BYTE_SIZE * 2 })).response);

    const { response, error } = await client.call('ModelInfer', grpcShmInfer('input_data', 'output_data'));
    assert.equal(error, undefined, error?.details);
    const outputs = response!['outputs'] as Message[];
    assert.deepEqual(outputs.map((o) => [o['name'], o['datatype'], (o['shape'] as unknown[]).map(num)]),
      [['OUTPUT0', 'INT32', [1, 16]], ['OUTPUT1', 'INT32', [1, 16]]]);
    // One (empty) raw entry per output, so entries still line up with outputs, as Triton sends them.
    assert.deepEqual((response!['raw_output_contents'] as Uint8Array[]).map((b) => b.byteLength), [0, 0]);
    assert.deepEqual(await int32sAt(OUT, 0, 16), SUM);
    assert.deepEqual(await int32sAt(OUT, BYTE_SIZE, 16), DIFFERENCE);

    const regions = (await client.call('SystemSharedMemoryStatus', {})).response!['regions'] as Record<string, Message>;
    assert.deepEqual(Object.keys(regions).sort(), ['input_data', 'output_data']);
    assert.deepEqual([regions['input_data']!['name'], regions['input_data']!['key'], num(regions['input_data']!['offset']),
      num(regions['input_data']!['byte_size'])], ['input_data', IN, 0, 128]);
    const one = (await client.call('SystemSharedMemoryStatus', { name: 'output_data' })).response!['regions'] as Record<string, Message>;
    assert.deepEqual(Object.keys(one), ['output_data']);
    assert.ok((await client.call('SystemSharedMemoryUnregister', {})).response);
    assert.deepEqual((await client.call('SystemSharedMemoryStatus', {})).response!['regions'], {});
    assert.equal(await openDescriptors(IN), 0);
  });

  test('one namespace for both frontends: a region registered over gRPC serves HTTP, and the other way round', async () => {
    await createRegion(OUT, BYTE_SIZE * 2);
    await writeInputs(IN);
    assert.ok((await client.call('SystemSharedMemoryRegister', { name: 'in', key: IN, byte_size: BYTE_SIZE * 2 })).response);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/out/register', { key: OUT, byte_size: BYTE_SIZE * 2 })).status, 200);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', httpShmInfer('in', 'out'))).status, 200);
    assert.deepEqual(await int32sAt(OUT, 0, 16), SUM);
    await createRegion(OUT, BYTE_SIZE * 2);
    assert.equal((await client.call('ModelInfer', grpcShmInfer('in', 'out'))).error, undefined);
    assert.deepEqual(await int32sAt(OUT, BYTE_SIZE, 16), DIFFERENCE);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/in/unregister')).status, 200);
    assert.ok((await client.call('SystemSharedMemoryUnregister', { name: 'out' })).response);
    assert.deepEqual((await http(fixture.httpUrl, 'GET', '/v2/systemsharedmemory/status')).body, []);
  });

  test('a region may start at an offset into its object; tensor offsets count from the region', async () => {
    await writeFile(fileOf(IN), Buffer.concat([Buffer.alloc(32, 0xff), Buffer.from(INPUT0.buffer), Buffer.from(INPUT1.buffer)]));
    await createRegion(OUT, 16 + BYTE_SIZE * 2);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/in/register', { key: IN, offset: 32, byte_size: BYTE_SIZE * 2 })).status, 200);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/out/register', { key: OUT, offset: 16, byte_size: BYTE_SIZE * 2 })).status, 200);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', httpShmInfer('in', 'out'))).status, 200);
    assert.deepEqual(await int32sAt(OUT, 16, 16), SUM);
    assert.deepEqual(await int32sAt(OUT, 16 + BYTE_SIZE, 16), DIFFERENCE);
    assert.deepEqual(await int32sAt(OUT, 0, 4), [0, 0, 0, 0], 'nothing is written before the region');
    await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/unregister');
  });

  test('mixed requests: one input in shared memory and one in the request, one output in shared memory and one in the response', async () => {
    await writeInputs(IN);
    await createRegion(OUT, BYTE_SIZE);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/in/register', { key: IN, byte_size: BYTE_SIZE * 2 })).status, 200);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/out/register', { key: OUT, byte_size: BYTE_SIZE })).status, 200);
    const body = {
      inputs: [
        { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: [...INPUT0].map((v) => v * 10) },
        { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', parameters: { shared_memory_region: 'in', shared_memory_byte_size: BYTE_SIZE, shared_memory_offset: BYTE_SIZE } },
      ],
      outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1', parameters: { shared_memory_region: 'out', shared_memory_byte_size: BYTE_SIZE } }],
    };
    const answer = await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', body);
    assert.equal(answer.status, 200, answer.text);
    const outputs = (answer.body as { outputs: Array<{ name: string; data?: number[] }> }).outputs;
    assert.deepEqual(outputs.find((o) => o.name === 'OUTPUT0')!.data, [...INPUT0].map((v) => v * 10 + 1));
    assert.equal(outputs.find((o) => o.name === 'OUTPUT1')!.data, undefined);
    assert.deepEqual(await int32sAt(OUT, 0, 16), [...INPUT0].map((v) => v * 10 - 1));

    // gRPC: raw_input_contents holds only the inputs not in shared memory, as tritonclient sends it.
    const message = {
      model_name: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: grpcShmParameters('in', BYTE_SIZE) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: grpcShmParameters('out', BYTE_SIZE) }, { name: 'OUTPUT1' }],
      raw_input_contents: [Buffer.from(new Int32Array(16).fill(5).buffer)],
    };
    const { response, error } = await client.call('ModelInfer', message);
    assert.equal(error, undefined, error?.details);
    const raw = response!['raw_output_contents'] as Uint8Array[];
    assert.equal(raw[0]!.byteLength, 0);
    assert.deepEqual([...new Int32Array(Buffer.from(raw[1]!).buffer.slice(raw[1]!.byteOffset, raw[1]!.byteOffset + 64))], [...INPUT0].map((v) => v - 5));
    assert.deepEqual(await int32sAt(OUT, 0, 16), [...INPUT0].map((v) => v + 5));
    await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/unregister');
  });

  test('ModelStreamInfer reads and writes shared memory as ModelInfer does', async () => {
    await writeInputs(IN);
    await createRegion(OUT, BYTE_SIZE * 2);
    assert.ok((await client.call('SystemSharedMemoryRegister', { name: 'in', key: IN, byte_size: BYTE_SIZE * 2 })).response);
    assert.ok((await client.call('SystemSharedMemoryRegister', { name: 'out', key: OUT, byte_size: BYTE_SIZE * 2 })).response);
    const replies = await client.streamAll([grpcShmInfer('in', 'out'), grpcShmInfer('nope', 'out')]);
    assert.equal(replies.length, 2);
    assert.equal(replies[0]!['error_message'], '');
    assert.deepEqual((replies[0]!['infer_response']['raw_output_contents'] as Uint8Array[]).map((b) => b.byteLength), [0, 0]);
    assert.equal(replies[1]!['error_message'], "Unable to find shared memory region: 'nope'");
    assert.deepEqual(await int32sAt(OUT, 0, 16), SUM);
    assert.deepEqual(await int32sAt(OUT, BYTE_SIZE, 16), DIFFERENCE);
    assert.ok((await client.call('SystemSharedMemoryUnregister', {})).response);
  });

  test("BYTES tensors in shared memory use Triton's serialization: a 4-byte little-endian length before each element", async () => {
    const BYTES = key('bytes');
    const words = ['shared', '', 'mémoire'];
    const serialized = Buffer.from(bytesTensor('x', [1, 3], words).raw);
    await writeFile(fileOf(BYTES), Buffer.concat([serialized, Buffer.alloc(64)]));
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/bytes/register', { key: BYTES, byte_size: serialized.byteLength + 64 })).status, 200);
    const body = {
      inputs: [{ name: 'IN_BYTES', shape: [1, 3], datatype: 'BYTES', parameters: { shared_memory_region: 'bytes', shared_memory_byte_size: serialized.byteLength } }],
      outputs: [{ name: 'OUT_BYTES', parameters: { shared_memory_region: 'bytes', shared_memory_byte_size: 64, shared_memory_offset: serialized.byteLength } }],
    };
    const answer = await http(fixture.httpUrl, 'POST', '/v2/models/identity_bytes/infer', body);
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual((answer.body as { outputs: unknown[] }).outputs, [{ name: 'OUT_BYTES', datatype: 'BYTES', shape: [1, 3] }]);
    const file = await readFile(fileOf(BYTES));
    assert.deepEqual(strings(file.subarray(serialized.byteLength, serialized.byteLength * 2)), words);
    assert.deepEqual(file.subarray(serialized.byteLength * 2), Buffer.alloc(64 - serialized.byteLength), 'nothing past the output');

    const broken = { ...body, inputs: [{ ...body.inputs[0]!, parameters: { shared_memory_region: 'bytes', shared_memory_byte_size: serialized.byteLength - 1 } }] };
    const refused = await http(fixture.httpUrl, 'POST', '/v2/models/identity_bytes/infer', broken);
    assert.equal(refused.status, 400);
    assert.match(errorOf(refused), /^input 'IN_BYTES': /);
    await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/bytes/unregister');
  });

  describe('bad register requests', () => {
    test('HTTP: each missing or malformed field, with Triton\'s wording where it has one', async () => {
      await createRegion(IN, BYTE_SIZE * 2);
      const register = (path: string, body?: unknown) => http(fixture.httpUrl, 'POST', path, body);
      const cases: Array<[string, unknown, number, RegExp]> = [
        ['/v2/systemsharedmemory/register', { key: IN, byte_size: 4 }, 400, /^'region name' is necessary to register system shared memory region$/],
        ['/v2/systemsharedmemory/region/r/register', undefined, 400, /^Shared memory register request has no 'key' field$/],
        ['/v2/systemsharedmemory/region/r/register', { byte_size: 4 }, 400, /^Shared memory register request has no 'key' field$/],
        ['/v2/systemsharedmemory/region/r/register', { key: 7, byte_size: 4 }, 400, /^Unable to parse 'key': expected a string$/],
        ['/v2/systemsharedmemory/region/r/register', { key: IN }, 400, /^Shared memory register request has no 'byte_size' field$/],
        ['/v2/systemsharedmemory/region/r/register', { key: IN, byte_size: -1 }, 400, /^Unable to parse 'byte_size': expected a non-negative integer$/],
        ['/v2/systemsharedmemory/region/r/register', { key: IN, byte_size: 1.5 }, 400, /^Unable to parse 'byte_size'/],
        ['/v2/systemsharedmemory/region/r/register', { key: IN, byte_size: 4, offset: '0' }, 400, /^Unable to parse 'offset': expected a non-negative integer$/],
        ['/v2/systemsharedmemory/region/r/register', '{"key": ', 400, /^failed to parse the request JSON buffer/],
        ['/v2/systemsharedmemory/region/r/register', [1], 400, /JSON object/],
        ['/v2/systemsharedmemory/region/r/register', { key: key('missing'), byte_size: 4 }, 500, new RegExp(`^Unable to open shared memory region: '${key('missing')}' \\(no such object in /dev/shm\\)$`)],
        ['/v2/systemsharedmemory/region/r/register', { key: IN, byte_size: 129 }, 400, /^failed to register shared memory region 'r': invalid args \(offset 0 \+ byte_size 129 lies beyond the end of .* which holds 128 bytes\)$/],
        ['/v2/systemsharedmemory/region/r/register', { key: IN, offset: 128, byte_size: 1 }, 400, /^failed to register shared memory region 'r': invalid args/],
        ['/v2/systemsharedmemory/region/r/register', { key: '/', byte_size: 1 }, 400, /^cannot register shared memory region 'r' - invalid shm key '\/'/],
        ['/v2/systemsharedmemory/region/r/register', { key: '/../etc/passwd', byte_size: 1 }, 400, /invalid shm key '\/\.\.\/etc\/passwd': a key may contain '\/' only at its start/],
        ['/v2/systemsharedmemory/region/r/register', { key: '/a/b', byte_size: 1 }, 400, /invalid shm key '\/a\/b'/],
        ['/v2/systemsharedmemory/region/r/register', { key: '..', byte_size: 1 }, 400, /invalid shm key '\.\.': '\.\.' is not the name of a shared memory object/],
        ['/v2/systemsharedmemory/region/r/register', { key: '/.', byte_size: 1 }, 400, /invalid shm key '\/\.'/],
        ['/v2/systemsharedmemory/region/r/register', { key: '/x\u0000y', byte_size: 1 }, 400, /NUL character/],
        ['/v2/systemsharedmemory/region/r/register', { key: `/${'k'.repeat(256)}`, byte_size: 1 }, 400, /longer than 255 bytes/],
        ['/v2/systemsharedmemory/region/r/register', { key: '/triton_python_backend_shm_region_1', byte_size: 1 }, 400,
          /^cannot register shared memory region 'r' with key '\/triton_python_backend_shm_region_1' as the key contains the reserved prefix 'triton_python_backend_shm_region_'$/],
        [`/v2/systemsharedmemory/region/${'n'.repeat(1025)}/register`, { key: IN, byte_size: 1 }, 400, /is longer than 1024 characters/],
      ];
      for (const [path, body, status, message] of cases) {
        const answer = await register(path, body);
        assert.equal(answer.status, status, `${path} ${JSON.stringify(body)}: ${answer.text}`);
        assert.match(errorOf(answer), message, `${path} ${JSON.stringify(body)}`);
      }
      assert.deepEqual((await http(fixture.httpUrl, 'GET', '/v2/systemsharedmemory/status')).body, [], 'nothing was registered');
      assert.equal(await openDescriptors(IN), 0, 'a refused registration leaves no descriptor open');
    });

    test('a symbolic link in /dev/shm is refused, so a key cannot lead outside it', async () => {
      const target = key('link_target');
      await createRegion(target, 16);
      await symlink(fileOf(target), fileOf(key('link')));
      const answer = await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/r/register', { key: key('link'), byte_size: 4 });
      assert.equal(answer.status, 500);
      assert.equal(errorOf(answer), `Unable to open shared memory region: '${key('link')}' (it is a symbolic link)`);
    });

    test('a taken name is refused with ALREADY_EXISTS (HTTP 400), over both frontends', async () => {
      await createRegion(IN, BYTE_SIZE * 2);
      assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/r/register', { key: IN, byte_size: 4 })).status, 200);
      const again = await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/r/register', { key: IN, byte_size: 4 });
      assert.deepEqual([again.status, errorOf(again)], [400, "shared memory region 'r' already in manager"]);
      const { error } = await client.call('SystemSharedMemoryRegister', { name: 'r', key: IN, byte_size: 4 });
      assert.deepEqual([error?.code, error?.details], [grpc.status.ALREADY_EXISTS, "shared memory region 'r' already in manager"]);
      assert.ok((await client.call('SystemSharedMemoryUnregister', { name: 'r' })).response);
    });

    test('gRPC: an empty name, a missing object, a key outside /dev/shm, a range past the end', async () => {
      await createRegion(IN, BYTE_SIZE * 2);
      for (const [request, code, message] of [
        [{ name: '', key: IN, byte_size: 4 }, grpc.status.INVALID_ARGUMENT, /^'region name' is necessary/],
        [{ name: 'r', key: key('missing'), byte_size: 4 }, grpc.status.INTERNAL, /^Unable to open shared memory region/],
        [{ name: 'r', key: '/../../etc/passwd', byte_size: 4 }, grpc.status.INVALID_ARGUMENT, /invalid shm key/],
        [{ name: 'r', key: IN, offset: 100, byte_size: 100 }, grpc.status.INVALID_ARGUMENT, /^failed to register shared memory region 'r': invalid args/],
        [{ name: 'r', key: IN, byte_size: '18446744073709551615' }, grpc.status.INVALID_ARGUMENT, /^Unable to parse 'byte_size'/],
      ] as const) {
        const { error } = await client.call('SystemSharedMemoryRegister', request);
        assert.equal(error?.code, code, JSON.stringify(request));
        assert.match(error!.details, message, JSON.stringify(request));
      }
    });

    test('--max-shm-regions: one more region than the limit is refused with UNAVAILABLE until one is unregistered', async () => {
      await createRegion(IN, BYTE_SIZE * 2);
      for (let i = 0; i < 8; i++) {
        assert.equal((await http(fixture.httpUrl, 'POST', `/v2/systemsharedmemory/region/r${i}/register`, { key: IN, byte_size: 4 })).status, 200, `r${i}`);
      }
      assert.equal(await openDescriptors(IN), 8);
      const over = await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/r8/register', { key: IN, byte_size: 4 });
      assert.equal(over.status, 503);
      assert.match(errorOf(over), /already holds 8 shared memory regions, its limit \(--max-shm-regions\)/);
      const { error } = await client.call('SystemSharedMemoryRegister', { name: 'r8', key: IN, byte_size: 4 });
      assert.equal(error?.code, grpc.status.UNAVAILABLE);
      assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/r0/unregister')).status, 200);
      assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/r8/register', { key: IN, byte_size: 4 })).status, 200);
      assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/unregister')).status, 200);
      assert.equal(await openDescriptors(IN), 0);
    });
  });

  test('status of an unknown region is NOT_FOUND; unregistering an unknown region succeeds, as in Triton', async () => {
    const status = await http(fixture.httpUrl, 'GET', '/v2/systemsharedmemory/region/nope/status');
    assert.deepEqual([status.status, errorOf(status)], [404, "Unable to find system shared memory region: 'nope'"]);
    const { error } = await client.call('SystemSharedMemoryStatus', { name: 'nope' });
    assert.deepEqual([error?.code, error?.details], [grpc.status.NOT_FOUND, "Unable to find system shared memory region: 'nope'"]);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/nope/unregister')).status, 200);
    assert.ok((await client.call('SystemSharedMemoryUnregister', { name: 'nope' })).response);
  });

  test('CUDA shared memory answers as a CPU-only Triton: nothing listed, register refused, unregister has nothing to do', async () => {
    const base = fixture.httpUrl;
    assert.deepEqual(await http(base, 'GET', '/v2/cudasharedmemory/status').then((a) => [a.status, a.body]), [200, []]);
    const named = await http(base, 'GET', '/v2/cudasharedmemory/region/c/status');
    assert.deepEqual([named.status, errorOf(named)], [404, "Unable to find cuda shared memory region: 'c'"]);
    const register = await http(base, 'POST', '/v2/cudasharedmemory/region/c/register', { raw_handle: { b64: 'AAAA' }, device_id: 0, byte_size: 4 });
    assert.deepEqual([register.status, errorOf(register)], [400, "failed to register CUDA shared memory region: 'c', GPUs not supported"]);
    const unnamed = await http(base, 'POST', '/v2/cudasharedmemory/register', {});
    assert.deepEqual([unnamed.status, errorOf(unnamed)], [400, "'region name' is necessary to register cuda shared memory region"]);
    assert.equal((await http(base, 'POST', '/v2/cudasharedmemory/region/c/unregister')).status, 200);
    assert.equal((await http(base, 'POST', '/v2/cudasharedmemory/unregister')).status, 200);

    assert.deepEqual((await client.call('CudaSharedMemoryStatus', {})).response!['regions'], {});
    const { error } = await client.call('CudaSharedMemoryRegister', { name: 'c', raw_handle: Buffer.alloc(64), byte_size: 4 });
    assert.deepEqual([error?.code, error?.details], [grpc.status.INVALID_ARGUMENT, "failed to register CUDA shared memory region: 'c', GPUs not supported"]);
    assert.ok((await client.call('CudaSharedMemoryUnregister', { name: 'c' })).response);

    await createRegion(IN, 8);
    assert.ok((await client.call('SystemSharedMemoryRegister', { name: 'sys', key: IN, byte_size: 8 })).response);
    const kind = await client.call('CudaSharedMemoryStatus', { name: 'sys' });
    assert.deepEqual([kind.error?.code, kind.error?.details],
      [grpc.status.NOT_FOUND, "The region named 'sys' is registered as system shared memory, not CUDA shared memory"]);
    assert.ok((await client.call('SystemSharedMemoryUnregister', {})).response);
  });

  describe('bad shared memory parameters in infer requests', () => {
    before(async () => {
      await writeInputs(IN);
      await createRegion(OUT, BYTE_SIZE * 2);
      assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/in/register', { key: IN, byte_size: BYTE_SIZE * 2 })).status, 200);
      assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/out/register', { key: OUT, byte_size: BYTE_SIZE * 2 })).status, 200);
    });
    after(async () => {
      await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/unregister');
    });

    type Body = { inputs: Array<Record<string, unknown>>; outputs: Array<Record<string, unknown>> };
    const base = (): Body => httpShmInfer('in', 'out') as Body;
    const withInput1 = (parameters: Record<string, unknown>, extra: Record<string, unknown> = {}): Body => {
      const body = base();
      body.inputs[1] = { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', parameters, ...extra };
      return body;
    };
    const withOutput0 = (parameters: Record<string, unknown>): Body => {
      const body = base();
      body.outputs[0] = { name: 'OUTPUT0', parameters };
      return body;
    };

    test('HTTP: each parameter refused with its status and Triton\'s wording; the output region is never written', async () => {
      await createRegion(OUT, BYTE_SIZE * 2);
      const cases: Array<[string, Body, number, RegExp]> = [
        ['unknown region', withInput1({ shared_memory_region: 'nope', shared_memory_byte_size: 64 }), 404, /^Unable to find shared memory region: 'nope'$/],
        ['unknown output region', withOutput0({ shared_memory_region: 'nope', shared_memory_byte_size: 64 }), 404, /^Unable to find shared memory region: 'nope'$/],
        ['offset at the end', withInput1({ shared_memory_region: 'in', shared_memory_byte_size: 0, shared_memory_offset: 128 }), 400, /^Invalid offset for shared memory region: 'in'/],
        ['past the end', withInput1({ shared_memory_region: 'in', shared_memory_byte_size: 64, shared_memory_offset: 65 }), 400, /^Invalid offset \+ byte size for shared memory region: 'in'/],
        ['output past the end', withOutput0({ shared_memory_region: 'out', shared_memory_byte_size: 128, shared_memory_offset: 8 }), 400, /^Invalid offset \+ byte size for shared memory region: 'out'/],
        ['size against the shape', withInput1({ shared_memory_region: 'in', shared_memory_byte_size: 60 }), 400, /^input byte size mismatch for input 'INPUT1' for model 'simple'\. Expected 64, got 60$/],
        ['no byte size (0, as Triton reads it)', withInput1({ shared_memory_region: 'in' }), 400, /^input byte size mismatch for input 'INPUT1' for model 'simple'\. Expected 64, got 0$/],
        ['data as well', withInput1({ shared_memory_region: 'in', shared_memory_byte_size: 64 }, { data: [...INPUT1] }), 400,
          /^Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'\. But set 'data' 'shared_memory_region' for input 'INPUT1'$/],
        ['no data at all', withInput1({}), 400, /But no field is set for input 'INPUT1'$/],
        ['region not a string', withInput1({ shared_memory_region: 5, shared_memory_byte_size: 64 }), 400, /^Unable to parse 'shared_memory_region'/],
        ['negative offset', withInput1({ shared_memory_region: 'in', shared_memory_byte_size: 64, shared_memory_offset: -1 }), 400, /^Unable to parse 'shared_memory_offset'/],
        ['byte size a string', withInput1({ shared_memory_region: 'in', shared_memory_byte_size: '64' }), 400, /^Unable to parse 'shared_memory_byte_size'/],
        ['offset without region', withInput1({ shared_memory_offset: 0 }, { data: [...INPUT1] }), 400,
          /^'shared_memory_offset' can not be specified without 'shared_memory_region' parameter for tensor 'INPUT1'$/],
        ['byte size without region (output)', withOutput0({ shared_memory_byte_size: 64 }), 400,
          /^'shared_memory_byte_size' can not be specified without 'shared_memory_region' parameter for tensor 'OUTPUT0'$/],
        ['output with classification', withOutput0({ shared_memory_region: 'out', shared_memory_byte_size: 64, classification: 2 }), 400,
          /^Output can't set both 'shared_memory_region' and 'classification'$/],
        ['output as binary', withOutput0({ shared_memory_region: 'out', shared_memory_byte_size: 64, binary_data: true }), 400,
          /^Output can't set both 'shared_memory_region' and 'binary_data'$/],
        ['output place too small', withOutput0({ shared_memory_region: 'out', shared_memory_byte_size: 60 }), 500,
          /^shared memory size specified with the request for output 'OUTPUT0' \(60 bytes\) should be at least 64 bytes to hold the results$/],
      ];
      for (const [title, body, status, message] of cases) {
        const answer = await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', body);
        assert.equal(answer.status, status, `${title}: ${answer.text}`);
        assert.match(errorOf(answer), message, title);
      }
      assert.deepEqual(await readFile(fileOf(OUT)), Buffer.alloc(BYTE_SIZE * 2), 'no refused request wrote to the output region');
      assert.equal((await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', base())).status, 200, 'the server keeps serving');
    });

    test('gRPC: each parameter refused with its code and Triton\'s wording', async () => {
      const message = (input1: Record<string, unknown>, output0?: Record<string, unknown>, extra: Record<string, unknown> = {}): Message => {
        const m = grpcShmInfer('in', 'out');
        m['inputs'][1] = { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: input1 };
        if (output0) m['outputs'][0] = { name: 'OUTPUT0', parameters: output0 };
        return { ...m, ...extra };
      };
      const good = grpcShmParameters('in', 64, 64);
      const cases: Array<[string, Message, number, RegExp]> = [
        ['unknown region', message(grpcShmParameters('nope', 64)), grpc.status.NOT_FOUND, /^Unable to find shared memory region: 'nope'$/],
        ['past the end', message(grpcShmParameters('in', 64, 100)), grpc.status.INVALID_ARGUMENT, /^Invalid offset \+ byte size for shared memory region: 'in'/],
        ['region as int64', message({ ...good, shared_memory_region: int64Param(1) }), grpc.status.INVALID_ARGUMENT,
          /^invalid value type for 'shared_memory_region' parameter for tensor 'INPUT1', expected string_param\.$/],
        ['offset as string', message({ ...good, shared_memory_offset: stringParam('64') }), grpc.status.INVALID_ARGUMENT,
          /^invalid value type for 'shared_memory_offset' parameter for tensor 'INPUT1', expected int64_param\.$/],
        ['byte size as bool', message({ ...good, shared_memory_byte_size: { bool_param: true } }), grpc.status.INVALID_ARGUMENT,
          /^invalid value type for 'shared_memory_byte_size' parameter for tensor 'INPUT1', expected int64_param\.$/],
        ['negative byte size', message({ ...good, shared_memory_byte_size: int64Param(-64) }), grpc.status.INVALID_ARGUMENT, /^invalid value -64 for 'shared_memory_byte_size'/],
        ['no byte size', message({ shared_memory_region: stringParam('in') }), grpc.status.INVALID_ARGUMENT,
          /^'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor 'INPUT1'$/],
        ['offset without region', message({ shared_memory_offset: int64Param(0) }), grpc.status.INVALID_ARGUMENT,
          /^'shared_memory_offset' can not be specified without 'shared_memory_region' parameter for tensor 'INPUT1'$/],
        ['output with classification', message(good, { ...grpcShmParameters('out', 64), classification: int64Param(2) }), grpc.status.INVALID_ARGUMENT,
          /^output can't set both 'shared_memory_region' and 'classification'$/],
        ['size against the shape', message(grpcShmParameters('in', 32, 64)), grpc.status.INVALID_ARGUMENT, /^input byte size mismatch for input 'INPUT1' for model 'simple'\. Expected 64, got 32$/],
        ['output place too small', message(good, grpcShmParameters('out', 4)), grpc.status.INTERNAL, /should be at least 64 bytes to hold the results$/],
        ['raw contents for an input in shared memory', message(good, undefined, { raw_input_contents: [Buffer.alloc(64)] }), grpc.status.INVALID_ARGUMENT,
          /^raw_input_contents has 1 entries but the request has 0 inputs not in shared memory/],
      ];
      for (const [title, request, code, pattern] of cases) {
        const { error } = await client.call('ModelInfer', request);
        assert.equal(error?.code, code, `${title}: ${error?.details}`);
        assert.match(error!.details, pattern, title);
      }
      const contents = message(good);
      contents['inputs'][1]['contents'] = { int_contents: [...INPUT1] };
      const { error } = await client.call('ModelInfer', contents);
      assert.equal(error?.details, "unexpected 'content' provided when using shared memory for input tensor 'INPUT1' for model 'simple'");
      assert.equal((await client.call('ModelInfer', grpcShmInfer('in', 'out'))).error, undefined, 'the server keeps serving');
    });
  });

  test('a file cut shorter after registration fails the request with a clear error, never a short read', async () => {
    const CUT = key('cut');
    await writeInputs(CUT);
    await createRegion(OUT, BYTE_SIZE * 2);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/in/register', { key: CUT, byte_size: BYTE_SIZE * 2 })).status, 200);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/out/register', { key: OUT, byte_size: BYTE_SIZE * 2 })).status, 200);
    await truncate(fileOf(CUT), 100);
    const answer = await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', httpShmInfer('in', 'out'));
    assert.equal(answer.status, 500);
    assert.match(errorOf(answer), /^shared memory region 'in': '.*cut' no longer holds the 128 bytes past offset 0 this request needs: the file was truncated/);
    await writeInputs(CUT);
    await truncate(fileOf(OUT), 64);
    const write = await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', httpShmInfer('in', 'out'));
    assert.equal(write.status, 500);
    assert.match(errorOf(write), /^shared memory region 'out': .* the file was truncated/);
    assert.equal((await readFile(fileOf(OUT))).byteLength, 64, 'a write never grows the file');
    await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/unregister');
  });
});

describe('shared memory with --allow-client-shm=false (the default)', () => {
  let fixture: DualFixture;
  let client: RawGrpcClient;
  const IN = key('off_input');
  const DISABLED = "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable.";

  before(async () => {
    fixture = await startBoth(root);
    client = new RawGrpcClient(fixture.grpcAddress);
    await writeInputs(IN);
  });

  after(async () => {
    client?.close();
    await fixture?.close();
    await destroyRegion(IN);
  });

  test("register and unregister, system and CUDA, are refused with Triton's message: HTTP 501, gRPC UNIMPLEMENTED", async () => {
    for (const path of ['/v2/systemsharedmemory/region/r/register', '/v2/systemsharedmemory/register', '/v2/systemsharedmemory/unregister',
      '/v2/systemsharedmemory/region/r/unregister', '/v2/cudasharedmemory/region/r/register', '/v2/cudasharedmemory/unregister']) {
      const answer = await http(fixture.httpUrl, 'POST', path, { key: IN, byte_size: 4 });
      assert.deepEqual([answer.status, errorOf(answer)], [501, DISABLED], path);
    }
    for (const [rpc, request] of [['SystemSharedMemoryRegister', { name: 'r', key: IN, byte_size: 4 }], ['SystemSharedMemoryUnregister', {}],
      ['CudaSharedMemoryRegister', { name: 'r' }], ['CudaSharedMemoryUnregister', {}]] as const) {
      const { error } = await client.call(rpc, request);
      assert.deepEqual([error?.code, error?.details], [grpc.status.UNIMPLEMENTED, DISABLED], rpc);
    }
    assert.equal(await openDescriptors(IN), 0);
  });

  test('status still answers, with nothing registered, as in Triton', async () => {
    assert.deepEqual(await http(fixture.httpUrl, 'GET', '/v2/systemsharedmemory/status').then((a) => [a.status, a.body]), [200, []]);
    assert.deepEqual((await client.call('SystemSharedMemoryStatus', {})).response!['regions'], {});
  });

  test('shared memory parameters in an infer request are refused with the same message', async () => {
    const answer = await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', httpShmInfer('in', 'out'));
    assert.deepEqual([answer.status, errorOf(answer)], [501, DISABLED]);
    const { error } = await client.call('ModelInfer', grpcShmInfer('in', 'out'));
    assert.deepEqual([error?.code, error?.details], [grpc.status.UNIMPLEMENTED, DISABLED]);
  });
});

test('a request decoded in a JSON codec process keeps its shared memory plan', async () => {
  const IN = key('codec_input');
  const OUT = key('codec_output');
  await writeInputs(IN);
  await createRegion(OUT, BYTE_SIZE * 2);
  const fixture = await startBoth(root, { sharedMemory: { allowClient: true }, jsonCodec: { minBytes: 0 } });
  try {
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/in/register', { key: IN, byte_size: BYTE_SIZE * 2 })).status, 200);
    assert.equal((await http(fixture.httpUrl, 'POST', '/v2/systemsharedmemory/region/out/register', { key: OUT, byte_size: BYTE_SIZE * 2 })).status, 200);
    const answer = await http(fixture.httpUrl, 'POST', '/v2/models/simple/infer', httpShmInfer('in', 'out'));
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(await int32sAt(OUT, 0, 16), SUM);
    assert.deepEqual(await int32sAt(OUT, BYTE_SIZE, 16), DIFFERENCE);
  } finally {
    await fixture.close();
    await destroyRegion(IN);
    await destroyRegion(OUT);
  }
});

test('closing the server closes every region\'s file', async () => {
  const IN = key('close_input');
  await writeInputs(IN);
  const fixture = await startBoth(root, { sharedMemory: { allowClient: true } });
  try {
    for (const name of ['a', 'b']) {
      assert.equal((await http(fixture.httpUrl, 'POST', `/v2/systemsharedmemory/region/${name}/register`, { key: IN, byte_size: 8 })).status, 200);
    }
    assert.equal(await openDescriptors(IN), 2);
  } finally {
    await fixture.close();
  }
  assert.equal(await openDescriptors(IN), 0);
  await destroyRegion(IN);
});
