import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ModelConfigError } from '../../../engine/config/config-error.ts';
import { parseModelConfig } from '../../../engine/config/parse-model-config.ts';

const fixture = (name: string): Promise<string> => readFile(new URL(`../../fixtures/seed-configs/${name}`, import.meta.url), 'utf8');

function parseError(file: string, text: string): ModelConfigError {
  try {
    parseModelConfig(file, text);
  } catch (err) {
    assert.ok(err instanceof ModelConfigError, `expected a ModelConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the config to be rejected');
}

test('the seed articles\' configs parse as they are written', async () => {
  const embedder = parseModelConfig('embedder/config.pbtxt', await fixture('embedder.pbtxt')).config;
  assert.equal(embedder['max_batch_size'], 32);
  assert.deepEqual((embedder['input'] as Array<Record<string, unknown>>)[0]!['dims'], [-1]);
  assert.deepEqual((embedder['dynamic_batching'] as Record<string, unknown>)['preferred_batch_size'], [8, 16]);

  const bert = parseModelConfig('bert_base/config.pbtxt', await fixture('bert_base.pbtxt'));
  const inputs = bert.config['input'] as Array<Record<string, unknown>>;
  assert.deepEqual(inputs.map((i) => i['name']), ['input_ids', 'attention_mask']);
  assert.deepEqual(bert.config['instance_group'], [{ count: 2, kind: 'KIND_GPU', gpus: [], profile: [], secondary_devices: [] }]);
  assert.equal(bert.sourceMap.lineOf('input[1].dims'), 7);
  assert.equal(bert.sourceMap.lineOf('instance_group[0].kind'), 16);
});

test('Triton-only constructs parse: maps, oneofs, angle brackets, enums, comments', () => {
  const text = `
name: "ens"  # trailing comment
platform: "onnxruntime_onnx"
version_policy: { specific: { versions: [1, 3] } }
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
parameters [ { key: "k2" value: { string_value: "v" } } ]
dynamic_batching <
  priority_levels: 2
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 100 }
  priority_queue_policy { key: 1 value: { max_queue_size: 4 } }
>
model_warmup [ { name: "w" batch_size: 1 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]
`;
  const { config } = parseModelConfig('ens/config.pbtxt', text);
  assert.deepEqual(config['version_policy'], { specific: { versions: [1, 3] } });
  assert.deepEqual(config['parameters'], { intra_op_thread_count: { string_value: '2' }, k2: { string_value: 'v' } });
  const batching = config['dynamic_batching'] as Record<string, unknown>;
  assert.equal(batching['priority_levels'], 2);
  assert.deepEqual(batching['default_queue_policy'], { timeout_action: 'DELAY', default_timeout_microseconds: 100 });
});

test('an unknown field names file, line, field and suggests the right name', () => {
  const err = parseError('m/config.pbtxt', 'name: "m"\nmax_batch_sise: 4\n');
  assert.equal(err.problem.line, 2);
  assert.equal(err.problem.field, 'max_batch_sise');
  assert.match(err.message, /^m\/config\.pbtxt:2: max_batch_sise: unknown field in ModelConfig\. Fix: did you mean 'max_batch_size'\?$/);

  const nested = parseError('m/config.pbtxt', 'input [\n  { name: "a" data_type: TYPE_FP32 dimz: [ 4 ] }\n]\n');
  assert.equal(nested.problem.line, 2);
  assert.equal(nested.problem.field, 'input[0].dimz');
  assert.match(nested.message, /unknown field in ModelInput.*did you mean 'dims'/);
});

test('a misspelled enum value is located and corrected', () => {
  const err = parseError('m/config.pbtxt', 'name: "m"\ninput [ { name: "a" dims: [1] } ]\noutput [\n  { name: "b" data_type: TYPE_FP3 dims: [1] }\n]\n');
  assert.equal(err.problem.line, 4);
  assert.equal(err.problem.field, 'output[0].data_type');
  assert.match(err.message, /'TYPE_FP3' is not a valid value\. Fix: did you mean 'TYPE_FP32'\?/);
});

test('syntax errors carry the line of the problem', () => {
  const err = parseError('m/config.pbtxt', 'name: "m"\ninput [\n  { name: "a" dims: [1 }\n]\n');
  assert.equal(err.problem.line, 3);
  assert.match(err.message, /^m\/config\.pbtxt:3: /);
});

test('YAML and JSON configs use the same schema and get the same checks', () => {
  const yaml = parseModelConfig('m/config.yaml', 'name: m\nmax_batch_size: 8\ninput:\n  - name: a\n    data_type: TYPE_FP32\n    dims: [4]\n');
  assert.deepEqual(yaml.config['input'], [{ name: 'a', data_type: 'TYPE_FP32', dims: [4] }]);
  assert.equal(yaml.sourceMap.lineOf('input[0].dims'), 6);

  const json = parseModelConfig('m/config.json', JSON.stringify({
    name: 'm', maxBatchSize: 2, input: [{ name: 'a', data_type: 'TYPE_INT64', dims: ['3'] }],
    dynamic_batching: { preferred_batch_size: [2] },
  }, null, 2));
  assert.equal(json.config['max_batch_size'], 2);
  assert.deepEqual((json.config['input'] as Array<Record<string, unknown>>)[0]!['dims'], [3]);

  const badYaml = parseError('m/config.yaml', 'name: m\ninput:\n  - name: a\n    data_typ: TYPE_FP32\n');
  assert.equal(badYaml.problem.line, 4);
  assert.equal(badYaml.problem.field, 'input[0].data_typ');
  assert.match(badYaml.message, /did you mean 'data_type'/);

  const badEnum = parseError('m/config.json', '{\n  "name": "m",\n  "instance_group": [{ "kind": "KIND_GPUU" }]\n}');
  assert.equal(badEnum.problem.line, 3);
  assert.match(badEnum.message, /did you mean 'KIND_GPU'/);

  const broken = parseError('m/config.json', '{\n  "name": "m",,\n}');
  assert.equal(broken.problem.line, 2);
  assert.match(broken.message, /is not valid JSON/);
});

test('YAML and JSON scalars are checked against their field types, as config.pbtxt is, never coerced', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['m/config.yaml', 'name: m\nmax_batch_size: abc\n', 'max_batch_size', /is 'abc', not a whole number/],
    ['m/config.yaml', 'name: m\nmax_batch_size: 10000000000\n', 'max_batch_size', /is 10000000000, outside the int32 range/],
    ['m/config.yaml', 'name: m\nmax_batch_size:\n', 'max_batch_size', /is null/],
    ['m/config.yaml', 'name: m\ninput:\n  - name: a\n    dims: [ 1.5 ]\n', 'input[0].dims[0]', /is 1\.5, not a whole number/],
    ['m/config.json', '{\n  "name": "m",\n  "dynamic_batching": { "max_queue_delay_microseconds": 1e30 }\n}',
      'dynamic_batching.max_queue_delay_microseconds', /is 1e\+30, outside the uint64 range/],
    ['m/config.json', '{\n  "name": "m",\n  "model_warmup": [{ "name": "w", "batch_size": 1, "inputs": { "X": { "zero_data": "yes" } } }]\n}',
      'model_warmup[0].inputs.X.zero_data', /is 'yes', not true or false/],
    ['m/config.json', '{\n  "name": ["m"]\n}', 'name', /is a list, not a string/],
  ];
  for (const [file, text, field, problem] of cases) {
    const err = parseError(file, text);
    assert.equal(err.problem.field, field, text);
    assert.match(err.problem.problem, problem, text);
    assert.ok(err.problem.line !== undefined, `${text}: the error has a line`);
  }
  // In range, integers written as text (the protobuf JSON mapping) and the int32 edge pass.
  assert.equal(parseModelConfig('m/config.json', '{"max_batch_size": 2147483647}').config['max_batch_size'], 2147483647);
  assert.equal(parseModelConfig('m/config.json', '{"max_batch_size": "16"}').config['max_batch_size'], 16);
  assert.equal(parseModelConfig('m/config.yaml', 'max_batch_size: -2147483648\n').config['max_batch_size'], -2147483648);
});

test('config.pbtxt names the field of a malformed or out-of-range number, as YAML and JSON do', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['max_batch_size: 10000000000', 'max_batch_size', /outside the int32 range \(Integer out of range \(10000000000\)\)/],
    ['max_batch_size: 1e308', 'max_batch_size', /not a whole number \(Expected integer, got: 1e308\)/],
    // Triton's protobuf parser stops at the minus sign of a negative unsigned value.
    ['dynamic_batching { max_queue_delay_microseconds: -1 }', 'dynamic_batching.max_queue_delay_microseconds', /not a whole number of 0 or more \(Expected integer, got: -\)/],
  ];
  for (const [text, field, problem] of cases) {
    const err = parseError('m/config.pbtxt', `name: "m"\n${text}\n`);
    assert.equal(err.problem.field, field, text);
    assert.equal(err.problem.line, 2, text);
    assert.match(err.problem.problem, problem, text);
  }
});
