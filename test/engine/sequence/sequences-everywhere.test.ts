/**
 * Sequence fields travel with the request wherever it goes: through an
 * ensemble to its stateful step, and from a script's ctx.infer to a
 * sequence model. A script can also keep per-sequence state of its own,
 * keyed by sequence_id, when it is itself sequence-batched (a sequence
 * stays on one instance).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { InferenceRequest, ParameterValue } from '../../../engine/inference-request.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { bytesOf, typedView, type Tensor } from '../../../engine/tensor.ts';
import { stateAccumulatorModel } from '../../../generator/models.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';

const STATE = 'state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]';
const IO = 'input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 1 ] } ]\noutput [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ 1 ] } ]';

/** Calls `acc` with the same sequence fields it was given, and returns acc's running total times ten. */
const DRIVER = `export default class {
  async execute(requests: any[], ctx: any) {
    return Promise.all(requests.map(async (r) => {
      const answer = await ctx.infer({ model: 'acc', inputs: { INPUT: r.inputs.INPUT }, parameters: r.parameters });
      return { outputs: { OUTPUT: { shape: [1, 1], data: answer.outputs.OUTPUT.data.map((v: number) => v * 10) } } };
    }));
  }
}`;

/** Keeps its own running total per sequence_id, dropped at sequence_end. */
const OWN_STATE = `export default class {
  totals = new Map<string, number>();
  async execute(requests: any[]) {
    return requests.map((r) => {
      const id = String(r.parameters.sequence_id);
      const total = (r.parameters.sequence_start ? 0 : this.totals.get(id) ?? 0) + r.inputs.INPUT.data[0];
      if (r.parameters.sequence_end) this.totals.delete(id); else this.totals.set(id, total);
      return { outputs: { OUTPUT: { shape: [1, 1], data: [total] } } };
    });
  }
}`;

function request(model: string, value: number, parameters: Record<string, ParameterValue>): InferenceRequest {
  return { modelName: model, inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], raw: bytesOf(Float32Array.of(value)) }], parameters };
}

const outputOf = (outputs: readonly Tensor[]): number => {
  const t = outputs.find((o) => o.name === 'OUTPUT')!;
  if (t.datatype === 'BYTES') throw new Error('expected FP32');
  return Number(typedView(t.datatype, t.raw)[0]);
};

describe('sequences through ensembles and scripts', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      acc: { config: `max_batch_size: 4\nsequence_batching {\n  ${STATE}\n}`, versions: { 1: stateAccumulatorModel() } },
      acc_pipeline: {
        config: 'max_batch_size: 4\ninputs: [INPUT]\noutputs: { OUTPUT: total.OUTPUT }\nsteps:\n  total: { model: acc, inputs: { INPUT: INPUT } }\n',
        configFile: 'pipeline.yaml', versions: {},
      },
      driver: { config: `backend: "typescript"\nmax_batch_size: 4\n${IO}`, versions: {} },
      own_state: { config: `backend: "typescript"\nmax_batch_size: 4\n${IO}\nsequence_batching { }`, versions: {} },
    });
    for (const [model, code] of [['driver', DRIVER], ['own_state', OWN_STATE]] as const) {
      await mkdir(join(root, model, '1'), { recursive: true });
      await writeFile(join(root, model, '1', 'model.ts'), code);
    }
    engine = await startEngine(root);
    assert.deepEqual(engine.loadFailures(), []);
  });

  after(async () => {
    await engine.close();
    await removeRepository(root);
  });

  /** Runs two interleaved sequences of `values` on a model and returns each step's output. */
  async function twoSequences(model: string, a: readonly number[], b: readonly number[]): Promise<[number[], number[]]> {
    const out: [number[], number[]] = [[], []];
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const steps = [[a, 101, 0], [b, 'conversation-b', 1]] as const;
      await Promise.all(steps.map(async ([values, id, slot]) => {
        if (i >= values.length) return;
        const parameters = { sequence_id: id, ...(i === 0 ? { sequence_start: true } : {}), ...(i === values.length - 1 ? { sequence_end: true } : {}) };
        out[slot].push(outputOf((await engine.infer(request(model, values[i]!, parameters))).outputs));
      }));
    }
    return out;
  }

  const running = (values: readonly number[]): number[] => values.map((_, i) => values.slice(0, i + 1).reduce((x, y) => x + y, 0));

  test('an ensemble passes the sequence fields to its stateful step', async () => {
    const a = [1, 2, 3, 4];
    const b = [10, 20, 30];
    assert.deepEqual(await twoSequences('acc_pipeline', a, b), [running(a), running(b)]);
    const err = await engine.infer(request('acc_pipeline', 1, { sequence_id: 'never-started' })).catch((e: Error) => e);
    assert.match((err as Error).message, /ensemble 'acc_pipeline' step 'total' \(model 'acc'\) failed: .*must specify the START flag on the first request of the sequence/);
  });

  test('a script drives a sequence model through ctx.infer with the request\'s sequence fields', async () => {
    const a = [5, 6, 7];
    const b = [1, 1, 1, 1];
    assert.deepEqual(await twoSequences('driver', a, b), [running(a).map((v) => v * 10), running(b).map((v) => v * 10)]);
  });

  test('a sequence-batched script keeps per-sequence state of its own', async () => {
    const a = [2, 4, 6];
    const b = [3, 3, 3, 3];
    assert.deepEqual(await twoSequences('own_state', a, b), [running(a), running(b)]);
    // The sequence batcher refuses a non-start request for an ended sequence before the script sees it.
    const err = await engine.infer(request('own_state', 1, { sequence_id: 101 })).catch((e: Error) => e);
    assert.match((err as Error).message, /must specify the START flag on the first request of the sequence/);
  });
});
