/**
 * The trace extension's triton mode, end to end: requests over HTTP and
 * gRPC to a two-step ensemble of add_sub, traced at rate 1, and the trace
 * file read back after the server stops. The ensemble's trace and its two
 * steps' traces (parent_id) share the request id; each trace's timestamps
 * come in order (receive, request start, queue, compute, request end,
 * send); the steps run inside the ensemble's span. Also: the rate (every
 * N-th request), trace_count running out, log_frequency's indexed files,
 * and TENSORS summaries.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { TraceValues } from '../../engine/observability/trace/trace-settings.ts';
import { addSubModel } from '../../generator/models.ts';
import { InferenceClient, tensor } from '../../client/index.ts';
import { chainEnsemble, range16 } from '../helpers/ensemble-fixtures.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth } from '../helpers/fixture-repository.ts';
import { capturingLogger, scriptConfig, writeScripts, type CapturingLogger } from '../helpers/script-fixtures.ts';
import { DECOUPLED_POLICY, STREAMER_SCRIPT } from '../helpers/decoupled-fixtures.ts';
import { chat, streamOverGrpc } from '../helpers/generate-stream.ts';
import { RawGrpcClient } from '../helpers/grpc-raw-client.ts';

type TraceObject = Record<string, unknown> & { id: number };

interface Trace {
  readonly id: number;
  readonly model?: string;
  readonly version?: number;
  readonly requestId?: string;
  readonly parentId?: number;
  readonly stamps: { name: string; ns: number }[];
  readonly tensors: { activity: string; tensor: Record<string, string> }[];
}

/** The traces in trace objects, merged by id (as Triton's trace_summary.py reads them). */
function tracesOf(objects: readonly TraceObject[]): Map<number, Trace> {
  const traces = new Map<number, Trace>();
  for (const object of objects) {
    let trace = traces.get(object.id);
    if (!trace) {
      trace = { id: object.id, stamps: [], tensors: [] };
      traces.set(object.id, trace);
    }
    if (typeof object['model_name'] === 'string') {
      Object.assign(trace, {
        model: object['model_name'], version: object['model_version'],
        ...(object['request_id'] !== undefined ? { requestId: object['request_id'] } : {}),
        ...(object['parent_id'] !== undefined ? { parentId: object['parent_id'] } : {}),
      });
    }
    for (const stamp of (object['timestamps'] as { name: string; ns: number }[] | undefined) ?? []) trace.stamps.push(stamp);
    if (object['activity']) trace.tensors.push({ activity: object['activity'] as string, tensor: object['tensor'] as Record<string, string> });
  }
  return traces;
}

const names = (trace: Trace): string[] => trace.stamps.map((s) => s.name);
const at = (trace: Trace, name: string): number => trace.stamps.find((s) => s.name === name)!.ns;

function assertOrdered(trace: Trace): void {
  for (let i = 1; i < trace.stamps.length; i++) {
    assert.ok(trace.stamps[i]!.ns >= trace.stamps[i - 1]!.ns, `trace ${trace.id} (${trace.model}): ${names(trace).join(' ')} in time order`);
  }
}

/** Y = add_sub(X, X).OUTPUT0, through ctx.infer; logs one line per batch. */
const BLS_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    ctx.log.info('calling add_sub');
    return Promise.all(requests.map(async (r) => {
      const answer = await ctx.infer({ model: 'add_sub', inputs: { INPUT0: r.inputs.X, INPUT1: r.inputs.X } });
      return { outputs: { Y: answer.outputs.OUTPUT0 } };
    }));
  }
}
`;

/** Y = X, after two calls that fail before they start: a stream to no such model, a stream with a bad input. */
const FAILED_CALLS_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    for (const call of [{ model: 'no_such_model', inputs: {} }, { model: 'streamer', inputs: { text_input: { datatype: 'BYTES', shape: [2], data: ['a'] } } }]) {
      try { for await (const r of ctx.inferStream(call)) void r; } catch { /* refused, as expected */ }
    }
    return requests.map((r) => ({ outputs: { Y: r.inputs.X } }));
  }
}
`;

interface Clients { readonly http: InferenceClient; readonly grpc: InferenceClient; readonly url: string; readonly raw: RawGrpcClient }

async function withServer(values: Partial<TraceValues>, run: (client: Clients, dir: string) => Promise<void>, logger?: CapturingLogger): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-trace-'));
  const root = await makeRepository({
    add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
    chain: { config: chainEnsemble(), versions: { 1: null } },
    bls: { config: scriptConfig(), versions: {} },
    streamer: {
      config: scriptConfig({ maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]]], outputs: [['text_output', 'TYPE_STRING', [1]]], extra: DECOUPLED_POLICY }),
      versions: {},
    },
    failed_calls: { config: scriptConfig(), versions: {} },
  });
  await writeScripts(root, { bls: { 1: BLS_SCRIPT }, streamer: { 1: STREAMER_SCRIPT }, failed_calls: { 1: FAILED_CALLS_SCRIPT } });
  const file = join(dir, 'trace.json');
  const fixture = await startBoth(root, {
    trace: { mode: 'triton', values: { level: ['TIMESTAMPS'], rate: 1, count: -1, logFrequency: 0, file, ...values }, modeSettings: [] },
    ...(logger ? { logger } : {}),
  });
  const http = new InferenceClient({ url: fixture.httpUrl });
  const grpc = new InferenceClient({ url: fixture.grpcAddress, protocol: 'grpc' });
  const raw = new RawGrpcClient(fixture.grpcAddress);
  try {
    assert.deepEqual(fixture.engine.loadFailures(), []);
    await run({ http, grpc, url: fixture.httpUrl, raw }, dir);
  } finally {
    raw.close();
    grpc.close();
    await fixture.close();
    await removeRepository(root);
  }
  return dir;
}

const inputs = () => [tensor('A', 'INT32', [1, 16], range16((i) => i)), tensor('B', 'INT32', [1, 16], range16(() => 1))];

describe('triton-mode trace file', () => {
  test('an ensemble request over HTTP and one over gRPC: parent and step traces, each in time order, steps inside the parent', async () => {
    const dir = await withServer({}, async ({ http, grpc }) => {
      await http.infer('chain', inputs(), { id: 'over-http' });
      await grpc.infer('chain', inputs(), { id: 'over-grpc' });
    });
    try {
      const text = await readFile(join(dir, 'trace.json'), 'utf8');
      const traces = tracesOf(JSON.parse(text) as TraceObject[]);
      assert.equal(traces.size, 6, 'two requests, each an ensemble trace and two step traces');
      for (const [requestId, front] of [['over-http', 'HTTP'], ['over-grpc', 'GRPC']] as const) {
        const parent = [...traces.values()].find((t) => t.requestId === requestId && t.parentId === undefined)!;
        assert.equal(parent.model, 'chain');
        assert.equal(parent.version, 1);
        const recv = front === 'HTTP' ? ['HTTP_RECV_START', 'HTTP_RECV_END'] : ['GRPC_WAITREAD_START', 'GRPC_WAITREAD_END'];
        const send = front === 'HTTP' ? ['HTTP_SEND_START', 'HTTP_SEND_END'] : ['GRPC_SEND_START', 'GRPC_SEND_END'];
        assert.deepEqual(names(parent), [...recv, 'REQUEST_START', 'QUEUE_START', 'REQUEST_END', ...send]);
        assertOrdered(parent);
        const steps = [...traces.values()].filter((t) => t.parentId === parent.id);
        assert.equal(steps.length, 2);
        for (const step of steps) {
          assert.equal(step.model, 'add_sub');
          assert.equal(step.requestId, requestId, 'a step repeats its parent\'s request id');
          assert.deepEqual(names(step), [
            'REQUEST_START', 'QUEUE_START', 'COMPUTE_START', 'COMPUTE_INPUT_END', 'COMPUTE_OUTPUT_START', 'COMPUTE_END', 'REQUEST_END',
          ]);
          assertOrdered(step);
          assert.ok(at(step, 'REQUEST_START') >= at(parent, 'QUEUE_START') && at(step, 'REQUEST_END') <= at(parent, 'REQUEST_END'),
            'the step ran inside the ensemble\'s request');
        }
        const [first, second] = steps.sort((a, b) => at(a, 'REQUEST_START') - at(b, 'REQUEST_START'));
        assert.ok(at(second!, 'REQUEST_START') >= at(first!, 'REQUEST_END'), 'the second step starts after the first ends');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('rate 3 traces every third request; log_frequency 2 writes each two traces to the next indexed file', async () => {
    const dir = await withServer({ rate: 3, logFrequency: 2 }, async ({ http }) => {
      for (let i = 0; i < 9; i++) await http.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 16], range16((j) => j)), tensor('INPUT1', 'INT32', [1, 16], range16(() => i))], { id: `r${i}` });
    });
    try {
      const files = (await readdir(dir)).sort();
      assert.deepEqual(files, ['trace.json.0', 'trace.json.1'], 'three traces: two in .0, the last one written at shutdown to .1');
      const first = tracesOf(JSON.parse(await readFile(join(dir, 'trace.json.0'), 'utf8')) as TraceObject[]);
      const second = tracesOf(JSON.parse(await readFile(join(dir, 'trace.json.1'), 'utf8')) as TraceObject[]);
      assert.deepEqual([...first.values()].map((t) => t.requestId), ['r2', 'r5']);
      assert.deepEqual([...second.values()].map((t) => t.requestId), ['r8']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('trace_count 2: two traces, written to an indexed file once taken; TENSORS adds input and output summaries', async () => {
    const dir = await withServer({ count: 2, level: ['TIMESTAMPS', 'TENSORS'] }, async ({ http }) => {
      for (let i = 0; i < 4; i++) await http.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 16], range16((j) => j)), tensor('INPUT1', 'INT32', [1, 16], range16(() => 1))], { id: `c${i}` });
    });
    try {
      assert.deepEqual((await readdir(dir)).sort(), ['trace.json.0']);
      const traces = tracesOf(JSON.parse(await readFile(join(dir, 'trace.json.0'), 'utf8')) as TraceObject[]);
      assert.deepEqual([...traces.values()].map((t) => t.requestId), ['c0', 'c1']);
      const trace = [...traces.values()][0]!;
      const input = trace.tensors.find((t) => t.activity === 'TENSOR_QUEUE_INPUT' && t.tensor['name'] === 'INPUT0')!;
      assert.deepEqual(input.tensor, { name: 'INPUT0', data: range16((j) => j).join(','), shape: '1,16', dtype: 'INT32' });
      const output = trace.tensors.find((t) => t.activity === 'TENSOR_BACKEND_OUTPUT' && t.tensor['name'] === 'OUTPUT0')!;
      assert.equal(output.tensor['data'], range16((j) => j + 1).join(','));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a script\'s ctx.infer is traced under the script\'s request, across the isolate; its ctx.log names the request', async () => {
    const logger = capturingLogger();
    const dir = await withServer({}, async ({ http }) => {
      await http.infer('bls', [tensor('X', 'INT32', [1, 16], range16((j) => j))], { id: 'script' });
    }, logger);
    try {
      const traces = [...tracesOf(JSON.parse(await readFile(join(dir, 'trace.json'), 'utf8')) as TraceObject[]).values()];
      const script = traces.find((t) => t.model === 'bls')!;
      const call = traces.find((t) => t.model === 'add_sub')!;
      assert.equal(call.parentId, script.id);
      assert.equal(call.requestId, undefined, 'a script\'s call carries no request id of its own');
      assertOrdered(call);
      assert.ok(at(call, 'REQUEST_START') >= at(script, 'COMPUTE_START') && at(call, 'REQUEST_END') <= at(script, 'COMPUTE_END'),
        'the call ran while the script computed');
      assert.ok(logger.lines.includes(`info 'bls' (bls_0) [request 'script' trace ${script.id}]: calling add_sub`), logger.lines.join('\n'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('streaming requests: HTTP generate_stream and gRPC ModelStreamInfer to a decoupled model, and generate', async () => {
    const dir = await withServer({}, async ({ url, raw }) => {
      const reply = await chat(url, 'tok', { tokens: 3 }, {}, 'streamer');
      assert.deepEqual(reply.chunks, ['tok 0', 'tok 1', 'tok 2']);
      const received = await streamOverGrpc(raw, {
        model_name: 'streamer', id: 'streamed',
        inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('tok')] } }],
        parameters: { tokens: { int64_param: 2 } },
      });
      assert.equal(received.length, 2);
      const generated = await fetch(`${url}/v2/models/add_sub/generate`, {
        method: 'POST', body: JSON.stringify({ INPUT0: range16((i) => i), INPUT1: range16(() => 1) }),
      });
      assert.equal(generated.status, 200);
    });
    try {
      const traces = [...tracesOf(JSON.parse(await readFile(join(dir, 'trace.json'), 'utf8')) as TraceObject[]).values()];
      assert.equal(traces.length, 3);
      const http = traces.find((t) => t.model === 'streamer' && names(t).includes('HTTP_RECV_START'))!;
      const grpc = traces.find((t) => t.model === 'streamer' && t.requestId === 'streamed')!;
      const generate = traces.find((t) => t.model === 'add_sub')!;
      const model = ['REQUEST_START', 'QUEUE_START', 'COMPUTE_START', 'COMPUTE_INPUT_END', 'COMPUTE_OUTPUT_START', 'COMPUTE_END', 'REQUEST_END'];
      for (const [trace, front] of [
        [http, ['HTTP_RECV_START', 'HTTP_RECV_END', 'HTTP_SEND_START', 'HTTP_SEND_END']],
        [grpc, ['GRPC_WAITREAD_START', 'GRPC_WAITREAD_END', 'INFER_RESPONSE_COMPLETE', 'GRPC_SEND_END']],
        [generate, ['HTTP_RECV_START', 'HTTP_RECV_END', 'HTTP_SEND_START', 'HTTP_SEND_END']],
      ] as const) {
        assert.deepEqual([...names(trace)].sort(), [...model, ...front].sort());
        // In time order, the model's stamps come in their order, and so do the frontend's, around them.
        const byTime = [...trace.stamps].sort((a, b) => a.ns - b.ns).map((stamp) => stamp.name);
        assert.deepEqual(byTime.filter((n) => model.includes(n)), model);
        assert.deepEqual(byTime.filter((n) => (front as readonly string[]).includes(n)), front);
        assert.ok(byTime.indexOf(front[1]) < byTime.indexOf('REQUEST_START'), byTime.join(' '));
      }
      // A stream starts going out before the model has finished. (Its last response may be sent before REQUEST_END:
      // a decoupled request ends once its execute() is answered for, after its final response.)
      assert.ok(at(http, 'HTTP_SEND_START') <= at(http, 'REQUEST_END'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a traced script whose calls are refused before they start still has its trace written', async () => {
    const dir = await withServer({ logFrequency: 1 }, async ({ http }) => {
      await http.infer('failed_calls', [tensor('X', 'INT32', [1, 16], range16((j) => j))], { id: 'refused-calls' });
    });
    try {
      const traces = [...tracesOf(JSON.parse(await readFile(join(dir, 'trace.json.0'), 'utf8')) as TraceObject[]).values()];
      assert.ok(traces.some((t) => t.requestId === 'refused-calls' && t.model === 'failed_calls'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
