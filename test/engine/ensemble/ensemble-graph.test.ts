/**
 * Load-time validation of ensembles against real ONNX members: every broken
 * ensemble in one repository fails to load with a reason that names the
 * file and line, the ensemble, the step and the tensor, while the members
 * and the good ensembles serve. Also: a Triton ensemble and a pipeline.yaml
 * of the same graph compile to the same plan.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel, lookupModel } from '../../../generator/models.ts';
import { compileModelConfig, readModelSettings } from '../../../engine/config/compile-model-config.ts';
import type { CompiledModelConfig } from '../../../engine/config/compiled-model-config.ts';
import { parseModelConfig } from '../../../engine/config/parse-model-config.ts';
import { compileEnsembleConfig } from '../../../engine/ensemble/compile-ensemble-config.ts';
import { describePlan } from '../../../engine/ensemble/ensemble-plan.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine, type FixtureModel } from '../../helpers/fixture-repository.ts';
import { defaultBackends } from '../../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

const IO = (inputs: string, outputs: string): string => `input [ ${inputs} ]\noutput [ ${outputs} ]\n`;
const INT16 = (name: string): string => `{ name: "${name}" data_type: TYPE_INT32 dims: [ 16 ] }`;

/** A Triton ensemble config over add_sub-like members. `steps` are the step entries, without brackets. */
function ensemble(steps: string, io = IO(`${INT16('A')}, ${INT16('B')}`, INT16('OUT')), maxBatchSize = 8): string {
  return `platform: "ensemble"\nmax_batch_size: ${maxBatchSize}\n${io}ensemble_scheduling {\n  step [\n${steps}\n  ]\n}\n`;
}

function step(model: string, inputs: Record<string, string>, outputs: Record<string, string>, version = -1): string {
  const maps = [
    ...Object.entries(inputs).map(([k, v]) => `input_map { key: "${k}" value: "${v}" }`),
    ...Object.entries(outputs).map(([k, v]) => `output_map { key: "${k}" value: "${v}" }`),
  ];
  return `    { model_name: "${model}" model_version: ${version} ${maps.join(' ')} }`;
}

const raw = (config: string): FixtureModel => ({ config, versions: { 1: null } });
const ens = (steps: string, io?: string): FixtureModel => raw(ensemble(steps, io));
const pipeline = (text: string): FixtureModel => ({ config: text, configFile: 'pipeline.yaml', versions: {} });

const MEMBERS: Record<string, FixtureModel> = {
  add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
  add_sub_fp32: { config: `name: "add_sub_fp32"\nbackend: "onnxruntime"\nmax_batch_size: 8\n`, versions: { 1: addSubModel('FP32', 16) } },
  add_sub_small: { config: `name: "add_sub_small"\nbackend: "onnxruntime"\nmax_batch_size: 2\n`, versions: { 1: addSubModel('INT32', 16) } },
  lookup: { config: `name: "lookup"\nbackend: "onnxruntime"\nmax_batch_size: 8\n`, versions: { 1: lookupModel() } },
  broken_member: { config: `name: "broken_member"\nbackend: "onnxruntime"\nmax_batch_size: 8\n`, versions: { 1: new Uint8Array([1, 2, 3]) } },
};

const first = step('add_sub', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'sum', OUTPUT1: 'diff' });

const BROKEN: Record<string, { model: FixtureModel; reason: RegExp }> = {
  cycle: {
    model: ens([
      step('add_sub', { INPUT0: 'A', INPUT1: 'loop_b' }, { OUTPUT0: 'loop_a', OUTPUT1: 'OUT' }),
      step('add_sub', { INPUT0: 'loop_a', INPUT1: 'B' }, { OUTPUT0: 'loop_b' }),
    ].join(',\n')),
    reason: /config\.pbtxt:\d+: ensemble_scheduling\.step\[0\]: ensemble 'cycle' has a cycle: step 1 \('add_sub'\) writes 'loop_a', read by step 2 \('add_sub'\); step 2 \('add_sub'\) writes 'loop_b', read by step 1/,
  },
  never_written: {
    model: ens([first, step('add_sub', { INPUT0: 'sum', INPUT1: 'dif' }, { OUTPUT0: 'OUT' })].join(',\n')),
    reason: /config\.pbtxt:\d+: ensemble_scheduling\.step\[1\]\.input_map\["INPUT1"\]: ensemble 'never_written' step 2 \('add_sub'\) reads tensor 'dif' \(into input 'INPUT1'\), but no step writes it.*Fix: did you mean 'diff'\?/,
  },
  written_twice: {
    model: ens([first, step('add_sub', { INPUT0: 'sum', INPUT1: 'diff' }, { OUTPUT0: 'OUT', OUTPUT1: 'sum' })].join(',\n')),
    reason: /step 2 \('add_sub'\) writes tensor 'sum' \(from output 'OUTPUT1'\), which step 1 \('add_sub'\) writes too/,
  },
  unused_input: {
    model: ens(step('add_sub', { INPUT0: 'A', INPUT1: 'A' }, { OUTPUT0: 'OUT' })),
    reason: /config\.pbtxt:\d+: input\[1\]: ensemble 'unused_input' input 'B' is not read by any step/,
  },
  unreachable_output: {
    model: ens(first, IO(`${INT16('A')}, ${INT16('B')}`, `${INT16('sum')}, ${INT16('OUT')}`)),
    reason: /output\[1\]: ensemble 'unreachable_output' output 'OUT' cannot be reached: no step writes a tensor of that name/,
  },
  datatype_mismatch: {
    model: ens([first, step('add_sub_fp32', { INPUT0: 'sum', INPUT1: 'diff' }, { OUTPUT0: 'OUT' })].join(',\n'),
      IO(`${INT16('A')}, ${INT16('B')}`, '{ name: "OUT" data_type: TYPE_FP32 dims: [ 16 ] }')),
    reason: /input_map\["INPUT0"\]: ensemble 'datatype_mismatch': tensor 'sum' is INT32 as output 'OUTPUT0' of step 1 \('add_sub'\), but input 'INPUT0' of step 2 \('add_sub_fp32'\) takes FP32/,
  },
  shape_mismatch: {
    model: ens(step('add_sub', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'OUT' }),
      IO(`{ name: "A" data_type: TYPE_INT32 dims: [ 8 ] }, ${INT16('B')}`, INT16('OUT'))),
    reason: /ensemble 'shape_mismatch': tensor 'A' is \[-1,8\] as ensemble input 'A', but input 'INPUT0' of step 1 \('add_sub'\) takes \[-1,16\]/,
  },
  missing_model: {
    model: ens(step('add_subb', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'OUT' })),
    reason: /ensemble_scheduling\.step\[0\]: ensemble 'missing_model' step 1 \('add_subb'\) cannot use model 'add_subb': there is no model 'add_subb'/,
  },
  missing_version: {
    model: ens(step('add_sub', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'OUT' }, 3)),
    reason: /cannot use model 'add_sub' version 3: it has no version 3/,
  },
  larger_batch: {
    model: ens(step('add_sub_small', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'OUT' })),
    reason: /ensemble 'larger_batch' has max_batch_size 8, larger than the max_batch_size 2 of step 1 \('add_sub_small'\).*Fix: set the ensemble max_batch_size to at most 2/,
  },
  failed_member: {
    model: ens(step('broken_member', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'OUT' })),
    reason: /step 1 \('broken_member'\) cannot use model 'broken_member': it has no ready version \(version 1: ONNX Runtime could not open/,
  },
  unknown_member_output: {
    model: ens(step('add_sub', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT: 'OUT' })),
    reason: /maps output 'OUTPUT', which model 'add_sub' does not have.*did you mean 'OUTPUT0'\?/,
  },
  unfed_member_input: {
    model: ens(step('add_sub', { INPUT0: 'A' }, { OUTPUT0: 'OUT' }), IO(INT16('A'), INT16('OUT'))),
    reason: /step 1 \('add_sub'\) does not feed input 'INPUT1' of model 'add_sub'/,
  },
  member_only_section: {
    model: raw(ensemble(first.replace('"sum"', '"OUT"')).replace('max_batch_size: 8', 'max_batch_size: 8\ninstance_group [ { count: 2 } ]')),
    reason: /instance_group: is set on ensemble 'member_only_section', which runs no model of its own/,
  },
  yaml_cycle: {
    model: pipeline(`max_batch_size: 8
inputs: [A, B]
outputs: { OUT: second.OUTPUT0 }
steps:
  first:
    model: add_sub
    inputs: { INPUT0: A, INPUT1: second.OUTPUT1 }
  second:
    model: add_sub
    inputs: { INPUT0: first.OUTPUT0, INPUT1: B }
`),
    reason: /pipeline\.yaml:\d+: steps\.first: ensemble 'yaml_cycle' has a cycle: step 'first' \(model 'add_sub'\) writes 'first\.OUTPUT0', read by step 'second' \(model 'add_sub'\); step 'second' \(model 'add_sub'\) writes 'second\.OUTPUT1', read by step 'first'/,
  },
  yaml_bad_reference: {
    model: pipeline(`inputs: [A, B]
outputs: { OUT: frist.OUTPUT0 }
steps:
  first: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
`),
    reason: /pipeline\.yaml:2: outputs\.OUT: names step 'frist', which the pipeline does not have\. Fix: did you mean 'first'\?/,
  },
  yaml_wrong_member_input: {
    model: pipeline(`max_batch_size: 4
inputs: [A, B]
outputs: { OUT: first.OUTPUT0 }
steps:
  first:
    model: add_sub
    inputs:
      INPUT0: A
      INPUT2: B
`),
    reason: /pipeline\.yaml:9: steps\.first\.inputs\.INPUT2: ensemble 'yaml_wrong_member_input' step 'first' \(model 'add_sub'\) maps input 'INPUT2', which model 'add_sub' does not have/,
  },
  yaml_unknown_key: {
    model: pipeline(`inputs: [A]
outputs: { OUT: first.OUTPUT0 }
step:
  first: { model: add_sub, inputs: { INPUT0: A, INPUT1: A } }
`),
    reason: /pipeline\.yaml:3: step: is not a field of a pipeline\. Fix: did you mean 'steps'\?/,
  },
  both_files: {
    model: { config: ensemble(first), versions: { 1: null } },
    reason: /has both config\.pbtxt and pipeline\.yaml/,
  },
  calls_itself_a: { model: ens(step('calls_itself_b', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'OUT' })), reason: /ensembles call each other in a cycle \(calls_itself_a -> calls_itself_b\)/ },
  calls_itself_b: { model: ens(step('calls_itself_a', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'OUT' })), reason: /ensembles call each other in a cycle/ },
};

const GOOD_TRITON = ensemble([
  step('add_sub', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'first.OUTPUT0', OUTPUT1: 'first.OUTPUT1' }),
  step('add_sub', { INPUT0: 'first.OUTPUT0', INPUT1: 'first.OUTPUT1' }, { OUTPUT0: 'TWICE_A', OUTPUT1: 'TWICE_B' }),
].join(',\n'), IO(`${INT16('A')}, ${INT16('B')}`, `${INT16('TWICE_A')}, ${INT16('TWICE_B')}`));

const GOOD_YAML = `max_batch_size: 8
inputs:
  A: { datatype: INT32, dims: [16] }
  B: {}
outputs:
  TWICE_A: second.OUTPUT0
  TWICE_B: { from: second.OUTPUT1, datatype: INT32, dims: [16] }
steps:
  first:
    model: add_sub
    inputs: { INPUT0: A, INPUT1: B }
  second:
    model: add_sub
    inputs: { INPUT0: first.OUTPUT0, INPUT1: first.OUTPUT1 }
`;

describe('ensemble load-time validation', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    const models: Record<string, FixtureModel> = { ...MEMBERS, good: raw(GOOD_TRITON), good_yaml: pipeline(GOOD_YAML) };
    for (const [name, c] of Object.entries(BROKEN)) models[name] = c.model;
    root = await makeRepository(models);
    // The second config file of `both_files`.
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${root}/both_files/pipeline.yaml`, GOOD_YAML);
    engine = await startEngine(root);
  });

  after(async () => {
    await engine.close();
    await removeRepository(root);
  });

  for (const [name, { reason }] of Object.entries(BROKEN)) {
    test(`${name}: fails to load with a reason naming where and what`, () => {
      const failure = engine.repositoryIndex().find((e) => e.name === name);
      assert.ok(failure, `${name} is listed`);
      assert.equal(failure.state, 'UNAVAILABLE');
      assert.match(failure.reason, reason);
    });
  }

  test('the members and the good ensembles serve beside the broken ones', () => {
    for (const name of ['add_sub', 'add_sub_fp32', 'add_sub_small', 'lookup', 'good', 'good_yaml']) {
      assert.ok(engine.isModelReady(name), name);
    }
    assert.equal(engine.isReady(), false, 'strict readiness: some models failed');
  });

  test('an ensemble\'s config is completed from its members and printed in Triton\'s shape', () => {
    const config = engine.modelConfig('good_yaml') as Record<string, unknown>;
    assert.equal(config['platform'], 'ensemble');
    assert.deepEqual((config['input'] as Array<Record<string, unknown>>).map((t) => [t['name'], t['data_type'], t['dims']]),
      [['A', 'TYPE_INT32', [16]], ['B', 'TYPE_INT32', [16]]]);
    const steps = (config['ensemble_scheduling'] as { step: Array<Record<string, unknown>> }).step;
    assert.deepEqual(steps.map((s) => [s['model_name'], s['input_map'], s['output_map']]), [
      ['add_sub', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'first.OUTPUT0', OUTPUT1: 'first.OUTPUT1' }],
      ['add_sub', { INPUT0: 'first.OUTPUT0', INPUT1: 'first.OUTPUT1' }, { OUTPUT0: 'TWICE_A', OUTPUT1: 'TWICE_B' }],
    ]);
    const metadata = engine.modelMetadata('good');
    assert.equal(metadata.platform, 'ensemble');
    assert.deepEqual(metadata.outputs.map((t) => [t.name, t.datatype, t.shape]), [['TWICE_A', 'INT32', [-1, 16]], ['TWICE_B', 'INT32', [-1, 16]]]);
  });
});

describe('Triton ensembles and pipeline files', () => {
  /** add_sub compiled against its real signature (INT32 [batch, 16] in and out). */
  function addSubMember(): CompiledModelConfig {
    const dir = '/repo/add_sub';
    const parsed = parseModelConfig(`${dir}/config.pbtxt`, addSubConfig('add_sub'));
    const shape = [-1, 16];
    const tensor = (name: string): { name: string; datatype: 'INT32'; modelType: string; shape: number[] } =>
      ({ name, datatype: 'INT32', modelType: 'int32', shape });
    return compileModelConfig('add_sub', dir, parsed, readModelSettings('add_sub', dir, parsed, BACKENDS), {
      file: 'add_sub/1/model.onnx', inputs: [tensor('INPUT0'), tensor('INPUT1')], outputs: [tensor('OUTPUT0'), tensor('OUTPUT1')],
    });
  }

  function compile(name: string, file: string, text: string): ReturnType<typeof compileEnsembleConfig> {
    const dir = `/repo/${name}`;
    const parsed = parseModelConfig(`${dir}/${file}`, text);
    const member = addSubMember();
    return compileEnsembleConfig(name, dir, parsed, readModelSettings(name, dir, parsed, BACKENDS), (model) =>
      model === 'add_sub' ? { config: member } : { problem: 'not here' });
  }

  test('compile to the same plan', () => {
    const triton = compile('chain', 'config.pbtxt', GOOD_TRITON).config;
    const yaml = compile('chain', 'pipeline.yaml', GOOD_YAML).config;
    assert.equal(triton.scheduling.kind, 'ensemble');
    assert.equal(yaml.scheduling.kind, 'ensemble');
    if (triton.scheduling.kind !== 'ensemble' || yaml.scheduling.kind !== 'ensemble') return;
    assert.deepEqual(describePlan(yaml.scheduling.plan), describePlan(triton.scheduling.plan));
    assert.deepEqual(yaml.json['ensemble_scheduling'], triton.json['ensemble_scheduling']);
    assert.deepEqual(yaml.inputs, triton.inputs);
    assert.deepEqual(yaml.outputs, triton.outputs);
    assert.deepEqual(yaml.scheduling.plan.steps.map((s) => s.label), ["step 'first' (model 'add_sub')", "step 'second' (model 'add_sub')"]);
    assert.deepEqual(triton.scheduling.plan.steps.map((s) => s.label), ["step 1 ('add_sub')", "step 2 ('add_sub')"]);
  });

  test('a step whose outputs nothing reads loads with a warning, and steps are ordered by their reads', () => {
    const text = ensemble([
      step('add_sub', { INPUT0: 'sum', INPUT1: 'diff' }, { OUTPUT0: 'OUT' }),
      first,
      step('add_sub', { INPUT0: 'A', INPUT1: 'B' }, { OUTPUT0: 'unread' }),
    ].join(',\n'));
    const compiled = compile('e', 'config.pbtxt', text);
    assert.match(compiled.warnings.join('\n'), /step 3 \('add_sub'\): nothing reads its outputs/);
    const plan = compiled.config.scheduling.kind === 'ensemble' ? compiled.config.scheduling.plan : undefined;
    assert.ok(plan);
    assert.ok(plan.order.indexOf(1) < plan.order.indexOf(0), `step 2 runs before step 1: ${plan.order.join(',')}`);
  });
});
