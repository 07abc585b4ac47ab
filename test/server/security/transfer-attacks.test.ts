/**
 * Class 0 of the hardening issue: memory that arrives from a client must
 * never be moved (detached) into a worker or an isolate. A binary request's
 * tensor is a view into the request body, which for a small body is a slice
 * of Node's shared Buffer pool; moving its ArrayBuffer detached memory that
 * the next request's parser then used, and the process died.
 *
 * Every backend kind (an ONNX model, a script, a script calling the ONNX
 * model through ctx.infer, an ensemble over both) gets binary, JSON and gRPC
 * raw requests, small (16 elements) and large (1 MiB), back to back on one
 * keep-alive connection and interleaved on many; every answer is checked
 * value by value, and the server still answers afterwards.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { mismatchModel } from '../../../generator/models.ts';
import { MISMATCH_CONFIG } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient } from '../../helpers/grpc-raw-client.ts';
import { scriptConfig, within, writeScripts } from '../../helpers/script-fixtures.ts';

const FREE: ['X', string, number[]] = ['X', 'TYPE_FP32', [-1]];
const FREE_Y: ['Y', string, number[]] = ['Y', 'TYPE_FP32', [-1]];
const SCRIPT_IO = { maxBatchSize: 4, inputs: [FREE], outputs: [FREE_Y] };

/** Y = 2X, computed in the isolate. */
const DOUBLE_SCRIPT = `export default class {
  async execute(requests: any[]) {
    return requests.map((r) => ({ outputs: { Y: { datatype: 'FP32', shape: r.inputs.X.shape, data: r.inputs.X.data.map((v: number) => v * 2) } } }));
  }
}`;

/** Y = X + X, computed by the ONNX model through ctx.infer. */
const BLS_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    return Promise.all(requests.map(async (r) => {
      const answer = await ctx.infer({ model: 'mismatch', inputs: { A: r.inputs.X, B: r.inputs.X } });
      return { outputs: { Y: answer.outputs.C } };
    }));
  }
}`;

/** mismatch(X, X) -> S = 2X, then bls(S) -> Y = 4X. */
const ENSEMBLE_CONFIG = `platform: "ensemble"
max_batch_size: 4
input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]
ensemble_scheduling { step [
  { model_name: "mismatch" model_version: -1 input_map { key: "A" value: "X" } input_map { key: "B" value: "X" } output_map { key: "C" value: "S" } },
  { model_name: "bls" model_version: -1 input_map { key: "X" value: "S" } output_map { key: "Y" value: "Y" } }
] }
`;

interface Kind {
  readonly model: string;
  readonly inputs: readonly string[];
  readonly output: string;
  /** Y = factor * X. */
  readonly factor: number;
}

const KINDS: readonly Kind[] = [
  { model: 'mismatch', inputs: ['A', 'B'], output: 'C', factor: 2 },
  { model: 'double', inputs: ['X'], output: 'Y', factor: 2 },
  { model: 'bls', inputs: ['X'], output: 'Y', factor: 2 },
  { model: 'chain', inputs: ['X'], output: 'Y', factor: 4 },
];

type Encoding = 'binary' | 'json' | 'grpc';
const ENCODINGS: readonly Encoding[] = ['binary', 'json', 'grpc'];
const SMALL = 16;
/** 1 MiB of FP32. */
const LARGE = 262_144;

/** Distinct values per request, so that answers crossed between requests would show. */
const valuesFor = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => (i % 1009) + seed);

let root: string;
let fixture: DualFixture;
let grpc: RawGrpcClient;

before(async () => {
  root = await makeRepository({
    mismatch: { config: MISMATCH_CONFIG, versions: { 1: mismatchModel() } },
    double: { config: scriptConfig(SCRIPT_IO), versions: {} },
    bls: { config: scriptConfig(SCRIPT_IO), versions: {} },
    chain: { config: ENSEMBLE_CONFIG, versions: { 1: null } },
  });
  await writeScripts(root, { double: { 1: DOUBLE_SCRIPT }, bls: { 1: BLS_SCRIPT } });
  // 84 requests at once include large JSON bodies, which queue for the JSON codec process: room for all of them,
  // since this test is about transfers (the queue's own bound has its tests in json-codec-pool.test.ts).
  fixture = await startBoth(root, { jsonCodec: { queue: 256 } });
  grpc = new RawGrpcClient(fixture.grpcAddress, { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 });
});

after(async () => {
  grpc?.close();
  await fixture?.close();
  await removeRepository(root);
});

interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

function post(path: string, body: Buffer, headers: Record<string, string>, agent: Agent): Promise<HttpAnswer> {
  const { hostname, port } = new URL(fixture.httpUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method: 'POST', path, agent, headers: { ...headers, 'content-length': String(body.byteLength) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One request of `kind` in `encoding`; resolves with the output's values. */
async function infer(kind: Kind, encoding: Encoding, x: Float32Array, agent: Agent): Promise<Float32Array> {
  const shape = [1, x.length];
  const bytes = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  if (encoding === 'grpc') {
    const outcome = await grpc.call('ModelInfer', {
      model_name: kind.model, inputs: kind.inputs.map((name) => ({ name, datatype: 'FP32', shape })), raw_input_contents: kind.inputs.map(() => bytes),
    });
    assert.equal(outcome.error, undefined, `${kind.model} over gRPC: ${outcome.error?.message}`);
    const raw = Buffer.from(outcome.response!['raw_output_contents'][0] as Uint8Array);
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  const path = `/v2/models/${kind.model}/infer`;
  if (encoding === 'json') {
    const body = Buffer.from(JSON.stringify({
      inputs: kind.inputs.map((name) => ({ name, datatype: 'FP32', shape, data: Array.from(x) })),
      outputs: [{ name: kind.output, parameters: { binary_data: false } }],
    }));
    const answer = await post(path, body, { 'content-type': 'application/json' }, agent);
    assert.equal(answer.status, 200, `${kind.model} over JSON: ${answer.body.toString().slice(0, 300)}`);
    return Float32Array.from((JSON.parse(answer.body.toString()) as { outputs: { data: number[] }[] }).outputs[0]!.data);
  }
  const header = Buffer.from(JSON.stringify({
    inputs: kind.inputs.map((name) => ({ name, datatype: 'FP32', shape, parameters: { binary_data_size: x.byteLength } })),
    outputs: [{ name: kind.output, parameters: { binary_data: true } }],
  }));
  const body = Buffer.concat([header, ...kind.inputs.map(() => bytes)]);
  const answer = await post(path, body, {
    'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.byteLength),
  }, agent);
  assert.equal(answer.status, 200, `${kind.model} over binary: ${answer.body.toString().slice(0, 300)}`);
  const jsonLength = Number(answer.headers['inference-header-content-length']);
  const data = answer.body.subarray(jsonLength);
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

async function checked(kind: Kind, encoding: Encoding, n: number, seed: number, agent: Agent): Promise<void> {
  const x = valuesFor(n, seed);
  const y = await infer(kind, encoding, x, agent);
  assert.equal(y.length, n, `${kind.model} over ${encoding}: ${y.length} values back for ${n}`);
  for (let i = 0; i < n; i++) {
    if (y[i] !== x[i]! * kind.factor) assert.fail(`${kind.model} over ${encoding} (n=${n}): Y[${i}] is ${y[i]}, expected ${x[i]! * kind.factor}`);
  }
}

async function stillServing(agent: Agent): Promise<void> {
  const live = await fetch(`${fixture.httpUrl}/v2/health/live`);
  assert.equal(live.status, 200);
  await checked(KINDS[2]!, 'binary', SMALL, 7, agent);
}

describe('tensors from requests are copied, never moved out from under the server', () => {
  test('every backend kind and encoding, small and large, back to back on one keep-alive connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let seed = 0;
      for (let round = 0; round < 2; round++) {
        for (const kind of KINDS) {
          for (const encoding of ENCODINGS) {
            for (const n of [SMALL, LARGE]) await within(30_000, `${kind.model} ${encoding} ${n}`, checked(kind, encoding, n, seed++, agent));
          }
        }
      }
      await stillServing(agent);
    } finally {
      agent.destroy();
    }
  });

  test('interleaved on many connections: 72 small and 12 large requests at once', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    try {
      const calls: Promise<void>[] = [];
      let seed = 100;
      for (let copy = 0; copy < 6; copy++) {
        for (const kind of KINDS) {
          for (const encoding of ENCODINGS) {
            calls.push(checked(kind, encoding, SMALL, seed++, agent));
            if (copy === 0) calls.push(checked(kind, encoding, LARGE, seed++, agent));
          }
        }
      }
      await within(60_000, 'the interleaved requests', Promise.all(calls));
      await stillServing(agent);
    } finally {
      agent.destroy();
    }
  });
});
