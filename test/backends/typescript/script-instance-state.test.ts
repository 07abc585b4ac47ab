/**
 * The rule docs/scripts.md states for per-instance state: the execute()
 * calls of one instance interleave at a ctx.infer await, so an instance
 * field read before the await may have changed after it; with
 * max_concurrent_executes: 1 they run strictly one after another. The
 * script counts, in instance fields, how many of its execute() calls are
 * running, and reports the count before and after its await.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { int32x16, outputNamed, scriptConfig, stringsOf, within, writeScripts } from '../../helpers/script-fixtures.ts';

/** Calls the model named by its "gate" parameter between counting itself in and out. */
const COUNTING_SCRIPT = `export default class {
  running = 0;
  most = 0;
  changes = 0;
  async execute(requests: any[], ctx: any) {
    this.running++;
    this.changes++;
    this.most = Math.max(this.most, this.running);
    const before = this.running;
    const changesBefore = this.changes;
    const X = requests[0].inputs.X;
    await ctx.infer({ model: ctx.config.parameters.gate.string_value, inputs: { INPUT0: X, INPUT1: X } });
    const after = this.running;
    const changesAfter = this.changes;
    this.running--;
    this.changes++;
    const report = { before, after, most: this.most, changesBefore, changesAfter };
    return requests.map(() => ({ outputs: { RESULT: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify(report)] } } }));
  }
}`;

/**
 * `before`/`after`: calls running, around the await; `changes`: how many times
 * any call of the instance wrote `running`, around the await. Which of two
 * interleaved calls resumes first is up to the scheduler, so the running count
 * alone may read the same on both sides of an await that saw it change twice;
 * the change counter cannot.
 */
interface Report { readonly before: number; readonly after: number; readonly most: number; readonly changesBefore: number; readonly changesAfter: number }

let root: string;
let engine: InferenceEngine;

before(async () => {
  const counting = (gate: string, extra = ''): string =>
    `${scriptConfig({ outputs: [['RESULT', 'TYPE_STRING', [1]]], executeTimeoutMs: 20000, parameters: { gate } })}\n${extra}`;
  root = await makeRepository({
    // Answers only once two requests wait together (or after 10 s).
    pair: { config: addSubConfig('pair', 'dynamic_batching { preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 10000000 }'), versions: { 1: addSubModel() } },
    // Holds a lone request 200 ms: time enough for a second execute() to start, were it allowed to.
    held: { config: addSubConfig('held', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 200000 }'), versions: { 1: addSubModel() } },
    shared: { config: counting('pair'), versions: {} },
    serial: { config: counting('held', 'parameters { key: "max_concurrent_executes" value: { string_value: "1" } }'), versions: {} },
  });
  await writeScripts(root, { shared: { 1: COUNTING_SCRIPT }, serial: { 1: COUNTING_SCRIPT } });
  engine = await startEngine(root);
  assert.deepEqual(engine.loadFailures(), []);
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

const twoAtOnce = async (model: string): Promise<Report[]> => {
  const send = () => engine.infer({ modelName: model, inputs: [int32x16()] });
  const responses = await within(8000, `two requests to ${model}`, Promise.all([send(), send()]));
  return responses.map((r) => JSON.parse(stringsOf(outputNamed(r.outputs, 'RESULT'))[0]!) as Report)
    .sort((a, b) => a.changesBefore - b.changesBefore);
};

test('by default, a second execute() runs on the instance while the first awaits ctx.infer, and changes its fields meanwhile', async () => {
  // The two calls meet at 'pair', which answers only both at once: so both execute() calls were running together.
  const reports = await twoAtOnce('shared');
  assert.deepEqual(reports.map((r) => [r.before, r.most]), [[1, 2], [2, 2]]);
  // Whichever resumes first still counts the other; the one after it does not.
  assert.deepEqual(reports.map((r) => r.after).sort(), [1, 2]);
  // The first to enter always sees the second's entry across its await.
  assert.ok(reports[0]!.changesAfter > reports[0]!.changesBefore, `the first saw the fields change across its await: ${JSON.stringify(reports)}`);
});

test('with max_concurrent_executes: 1, execute() calls of an instance run one after another, so fields hold across an await', async () => {
  const reports = await twoAtOnce('serial');
  assert.deepEqual(reports, [
    { before: 1, after: 1, most: 1, changesBefore: 1, changesAfter: 1 },
    { before: 1, after: 1, most: 1, changesBefore: 3, changesAfter: 3 },
  ]);
});
