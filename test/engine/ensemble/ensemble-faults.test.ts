/**
 * Ensembles when things go wrong, on real ONNX members: a failing step
 * beside a slow one, a member unloaded while a request is in flight, and a
 * client that goes away. In every case the request is answered promptly
 * (never left hanging), the other steps' queued work is withdrawn, and the
 * server keeps serving.
 *
 * "Slow" members wait 5 s for a preferred batch of 8, so a lone step is
 * known to sit in their queue; a request that waits for one would blow the
 * 2 s bounds asserted here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SwitchyardError } from '../../../engine/errors.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubModel, lookupModel } from '../../../generator/models.ts';
import {
  addSubMember, chainEnsemble, forkEnsemble, int32Tensor, int64Tensor, lookupMember, outputsByName, range16, SLOW_BATCHING, until,
} from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';

/** Comfortably more than a prompt answer takes, far less than the slow members' 5 s hold. */
const PROMPT_MS = 2000;

interface Outcome {
  readonly error?: SwitchyardError;
  readonly ms: number;
}

/** Settles the promise, never rejects: the error (if any) and how long it took from `started`. */
async function outcome(promise: Promise<unknown>, started: number): Promise<Outcome> {
  try {
    await promise;
    return { ms: performance.now() - started };
  } catch (err) {
    return { error: err as SwitchyardError, ms: performance.now() - started };
  }
}

const forkRequest = (index: number, signal?: AbortSignal): Parameters<InferenceEngine['infer']>[0] =>
  ({ modelName: 'fork', inputs: [int64Tensor('INDEX', [index])], ...(signal ? { signal } : {}) });

describe('a failing step beside a slow one, and client cancellation', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      lookup: { config: lookupMember('lookup'), versions: { 1: lookupModel(4) } },
      slow_lookup: { config: lookupMember('slow_lookup', SLOW_BATCHING), versions: { 1: lookupModel(4) } },
      fork: { config: forkEnsemble('lookup', 'slow_lookup'), versions: { 1: null } },
    });
    engine = await startEngine(root);
  });

  after(async () => {
    await engine?.close();
    if (root) await removeRepository(root);
  });

  test('the failing step fails the request at once, naming the step and keeping ONNX Runtime\'s message; the slow step is withdrawn', async () => {
    const started = performance.now();
    const { error, ms } = await outcome(engine.infer(forkRequest(9)), started);
    assert.ok(error, 'the request fails');
    assert.ok(ms < PROMPT_MS, `answered in ${ms.toFixed(0)} ms, without waiting for the slow step`);
    assert.equal(error.code, 'INFERENCE_FAILED');
    assert.equal(error.status, 'INTERNAL');
    assert.match(error.message, /^ensemble 'fork' step 1 \('lookup'\) failed: inference failed in model 'lookup': .*indices element out of data bounds, idx=9/);

    assert.equal(engine.pendingRequestCount('slow_lookup'), 0, 'the queued slow step was cancelled');
    assert.equal(engine.pendingRequestCount('fork'), 0);
    const slow = engine.modelStatistics('slow_lookup').model_stats[0]!;
    assert.equal(slow.execution_count, 0, 'the slow member never ran');
    assert.equal(slow.inference_count, 0);
    assert.equal(slow.inference_stats.success.count, 0);
    const fork = engine.modelStatistics('fork').model_stats[0]!;
    assert.equal(fork.inference_stats.fail.count, 1);
    assert.deepEqual(fork.step_stats!.map((s) => [s.success.count, s.fail.count]), [[0, 1], [0, 0]],
      'the cancelled step is not counted as a failure of its own');
  });

  test('the server keeps serving: eight good requests fill the slow member\'s preferred batch and all succeed', async () => {
    const indexes = [0, 1, 2, 3, 3, 2, 1, 0];
    const started = performance.now();
    const responses = await Promise.all(indexes.map((i) => engine.infer(forkRequest(i))));
    assert.ok(performance.now() - started < PROMPT_MS);
    responses.forEach((response, k) => {
      assert.deepEqual(outputsByName(response.outputs), { FAST: [indexes[k]! * 10], SLOW: [indexes[k]! * 10] });
    });
    assert.equal(engine.modelStatistics('slow_lookup').model_stats[0]!.execution_count, 1, 'one batch of eight');
  });

  test('a client abort while a step is queued: CANCELLED, and the queued step leaves its member\'s queue', async () => {
    const controller = new AbortController();
    const started = performance.now();
    const pending = outcome(engine.infer(forkRequest(1, controller.signal)), started);
    await until(() => engine.pendingRequestCount('slow_lookup') === 1 && engine.pendingRequestCount('lookup') === 0, PROMPT_MS,
      'the slow step to be queued and the fast one done');
    controller.abort(new Error('the client went away'));
    const { error, ms } = await pending;
    assert.ok(ms < PROMPT_MS, `answered in ${ms.toFixed(0)} ms`);
    assert.equal(error?.code, 'CANCELLED');
    assert.equal(error.status, 'CANCELLED');
    assert.match(error.message, /^inference request for model 'fork' was cancelled: the client went away$/);
    assert.equal(engine.pendingRequestCount('slow_lookup'), 0);
    assert.equal(engine.pendingRequestCount('fork'), 0);
  });

  test('a signal already aborted: CANCELLED before any step is called', async () => {
    const before = engine.modelStatistics('lookup').model_stats[0]!.inference_count;
    const { error } = await outcome(engine.infer(forkRequest(1, AbortSignal.abort('gone'))), performance.now());
    assert.equal(error?.code, 'CANCELLED');
    assert.match(error.message, /was cancelled: gone$/);
    assert.equal(engine.modelStatistics('lookup').model_stats[0]!.inference_count, before);
    assert.equal(engine.pendingRequestCount('slow_lookup'), 0);
  });
});

// A chain (each step reads the one before) has at most one step in flight, so its steps carry the request's own signal.
describe('client cancellation in a chain', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      slow_add_sub: { config: addSubMember('slow_add_sub', SLOW_BATCHING), versions: { 1: addSubModel('INT32', 16) } },
      then_slow: { config: chainEnsemble('add_sub', 'slow_add_sub'), versions: { 1: null } },
    });
    engine = await startEngine(root);
  });

  after(async () => {
    await engine?.close();
    if (root) await removeRepository(root);
  });

  test('a client abort while the second step is queued: CANCELLED, the step leaves its member\'s queue, no step counts a failure', async () => {
    const controller = new AbortController();
    const started = performance.now();
    const inputs = [int32Tensor('A', range16((i) => i)), int32Tensor('B', range16(() => 1))];
    const pending = outcome(engine.infer({ modelName: 'then_slow', inputs, signal: controller.signal }), started);
    await until(() => engine.pendingRequestCount('slow_add_sub') === 1, PROMPT_MS, 'the second step to be queued');
    controller.abort(new Error('the client went away'));
    const { error, ms } = await pending;
    assert.ok(ms < PROMPT_MS, `answered in ${ms.toFixed(0)} ms`);
    assert.equal(error?.code, 'CANCELLED');
    assert.match(error.message, /^inference request for model 'then_slow' was cancelled: the client went away$/);
    assert.equal(engine.pendingRequestCount('slow_add_sub'), 0);
    assert.equal(engine.pendingRequestCount('then_slow'), 0);
    const stats = engine.modelStatistics('then_slow').model_stats[0]!;
    assert.equal(stats.inference_stats.fail.count, 1);
    assert.deepEqual(stats.step_stats!.map((s) => [s.success.count, s.fail.count]), [[1, 0], [0, 0]]);
    assert.equal(engine.modelStatistics('slow_add_sub').model_stats[0]!.execution_count, 0, 'the slow member never ran');
  });
});

describe('unloading a member while an ensemble request is in flight (explicit model control)', () => {
  let root: string;
  let engine: InferenceEngine;
  const inputs = () => [int32Tensor('A', range16((i) => i)), int32Tensor('B', range16(() => 1))];

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      held_add_sub: {
        config: addSubMember('held_add_sub', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 300000 }'),
        versions: { 1: addSubModel('INT32', 16) },
      },
      // Holds a lone request 300 ms: long enough to unload the next step's member meanwhile.
      delayed: {
        config: addSubMember('delayed', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 300000 }'),
        versions: { 1: addSubModel('INT32', 16) },
      },
      tail: { config: addSubMember('tail'), versions: { 1: addSubModel('INT32', 16) } },
      then_held: { config: chainEnsemble('add_sub', 'held_add_sub'), versions: { 1: null } },
      delayed_then_tail: { config: chainEnsemble('delayed', 'tail'), versions: { 1: null } },
    });
    engine = await startEngine(root, { modelControlMode: 'explicit' });
  });

  after(async () => {
    await engine?.close();
    if (root) await removeRepository(root);
  });

  const indexEntry = (name: string): { state: string; reason: string } | undefined =>
    engine.repositoryIndex().find((e) => e.name === name);

  test('queued in step 2\'s member when it is unloaded: the member finishes what it took, so the request answers; the unload waits for it', async () => {
    const started = performance.now();
    const request = outcome(engine.infer({ modelName: 'then_held', inputs: inputs() }), started);
    await until(() => engine.pendingRequestCount('held_add_sub') === 1, PROMPT_MS, 'step 2 to be queued');
    const unloaded = engine.unloadModel('held_add_sub').then(() => performance.now() - started);
    const { error, ms } = await request;
    assert.equal(error, undefined, error?.message);
    assert.ok(await unloaded >= ms - 1, 'the unload finished after the request it waited for');
  });

  test('the ensemble stays loaded (no unload_dependents); a new request fails at once naming the step and the unloaded member', async () => {
    assert.equal(indexEntry('held_add_sub')?.state, 'UNAVAILABLE');
    assert.equal(indexEntry('then_held')?.state, 'READY');
    assert.equal(indexEntry('add_sub')?.state, 'READY', 'the other member stays');
    const { error, ms } = await outcome(engine.infer({ modelName: 'then_held', inputs: inputs() }), performance.now());
    assert.ok(ms < PROMPT_MS);
    assert.equal(error?.code, 'MODEL_NO_VERSIONS');
    assert.match(error.message, /^ensemble 'then_held' step 2 \('held_add_sub'\) failed: Request for unknown model: 'held_add_sub' has no available versions \(version 1: unloaded\)$/);
  });

  test('step 2\'s member unloaded while step 1 is queued: the request fails naming step 2 and its missing model, or finishes; it never hangs', async () => {
    const started = performance.now();
    const request = outcome(engine.infer({ modelName: 'delayed_then_tail', inputs: inputs() }), started);
    await until(() => engine.pendingRequestCount('delayed') === 1, PROMPT_MS, 'step 1 to be queued');
    const [{ error, ms }] = await Promise.all([request, engine.unloadModel('tail')]);
    assert.ok(ms < PROMPT_MS, `answered in ${ms.toFixed(0)} ms`);
    if (error) {
      assert.match(error.message, /^ensemble 'delayed_then_tail' step 2 \('tail'\) failed: Request for unknown model: 'tail' (has no available versions|version 1 is not at ready state)/);
    }
    assert.equal(indexEntry('delayed_then_tail')?.state, 'READY', 'without unload_dependents the ensemble stays loaded');
    assert.equal(indexEntry('delayed')?.state, 'READY');
    assert.equal(engine.pendingRequestCount('delayed'), 0);
    const direct = await engine.infer({ modelName: 'delayed', inputs: [int32Tensor('INPUT0', range16(() => 2)), int32Tensor('INPUT1', range16(() => 1))] });
    assert.deepEqual(outputsByName(direct.outputs), { OUTPUT0: range16(() => 3), OUTPUT1: range16(() => 1) }, 'step 1\'s member still serves');
  });
});
