/**
 * Conditional ensembles over real HTTP and gRPC, with the generated ONNX
 * models (lookup: VALUE = INDEX * 10; add_sub: OUTPUT0 = A + B, OUTPUT1 =
 * A - B) and an in-memory echo member where the point is a member that
 * leaves out an output: a `when` on a tensor and on a request parameter, a
 * switch with two cases and a default branch (pipeline.yaml and
 * config.pbtxt), a skipped branch's output absent or defaulted, an optional
 * input sent or not, a member missing an output, and step_stats counting
 * the skipped steps.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { InferenceClient, InferenceServerError, tensor, type InferResult } from '../../client/index.ts';
import { addSubModel, lookupModel } from '../../generator/models.ts';
import { addSubMember, lookupMember, range16 } from '../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { EchoBackend, testModelConfig, withTestBackends } from '../helpers/test-backends.ts';

/** big runs only when lookup's VALUE (INDEX * 10) is over 15; DIFF falls back to 0 when it does not. */
const WHEN_TENSOR = `max_batch_size: 8
inputs: { INDEX: {}, A: {}, B: {} }
outputs:
  VALUE: score.VALUE
  SUM: big.OUTPUT0
  DIFF: { from: big.OUTPUT1, default: 0 }
steps:
  score: { model: lookup, inputs: { INDEX: INDEX } }
  big: { model: add_sub, inputs: { INPUT0: A, INPUT1: B }, when: score.VALUE > 15 }
`;

/** Triton's form: the second step of a chain runs only when the request sends the parameter double: true. */
const WHEN_PARAMETER = `platform: "ensemble"
max_batch_size: 8
input [ { name: "A" }, { name: "B" } ]
output [ { name: "SUM" }, { name: "TWICE_A" } ]
parameters { key: "switchyard.step.1.when" value { string_value: "parameters.double == true" } }
ensemble_scheduling {
  step [
    { model_name: "add_sub" model_version: -1
      input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
      output_map { key: "OUTPUT0" value: "SUM" } output_map { key: "OUTPUT1" value: "diff" } },
    { model_name: "add_sub" model_version: -1
      input_map { key: "INPUT0" value: "SUM" } input_map { key: "INPUT1" value: "diff" }
      output_map { key: "OUTPUT0" value: "TWICE_A" } }
  ]
}
`;

/** A switch on a request parameter: plus (A + B) for "sum", minus (A - B) for "diff", twice (A + A) otherwise. */
const SWITCH_YAML = `max_batch_size: 8
inputs: { A: {}, B: {} }
outputs:
  RESULT: [plus.OUTPUT0, minus.OUTPUT1, twice.OUTPUT0]
steps:
  plus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  minus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  twice: { model: add_sub, inputs: { INPUT0: A, INPUT1: A } }
switches:
  route:
    on: parameters.route
    cases:
      - { value: sum, steps: [plus] }
      - { value: diff, steps: [minus] }
    default: [twice]
`;

/** The same switch in Triton's form, routing by the INT64 input INDEX: 0 -> plus, 1 -> minus, else twice. */
const SWITCH_PBTXT = `platform: "ensemble"
max_batch_size: 8
input [ { name: "INDEX" data_type: TYPE_INT64 dims: [ 1 ] }, { name: "A" }, { name: "B" } ]
output [ { name: "RESULT" } ]
parameters [
  { key: "switchyard.switch.pick.on" value { string_value: "INDEX" } },
  { key: "switchyard.switch.pick.case.0" value { string_value: "0" } },
  { key: "switchyard.switch.pick.case.1" value { string_value: "1" } },
  { key: "switchyard.switch.pick.default" value { string_value: "2" } }
]
ensemble_scheduling {
  step [
    { model_name: "add_sub" input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT0" value: "RESULT" } },
    { model_name: "add_sub" input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT1" value: "RESULT" } },
    { model_name: "add_sub" input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "A" } output_map { key: "OUTPUT0" value: "RESULT" } }
  ]
}
`;

/** A switch with no default branch: for another route neither step runs; OUT2 has a default, OUT1 has none. */
const SWITCH_NO_DEFAULT = `max_batch_size: 8
inputs: { A: {}, B: {} }
outputs:
  OUT1: [plus.OUTPUT0, minus.OUTPUT1]
  OUT2: { from: [plus.OUTPUT1, minus.OUTPUT0], default: -1 }
steps:
  plus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  minus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
switches:
  route: { on: parameters.route, cases: [ { value: sum, steps: [plus] }, { value: diff, steps: [minus] } ] }
`;

/** C is optional: ac, which needs it, runs only when it is sent; ab always runs. */
const OPTIONAL_INPUT = `max_batch_size: 8
inputs: { A: {}, B: {}, C: { datatype: INT32, dims: [16], optional: true } }
outputs: { SUM_AB: ab.OUTPUT0, SUM_AC: ac.OUTPUT0 }
steps:
  ab: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  ac: { model: add_sub, inputs: { INPUT0: A, INPUT1: C } }
`;

/** An echo member whose OUT_Y echoes its optional input Y, and is left out when Y is. */
const PARTIAL_MEMBER = testModelConfig('partial', 'test_echo', 8,
  `input [ { name: "X" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "Y" data_type: TYPE_INT32 dims: [ 16 ] optional: true } ]
output [ { name: "OUT_X" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUT_Y" data_type: TYPE_INT32 dims: [ 16 ] } ]`,
  'parameters { key: "echo_omit_missing" value { string_value: "true" } }');

/** partial, then add_sub over both of its outputs. */
const PARTIAL_ENSEMBLE = `platform: "ensemble"
max_batch_size: 8
input [ { name: "X" }, { name: "Y" optional: true } ]
output [ { name: "PX" }, { name: "PY" }, { name: "SUM_XY" } ]
ensemble_scheduling {
  step [
    { model_name: "partial" input_map { key: "X" value: "X" } input_map { key: "Y" value: "Y" }
      output_map { key: "OUT_X" value: "PX" } output_map { key: "OUT_Y" value: "PY" } },
    { model_name: "add_sub" input_map { key: "INPUT0" value: "PX" } input_map { key: "INPUT1" value: "PY" } output_map { key: "OUTPUT0" value: "SUM_XY" } }
  ]
}
`;

const A = range16((i) => i);
const B = range16((i) => 2 * i + 1);
const C = range16(() => 100);
const int32 = (name: string, values: readonly number[]) => tensor(name, 'INT32', [1, 16], values);
const index = (value: number) => tensor('INDEX', 'INT64', [1, 1], [BigInt(value)]);
const values = (result: InferResult): Record<string, number[]> => Object.fromEntries(result.outputs.map((o) => [o.name, o.numbers()]));

// HTTP with the binary tensor extension (the client's default), pure JSON HTTP, and gRPC.
for (const protocol of ['http', 'http-json', 'grpc'] as const) {
  describe(`conditional ensembles over ${protocol}`, () => {
    let root: string;
    let fixture: DualFixture;
    let client: InferenceClient;

    const skipped = async (model: string): Promise<number[]> =>
      (await client.modelStatistics(model)).model_stats[0]!.step_stats.map((s) => s.skipped);
    const ran = async (model: string): Promise<number[]> =>
      (await client.modelStatistics(model)).model_stats[0]!.step_stats.map((s) => s.success.count);
    const grown = async <T>(model: string, send: () => Promise<T>): Promise<{ result: T; ran: number[]; skipped: number[] }> => {
      const [ran0, skipped0] = [await ran(model), await skipped(model)];
      const result = await send();
      const [ran1, skipped1] = [await ran(model), await skipped(model)];
      return { result, ran: ran1.map((n, i) => n - ran0[i]!), skipped: skipped1.map((n, i) => n - skipped0[i]!) };
    };

    before(async () => {
      root = await makeRepository({
        add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
        lookup: { config: lookupMember('lookup'), versions: { 1: lookupModel(4) } },
        partial: { config: PARTIAL_MEMBER, versions: { 1: null } },
        when_tensor: { config: WHEN_TENSOR, configFile: 'pipeline.yaml', versions: {} },
        when_parameter: { config: WHEN_PARAMETER, versions: { 1: null } },
        switch_yaml: { config: SWITCH_YAML, configFile: 'pipeline.yaml', versions: {} },
        switch_pbtxt: { config: SWITCH_PBTXT, versions: { 1: null } },
        switch_no_default: { config: SWITCH_NO_DEFAULT, configFile: 'pipeline.yaml', versions: {} },
        optional_input: { config: OPTIONAL_INPUT, configFile: 'pipeline.yaml', versions: {} },
        partial_ensemble: { config: PARTIAL_ENSEMBLE, versions: { 1: null } },
      });
      fixture = await startBoth(root, { backends: withTestBackends(new EchoBackend()) });
      client = new InferenceClient(protocol === 'grpc' ? { url: `grpc://${fixture.grpcAddress}` } : { url: fixture.httpUrl, binary: protocol === 'http' });
    });

    after(async () => {
      client?.close();
      await fixture?.close();
      if (root) await removeRepository(root);
    });

    test('every ensemble loads', () => {
      assert.deepEqual(fixture.engine.loadFailures(), []);
    });

    test('when on a tensor: the step runs when the earlier step\'s value holds, and is skipped (counted) when not', async () => {
      const yes = await grown('when_tensor', () => client.infer('when_tensor', [index(3), int32('A', A), int32('B', B)]));
      assert.deepEqual(values(yes.result), { VALUE: [30], SUM: A.map((a, i) => a + B[i]!), DIFF: A.map((a, i) => a - B[i]!) });
      assert.deepEqual([yes.ran, yes.skipped], [[1, 1], [0, 0]]);

      const no = await grown('when_tensor', () => client.infer('when_tensor', [index(1), int32('A', A), int32('B', B)]));
      assert.deepEqual(no.result.outputs.map((o) => o.name), ['VALUE', 'DIFF'], 'SUM is absent; DIFF has a default');
      assert.deepEqual(values(no.result), { VALUE: [10], DIFF: range16(() => 0) });
      assert.deepEqual(no.result.output('DIFF').shape, [1, 16]);
      assert.deepEqual([no.ran, no.skipped], [[1, 0], [0, 1]]);
    });

    test('when on a request parameter (config.pbtxt form): the step runs only with double: true', async () => {
      const on = await grown('when_parameter', () => client.infer('when_parameter', [int32('A', A), int32('B', B)], { parameters: { double: true } }));
      assert.deepEqual(values(on.result), { SUM: A.map((a, i) => a + B[i]!), TWICE_A: A.map((a) => 2 * a) });
      assert.deepEqual([on.ran, on.skipped], [[1, 1], [0, 0]]);
      for (const parameters of [{ double: false }, {}] as Array<Record<string, boolean>>) {
        const off = await grown('when_parameter', () => client.infer('when_parameter', [int32('A', A), int32('B', B)], { parameters }));
        assert.deepEqual(off.result.outputs.map((o) => o.name), ['SUM']);
        assert.deepEqual([off.ran, off.skipped], [[1, 0], [0, 1]]);
      }
    });

    test('a parameter of the wrong type: 400 naming the parameter, the step and the condition', async () => {
      await assert.rejects(client.infer('when_parameter', [int32('A', A), int32('B', B)], { parameters: { double: 'yes' } }), (err: InferenceServerError) => {
        assert.equal(err.code, 'INVALID_ARGUMENT');
        assert.match(err.message, /ensemble 'when_parameter': parameter 'double' is "yes", text, but step 2 \('add_sub'\) runs on when parameters\.double == true, which compares it with a boolean/);
        return true;
      });
    });

    test('a switch on a parameter (pipeline.yaml): each case runs its step, anything else the default branch; the join is the one that ran', async () => {
      const cases: Array<[Record<string, string>, number[], number[]]> = [
        [{ route: 'sum' }, A.map((a, i) => a + B[i]!), [1, 0, 0]],
        [{ route: 'diff' }, A.map((a, i) => a - B[i]!), [0, 1, 0]],
        [{ route: 'other' }, A.map((a) => 2 * a), [0, 0, 1]],
        [{}, A.map((a) => 2 * a), [0, 0, 1]],
      ];
      for (const [parameters, expected, steps] of cases) {
        const answer = await grown('switch_yaml', () => client.infer('switch_yaml', [int32('A', A), int32('B', B)], { parameters }));
        assert.deepEqual(values(answer.result), { RESULT: expected }, JSON.stringify(parameters));
        assert.deepEqual(answer.ran, steps);
        assert.deepEqual(answer.skipped, steps.map((n) => 1 - n));
      }
    });

    test('a switch on a tensor (config.pbtxt): routed by the INDEX input, the default for any other value', async () => {
      for (const [value, expected] of [[0, A.map((a, i) => a + B[i]!)], [1, A.map((a, i) => a - B[i]!)], [7, A.map((a) => 2 * a)]] as const) {
        const answer = await client.infer('switch_pbtxt', [index(value), int32('A', A), int32('B', B)]);
        assert.deepEqual(values(answer), { RESULT: expected }, `INDEX ${value}`);
      }
    });

    test('a skipped branch\'s output is absent without a default, and the default with one', async () => {
      const hit = await client.infer('switch_no_default', [int32('A', A), int32('B', B)], { parameters: { route: 'diff' } });
      assert.deepEqual(values(hit), { OUT1: A.map((a, i) => a - B[i]!), OUT2: A.map((a, i) => a + B[i]!) });
      const miss = await grown('switch_no_default', () => client.infer('switch_no_default', [int32('A', A), int32('B', B)], { parameters: { route: 'none' } }));
      assert.deepEqual(values(miss.result), { OUT2: range16(() => -1) });
      assert.deepEqual([miss.ran, miss.skipped], [[0, 0], [1, 1]]);
    });

    test('an optional input: the step that needs it is skipped when it is absent, the others run', async () => {
      const without = await grown('optional_input', () => client.infer('optional_input', [int32('A', A), int32('B', B)]));
      assert.deepEqual(values(without.result), { SUM_AB: A.map((a, i) => a + B[i]!) });
      assert.deepEqual([without.ran, without.skipped], [[1, 0], [0, 1]]);
      const withC = await grown('optional_input', () => client.infer('optional_input', [int32('A', A), int32('B', B), int32('C', C)]));
      assert.deepEqual(values(withC.result), { SUM_AB: A.map((a, i) => a + B[i]!), SUM_AC: A.map((a) => a + 100) });
      assert.deepEqual([withC.ran, withC.skipped], [[1, 1], [0, 0]]);
    });

    test('a member that leaves out an output: the ensemble output is absent (as in Triton); a step that needs it fails naming both steps', async () => {
      const partial = await client.infer('partial_ensemble', [int32('X', A)], { outputs: ['PX', 'PY'] });
      assert.deepEqual(values(partial), { PX: A });
      const full = await client.infer('partial_ensemble', [int32('X', A), int32('Y', B)]);
      assert.deepEqual(values(full), { PX: A, PY: B, SUM_XY: A.map((a, i) => a + B[i]!) });
      await assert.rejects(client.infer('partial_ensemble', [int32('X', A)]), (err: InferenceServerError) => {
        assert.equal(err.code, 'INVALID_ARGUMENT', 'the status Triton gives when the member refuses the missing input');
        assert.equal(err.message, "ensemble 'partial_ensemble' step 2 ('add_sub') cannot run: step 1 ('partial') did not output tensor 'PY' " +
          "(its output 'OUT_Y'), which input 'INPUT1' of model 'add_sub' requires");
        return true;
      });
    });
  });
}
