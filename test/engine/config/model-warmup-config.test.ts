/**
 * model_warmup compiles into samples whose data is made at load time
 * (zeros, random bytes, a file in <model>/warmup/), and its mistakes fail
 * the load naming file, line and field. response_cache compiles to a flag,
 * refused for sequence and decoupled models as Triton refuses it.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { compileModelConfig, readModelSettings } from '../../../engine/config/compile-model-config.ts';
import type { CompiledModelConfig } from '../../../engine/config/compiled-model-config.ts';
import { ModelConfigError } from '../../../engine/config/config-error.ts';
import { parseModelConfig } from '../../../engine/config/parse-model-config.ts';
import { compileSequenceConfig, sequenceConfig } from '../sequence/sequence-harness.ts';
import { compileTestConfig } from '../scheduling/scripted-instance.ts';
import { defaultBackends } from '../../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-warmup-'));
  await mkdir(join(dir, 'warmup'));
  await writeFile(join(dir, 'warmup', 'x.bin'), Buffer.from(Int32Array.of(1, 2, 3, 4, 99).buffer));
  await writeFile(join(dir, 'warmup', 'short.bin'), Buffer.from(Int32Array.of(1, 2).buffer));
  const strings = Buffer.concat(['ab', '', 'xyz'].flatMap((s) => {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(Buffer.byteLength(s));
    return [length, Buffer.from(s)];
  }));
  await writeFile(join(dir, 'warmup', 'strings.bin'), strings);
  await writeFile(join(dir, 'warmup', 'cut.bin'), strings.subarray(0, strings.byteLength - 1));
  await writeFile(join(dir, 'outside.bin'), Buffer.alloc(16));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A model with X INT32 [-1, 4] and T BYTES [-1, -1] in, Y INT32 [-1, 4] out, in the temporary model folder. */
function compile(text: string): CompiledModelConfig {
  const parsed = parseModelConfig(join(dir, 'config.pbtxt'), text);
  const settings = readModelSettings('m', dir, parsed, BACKENDS);
  return compileModelConfig('m', dir, parsed, settings, {
    file: 'm/1/model.onnx',
    inputs: [
      { name: 'X', datatype: 'INT32', modelType: 'int32', shape: [-1, 4] },
      { name: 'T', datatype: 'BYTES', modelType: 'string', shape: [-1, -1] },
    ],
    outputs: [{ name: 'Y', datatype: 'INT32', modelType: 'int32', shape: [-1, 4] }],
  });
}

const input = (key: string, value: string): string => `{ key: "${key}" value: { ${value} } }`;
const X_ZERO = input('X', 'data_type: TYPE_INT32 dims: [ 4 ] zero_data: true');
const T_ZERO = input('T', 'data_type: TYPE_STRING dims: [ 3 ] zero_data: true');
const warmup = (...samples: string[]): string => `max_batch_size: 8\nmodel_warmup [\n${samples.join(',\n')}\n]\n`;

test('each kind of data is made once at load: zeros, random bytes of the right size, a file\'s bytes or strings', () => {
  const config = compile(warmup(
    `{ name: "zeros" batch_size: 2 count: 3 inputs [ ${X_ZERO}, ${T_ZERO} ] }`,
    `{ name: "random" batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] random_data: true')}, ${input('T', 'data_type: TYPE_STRING dims: [ 2 ] random_data: true')} ] }`,
    `{ name: "files" batch_size: 8 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] input_data_file: "x.bin"')}, ${input('T', 'data_type: TYPE_STRING dims: [ 3 ] input_data_file: "strings.bin"')} ] }`,
    `{ batch_size: 0 inputs [ ${X_ZERO}, ${T_ZERO} ] }`,
  ));
  const [zeros, random, files, unnamed] = config.warmup;
  assert.deepEqual({ name: zeros!.name, batchSize: zeros!.batchSize, count: zeros!.count }, { name: 'zeros', batchSize: 2, count: 3 });
  assert.deepEqual([...zeros!.inputs[0]!.raw!], new Array(16).fill(0));
  assert.deepEqual(zeros!.inputs[0]!.dims, [4]);
  assert.deepEqual(zeros!.inputs[1]!.elements!.map((e) => e.byteLength), [0, 0, 0], 'zero strings are empty strings');
  assert.equal(random!.count, 1, 'count 0 (unset) runs a sample once');
  assert.equal(random!.inputs[0]!.source, 'random_data');
  assert.equal(random!.inputs[0]!.raw!.byteLength, 16);
  assert.deepEqual(random!.inputs[1]!.elements!.map((e) => e.byteLength), [0, 0], 'random strings are empty, as in Triton');
  assert.deepEqual([...new Int32Array(files!.inputs[0]!.raw!.slice().buffer)], [1, 2, 3, 4], 'a longer file gives its first bytes');
  assert.deepEqual(files!.inputs[1]!.elements!.map((e) => Buffer.from(e).toString()), ['ab', '', 'xyz']);
  assert.deepEqual({ name: unnamed!.name, batchSize: unnamed!.batchSize }, { name: 'model_warmup[3]', batchSize: 0 });
  assert.deepEqual((config.json['model_warmup'] as unknown[]).length, 4, 'GET .../config shows model_warmup as written');
});

test('a control input of a sequence model may be set by a sample; other samples leave it to the warmup', () => {
  const config = compileSequenceConfig(`${sequenceConfig(4)}model_warmup [ { name: "s" batch_size: 2 inputs [
    { key: "INPUT" value: { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } },
    { key: "START" value: { data_type: TYPE_INT32 dims: [ 1 ] zero_data: true } } ] } ]\n`);
  assert.deepEqual(config.warmup[0]!.inputs.map((i) => i.name), ['INPUT', 'START']);
  assert.throws(() => compileSequenceConfig(`${sequenceConfig(4)}model_warmup [ { batch_size: 1 inputs [
    { key: "INPUT" value: { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } },
    { key: "STATE_IN" value: { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } } ] } ]\n`),
  /model_warmup\[0\]\.inputs\[1\]\.key: 'STATE_IN' is not an input of the model\. Fix: use one of the model's inputs: 'INPUT', 'START', 'END', 'READY', 'CORRID'/);
});

for (const [title, text, pattern] of [
  ['an input the model does not have', warmup(`{ batch_size: 1 inputs [\n  ${X_ZERO},\n  ${T_ZERO},\n  ${input('Z', 'data_type: TYPE_INT32 dims: [ 4 ] zero_data: true')} ] }`),
    /config\.pbtxt:6: model_warmup\[0\]\.inputs\[2\]\.key: 'Z' is not an input of the model\. Fix: use one of the model's inputs: 'X', 'T'/],
  ['a missing input', warmup(`{ name: "half" batch_size: 1 inputs [ ${X_ZERO} ] }`),
    /config\.pbtxt:3: model_warmup\[0\]\.inputs: leaves out the model's input 'T'\. Fix: give every input the model needs/],
  ['the wrong data_type', warmup(`{ batch_size: 1 inputs [\n  ${input('X', 'data_type: TYPE_FP32 dims: [ 4 ] zero_data: true')},\n  ${T_ZERO} ] }`),
    /config\.pbtxt:4: model_warmup\[0\]\.inputs\[0\]\.value\.data_type: is TYPE_FP32 but input 'X' is TYPE_INT32\. Fix: set data_type: TYPE_INT32/],
  ['dims that do not fit the input', warmup(`{ batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 1, 4 ] zero_data: true')}, ${T_ZERO} ] }`),
    /model_warmup\[0\]\.inputs\[0\]\.value\.dims: \[1,4\] does not fit input 'X', which is \[4\] without its batch dimension \(a warmup sample leaves it out\)\. Fix: set dims to \[4\]/],
  ['a variable-size dim', warmup(`{ batch_size: 1 inputs [ ${X_ZERO}, ${input('T', 'data_type: TYPE_STRING dims: [ -1 ] zero_data: true')} ] }`),
    /model_warmup\[0\]\.inputs\[1\]\.value\.dims: \[-1\] has a variable-size dim; a warmup sample gives every dim its size/],
  ['no data', warmup(`{ batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ]')}, ${T_ZERO} ] }`),
    /model_warmup\[0\]\.inputs\[0\]\.value: gives input 'X' no data\. Fix: set one of zero_data: true, random_data: true, input_data_file/],
  ['a missing input_data_file', warmup(`{ batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] input_data_file: "nope.bin"')}, ${T_ZERO} ] }`),
    /model_warmup\[0\]\.inputs\[0\]\.value\.input_data_file: .*warmup\/nope\.bin does not exist in \S+\. Fix: put the input's data in a file inside \S+\/warmup and name it relative to that folder/],
  ['a file too short for the dims', warmup(`{ batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] input_data_file: "short.bin"')}, ${T_ZERO} ] }`),
    /input_data_file: warmup\/short\.bin has 8 bytes, but \[4\] of TYPE_INT32 takes 16/],
  ['a strings file cut short', warmup(`{ batch_size: 1 inputs [ ${X_ZERO}, ${input('T', 'data_type: TYPE_STRING dims: [ 3 ] input_data_file: "cut.bin"')} ] }`),
    /input_data_file: warmup\/cut\.bin ends inside element 2\. Fix: write each string as a 4-byte little-endian length/],
  ['a strings file with the wrong number of strings', warmup(`{ batch_size: 1 inputs [ ${X_ZERO}, ${input('T', 'data_type: TYPE_STRING dims: [ 2 ] input_data_file: "strings.bin"')} ] }`),
    /input_data_file: warmup\/strings\.bin holds 3 strings, but the dims take 2/],
  ['a file outside the warmup folder', warmup(`{ batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] input_data_file: "../outside.bin"')}, ${T_ZERO} ] }`),
    /input_data_file: '\.\.\/outside\.bin' contains '\.\.', which leaves the folder/],
  ['a batch_size above max_batch_size', warmup(`{ batch_size: 9 inputs [ ${X_ZERO}, ${T_ZERO} ] }`),
    /model_warmup\[0\]\.batch_size: is 9, but the model takes at most max_batch_size 8 requests in one execution\. Fix: set batch_size between 1 and 8/],
] as const) {
  test(`refused at load: ${title}`, () => {
    assert.throws(() => compile(text), (err: Error) => {
      assert.ok(err instanceof ModelConfigError, err.message);
      assert.match(err.message, pattern);
      return true;
    });
  });
}

test('refused at load: batch_size above 1 for a model that does not batch', () => {
  assert.throws(() => compileTestConfig('max_batch_size: 0\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1, -1 ] } ]\n' +
    'model_warmup [ { batch_size: 2 inputs { key: "INPUT" value: { data_type: TYPE_FP32 dims: [ 1, 2 ] zero_data: true } } } ]'),
  /model_warmup\[0\]\.batch_size: is 2, but the model does not batch \(max_batch_size 0\), so a sample is one request\. Fix: set batch_size between 1 and 1/);
});

test('response_cache compiles to a flag; off unless enable is true', () => {
  assert.equal(compileTestConfig('max_batch_size: 8\nresponse_cache { enable: true }').responseCache, true);
  assert.equal(compileTestConfig('max_batch_size: 8\nresponse_cache { enable: false }').responseCache, false);
  assert.equal(compileTestConfig('max_batch_size: 8').responseCache, false);
  assert.deepEqual(compileTestConfig('max_batch_size: 8\nresponse_cache { enable: true }').json['response_cache'], { enable: true });
});

test('refused at load: response_cache on a sequence model, and on a decoupled one', () => {
  assert.throws(() => compileSequenceConfig(`${sequenceConfig(4)}response_cache {\n  enable: true\n}\n`), (err: Error) => {
    assert.ok(err instanceof ModelConfigError);
    assert.match(err.message, /config\.pbtxt:\d+: response_cache\.enable: is true, but the model uses sequence_batching, whose answers depend on the earlier requests of each sequence\. Fix: remove response_cache/);
    assert.equal(err.problem.line, `${sequenceConfig(4)}response_cache {\n  enable: true`.split('\n').length);
    return true;
  });
  assert.throws(() => compileTestConfig('backend: "typescript"\nmax_batch_size: 8\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\n' +
    'output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\nmodel_transaction_policy { decoupled: true }\nresponse_cache { enable: true }'),
  /config\.pbtxt:6: response_cache\.enable: is true, but the model is decoupled \(model_transaction_policy\), so it answers with a stream, not one response/);
});
