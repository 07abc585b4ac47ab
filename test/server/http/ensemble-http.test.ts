/**
 * Ensembles over real HTTP on a loopback port: the input checks a client
 * sees, a failing step's status and message, debug tensors as extra
 * outputs, and the statistics, config and metadata endpoints for an
 * ensemble. The server keeps serving after every failure.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel, lookupModel } from '../../../generator/models.ts';
import {
  addSubMember, CHAIN_PIPELINE, chainEnsemble, DIAMOND_ENSEMBLE, forkEnsemble, lookupMember, range16, SLOW_BATCHING,
} from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';

interface Answer {
  readonly status: number;
  readonly body: {
    error?: string;
    model_name?: string;
    model_version?: string;
    outputs?: Array<{ name: string; datatype: string; shape: number[]; data: number[] }>;
  };
}

const A = range16((i) => i);
const B = range16(() => 5);
const int32Input = (name: string, data: number[]): object => ({ name, datatype: 'INT32', shape: [1, 16], data });

describe('ensembles over HTTP', () => {
  let root: string;
  let http: HttpFixture;

  const post = async (model: string, body: object): Promise<Answer> => {
    const res = await fetch(`${http.url}/v2/models/${model}/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() as Answer['body'] };
  };
  const get = async (path: string): Promise<{ status: number; body: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fetch(`${http.url}${path}`);
    return { status: res.status, body: await res.json() };
  };
  const chainBody = (parameters?: object): object => ({
    inputs: [int32Input('A', A), int32Input('B', B)], ...(parameters ? { parameters } : {}),
  });
  const data = (answer: Answer): Record<string, number[]> => Object.fromEntries((answer.body.outputs ?? []).map((o) => [o.name, o.data]));

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      lookup: { config: lookupMember('lookup'), versions: { 1: lookupModel(4) } },
      slow_lookup: { config: lookupMember('slow_lookup', SLOW_BATCHING), versions: { 1: lookupModel(4) } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
      chain_yaml: { config: CHAIN_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
      diamond: { config: DIAMOND_ENSEMBLE, versions: { 1: null } },
      fork: { config: forkEnsemble('lookup', 'slow_lookup'), versions: { 1: null } },
    });
    http = await startHttp(root);
  });

  after(async () => {
    await http?.close();
    if (root) await removeRepository(root);
  });

  test('an ensemble answers with its own name, version and output names', async () => {
    const answer = await post('chain', chainBody());
    assert.equal(answer.status, 200, answer.body.error);
    assert.equal(answer.body.model_name, 'chain');
    assert.equal(answer.body.model_version, '1');
    assert.deepEqual(answer.body.outputs?.map((o) => [o.name, o.datatype, o.shape]), [['TWICE_A', 'INT32', [1, 16]], ['TWICE_B', 'INT32', [1, 16]]]);
    assert.deepEqual(data(answer), { TWICE_A: A.map((a) => 2 * a), TWICE_B: B.map((b) => 2 * b) });
  });

  test('a request missing an ensemble input: 400 naming it, in Triton\'s wording', async () => {
    for (const model of ['chain', 'chain_yaml']) {
      const answer = await post(model, { inputs: [int32Input('A', A)] });
      assert.equal(answer.status, 400);
      assert.equal(answer.body.error, `expected 2 inputs but got 1 inputs for model '${model}'. Got input(s) ['A'], but missing required input(s) ['B']. ` +
        'Please provide all required input(s).');
    }
  });

  test('an input the ensemble does not have: 400 naming it', async () => {
    const answer = await post('chain', { inputs: [int32Input('A', A), int32Input('B', B), int32Input('sum', A)] });
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error, "unexpected inference input 'sum' for model 'chain'");
  });

  test('a failing step: the member\'s status (500 for ONNX Runtime) and an error naming the ensemble and step; the server keeps serving', async () => {
    const started = performance.now();
    const failed = await post('fork', { inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [1, 1], data: [9] }] });
    assert.ok(performance.now() - started < 2000, 'the slow branch is not waited for');
    assert.equal(failed.status, 500);
    assert.match(failed.body.error ?? '', /^ensemble 'fork' step 1 \('lookup'\) failed: inference failed in model 'lookup': .*indices element out of data bounds, idx=9/);

    // Only FAST is asked for, so the slow branch is skipped and the answer comes at once.
    const good = await post('fork', { inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [1, 1], data: [2] }], outputs: [{ name: 'FAST' }] });
    assert.equal(good.status, 200, good.body.error);
    assert.deepEqual(data(good), { FAST: [20] });
    assert.equal((await post('chain', chainBody())).status, 200);
  });

  test('switchyard_debug_tensors in the JSON parameters: intermediates come back as extra outputs', async () => {
    const all = await post('chain', chainBody({ switchyard_debug_tensors: true }));
    assert.equal(all.status, 200, all.body.error);
    assert.deepEqual(all.body.outputs?.map((o) => [o.name, o.datatype, o.shape]), [
      ['TWICE_A', 'INT32', [1, 16]], ['TWICE_B', 'INT32', [1, 16]], ['sum', 'INT32', [1, 16]], ['diff', 'INT32', [1, 16]],
    ]);
    assert.deepEqual(data(all)['sum'], A.map((a) => a + 5));
    assert.deepEqual(data(all)['diff'], A.map((a) => a - 5));

    const listed = await post('chain_yaml', chainBody({ switchyard_debug_tensors: 'first.OUTPUT1' }));
    assert.equal(listed.status, 200, listed.body.error);
    assert.deepEqual(listed.body.outputs?.map((o) => o.name), ['TWICE_A', 'TWICE_B', 'first.OUTPUT1']);
    assert.deepEqual(data(listed)['first.OUTPUT1'], A.map((a) => a - 5));

    const unknown = await post('chain', chainBody({ switchyard_debug_tensors: 'sum,bogus' }));
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error ?? '', /'bogus'/);
  });

  test('GET /v2/models/<ensemble>/stats has step_stats, one per step in config order', async () => {
    const before = await get('/v2/models/chain/stats');
    const countsBefore = (before.body.model_stats[0].step_stats as Array<{ success: { count: number } }>).map((s) => s.success.count);
    assert.equal((await post('chain', chainBody())).status, 200);
    const stats = await get('/v2/models/chain/stats');
    assert.equal(stats.status, 200);
    const entry = stats.body.model_stats[0];
    assert.equal(entry.name, 'chain');
    assert.deepEqual(entry.step_stats.map((s: { step: string; model: string }) => [s.step, s.model]),
      [["step 1 ('add_sub')", 'add_sub'], ["step 2 ('add_sub')", 'add_sub']]);
    assert.deepEqual(entry.step_stats.map((s: { success: { count: number } }, i: number) => s.success.count - countsBefore[i]!), [1, 1]);
    for (const step of entry.step_stats) {
      assert.ok(step.success.ns > 0);
      assert.deepEqual(Object.keys(step.fail).sort(), ['count', 'ns']);
    }
    const member = await get('/v2/models/add_sub/stats');
    assert.deepEqual(member.body.model_stats[0].step_stats ?? [], [], 'only ensembles have steps');
  });

  test('GET /v2/models/<ensemble>/config: platform "ensemble", inputs and outputs completed from the members', async () => {
    const config = await get('/v2/models/diamond/config');
    assert.equal(config.status, 200);
    assert.equal(config.body.name, 'diamond');
    assert.equal(config.body.platform, 'ensemble');
    assert.equal(config.body.max_batch_size, 8);
    assert.deepEqual(config.body.input.map((t: { name: string; data_type: string; dims: number[] }) => [t.name, t.data_type, t.dims]),
      [['X', 'TYPE_INT32', [16]], ['Y', 'TYPE_INT32', [16]]]);
    assert.deepEqual(config.body.output.map((t: { name: string; data_type: string; dims: number[] }) => [t.name, t.data_type, t.dims]),
      [['TWICE_Y', 'TYPE_INT32', [16]], ['JOIN_SUM', 'TYPE_INT32', [16]], ['JOIN_DIFF', 'TYPE_INT32', [16]]]);
    assert.equal(config.body.ensemble_scheduling.step.length, 4);
    assert.deepEqual(config.body.ensemble_scheduling.step[2].input_map, { INPUT0: 's', INPUT1: 's' });

    const pipeline = await get('/v2/models/chain_yaml/config');
    assert.equal(pipeline.body.platform, 'ensemble');
    assert.deepEqual(pipeline.body.ensemble_scheduling.step.map((s: { model_name: string; model_version: number }) => [s.model_name, Number(s.model_version)]),
      [['add_sub', -1], ['add_sub', 1]]);
  });

  test('model metadata: platform "ensemble", tensors with the batch dimension', async () => {
    const metadata = await get('/v2/models/diamond');
    assert.equal(metadata.status, 200);
    assert.deepEqual(metadata.body, {
      name: 'diamond', versions: ['1'], platform: 'ensemble',
      inputs: [{ name: 'X', datatype: 'INT32', shape: [-1, 16] }, { name: 'Y', datatype: 'INT32', shape: [-1, 16] }],
      outputs: [
        { name: 'TWICE_Y', datatype: 'INT32', shape: [-1, 16] },
        { name: 'JOIN_SUM', datatype: 'INT32', shape: [-1, 16] },
        { name: 'JOIN_DIFF', datatype: 'INT32', shape: [-1, 16] },
      ],
    });
    const ready = await fetch(`${http.url}/v2/models/diamond/ready`);
    assert.equal(ready.status, 200);
  });
});
