/**
 * Sequence models end to end through the engine on real ONNX models
 * (generator/models.ts): control values echoed per row of real batches,
 * implicit state carried by ONNX Runtime, an initial state from a data
 * file, string correlation IDs, and unloading a model under a live sequence.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { InferenceRequest, ParameterValue } from '../../../engine/inference-request.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { bytesOf, typedView, type Tensor } from '../../../engine/tensor.ts';
import { stateAccumulatorControlsModel, stateAccumulatorModel } from '../../../generator/models.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { bytesStrings } from '../../../engine/bytes-tensor.ts';

const STATE = 'state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]';

function controlsConfig(corrid: string, strategy: string): string {
  return `max_batch_size: 4
sequence_batching {
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: ${corrid} } ] }
  ]
  ${STATE}
  ${strategy}
}`;
}

function request(model: string, value: number, parameters: Record<string, ParameterValue>): InferenceRequest {
  return { modelName: model, inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], raw: bytesOf(Float32Array.of(value)) }], parameters };
}

function valueOf(outputs: readonly Tensor[], name: string): string {
  const t = outputs.find((o) => o.name === name);
  if (!t) throw new Error(`no ${name}`);
  return t.datatype === 'BYTES' ? bytesStrings(t)[0]! : String(typedView(t.datatype, t.raw)[0]);
}

describe('sequence models on ONNX Runtime', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      // Waits up to 50 ms for all four slots, so concurrent starts share one session.run.
      controls: {
        config: controlsConfig('TYPE_UINT64', 'direct { max_queue_delay_microseconds: 50000 minimum_slot_utilization: 1.0 }'),
        versions: { 1: stateAccumulatorControlsModel('UINT64') },
      },
      named: { config: controlsConfig('TYPE_STRING', 'oldest { max_candidate_sequences: 4 }'), versions: { 1: stateAccumulatorControlsModel('BYTES') } },
      seeded: {
        config: `max_batch_size: 2
sequence_batching {
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ]
            initial_state { data_type: TYPE_FP32 dims: [ 1 ] name: "hundred" data_file: "hundred.bin" } } ]
}`,
        versions: { 1: stateAccumulatorModel() },
      },
    });
    await mkdir(join(root, 'seeded', 'initial_state'));
    await writeFile(join(root, 'seeded', 'initial_state', 'hundred.bin'), Buffer.from(Float32Array.of(100).buffer));
    engine = await startEngine(root);
    assert.deepEqual(engine.loadFailures(), []);
  });

  after(async () => {
    await engine.close();
    await removeRepository(root);
  });

  test('metadata lists neither control nor state tensors', () => {
    const metadata = engine.modelMetadata('controls');
    assert.deepEqual(metadata.inputs.map((t) => t.name), ['INPUT']);
    assert.deepEqual(metadata.outputs.map((t) => t.name), ['OUTPUT', 'START_OUT', 'END_OUT', 'READY_OUT', 'CORRID_OUT']);
  });

  test('each row of a real batch gets its own controls and state; a partial batch runs with not-ready fillers between', async () => {
    const ids = [1n, 2n, (1n << 64n) - 2n, (1n << 64n) - 1n];
    const firsts = await Promise.all(ids.map((id, i) => engine.infer(request('controls', 10 * (i + 1), { sequence_id: id, sequence_start: true }))));
    assert.deepEqual(firsts.map((r) => ['OUTPUT', 'START_OUT', 'END_OUT', 'READY_OUT', 'CORRID_OUT'].map((n) => valueOf(r.outputs, n))), [
      ['10', '1', '0', '1', '1'],
      ['20', '1', '0', '1', '2'],
      ['30', '1', '0', '1', '18446744073709551614'],
      ['40', '1', '0', '1', '18446744073709551615'],
    ]);
    // Slots 0 and 2 send; slot 1 is a filler, slot 3 is left out. Each after the 50 ms delay, since 2 of 4 slots is under 1.0.
    const seconds = await Promise.all([0, 2].map((i) => engine.infer(request('controls', 1, { sequence_id: ids[i]!, sequence_end: true }))));
    assert.deepEqual(seconds.map((r) => ['OUTPUT', 'START_OUT', 'END_OUT', 'READY_OUT', 'CORRID_OUT'].map((n) => valueOf(r.outputs, n))), [
      ['11', '0', '1', '1', '1'],
      ['31', '0', '1', '1', '18446744073709551614'],
    ]);
    const lasts = await Promise.all([1, 3].map((i) => engine.infer(request('controls', 5, { sequence_id: ids[i]!, sequence_end: true }))));
    assert.deepEqual(lasts.map((r) => valueOf(r.outputs, 'OUTPUT')), ['25', '45']);
    const stats = engine.modelStatistics('controls').model_stats[0]!;
    assert.equal(stats.inference_count, 8);
    assert.deepEqual(stats.batch_stats.map((s) => [s.batch_size, s.compute_infer.count]), [[2, 2], [4, 1]]);
    await assert.rejects(engine.infer(request('controls', 1, { sequence_id: 1n })), {
      message: "inference request for sequence 1 to model 'controls' must specify the START flag on the first request of the sequence",
    });
  });

  test('string correlation IDs reach a TYPE_STRING CORRID control; the oldest strategy carries each state', async () => {
    const step = (id: string, value: number, flags: Record<string, boolean> = {}) => engine.infer(request('named', value, { sequence_id: id, ...flags }));
    const [a1, b1] = await Promise.all([step('alpha', 1, { sequence_start: true }), step('beta', 100, { sequence_start: true })]);
    const [a2, b2] = await Promise.all([step('alpha', 2), step('beta', 200, { sequence_end: true })]);
    const a3 = await step('alpha', 3, { sequence_end: true });
    assert.deepEqual([a1, a2, a3].map((r) => [valueOf(r.outputs, 'OUTPUT'), valueOf(r.outputs, 'CORRID_OUT')]), [['1', 'alpha'], ['3', 'alpha'], ['6', 'alpha']]);
    assert.deepEqual([b1, b2].map((r) => [valueOf(r.outputs, 'OUTPUT'), valueOf(r.outputs, 'CORRID_OUT')]), [['100', 'beta'], ['300', 'beta']]);
  });

  test('a sequence starts from initial_state read from the model\'s initial_state folder', async () => {
    const first = await engine.infer(request('seeded', 1, { sequence_id: 'x', sequence_start: true }));
    const second = await engine.infer(request('seeded', 2, { sequence_id: 'x', sequence_end: true }));
    assert.deepEqual([valueOf(first.outputs, 'OUTPUT'), valueOf(second.outputs, 'OUTPUT')], ['101', '103']);
    assert.deepEqual(first.outputs.map((t) => t.name), ['OUTPUT']);
  });
});

test('unloading a model lets its live sequence\'s queued requests finish in order; later requests are refused', async () => {
  const root = await makeRepository({
    acc: { config: `max_batch_size: 4\nsequence_batching {\n  ${STATE}\n}`, versions: { 1: stateAccumulatorModel() } },
  });
  const engine = await startEngine(root, { modelControlMode: 'explicit' });
  try {
    const first = await engine.infer(request('acc', 1, { sequence_id: 77, sequence_start: true }));
    assert.equal(valueOf(first.outputs, 'OUTPUT'), '1');
    // Pipelined: one request of the sequence runs at a time, so most of these are still queued when the unload starts.
    const rest = Array.from({ length: 40 }, () => engine.infer(request('acc', 1, { sequence_id: 77 })).then(
      (r) => Number(valueOf(r.outputs, 'OUTPUT')), (err: Error & { status?: string }) => err));
    const queued = engine.pendingRequestCount('acc');
    await engine.unloadModel('acc');
    const outcomes = await Promise.all(rest);
    assert.ok(queued > 1, `${queued} requests were queued when the unload started`);
    assert.deepEqual(outcomes, outcomes.map((_, i) => i + 2), 'every request the model took ran, in order: the running sum goes on');
    await assert.rejects(engine.infer(request('acc', 1, { sequence_id: 77 })), {
      message: "Request for unknown model: 'acc' has no available versions (version 1: unloaded)",
    });
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});
