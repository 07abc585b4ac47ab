/**
 * sequence_batching compiles once into a readonly SequenceBatchingSpec:
 * defaults, controls, implicit state and its initial value, strategies. Its
 * control and state tensors are not request inputs or client outputs, and
 * every mistake fails the load naming file, line, field and a fix.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileModelConfig, readModelSettings } from '../../../engine/config/compile-model-config.ts';
import type { SequenceBatchingSpec } from '../../../engine/config/compiled-model-config.ts';
import { ModelConfigError } from '../../../engine/config/config-error.ts';
import type { SignatureTensor } from '../../../engine/config/model-signature.ts';
import { parseModelConfig } from '../../../engine/config/parse-model-config.ts';
import { accumulatorSignature, compileSequenceConfig, CONTROLS_TEXT, sequenceConfig } from './sequence-harness.ts';
import { defaultBackends } from '../../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

const specOf = (text: string): SequenceBatchingSpec => {
  const config = compileSequenceConfig(text);
  assert.equal(config.scheduling.kind, 'sequence');
  return (config.scheduling as { batching: SequenceBatchingSpec }).batching;
};

test('defaults: 1 s idle, the direct strategy, one slot per batch row; controls and state compiled value by value', () => {
  const config = compileSequenceConfig(sequenceConfig(4));
  const spec = specOf(sequenceConfig(4));
  assert.equal(spec.maxSequenceIdleMicroseconds, 1_000_000);
  assert.deepEqual(spec.strategy, { kind: 'direct', maxQueueDelayMicroseconds: 0, minimumSlotUtilization: 0 });
  assert.equal(spec.slotsPerInstance, 4);
  assert.deepEqual(spec.controls, [
    { kind: 'START', inputName: 'START', datatype: 'INT32', falseValue: 0, trueValue: 1 },
    { kind: 'END', inputName: 'END', datatype: 'INT32', falseValue: 0, trueValue: 1 },
    { kind: 'READY', inputName: 'READY', datatype: 'INT32', falseValue: 0, trueValue: 1 },
    { kind: 'CORRID', inputName: 'CORRID', datatype: 'UINT64' },
  ]);
  assert.equal(spec.states.length, 1);
  const state = spec.states[0]!;
  assert.deepEqual({ ...state, initialData: [...state.initialData] },
    { inputName: 'STATE_IN', outputName: 'STATE_OUT', datatype: 'FP32', dims: [1], initialDims: [1], initialData: [0, 0, 0, 0] });
  // Control and state tensors are the server's: requests never send them, clients never see STATE_OUT.
  assert.deepEqual(config.inputs.map((t) => t.name), ['INPUT']);
  assert.deepEqual(config.outputs.map((t) => t.name), ['OUTPUT', 'START_OUT', 'END_OUT', 'READY_OUT', 'CORRID_OUT']);
  const completed = config.json['sequence_batching'] as Record<string, unknown>;
  assert.equal(completed['max_sequence_idle_microseconds'], 1_000_000);
  assert.deepEqual(completed['direct'], { max_queue_delay_microseconds: 0, minimum_slot_utilization: 0 });
  assert.deepEqual((config.json['input'] as Array<{ name: string }>).map((t) => t.name), ['INPUT']);
  assert.ok(Object.isFrozen(spec) && Object.isFrozen(spec.controls[0]) && Object.isFrozen(state));
});

test('max_batch_size 0 gives one slot per instance and unbatched controls; oldest takes max_candidate_sequences', () => {
  assert.equal(specOf(sequenceConfig(0)).slotsPerInstance, 1);
  const oldest = specOf(sequenceConfig(8, 'oldest { max_candidate_sequences: 5 preferred_batch_size: [ 4, 2 ] max_queue_delay_microseconds: 300 preserve_ordering: true }',
    'max_sequence_idle_microseconds: 7000'));
  assert.equal(oldest.maxSequenceIdleMicroseconds, 7000);
  assert.equal(oldest.slotsPerInstance, 5);
  assert.deepEqual(oldest.strategy, { kind: 'oldest', maxCandidateSequences: 5, preferredBatchSizes: [2, 4], maxQueueDelayMicroseconds: 300, preserveOrdering: true });
  assert.equal(specOf(sequenceConfig(8, 'oldest { }')).slotsPerInstance, 8, 'max_candidate_sequences defaults to max_batch_size');
  const direct = specOf(sequenceConfig(8, 'direct { max_queue_delay_microseconds: 2500 minimum_slot_utilization: 0.5 }'));
  assert.deepEqual(direct.strategy, { kind: 'direct', maxQueueDelayMicroseconds: 2500, minimumSlotUtilization: 0.5 });
});

test('FP32 and BOOL controls, and string correlation IDs, take the model\'s types', () => {
  const signature = {
    file: 'm/1/model.onnx',
    inputs: [
      { name: 'INPUT', datatype: 'FP32', modelType: 'float', shape: [-1, 1] },
      { name: 'S', datatype: 'FP32', modelType: 'float', shape: [-1, 1] },
      { name: 'R', datatype: 'BOOL', modelType: 'bool', shape: [-1, 1] },
      { name: 'C', datatype: 'BYTES', modelType: 'string', shape: [-1, 1] },
    ] as SignatureTensor[],
    outputs: [{ name: 'OUTPUT', datatype: 'FP32', modelType: 'float', shape: [-1, 1] }] as SignatureTensor[],
  };
  const text = `max_batch_size: 2
sequence_batching {
  control_input [
    { name: "S" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ -1.5, 2.5 ] } ] },
    { name: "R" control [ { kind: CONTROL_SEQUENCE_READY bool_false_true: [ true, false ] } ] },
    { name: "C" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_STRING } ] }
  ]
}`;
  const parsed = parseModelConfig('/repo/m/config.pbtxt', text);
  const config = compileModelConfig('m', '/repo/m', parsed, readModelSettings('m', '/repo/m', parsed, BACKENDS), signature);
  assert.equal(config.scheduling.kind, 'sequence');
  assert.deepEqual((config.scheduling as { batching: SequenceBatchingSpec }).batching.controls, [
    { kind: 'START', inputName: 'S', datatype: 'FP32', falseValue: -1.5, trueValue: 2.5 },
    { kind: 'READY', inputName: 'R', datatype: 'BOOL', falseValue: 1, trueValue: 0 },
    { kind: 'CORRID', inputName: 'C', datatype: 'BYTES' },
  ]);
});

test('initial_state: zero_data with its own dims, or the bytes of a data_file in the model\'s initial_state folder', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-seq-'));
  try {
    await mkdir(join(dir, 'initial_state'));
    await writeFile(join(dir, 'initial_state', 'start.bin'), Buffer.from(Float32Array.of(7.5, 99).buffer));
    const withInitial = (initial: string, dims = '[ -1 ]'): string => `max_batch_size: 4
sequence_batching {
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: ${dims}
            initial_state { data_type: TYPE_FP32 dims: [ 1 ] name: "init" ${initial} } } ]
}`;
    const compile = (text: string) => {
      const parsed = parseModelConfig(`${dir}/config.pbtxt`, text);
      const signature = accumulatorSignature(true);
      const trimmed = { ...signature, inputs: signature.inputs.slice(0, 2), outputs: signature.outputs.slice(0, 2) };
      const config = compileModelConfig('m', dir, parsed, readModelSettings('m', dir, parsed, BACKENDS), trimmed);
      return (config.scheduling as { batching: SequenceBatchingSpec }).batching.states[0]!;
    };
    const zero = compile(withInitial('zero_data: true'));
    assert.deepEqual(zero.dims, [-1]);
    assert.deepEqual(zero.initialDims, [1]);
    assert.deepEqual([...zero.initialData], [0, 0, 0, 0]);
    const fromFile = compile(withInitial('data_file: "start.bin"'));
    assert.deepEqual([...new Float32Array(fromFile.initialData.slice().buffer)], [7.5], 'the first dims-worth of bytes');
    assert.throws(() => compile(withInitial('data_file: "missing.bin"')),
      /config\.pbtxt:4: sequence_batching\.state\[0\]\.initial_state\.data_file: .*initial_state\/missing\.bin does not exist in \S+\. Fix: put the state's raw little-endian bytes in a file inside the model's initial_state folder/);
    await writeFile(join(dir, 'initial_state', 'short.bin'), Buffer.from([1, 2]));
    assert.throws(() => compile(withInitial('data_file: "short.bin"')), /short\.bin has 2 bytes, but an initial state \[1\] of TYPE_FP32 takes 4/);
    assert.throws(() => compile(withInitial('zero_data: true', '[ 3 ]')), /dims: \[3\] does not match m\/1\/model\.onnx, which has 'STATE_IN' as \[-1,1\]/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const [title, text, pattern] of [
  ['a control on an input the model does not have',
    'max_batch_size: 4\nsequence_batching {\n  control_input [ { name: "BEGIN" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]\n}',
    /config\.pbtxt:3: sequence_batching\.control_input\[0\]\.name: 'BEGIN' is not an input of m\/1\/model\.onnx\. Fix: use one of the model's inputs: 'INPUT', 'STATE_IN', 'START'/],
  ['control values of another type than the model input',
    'max_batch_size: 4\nsequence_batching {\n  control_input [ { name: "START"\n    control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] } ]\n}',
    /config\.pbtxt:4: sequence_batching\.control_input\[0\]\.control\[0\]\.fp32_false_true: sends 'START' as TYPE_FP32, but m\/1\/model\.onnx declares it TYPE_INT32/],
  ['a control with no false/true values',
    'max_batch_size: 4\nsequence_batching {\n  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START } ] } ]\n}',
    /CONTROL_SEQUENCE_START gives no false\/true values\. Fix: set exactly one of int32_false_true, fp32_false_true or bool_false_true/],
  ['a false/true pair of three values',
    'max_batch_size: 4\nsequence_batching {\n  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1, 2 ] } ] } ]\n}',
    /int32_false_true: has 3 entries\. Fix: give exactly two/],
  ['one kind on two inputs',
    'max_batch_size: 4\nsequence_batching {\n  control_input [\n    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },\n    { name: "END" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] }\n  ]\n}',
    /config\.pbtxt:5: sequence_batching\.control_input\[1\]\.control\[0\]\.kind: CONTROL_SEQUENCE_START is already carried by input 'START'/],
  ['a CORRID type the model does not take',
    'max_batch_size: 4\nsequence_batching {\n  control_input [ { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_INT32 } ] } ]\n}',
    /control\[0\]\.data_type: sends 'CORRID' as TYPE_INT32, but m\/1\/model\.onnx declares it TYPE_UINT64\. Fix: set data_type: TYPE_UINT64/],
  ['a CORRID without data_type',
    'max_batch_size: 4\nsequence_batching {\n  control_input [ { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID } ] } ]\n}',
    /control\[0\]\.data_type: is missing\. Fix: set data_type to one of TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32, TYPE_STRING/],
  ['a control input shaped for the wrong batching',
    'max_batch_size: 0\nsequence_batching {\n  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]\n}',
    /control_input\[0\]\.name: 'START' is \[-1,1\] in m\/1\/model\.onnx, but a control tensor holds one value per request, shaped \[1\]\. Fix: give the model input 'START' the shape \[1\]/],
  ['a state on an output the model does not have',
    'max_batch_size: 4\nsequence_batching {\n  state [ { input_name: "STATE_IN" output_name: "NEXT" data_type: TYPE_FP32 dims: [ 1 ] } ]\n}',
    /config\.pbtxt:3: sequence_batching\.state\[0\]\.output_name: 'NEXT' is not an output of m\/1\/model\.onnx/],
  ['a state of another type than the model',
    'max_batch_size: 4\nsequence_batching {\n  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n}',
    /state\[0\]\.data_type: is TYPE_INT32 but m\/1\/model\.onnx declares input 'STATE_IN' as TYPE_FP32\. Fix: set data_type: TYPE_FP32/],
  ['a state input also listed as an input',
    `max_batch_size: 4\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "STATE_IN" data_type: TYPE_FP32 dims: [ 1 ] } ]\nsequence_batching {${CONTROLS_TEXT}\n}`,
    /config\.pbtxt:2: input\[1\]\.name: 'STATE_IN' is a sequence_batching control or state input, so the server sets it for every request and clients never send it\. Fix: remove 'STATE_IN' from input/],
  ['a state output also listed as an output',
    `max_batch_size: 4\noutput [ { name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]\nsequence_batching {${CONTROLS_TEXT}\n}`,
    /output\[0\]\.name: 'STATE_OUT' is a sequence_batching state output, so the server keeps it for the sequence's next request and clients never see it/],
  ['initial_state dims that differ from the state',
    'max_batch_size: 4\nsequence_batching {\n  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ]\n    initial_state { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true name: "z" } } ]\n}',
    /config\.pbtxt:4: sequence_batching\.state\[0\]\.initial_state\.dims: \[2\] does not match the state's dims \[1\]\. Fix: set dims: \[1\]/],
  ['initial_state without a name',
    'max_batch_size: 4\nsequence_batching {\n  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ]\n    initial_state { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } } ]\n}',
    /initial_state\.name: is missing\. Fix: give the initial state a name/],
  ['iterative sequences', 'max_batch_size: 4\nsequence_batching {\n  iterative_sequence: true\n}',
    /config\.pbtxt:3: sequence_batching\.iterative_sequence: is true, but iterative sequences .* are not supported/],
  ['a slot utilization above 1', 'max_batch_size: 4\nsequence_batching {\n  direct { minimum_slot_utilization: 1.5 }\n}',
    /config\.pbtxt:3: sequence_batching\.direct\.minimum_slot_utilization: is 1\.5\. Fix: use a share of the slots between 0 and 1/],
  ['a preferred size above max_batch_size', 'max_batch_size: 4\nsequence_batching {\n  oldest { preferred_batch_size: [ 8 ] }\n}',
    /sequence_batching\.oldest\.preferred_batch_size: 8 is outside 1\.\.max_batch_size \(4\)/],
] as const) {
  test(`refused at load: ${title}`, () => {
    assert.throws(() => {
      // Controls and states a config leaves out stay ordinary request inputs and outputs.
      const parsed = parseModelConfig('/repo/m/config.pbtxt', text);
      const signature = text.startsWith('max_batch_size: 0')
        // An unbatched model whose START still has a batch dimension.
        ? { ...accumulatorSignature(false), inputs: [accumulatorSignature(false).inputs[0]!, accumulatorSignature(true).inputs[2]!] }
        : accumulatorSignature(true);
      compileModelConfig('m', '/repo/m', parsed, readModelSettings('m', '/repo/m', parsed, BACKENDS), signature);
    }, (err: Error) => {
      assert.ok(err instanceof ModelConfigError, err.message);
      assert.match(err.message, pattern);
      return true;
    });
  });
}

test('a config without sequence_batching keeps its state-like tensors as ordinary inputs and outputs', () => {
  const parsed = parseModelConfig('/repo/m/config.pbtxt', 'max_batch_size: 4');
  const config = compileModelConfig('m', '/repo/m', parsed, readModelSettings('m', '/repo/m', parsed, BACKENDS), accumulatorSignature(true));
  assert.deepEqual(config.inputs.map((t) => t.name), ['INPUT', 'STATE_IN', 'START', 'END', 'READY', 'CORRID']);
  assert.equal(config.scheduling.kind, 'dynamic');
});
