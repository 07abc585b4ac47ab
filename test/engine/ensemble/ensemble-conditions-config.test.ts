/**
 * Load-time checks of Switchyard's conditional steps, in both forms
 * (pipeline.yaml, and ensemble parameters in config.pbtxt), against real
 * ONNX members (lookup: INDEX INT64 [b,1] -> VALUE FP32 [b,1]; add_sub:
 * INT32 [b,16]): every broken ensemble fails with the file, the line, the
 * field, the step and a fix, while the good ones serve. Also: a pipeline's
 * conditions compile to the same parameters a config.pbtxt would carry, and
 * a conditional run gives its pooled buffers back whether or not it skips.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel, lookupModel } from '../../../generator/models.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { addSubMember, lookupMember } from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startEngine, type FixtureModel } from '../../helpers/fixture-repository.ts';

const pipeline = (text: string): FixtureModel => ({ config: text, configFile: 'pipeline.yaml', versions: {} });
const pbtxt = (text: string): FixtureModel => ({ config: text, versions: { 1: null } });

/** A pipeline: score (lookup) then big (add_sub); `extra` is appended to big, `tail` after the steps. */
function scored(extra: string, tail = ''): FixtureModel {
  return pipeline(`max_batch_size: 8
inputs: { INDEX: {}, A: {}, B: {} }
outputs: { VALUE: score.VALUE, SUM: big.OUTPUT0 }
steps:
  score: { model: lookup, inputs: { INDEX: INDEX } }
  big:
    model: add_sub
    inputs: { INPUT0: A, INPUT1: B }
${extra}${tail}`);
}

/** Two add_sub steps writing one tensor RESULT, with the given ensemble parameters. */
function joined(parameters: string): FixtureModel {
  return pbtxt(`platform: "ensemble"
max_batch_size: 8
input [ { name: "A" }, { name: "B" } ]
output [ { name: "RESULT" } ]
${parameters}
ensemble_scheduling {
  step [
    { model_name: "add_sub" input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT0" value: "RESULT" } },
    { model_name: "add_sub" input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT1" value: "RESULT" } }
  ]
}
`);
}
const param = (key: string, value: string): string => `parameters { key: "${key}" value { string_value: ${JSON.stringify(value)} } }`;

const BROKEN: Record<string, { model: FixtureModel; reason: RegExp }> = {
  yaml_unknown_tensor: {
    model: scored('    when: score.VALU > 1\n'),
    reason: /pipeline\.yaml:\d+: .*step 'score' \(model 'lookup'\) maps output 'VALU', which model 'lookup' does not have.*did you mean 'VALUE'/,
  },
  yaml_wrong_type: {
    model: scored('    when: score.VALUE == true\n'),
    reason: /pipeline\.yaml:9: steps\.big\.when: ensemble 'yaml_wrong_type' step 'big' \(model 'add_sub'\) runs on when VALUE == true, which compares FP32 tensor 'VALUE' with true, a boolean\. Fix: compare a numeric tensor with a number/,
  },
  yaml_not_scalar: {
    model: scored('    when: A > 0\n'),
    reason: /pipeline\.yaml:9: steps\.big\.when: .*step 'big' .*tensor 'A' is \[16\] per request \(ensemble input 'A'\): a condition reads one value per request/,
  },
  yaml_unknown_operator: {
    model: scored('    when: score.VALUE => 1\n'),
    reason: /pipeline\.yaml:9: steps\.big\.when: condition 'score\.VALUE => 1' has an unknown operator at '=>': use ==, !=, <, <=, > or >=/,
  },
  yaml_unquoted_text: {
    model: scored('    when: parameters.route == fast\n'),
    reason: /pipeline\.yaml:9: steps\.big\.when: condition 'fast' is not a value: write true, false, a number, or text in quotes \("fast"\)/,
  },
  yaml_ordered_text: {
    model: scored('    when: parameters.route < "m"\n'),
    reason: /pipeline\.yaml:9: steps\.big\.when: .*step 'big' .*runs on when parameters\.route < "m", which orders string values with '<'/,
  },
  yaml_duplicate_case: {
    model: scored('', `switches:
  route:
    on: parameters.route
    cases:
      - { value: fast, steps: [big] }
      - { value: fast, steps: [score] }
`),
    reason: /pipeline\.yaml:14: switches\.route\.cases\[1\]\.value: repeats case "fast" of switch 'route' \(cases\[0\]\)\. Fix: merge the two cases/,
  },
  yaml_mixed_case_types: {
    model: scored('', `switches:
  route: { on: parameters.route, cases: [ { value: 1, steps: [big] }, { value: "1", steps: [score] } ] }
`),
    reason: /pipeline\.yaml:10: switches\.route\.cases\[1\]\.value: is "1", but cases\[0\] is 1: the values of one switch have one type/,
  },
  yaml_switch_unknown_step: {
    model: scored('', `switches:
  route: { on: parameters.route, cases: [ { value: a, steps: [bigg] } ] }
`),
    reason: /pipeline\.yaml:10: switches\.route\.cases\[0\]\.steps\[0\]: names step 'bigg', which the pipeline does not have\. Fix: did you mean 'big'\?/,
  },
  yaml_never_runs: {
    model: pipeline(`max_batch_size: 8
inputs: { A: {}, B: {} }
outputs: { OUT: join.OUTPUT0 }
steps:
  plus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  minus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  join: { model: add_sub, inputs: { INPUT0: plus.OUTPUT0, INPUT1: minus.OUTPUT1 } }
switches:
  route: { on: parameters.route, cases: [ { value: sum, steps: [plus] }, { value: diff, steps: [minus] } ] }
`),
    reason: /pipeline\.yaml:7: steps\.join: ensemble 'yaml_never_runs' step 'join' \(model 'add_sub'\) can never run: it runs only on switch 'route' on parameters\.route: case "sum", and on switch 'route' on parameters\.route: case "diff".*cannot all hold\. Fix: read a join/,
  },
  yaml_default_type: {
    model: pipeline(`max_batch_size: 8
inputs: { A: {}, B: {} }
outputs: { SUM: { from: plus.OUTPUT0, default: "none" } }
steps:
  plus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B }, when: parameters.go }
`),
    reason: /pipeline\.yaml:3: outputs\.SUM\.default: ensemble 'yaml_default_type' output 'SUM' is INT32, but its default "none" is a string\. Fix: use a number/,
  },
  yaml_join_read_alone: {
    model: pipeline(`max_batch_size: 8
inputs: { A: {}, B: {} }
outputs: { OUT: [plus.OUTPUT0, minus.OUTPUT0], ALONE: { from: plus.OUTPUT0 } }
steps:
  plus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B }, when: parameters.go }
  minus: { model: add_sub, inputs: { INPUT0: A, INPUT1: B }, when: parameters.go == false }
`),
    reason: /pipeline\.yaml:3: outputs\.ALONE\.from: reads plus\.OUTPUT0 alone, but outputs\.OUT\[0\] reads it in the join \[minus\.OUTPUT0, plus\.OUTPUT0\]/,
  },
  pbtxt_unknown_tensor: {
    model: joined([param('switchyard.step.0.when', 'SCOR > 1'), param('switchyard.step.1.when', 'SCORE <= 1')].join('\n')),
    reason: /config\.pbtxt:5: parameters\["switchyard\.step\.0\.when"\]: ensemble 'pbtxt_unknown_tensor' has a condition on tensor 'SCOR', but no step writes it and it is not an ensemble input/,
  },
  pbtxt_not_exclusive: {
    model: joined(param('switchyard.step.0.when', 'parameters.fast')),
    reason: /config\.pbtxt:\d+: ensemble_scheduling\.step\[1\]: ensemble 'pbtxt_not_exclusive' step 2 \('add_sub'\) writes tensor 'RESULT', which step 1 \('add_sub'\) writes too, and both could run for one request.*Fix: put the two steps in different cases of one switch/,
  },
  pbtxt_duplicate_case: {
    model: joined([
      param('switchyard.switch.s.on', 'parameters.n'),
      param('switchyard.switch.s.case.1', '0'),
      param('switchyard.switch.s.case.1.0', '1'),
    ].join('\n')),
    reason: /config\.pbtxt:7: parameters\["switchyard\.switch\.s\.case\.1\.0"\]: switch 's' has case 1 twice \(line 6 has it too\)\. Fix: merge the two cases/,
  },
  pbtxt_ambiguous_model: {
    model: joined(param('switchyard.step.add_sub.when', 'parameters.fast')),
    reason: /config\.pbtxt:5: parameters\["switchyard\.step\.add_sub\.when"\]: names model 'add_sub', which steps 0 and 1 both run\. Fix: name the step by its position instead/,
  },
  pbtxt_unknown_key: {
    model: joined(param('switchyard.step.0.if', 'parameters.fast')),
    reason: /config\.pbtxt:5: parameters\["switchyard\.step\.0\.if"\]: is not a Switchyard ensemble extension\. Fix: use switchyard\.step\.<step>\.when/,
  },
  pbtxt_bool_ordered: {
    model: joined([
      param('switchyard.switch.s.on', 'A'),
      param('switchyard.switch.s.case.1', '0'),
      param('switchyard.switch.s.case.2', '1'),
    ].join('\n')),
    reason: /config\.pbtxt:5: parameters\["switchyard\.switch\.s\.on"\]: .*tensor 'A' is \[16\] per request/,
  },
};

describe('conditional ensembles: load-time checks', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      lookup: { config: lookupMember('lookup'), versions: { 1: lookupModel(4) } },
      good_yaml: scored('    when: score.VALUE > 15\n'),
      good_join: joined([param('switchyard.step.0.when', 'parameters.fast'), param('switchyard.step.1.when', 'parameters.fast != true')].join('\n')),
      ...Object.fromEntries(Object.entries(BROKEN).map(([name, { model }]) => [name, model])),
    });
    engine = await startEngine(root);
  });

  after(async () => {
    await engine?.close();
    if (root) await removeRepository(root);
  });

  for (const [name, { reason }] of Object.entries(BROKEN)) {
    test(`${name}: fails to load, naming the file, line, field and step`, () => {
      const entry = engine.repositoryIndex().find((e) => e.name === name);
      assert.equal(entry?.state, 'UNAVAILABLE', name);
      assert.match(entry.reason, reason);
    });
  }

  test('the good ones serve; a pipeline\'s condition compiles to the ensemble parameter a config.pbtxt would carry', () => {
    for (const name of ['add_sub', 'lookup', 'good_yaml', 'good_join']) assert.ok(engine.isModelReady(name), name);
    const config = engine.modelConfig('good_yaml') as { parameters: Record<string, { string_value: string }> };
    assert.deepEqual(config.parameters, { 'switchyard.step.1.when': { string_value: 'VALUE > 15' } });
  });
});

describe('conditional ensembles: buffer reuse', () => {
  test('skipping and running the conditional step in turn allocates nothing after warm-up when answers are given back', async () => {
    const root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      lookup: { config: lookupMember('lookup'), versions: { 1: lookupModel(4) } },
      scored: scored('    when: score.VALUE > 15\n'),
    });
    const engine = await startEngine(root);
    try {
      const row = (name: string): Tensor => ({ name, datatype: 'INT32', shape: [1, 16], raw: new Uint8Array(64) });
      const send = async (index: number): Promise<string[]> => {
        const response = await engine.infer({
          modelName: 'scored',
          inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [1, 1], raw: new Uint8Array(BigInt64Array.of(BigInt(index)).buffer) }, row('A'), row('B')],
        });
        response.lease?.release();
        return response.outputs.map((o) => o.name);
      };
      for (let i = 0; i < 6; i++) await send(i % 4);
      const allocated = engine.bufferPoolStats().allocated;
      for (let i = 0; i < 40; i++) assert.deepEqual(await send(i % 4), i % 4 >= 2 ? ['VALUE', 'SUM'] : ['VALUE']);
      assert.equal(engine.bufferPoolStats().allocated, allocated);
      const steps = engine.modelStatistics('scored').model_stats[0]!.step_stats;
      assert.deepEqual(steps.map((s) => [s.success.count, s.skipped]), [[46, 0], [22, 24]]);
    } finally {
      await engine.close();
      await removeRepository(root);
    }
  });
});
