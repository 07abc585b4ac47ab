/**
 * The bundled TypeScript model examples: text_features and class_labels
 * around the ONNX feature_classifier, joined once as a pipeline
 * (text_classifier) and once as a script calling the others through
 * ctx.infer (text_classifier_bls). Both must answer alike, batch, report a
 * bad request clearly, and work over HTTP as the README shows. The end of
 * the file checks the author types (scripts-runtime/author-api.d.ts): its
 * @ts-expect-error lines fail `npm run typecheck` when a type stops
 * catching a mistake.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { Tensor as EngineTensor } from '../../engine/tensor.ts';
import { PIPELINES_DIR } from '../../pipelines/generate.ts';
import { compileScript } from '../../scripts-runtime/compile.ts';
import type {
  InferCall, InferRequest, InferResponse, ModelContext, ModelScript, OutputTensor, Tensor,
} from '../../scripts-runtime/author-api.js';
import { makeRepository, removeRepository, startEngine, startHttp, type HttpFixture } from '../helpers/fixture-repository.ts';
import { bytesStrings, bytesTensor } from '../../engine/bytes-tensor.ts';

const TEXTS = [
  'my invoice is wrong',
  'the app crashes on start',
  'reset my password please',
  'refund for a double charge',
  'cannot log in to my account',
  'Ünïcödé text with an emoji 🚀',
  'x',
  'THE APP CRASHES ON START',
];
const LABELS = ['billing', 'technical', 'account', 'other'];


const textTensor = (texts: readonly string[]): EngineTensor =>
  bytesTensor('TEXT', [texts.length, 1], texts);

const output = (response: InferenceResponse, name: string): EngineTensor => {
  const found = response.outputs.find((o) => o.name === name);
  assert.ok(found, `the response has ${name}`);
  return found;
};
const strings = (t: EngineTensor): string[] => {
  if (t.datatype !== 'BYTES') assert.fail(`${t.name} is ${t.datatype}, expected BYTES`);
  return bytesStrings(t);
};
const floats = (t: EngineTensor): number[] => {
  if (t.datatype !== 'FP32') assert.fail(`${t.name} is ${t.datatype}, expected FP32`);
  return [...new Float32Array(t.raw.buffer, t.raw.byteOffset, t.raw.byteLength / 4)];
};

interface Answer { readonly label: string; readonly score: number }
const answers = (response: InferenceResponse): Answer[] => {
  assert.deepEqual(response.outputs.map((o) => o.name), ['LABEL', 'SCORE']);
  const label = output(response, 'LABEL');
  const score = output(response, 'SCORE');
  assert.deepEqual(label.shape, score.shape);
  const scores = floats(score);
  return strings(label).map((l, i) => ({ label: l, score: scores[i]! }));
};

/** Scores equal to float32 rounding: ONNX Runtime may sum a row differently in batches of other sizes. */
function assertSameAnswers(actual: readonly Answer[], expected: readonly Answer[], what: string): void {
  assert.deepEqual(actual.map((a) => a.label), expected.map((e) => e.label), `${what}: labels`);
  actual.forEach((a, i) => assert.ok(Math.abs(a.score - expected[i]!.score) < 1e-6, `${what}: score ${i} is ${a.score}, expected ${expected[i]!.score}`));
}

describe('the bundled script examples', () => {
  let http: HttpFixture;
  let engine: InferenceEngine;
  const classify = async (model: string, texts: readonly string[]): Promise<Answer[]> =>
    answers(await engine.infer({ modelName: model, inputs: [textTensor(texts)] }));

  before(async () => {
    http = await startHttp(PIPELINES_DIR);
    engine = http.engine;
  });
  after(async () => { await http?.close(); });

  test('every example is ready: three TypeScript models and a pipeline', () => {
    assert.deepEqual(engine.loadFailures(), []);
    for (const name of ['text_features', 'class_labels', 'text_classifier_bls']) {
      assert.equal(engine.modelConfig(name).backend, 'typescript', name);
    }
    assert.equal(engine.modelMetadata('text_classifier').platform, 'ensemble');
  });

  test('their type-only imports of the author types leave nothing in the compiled scripts', async () => {
    for (const name of ['text_features', 'class_labels', 'text_classifier_bls']) {
      const source = await readFile(join(PIPELINES_DIR, name, '1', 'model.ts'), 'utf8');
      assert.match(source, /^import type .* from '\.\.\/\.\.\/\.\.\/scripts-runtime\/author-api\.js';$/ms, name);
      const { code } = await compileScript(`${name}/1/model.ts`, source);
      assert.doesNotMatch(code, /author-api|require\(/, name);
    }
  });

  test('the pipeline and the BLS script give the same label and score for each text', async () => {
    const viaPipeline: Answer[] = [];
    const viaScript: Answer[] = [];
    for (const text of TEXTS) {
      viaPipeline.push(...await classify('text_classifier', [text]));
      viaScript.push(...await classify('text_classifier_bls', [text]));
    }
    assertSameAnswers(viaScript, viaPipeline, 'BLS against pipeline');
    for (const { label, score } of viaPipeline) {
      assert.ok(LABELS.includes(label), `'${label}' is one of the configured labels`);
      assert.ok(score > 0.25 && score <= 1, `the winning probability of 4 classes, got ${score}`);
    }
    assert.ok(new Set(viaPipeline.map((a) => a.label)).size > 1, 'different texts get different labels');
    assertSameAnswers([viaPipeline[7]!], [viaPipeline[1]!], 'the featurizer ignores case');
    assertSameAnswers(await classify('text_classifier', [TEXTS[0]!]), [viaPipeline[0]!], 'the same text again');
  });

  test('a batch of texts in one request, and many requests at once, answer as one text at a time', async () => {
    const oneByOne: Answer[] = [];
    for (const text of TEXTS) oneByOne.push(...await classify('text_classifier', [text]));
    for (const model of ['text_classifier', 'text_classifier_bls']) {
      assertSameAnswers(await classify(model, TEXTS), oneByOne, `${model}, one request of ${TEXTS.length} rows`);
      const concurrent = await Promise.all(TEXTS.map((text) => classify(model, [text])));
      assertSameAnswers(concurrent.flat(), oneByOne, `${model}, ${TEXTS.length} requests at once`);
    }
    // The requests above reach text_features together, so its dynamic batcher hands execute() several at a time.
    const batchSizes = engine.modelStatistics('text_features').model_stats[0]!.batch_stats.map((b) => b.batch_size);
    assert.ok(batchSizes.some((size) => size > 1), `text_features ran batches of several requests (sizes ${batchSizes.join(', ')})`);
  });

  test('the featurizer is deterministic, and its rows have a root mean square of 1', async () => {
    const run = async (): Promise<number[]> =>
      floats(output(await engine.infer({ modelName: 'text_features', inputs: [textTensor(TEXTS)] }), 'FEATURES'));
    const first = await run();
    assert.deepEqual(await run(), first);
    assert.equal(first.length, TEXTS.length * 32);
    for (let row = 0; row < TEXTS.length; row++) {
      const sumOfSquares = first.slice(row * 32, (row + 1) * 32).reduce((s, v) => s + v * v, 0);
      assert.ok(Math.abs(sumOfSquares / 32 - 1) < 1e-5, `row ${row}`);
    }
  });

  test('a wrong input gets a clear error from the pipeline and from the script', async () => {
    for (const model of ['text_classifier', 'text_classifier_bls']) {
      await assert.rejects(
        engine.infer({ modelName: model, inputs: [{ name: 'TEXT', datatype: 'FP32', shape: [1, 1], raw: new Uint8Array(4) }] }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'INPUT_DATATYPE');
          assert.match(err.message, new RegExp(`input 'TEXT' data-type is 'FP32', but model '${model}' expects 'BYTES'`));
          return true;
        },
      );
      await assert.rejects(engine.infer({ modelName: model, inputs: [] }), { code: 'MISSING_INPUTS' });
    }
    await assert.rejects(engine.infer({ modelName: 'text_classifier', inputs: [textTensor(['fine', '  '])] }), (err: Error) => {
      assert.match(err.message, /ensemble 'text_classifier' step 'featurize' \(model 'text_features'\) failed: .*TEXT row 1 is empty/);
      return true;
    });
    await assert.rejects(engine.infer({ modelName: 'text_classifier_bls', inputs: [textTensor([''])] }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'INFERENCE_FAILED');
      assert.match(err.message, /model 'text_classifier_bls': step 'text_features' failed: .*TEXT row 0 is empty/);
      return true;
    });
  });

  test('in a batch, the BLS script fails only the bad request', async () => {
    const texts = ['my invoice is wrong', '', 'the app crashes on start', ''];
    const settled = await Promise.allSettled(texts.map((text) => classify('text_classifier_bls', [text])));
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    assertSameAnswers((settled[0] as PromiseFulfilledResult<Answer[]>).value, await classify('text_classifier', [texts[0]!]), 'a good request');
  });

  test('each example over HTTP, with the JSON bodies the README and the configs show', async () => {
    const post = async (model: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
      const res = await fetch(`${http.url}/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify(body) });
      return { status: res.status, json: await res.json() as Record<string, unknown> };
    };
    type JsonOutput = { name: string; datatype: string; shape: number[]; data: unknown[] };
    const outputsOf = (json: Record<string, unknown>): Record<string, JsonOutput> =>
      Object.fromEntries((json['outputs'] as JsonOutput[]).map((o) => [o.name, o]));
    const texts = ['my invoice is wrong', 'the app crashes on start'];
    const expected = await classify('text_classifier', texts);
    const textInput = { name: 'TEXT', datatype: 'BYTES', shape: [2, 1], data: texts };

    for (const model of ['text_classifier', 'text_classifier_bls']) {
      const { status, json } = await post(model, { inputs: [textInput] });
      assert.equal(status, 200, JSON.stringify(json));
      const { LABEL, SCORE } = outputsOf(json);
      assert.deepEqual([LABEL!.datatype, LABEL!.shape, SCORE!.datatype, SCORE!.shape], ['BYTES', [2, 1], 'FP32', [2, 1]]);
      assertSameAnswers(LABEL!.data.map((label, i) => ({ label: label as string, score: SCORE!.data[i] as number })), expected, `${model} over HTTP`);
    }

    const features = await post('text_features', { inputs: [textInput] });
    assert.equal(features.status, 200, JSON.stringify(features.json));
    const { FEATURES } = outputsOf(features.json);
    assert.deepEqual([FEATURES!.datatype, FEATURES!.shape, FEATURES!.data.length], ['FP32', [2, 32], 64]);

    const probabilities = [0.1, 0.7, 0.15, 0.05, 0.4, 0.1, 0.1, 0.4];
    const labels = await post('class_labels', { inputs: [{ name: 'PROBABILITIES', datatype: 'FP32', shape: [2, 4], data: probabilities }] });
    assert.equal(labels.status, 200, JSON.stringify(labels.json));
    const named = outputsOf(labels.json);
    assert.deepEqual(named['LABEL']!.data, ['technical', 'billing'], 'the first of equal probabilities wins');
    assert.deepEqual((named['SCORE']!.data as number[]).map((v) => Math.round(v * 100) / 100), [0.7, 0.4]);

    const bad = await post('text_classifier_bls', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [1, 1], data: [''] }] });
    assert.equal(bad.status, 500);
    assert.match(String(bad.json['error']), /step 'text_features' failed: .*TEXT row 0 is empty/);
  });
});

describe('class_labels checks its labels once, at load', () => {
  let root: string | undefined;
  let engine: InferenceEngine | undefined;
  after(async () => {
    await engine?.close();
    if (root) await removeRepository(root);
  });

  test('a labels parameter that does not name every class fails the load, saying why', async () => {
    const config = (await readFile(join(PIPELINES_DIR, 'class_labels', 'config.pbtxt'), 'utf8'))
      .replace(/string_value: "billing,technical,account,other"/, 'string_value: "yes,no"');
    assert.match(config, /"yes,no"/);
    root = await makeRepository({ class_labels: { config, versions: {} } });
    await mkdir(join(root, 'class_labels', '1'));
    await copyFile(join(PIPELINES_DIR, 'class_labels', '1', 'model.ts'), join(root, 'class_labels', '1', 'model.ts'));
    engine = await startEngine(root);
    const [failure] = engine.loadFailures();
    assert.equal(failure?.name, 'class_labels');
    assert.match(failure?.reason ?? '', /parameters "labels" names 2 class\(es\), but PROBABILITIES has 4/);
  });
});

/**
 * Type checks only: these run as ordinary code, and each @ts-expect-error
 * must meet an error, or `npm run typecheck` fails.
 */
test('the author types follow the datatype and catch common mistakes', () => {
  const fp32: Tensor<'FP32'> = { datatype: 'FP32', shape: [1, 2], data: Float32Array.of(1, 2) };
  // @ts-expect-error an FP32 tensor's data is a Float32Array
  const wrongData: Tensor<'FP32'> = { datatype: 'FP32', shape: [1, 2], data: BigInt64Array.of(1n, 2n) };
  // Checking the datatype narrows the data.
  const total = (t: Tensor): number => (t.datatype === 'BYTES' ? t.data.join('').length : t.datatype === 'FP32' ? t.data.reduce((a, b) => a + b, 0) : 0);
  assert.equal(total(fp32), 3);

  const responses: InferResponse[] = [
    { outputs: { Y: { shape: [1, 2], data: [1, 2] } } },
    { outputs: { Y: { datatype: 'INT64', shape: [1, 2], data: [1n, 2] } } },
    { outputs: { Y: { datatype: 'BYTES', shape: [1, 1], data: ['a'] } } },
    { error: 'this request only' },
    // @ts-expect-error an INT64 output's data is a BigInt64Array or an array of numbers or bigints
    { outputs: { Y: { datatype: 'INT64', shape: [1, 2], data: Float32Array.of(1, 2) } } },
    // @ts-expect-error BYTES elements are strings or Uint8Arrays
    { outputs: { Y: { datatype: 'BYTES', shape: [1, 1], data: [1] } } },
  ];
  assert.equal(responses.length, 6);
  const out: OutputTensor<'FP32'> = fp32;

  // @ts-expect-error ctx.infer inputs need their datatype: there is no config to take it from
  const noDatatype: InferCall = { model: 'm', inputs: { X: { shape: [1], data: [1] } } };
  const call: InferCall = { model: 'm', version: 1, inputs: { X: fp32 }, outputs: ['Y'], parameters: { priority: 1 } };

  class Example implements ModelScript<{ X: Tensor<'FP32'> }> {
    async execute(requests: readonly InferRequest<{ X: Tensor<'FP32'> }>[], ctx: ModelContext): Promise<InferResponse[]> {
      const { outputs } = await ctx.infer<{ Y: Tensor<'INT64'> }>(call);
      const first: bigint | undefined = outputs.Y.data[0];
      ctx.log.info('first', first, ctx.config.parameters?.['labels']?.string_value);
      return requests.map((r) => ({ outputs: { Y: { shape: r.inputs.X.shape, data: r.inputs.X.data } } }));
    }
  }
  assert.equal(typeof Example.prototype.execute, 'function');
  interface Named { readonly TEXT: Tensor<'BYTES'> }
  const named: InferRequest<Named> = { inputs: { TEXT: { datatype: 'BYTES', shape: [1, 1], data: ['a'] } }, parameters: {} };
  // @ts-expect-error a model's tensors are tensors
  const notTensors: InferRequest<{ TEXT: string }> = { inputs: { TEXT: 'a' }, parameters: {} };
  assert.ok(named && notTensors);
  assert.ok(wrongData && out && noDatatype);
});
