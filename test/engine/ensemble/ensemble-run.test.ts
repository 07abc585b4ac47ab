/**
 * Ensembles through the engine's infer(), on real ONNX members: a Triton
 * ensemble and its pipeline.yaml twin, parallel branches and the steps a
 * subset of outputs skips, debug tensors, parameters passed on to the
 * members, nesting, and buffer reuse. The event-driven order of steps is
 * shown on EnsembleRun itself, with a scripted infer() whose answers the
 * test releases by hand.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EnsembleRun, type EnsembleRunContext } from '../../../engine/ensemble/ensemble-run.ts';
import type { EnsemblePlan, PlannedStep } from '../../../engine/ensemble/ensemble-plan.ts';
import type { SwitchyardError } from '../../../engine/errors.ts';
import type { InferenceRequest } from '../../../engine/inference-request.ts';
import type { InferenceResponse } from '../../../engine/inference-response.ts';
import { ModelStats } from '../../../engine/observability/model-stats.ts';
import { BufferPool } from '../../../engine/memory/buffer-pool.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { addSubModel, lookupModel } from '../../../generator/models.ts';
import {
  addSubMember, CHAIN_PIPELINE, chainEnsemble, DIAMOND_ENSEMBLE, int32Tensor, int64Tensor, lookupMember, outputsByName, range16,
} from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';

/** add_sub, then chain (an ensemble) as a step of a pipeline: SUM2 = 2A + 2B, DIFF2 = 2A - 2B. */
const OUTER_PIPELINE = `max_batch_size: 8
inputs: { A: {}, B: {} }
outputs: { SUM2: add.OUTPUT0, DIFF2: add.OUTPUT1 }
steps:
  inner: { model: chain, inputs: { A: A, B: B } }
  add: { model: add_sub, inputs: { INPUT0: inner.TWICE_A, INPUT1: inner.TWICE_B } }
`;

/** add_sub, then the member with two priority levels. */
const RANKED_PIPELINE = `max_batch_size: 8
inputs: { A: {}, B: {} }
outputs: { TWICE_A: rank.OUTPUT0 }
steps:
  first: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  rank: { model: ranked, inputs: { INPUT0: first.OUTPUT0, INPUT1: first.OUTPUT1 } }
`;

const A = range16((i) => i);
const B = range16((i) => 3 - i);
const twice = (values: number[]): number[] => values.map((v) => 2 * v);

const chainInputs = (): Tensor[] => [int32Tensor('A', A), int32Tensor('B', B)];
const diamondInputs = (): Tensor[] => [int32Tensor('X', A), int32Tensor('Y', B)];

/** Success counts of an ensemble's steps, in config order. */
function stepCounts(engine: InferenceEngine, ensemble: string): number[] {
  return engine.modelStatistics(ensemble).model_stats[0]!.step_stats!.map((s) => s.success.count);
}

async function rejection(promise: Promise<unknown>): Promise<SwitchyardError> {
  try {
    await promise;
  } catch (err) {
    return err as SwitchyardError;
  }
  assert.fail('expected the request to fail');
}

describe('ensembles through the engine', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      ranked: {
        config: addSubMember('ranked', 'dynamic_batching { priority_levels: 2 default_priority_level: 2 }'),
        versions: { 1: addSubModel('INT32', 16) },
      },
      chain: { config: chainEnsemble(), versions: { 1: null } },
      chain_yaml: { config: CHAIN_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
      diamond: { config: DIAMOND_ENSEMBLE, versions: { 1: null } },
      ranked_chain: { config: chainEnsemble('add_sub', 'ranked'), versions: { 1: null } },
      ranked_yaml: { config: RANKED_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
      outer: { config: OUTER_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
    });
    engine = await startEngine(root);
  });

  after(async () => {
    await engine?.close();
    if (root) await removeRepository(root);
  });

  test('every model loads, the ensembles after their members', () => {
    assert.deepEqual(engine.loadFailures(), []);
    assert.deepEqual(engine.repositoryIndex().map((e) => [e.name, e.state]),
      ['add_sub', 'chain', 'chain_yaml', 'diamond', 'outer', 'ranked', 'ranked_chain', 'ranked_yaml'].map((n) => [n, 'READY']));
  });

  test('a Triton ensemble and the pipeline.yaml of the same graph give the same outputs, by the ensemble\'s names', async () => {
    const answers = [];
    for (const [modelName, modelVersion] of [['chain', undefined], ['chain', '1'], ['chain_yaml', undefined], ['chain_yaml', '1']] as const) {
      const response = await engine.infer({ modelName, ...(modelVersion ? { modelVersion } : {}), inputs: chainInputs(), id: 'r-1' });
      assert.equal(response.modelName, modelName);
      assert.equal(response.modelVersion, '1');
      assert.equal(response.id, 'r-1');
      assert.deepEqual(response.outputs.map((o) => [o.name, o.datatype, o.shape]), [['TWICE_A', 'INT32', [1, 16]], ['TWICE_B', 'INT32', [1, 16]]]);
      answers.push(outputsByName(response.outputs));
    }
    for (const answer of answers) assert.deepEqual(answer, { TWICE_A: twice(A), TWICE_B: twice(B) });
  });

  test('a batch of two rows goes through the steps as one request', async () => {
    const rowsA = [...A, ...twice(A)];
    const rowsB = [...B, ...B];
    const response = await engine.infer({ modelName: 'chain', inputs: [int32Tensor('A', rowsA, 2), int32Tensor('B', rowsB, 2)] });
    assert.deepEqual(response.outputs.map((o) => o.shape), [[2, 16], [2, 16]]);
    assert.deepEqual(outputsByName(response.outputs), { TWICE_A: twice(rowsA), TWICE_B: twice(rowsB) });
  });

  test('a diamond (two branches that join) computes the right values', async () => {
    const response = await engine.infer({ modelName: 'diamond', inputs: diamondInputs() });
    assert.deepEqual(outputsByName(response.outputs), {
      TWICE_Y: twice(B),
      JOIN_SUM: A.map((x, i) => 4 * x + 2 * B[i]!),
      JOIN_DIFF: B.map((y) => -2 * y + 0), // + 0: ONNX gives 0, not -0
    });
  });

  test('asking for a subset of outputs runs only the steps that lead to them', async () => {
    const before = stepCounts(engine, 'diamond');
    const response = await engine.infer({ modelName: 'diamond', inputs: diamondInputs(), outputs: ['TWICE_Y'] });
    assert.deepEqual(outputsByName(response.outputs), { TWICE_Y: twice(B) });
    const grown = stepCounts(engine, 'diamond').map((n, i) => n - before[i]!);
    assert.deepEqual(grown, [1, 1, 0, 0], 'steps 3 and 4 are skipped');
  });

  test('switchyard_debug_tensors true: every tensor the steps write, by its ensemble name, after the outputs', async () => {
    const triton = await engine.infer({ modelName: 'chain', inputs: chainInputs(), parameters: { switchyard_debug_tensors: true } });
    assert.deepEqual(outputsByName(triton.outputs), {
      TWICE_A: twice(A), TWICE_B: twice(B), sum: A.map((a, i) => a + B[i]!), diff: A.map((a, i) => a - B[i]!),
    });
    assert.deepEqual(triton.outputs.map((o) => o.name), ['TWICE_A', 'TWICE_B', 'sum', 'diff']);
    const pipeline = await engine.infer({ modelName: 'chain_yaml', inputs: chainInputs(), parameters: { switchyard_debug_tensors: 'true' } });
    assert.deepEqual(pipeline.outputs.map((o) => o.name), ['TWICE_A', 'TWICE_B', 'first.OUTPUT0', 'first.OUTPUT1']);
    assert.deepEqual(valuesOfAll(pipeline.outputs), valuesOfAll(triton.outputs));
  });

  test('switchyard_debug_tensors as a list returns only those; a step only they need runs for them', async () => {
    const listed = await engine.infer({ modelName: 'chain', inputs: chainInputs(), parameters: { switchyard_debug_tensors: ' diff ' } });
    assert.deepEqual(listed.outputs.map((o) => o.name), ['TWICE_A', 'TWICE_B', 'diff']);

    const before = stepCounts(engine, 'diamond');
    const response = await engine.infer({
      modelName: 'diamond', inputs: diamondInputs(), outputs: ['TWICE_Y'], parameters: { switchyard_debug_tensors: 'c,s' },
    });
    assert.deepEqual(outputsByName(response.outputs), {
      TWICE_Y: twice(B), c: A.map((x, i) => 2 * (x + B[i]!)), s: A.map((x, i) => x + B[i]!),
    });
    assert.deepEqual(stepCounts(engine, 'diamond').map((n, i) => n - before[i]!), [1, 1, 1, 0], 'step 3 runs for c; step 4 is still skipped');
  });

  test('switchyard_debug_tensors naming an unknown tensor: BAD_REQUEST naming it', async () => {
    const error = await rejection(engine.infer({ modelName: 'chain', inputs: chainInputs(), parameters: { switchyard_debug_tensors: 'sum,nope' } }));
    assert.equal(error.code, 'BAD_REQUEST');
    assert.equal(error.status, 'INVALID_ARG');
    assert.match(error.message, /'nope'/);
    assert.match(error.message, /ensemble 'chain'/);
  });

  test('request parameters reach the members: a priority the member lacks fails its step with the member\'s message', async () => {
    const error = await rejection(engine.infer({ modelName: 'ranked_chain', inputs: chainInputs(), parameters: { priority: 7 } }));
    assert.equal(error.code, 'BAD_PRIORITY');
    assert.equal(error.status, 'INVALID_ARG');
    assert.match(error.message, /^ensemble 'ranked_chain' step 2 \('ranked'\) failed: invalid 'priority' parameter 7 for model 'ranked': the model has priority levels 1 \(highest\) to 2/);
    const ok = await engine.infer({ modelName: 'ranked_chain', inputs: chainInputs(), parameters: { priority: 1 } });
    assert.deepEqual(outputsByName(ok.outputs), { TWICE_A: twice(A), TWICE_B: twice(B) });
  });

  test('an ensemble as a step of another ensemble', async () => {
    const response = await engine.infer({ modelName: 'outer', inputs: chainInputs() });
    assert.deepEqual(outputsByName(response.outputs), {
      SUM2: A.map((a, i) => 2 * a + 2 * B[i]!), DIFF2: A.map((a, i) => 2 * a - 2 * B[i]!),
    });
    const steps = engine.modelStatistics('outer').model_stats[0]!.step_stats!;
    assert.deepEqual(steps.map((s) => [s.step, s.model, s.success.count]), [["step 'inner' (model 'chain')", 'chain', 1], ["step 'add' (model 'add_sub')", 'add_sub', 1]]);
  });

  test('step_stats name the steps as messages do: position for Triton ensembles, step name for pipelines', () => {
    assert.deepEqual(engine.modelStatistics('chain').model_stats[0]!.step_stats!.map((s) => [s.step, s.model]),
      [["step 1 ('add_sub')", 'add_sub'], ["step 2 ('add_sub')", 'add_sub']]);
    assert.deepEqual(engine.modelStatistics('chain_yaml').model_stats[0]!.step_stats!.map((s) => [s.step, s.model]),
      [["step 'first' (model 'add_sub')", 'add_sub'], ["step 'second' (model 'add_sub')", 'add_sub']]);
  });

  test('a pipeline step failure names the step by its pipeline name', async () => {
    const error = await rejection(engine.infer({ modelName: 'ranked_yaml', inputs: chainInputs(), parameters: { priority: 3 } }));
    assert.equal(error.code, 'BAD_PRIORITY');
    assert.match(error.message, /^ensemble 'ranked_yaml' step 'rank' \(model 'ranked'\) failed: invalid 'priority' parameter 3 for model 'ranked'/);
    assert.deepEqual(engine.modelStatistics('ranked_yaml').model_stats[0]!.step_stats!.map((s) => [s.step, s.success.count, s.fail.count]),
      [["step 'first' (model 'add_sub')", 1, 0], ["step 'rank' (model 'ranked')", 0, 1]]);
  });
});

function valuesOfAll(outputs: readonly Tensor[]): number[][] {
  return Object.values(outputsByName(outputs));
}

describe('startupModels: an ensemble brings what it calls', () => {
  test('loading only the outer ensemble loads the inner one and their members, and nothing else', async () => {
    const root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      unrelated: { config: addSubMember('unrelated'), versions: { 1: addSubModel('INT32', 16) } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
      outer: { config: OUTER_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
    });
    const engine = await startEngine(root, { startupModels: ['outer'], modelControlMode: 'explicit' });
    try {
      assert.deepEqual(engine.repositoryIndex().map((e) => [e.name, e.state, e.reason]),
        [['add_sub', 'READY', ''], ['chain', 'READY', ''], ['outer', 'READY', ''], ['unrelated', 'UNAVAILABLE', 'not loaded']]);
      const response = await engine.infer({ modelName: 'outer', inputs: chainInputs() });
      assert.deepEqual(response.outputs.map((o) => o.name), ['SUM2', 'DIFF2']);
    } finally {
      await engine.close();
      await removeRepository(root);
    }
  });
});

describe('buffer reuse across ensemble requests', () => {
  let root: string;
  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
      // Answers a bad index only after waiting out its queue delay, so add_sub's output S is there when the run fails.
      late_lookup: { config: lookupMember('late_lookup', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 100000 }'), versions: { 1: lookupModel() } },
      failing: { config: FAILS_LATE, versions: { 1: null } },
      inner_pair: { config: INNER_PAIR, versions: { 1: null } },
      outer_subset: { config: OUTER_SUBSET, versions: { 1: null } },
    });
  });
  after(async () => {
    if (root) await removeRepository(root);
  });

  /** Pool counters after each of `n` sequential chain requests, following a warm-up. */
  /** Pool counters after each request; `giveBack` releases the answer's lease, as the HTTP frontend does after encoding. */
  async function countersPerRequest(bufferPooling: boolean, n: number, giveBack = false): Promise<Array<{ allocated: number; allocatedBytes: number }>> {
    const engine = await startEngine(root, { bufferPooling });
    try {
      const send = async (): Promise<InferenceResponse> => {
        const response = await engine.infer({ modelName: 'chain', inputs: chainInputs() });
        assert.deepEqual(outputsByName(response.outputs), { TWICE_A: twice(A), TWICE_B: twice(B) });
        if (giveBack) response.lease?.release();
        return response;
      };
      for (let i = 0; i < 5; i++) await send();
      const counters = [engine.bufferPoolStats()];
      for (let i = 0; i < n; i++) {
        await send();
        counters.push(engine.bufferPoolStats());
      }
      return counters.map((c) => ({ allocated: c.allocated, allocatedBytes: c.allocatedBytes }));
    } finally {
      await engine.close();
    }
  }

  test('pooling on: intermediates are reused, so each request allocates at most the answer it hands out; pooling off allocates every time', async () => {
    const pooled = await countersPerRequest(true, 50);
    const unpooled = await countersPerRequest(false, 50);
    const answerTensors = 2;
    for (let i = 1; i < pooled.length; i++) {
      assert.ok(pooled[i]!.allocated - pooled[i - 1]!.allocated <= answerTensors, `request ${i}: ${JSON.stringify(pooled.slice(i - 1, i + 1))}`);
      assert.ok(unpooled[i]!.allocatedBytes > unpooled[i - 1]!.allocatedBytes, `request ${i} without pooling allocates`);
      assert.ok(unpooled[i]!.allocated - unpooled[i - 1]!.allocated > answerTensors, `request ${i} without pooling allocates its intermediates too`);
    }
  });

  test('pooling on: 50 sequential requests after warm-up allocate nothing when the caller gives the answer back', async () => {
    const pooled = await countersPerRequest(true, 50, true);
    assert.equal(pooled.at(-1)!.allocated, pooled[0]!.allocated);
  });

  test('a nested ensemble handed a pooled input that none of its needed steps reads gives it back', async () => {
    const engine = await startEngine(root);
    try {
      const A = range16((i) => i);
      const B = range16((i) => 7 * i);
      const before = engine.bufferPoolStats();
      for (let k = 0; k < 5; k++) {
        const response = await engine.infer({ modelName: 'outer_subset', inputs: [int32Tensor('A', A), int32Tensor('B', B)] });
        assert.deepEqual(outputsByName(response.outputs).OUT, A.map((a, i) => 2 * (a + B[i]!)));
        response.lease?.release();
      }
      assert.equal(engine.bufferPoolStats().outstanding, before.outstanding, "the inner run's unread input went back each time");
    } finally {
      await engine.close();
    }
  });

  test('a run that fails after a step wrote a kept output gives that output back to the pool', async () => {
    const engine = await startEngine(root);
    try {
      const before = engine.bufferPoolStats();
      await assert.rejects(engine.infer({ modelName: 'failing', inputs: [...chainInputs(), int64Tensor('IDX', [9])] }), /late_lookup/);
      const after = engine.bufferPoolStats();
      assert.ok(after.allocated + after.reused > before.allocated + before.reused, "add_sub's output came from the pool");
      assert.equal(after.outstanding, before.outstanding, 'and went back when the run failed');
    } finally {
      await engine.close();
    }
  });
});

/** inner_pair(A, B): add_sub(A, A) -> P and add_sub(B, B) -> Q, each step needed only when its output is wanted. */
const INNER_PAIR = `platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "P" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "Q" data_type: TYPE_INT32 dims: [ 16 ] } ]
ensemble_scheduling { step [
  { model_name: "add_sub" model_version: -1 input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "A" } output_map { key: "OUTPUT0" value: "P" } },
  { model_name: "add_sub" model_version: -1 input_map { key: "INPUT0" value: "B" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT0" value: "Q" } }
] }
`;

/** add_sub(A, B) -> s, d, both pooled and handed to inner_pair, which is asked for P only: nothing there reads d. */
const OUTER_SUBSET = `platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] } ]
ensemble_scheduling { step [
  { model_name: "add_sub" model_version: -1 input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT0" value: "s" } output_map { key: "OUTPUT1" value: "d" } },
  { model_name: "inner_pair" model_version: -1 input_map { key: "A" value: "s" } input_map { key: "B" value: "d" } output_map { key: "P" value: "OUT" } }
] }
`;

/** add_sub(A, B) -> S, kept for the answer; late_lookup(IDX) -> V, which fails late on an index past its table. */
const FAILS_LATE = `platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "IDX" data_type: TYPE_INT64 dims: [ 1 ] } ]
output [ { name: "S" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "V" data_type: TYPE_FP32 dims: [ 1 ] } ]
ensemble_scheduling { step [
  { model_name: "add_sub" model_version: -1 input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
    output_map { key: "OUTPUT0" value: "S" } },
  { model_name: "late_lookup" model_version: -1 input_map { key: "INDEX" value: "IDX" } output_map { key: "VALUE" value: "V" } }
] }
`;

/** A hand-built plan: steps named by their model, wired by tensor names. */
function planOf(ensemble: string, inputs: string[], outputs: string[],
  steps: Array<{ model: string; reads: Record<string, string>; writes: Record<string, string> }>): EnsemblePlan {
  const planned: PlannedStep[] = steps.map((s, index) => ({
    index, label: `step ${index + 1} ('${s.model}')`, modelName: s.model, modelVersion: undefined,
    inputs: Object.entries(s.reads).map(([member, tensor]) => ({ member, tensor })),
    outputs: Object.entries(s.writes).map(([member, tensor]) => ({ member, tensor })),
    decoupled: false,
  }));
  const producer = new Map<string, number>();
  const consumers = new Map<string, number[]>();
  for (const step of planned) {
    for (const link of step.outputs) producer.set(link.tensor, step.index);
    for (const link of step.inputs) consumers.set(link.tensor, [...new Set([...(consumers.get(link.tensor) ?? []), step.index])]);
  }
  const order = planned.map((s) => s.index); // written in topological order
  return {
    ensemble, steps: planned, inputs, outputs, producer, consumers, order,
    written: order.flatMap((i) => planned[i]!.outputs.map((o) => o.tensor)),
    members: [...new Set(steps.map((s) => s.model))],
    decoupled: false,
    maxInflightRequests: 0,
  };
}

/** An infer() whose calls wait until the test answers them. */
class ScriptedInfer {
  readonly started: string[] = [];
  readonly signals = new Map<string, AbortSignal>();
  private readonly pending = new Map<string, { request: InferenceRequest; resolve: (r: InferenceResponse) => void; reject: (e: unknown) => void }>();

  readonly infer = (request: InferenceRequest): Promise<InferenceResponse> => {
    this.started.push(request.modelName);
    if (request.signal) this.signals.set(request.modelName, request.signal);
    return new Promise((resolve, reject) => this.pending.set(request.modelName, { request, resolve, reject }));
  };

  /** Answers the model's call with one [1, 1] INT32 tensor per wanted output. */
  answer(model: string): void {
    const call = this.pending.get(model);
    if (!call) throw new Error(`'${model}' was not called`);
    this.pending.delete(model);
    call.resolve({
      modelName: model, modelVersion: '1',
      outputs: (call.request.outputs ?? []).map((name) => ({ name, datatype: 'INT32', shape: [1, 1], raw: new Uint8Array(4) })),
    });
  }

  /** Answers the model's call with the given tensors. */
  answerWith(model: string, outputs: Tensor[]): void {
    const call = this.pending.get(model);
    if (!call) throw new Error(`'${model}' was not called`);
    this.pending.delete(model);
    call.resolve({ modelName: model, modelVersion: '1', outputs });
  }

    fail(model: string, error: unknown): void {
    const call = this.pending.get(model)!;
    this.pending.delete(model);
    call.reject(error);
  }
}

/** Lets every settled promise's callbacks run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('EnsembleRun: event-driven step order', () => {
  // Diamond: a(IN) -> t; b(t) -> B_OUT, u; c(t) -> v; d(u, v) -> D_OUT.
  const plan = planOf('diamond', ['IN'], ['B_OUT', 'D_OUT'], [
    { model: 'a', reads: { X: 'IN' }, writes: { Y: 't' } },
    { model: 'b', reads: { X: 't' }, writes: { Y: 'B_OUT', Z: 'u' } },
    { model: 'c', reads: { X: 't' }, writes: { Y: 'v' } },
    { model: 'd', reads: { X: 'u', W: 'v' }, writes: { Y: 'D_OUT' } },
  ]);
  const request: InferenceRequest = { modelName: 'diamond', inputs: [{ name: 'IN', datatype: 'INT32', shape: [1, 1], raw: new Uint8Array(4) }] };
  const context = (script: ScriptedInfer): EnsembleRunContext => ({ plan, infer: script.infer, stats: new ModelStats(), pool: undefined, ownParameters: [] });

  test('both branches start before either finishes; the join starts only after both', async () => {
    const script = new ScriptedInfer();
    let finished = false;
    const run = new EnsembleRun(context(script), request, ['B_OUT', 'D_OUT']).run().finally(() => { finished = true; });
    await settle();
    assert.deepEqual(script.started, ['a']);
    script.answer('a');
    await settle();
    assert.deepEqual(script.started, ['a', 'b', 'c'], 'b and c run side by side');
    script.answer('c');
    await settle();
    assert.deepEqual(script.started, ['a', 'b', 'c'], 'd waits for b');
    script.answer('b');
    await settle();
    assert.deepEqual(script.started, ['a', 'b', 'c', 'd']);
    assert.equal(finished, false);
    script.answer('d');
    const values = await run;
    assert.deepEqual(['B_OUT', 'D_OUT'].map((n) => values.has(n)), [true, true]);
  });

  test('asking only for the first branch\'s output never calls the other branch or the join', async () => {
    const script = new ScriptedInfer();
    const run = new EnsembleRun(context(script), request, ['B_OUT']).run();
    await settle();
    script.answer('a');
    await settle();
    assert.deepEqual(script.started, ['a', 'b']);
    script.answer('b');
    const values = await run;
    assert.ok(values.has('B_OUT'));
    await settle();
    assert.deepEqual(script.started, ['a', 'b']);
  });

  test('a step asks its model only for the outputs something reads', async () => {
    const script = new ScriptedInfer();
    const seen: Array<[string, readonly string[] | undefined]> = [];
    const infer = (r: InferenceRequest): Promise<InferenceResponse> => {
      seen.push([r.modelName, r.outputs]);
      return script.infer(r);
    };
    const run = new EnsembleRun({ ...context(script), infer }, request, ['D_OUT']).run();
    for (const model of ['a', 'b', 'c', 'd']) {
      await settle();
      script.answer(model);
    }
    await run;
    assert.deepEqual(seen, [['a', ['Y']], ['b', ['Z']], ['c', ['Y']], ['d', ['Y']]], 'b is not asked for B_OUT, which nothing wants');
  });

  test('the first failure rejects the run naming the step, keeps the member\'s code, and aborts the other branch', async () => {
    const script = new ScriptedInfer();
    const run = new EnsembleRun(context(script), request, ['B_OUT', 'D_OUT']).run();
    await settle();
    script.answer('a');
    await settle();
    const memberError = Object.assign(new Error("inference failed in model 'b': boom"), { code: 'INFERENCE_FAILED', status: 'INTERNAL' });
    script.fail('b', memberError);
    const error = await rejection(run);
    assert.equal(error.code, 'INFERENCE_FAILED');
    assert.equal(error.status, 'INTERNAL');
    assert.match(error.message, /^ensemble 'diamond' step 2 \('b'\) failed: inference failed in model 'b': boom$/);
    assert.equal(script.signals.get('c')?.aborted, true, 'the branch still running is cancelled');
    script.answer('c');
    await settle();
    assert.deepEqual(script.started, ['a', 'b', 'c'], 'the join never starts');
  });
  test('steps take their pooled outputs as marked tensors: a branch that answers after the run failed gives them back', async () => {
    const pool = new BufferPool();
    const asked: Array<true | undefined> = [];
    const script = new ScriptedInfer();
    const infer = (r: InferenceRequest): Promise<InferenceResponse> => {
      asked.push(r.ownOutputs);
      return script.infer(r);
    };
    const run = new EnsembleRun({ ...context(script), infer, pool }, request, ['B_OUT', 'D_OUT']).run();
    await settle();
    const owned = (): Tensor => ({ name: 'Y', datatype: 'INT32', shape: [1, 1], raw: new Uint8Array(pool.acquire(4), 0, 4), pooled: true });
    script.answerWith('a', [owned()]);
    await settle();
    script.fail('b', Object.assign(new Error('boom'), { code: 'INFERENCE_FAILED', status: 'INTERNAL' }));
    await rejection(run);
    // c still reads a's output (a view of it went with its call), so the run keeps that one until c settles.
    assert.equal(pool.stats().outstanding, 1, "a's output stays lent while c reads it");
    const late = owned();
    script.answerWith('c', [late]);
    await settle();
    assert.equal(pool.stats().outstanding, 0, "the late branch's pooled output went back, and a's with it");
    assert.deepEqual(asked, [true, true, true], 'every step asks to own its outputs');
  });

  test('a run that fails gives back the pooled tensors it holds, kept outputs included, as soon as no running step reads them', async () => {
    const pool = new BufferPool();
    const script = new ScriptedInfer();
    const run = new EnsembleRun({ ...context(script), pool }, request, ['B_OUT', 'D_OUT']).run();
    await settle();
    const owned = (name: string): Tensor => ({ name, datatype: 'INT32', shape: [1, 1], raw: new Uint8Array(pool.acquire(4), 0, 4), pooled: true });
    script.answerWith('a', [owned('Y')]);
    await settle();
    // b writes B_OUT (an output of the run, kept for the answer) and u (for d, which waits on c too).
    script.answerWith('b', [owned('Y'), owned('Z')]);
    await settle();
    assert.equal(pool.stats().outstanding, 3, "t (c still reads it), B_OUT and u are lent");
    script.fail('c', Object.assign(new Error('boom'), { code: 'INFERENCE_FAILED', status: 'INTERNAL' }));
    await rejection(run);
    await settle();
    assert.equal(pool.stats().outstanding, 0, 'nothing runs any more: t, the kept B_OUT and u all went back');
  });
});
