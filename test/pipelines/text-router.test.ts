/**
 * The bundled conditional pipeline, text_router, over HTTP and gRPC against
 * the repository `npm start` serves: text_length measures each request and
 * a switch on its SHORT output runs either keyword_labels (the cheap path)
 * or text_features -> feature_classifier -> class_labels (the full path);
 * LABEL and SCORE join the two. Each path must answer as its models do when
 * called alone, the request parameter "path" and the optional input
 * MAX_WORDS must move a request between them, and step_stats must count
 * which steps ran and which were skipped. The last test sends the README's
 * curl bodies as they are written.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InferenceClient, InferenceServerError, tensor, type InferResult } from '../../client/index.ts';
import { PIPELINES_DIR } from '../../pipelines/generate.ts';
import { compileScript } from '../../scripts-runtime/compile.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startBoth, startEngine, type DualFixture } from '../helpers/fixture-repository.ts';

const SHORT = 'refund my invoice';
const LONG = 'the app crashes every time I open the settings page after the update';
const STEPS = ['measure', 'keywords', 'featurize', 'classify', 'name'];
const CHEAP = { ran: [1, 1, 0, 0, 0], skipped: [0, 0, 1, 1, 1] };
const FULL = { ran: [1, 0, 1, 1, 1], skipped: [0, 1, 0, 0, 0] };

const text = (texts: readonly string[]) => tensor('TEXT', 'BYTES', [texts.length, 1], [...texts]);
const maxWords = (values: readonly number[]) => tensor('MAX_WORDS', 'INT32', [values.length, 1], [...values]);

interface Answer { readonly label: string[]; readonly score: number[] }
const answer = (r: InferResult): Answer => ({ label: r.output('LABEL').strings(), score: r.output('SCORE').numbers() });
/** Scores to float32 rounding: ONNX Runtime may sum a row differently in batches of other sizes. */
function assertSameAnswer(actual: Answer, expected: Answer, what: string): void {
  assert.deepEqual(actual.label, expected.label, `${what}: labels`);
  actual.score.forEach((s, i) => assert.ok(Math.abs(s - expected.score[i]!) < 1e-6, `${what}: score ${i} is ${s}, expected ${expected.score[i]}`));
}

describe('the bundled text_router pipeline', () => {
  let fixture: DualFixture;
  const clients = new Map<'http' | 'http-json' | 'grpc', InferenceClient>();

  before(async () => {
    fixture = await startBoth(PIPELINES_DIR);
    clients.set('http', new InferenceClient({ url: fixture.httpUrl }));
    clients.set('http-json', new InferenceClient({ url: fixture.httpUrl, binary: false }));
    clients.set('grpc', new InferenceClient({ url: `grpc://${fixture.grpcAddress}` }));
  });
  after(async () => {
    for (const client of clients.values()) client.close();
    await fixture?.close();
  });

  /** The request's result, and how many requests each step ran and skipped meanwhile (from the statistics, over the same protocol). */
  const traced = async (client: InferenceClient, send: () => Promise<InferResult>): Promise<{ result: InferResult; ran: number[]; skipped: number[] }> => {
    const steps = async () => (await client.modelStatistics('text_router')).model_stats[0]!.step_stats;
    const before = await steps();
    const result = await send();
    const afterwards = await steps();
    return {
      result,
      ran: afterwards.map((s, i) => s.success.count - before[i]!.success.count),
      skipped: afterwards.map((s, i) => s.skipped - before[i]!.skipped),
    };
  };

  test('loads with its two TypeScript models; the config shows the switch, the default and the optional input', () => {
    assert.deepEqual(fixture.engine.loadFailures(), []);
    for (const name of ['text_length', 'keyword_labels']) assert.equal(fixture.engine.modelConfig(name).backend, 'typescript', name);
    assert.equal(fixture.engine.modelMetadata('text_router').platform, 'ensemble');
    const config = fixture.engine.modelConfig('text_router') as unknown as {
      input: Array<{ name: string; optional?: boolean }>; parameters: Record<string, { string_value: string }>;
    };
    assert.deepEqual(config.input.map((i) => [i.name, i.optional === true]), [['TEXT', false], ['MAX_WORDS', true]]);
    assert.deepEqual(Object.fromEntries(Object.entries(config.parameters).map(([k, v]) => [k, v.string_value])), {
      'switchyard.switch.length.on': 'measure.SHORT',
      'switchyard.switch.length.case.true': '1',
      'switchyard.switch.length.case.false': '2',
      'switchyard.output.KEYWORDS.default': '""',
    });
  });

  test('its scripts import the author types type-only, which leaves nothing in the compiled code', async () => {
    for (const name of ['text_length', 'keyword_labels']) {
      const source = await readFile(join(PIPELINES_DIR, name, '1', 'model.ts'), 'utf8');
      assert.match(source, /^import type .* from '\.\.\/\.\.\/\.\.\/scripts-runtime\/author-api\.js';$/ms, name);
      const { code } = await compileScript(`${name}/1/model.ts`, source);
      assert.doesNotMatch(code, /author-api|require\(/, name);
    }
  });

  // HTTP with the binary tensor extension (the client's default), pure JSON HTTP, and gRPC.
  for (const protocol of ['http', 'http-json', 'grpc'] as const) {
    describe(`over ${protocol}`, () => {
      const client = (): InferenceClient => clients.get(protocol)!;
      const alone = async (model: string, texts: readonly string[]): Promise<InferResult> => client().infer(model, [text(texts)]);

      test('statistics name every step, in order', async () => {
        const steps = (await client().modelStatistics('text_router')).model_stats[0]!.step_stats;
        assert.deepEqual(steps.map((s) => s.model), ['text_length', 'keyword_labels', 'text_features', 'feature_classifier', 'class_labels']);
        steps.forEach((s, i) => assert.match(s.step, new RegExp(`'${STEPS[i]}'`)));
      });

      test('a short text takes the cheap path: keyword_labels answers, the classifier steps are skipped', async () => {
        const { result, ran, skipped } = await traced(client(), () => client().infer('text_router', [text([SHORT])]));
        assert.deepEqual(result.outputs.map((o) => o.name), ['LABEL', 'SCORE', 'WORDS', 'KEYWORDS'], 'PROBABILITIES is absent');
        assert.deepEqual(answer(result), { label: ['billing'], score: [1] });
        assert.deepEqual(result.output('KEYWORDS').strings(), ['refund invoice']);
        assert.deepEqual(result.output('WORDS').numbers(), [3]);
        assert.deepEqual({ ran, skipped }, CHEAP);
        const rules = await alone('keyword_labels', [SHORT]);
        assert.deepEqual(answer(result), answer(rules));
      });

      test('a long text takes the full path: the same answer as text_classifier, KEYWORDS defaults to ""', async () => {
        const { result, ran, skipped } = await traced(client(), () => client().infer('text_router', [text([LONG])]));
        assert.deepEqual(result.outputs.map((o) => o.name), ['LABEL', 'SCORE', 'WORDS', 'KEYWORDS', 'PROBABILITIES']);
        assertSameAnswer(answer(result), answer(await alone('text_classifier', [LONG])), 'against text_classifier');
        assert.deepEqual(result.output('KEYWORDS').strings(), ['']);
        assert.deepEqual(result.output('KEYWORDS').shape, [1, 1]);
        assert.deepEqual(result.output('WORDS').numbers(), [13]);
        assert.deepEqual(result.output('PROBABILITIES').shape, [1, 4]);
        assert.deepEqual({ ran, skipped }, FULL);
      });

      test('the parameter "path" forces a branch either way', async () => {
        const full = await traced(client(), () => client().infer('text_router', [text([SHORT])], { parameters: { path: 'full' } }));
        assertSameAnswer(answer(full.result), answer(await alone('text_classifier', [SHORT])), 'a short text forced down the full path');
        assert.deepEqual({ ran: full.ran, skipped: full.skipped }, FULL);

        const cheap = await traced(client(), () => client().infer('text_router', [text([LONG])], { parameters: { path: 'cheap' } }));
        assert.deepEqual(answer(cheap.result), { label: ['technical'], score: [1] });
        assert.deepEqual(answer(cheap.result), answer(await alone('keyword_labels', [LONG])));
        assert.deepEqual(cheap.result.output('KEYWORDS').strings(), ['crashes update']);
        assert.deepEqual({ ran: cheap.ran, skipped: cheap.skipped }, CHEAP);
      });

      test('the optional input MAX_WORDS moves the line between short and long', async () => {
        const strict = await traced(client(), () => client().infer('text_router', [text([SHORT]), maxWords([2])]));
        assert.deepEqual({ ran: strict.ran, skipped: strict.skipped }, FULL, '3 words is long with MAX_WORDS 2');
        const lenient = await traced(client(), () => client().infer('text_router', [text([LONG]), maxWords([20])]));
        assert.deepEqual({ ran: lenient.ran, skipped: lenient.skipped }, CHEAP, '13 words is short with MAX_WORDS 20');
      });

      test('several texts in one request: the cheap path only when every one is short', async () => {
        const allShort = await traced(client(), () => client().infer('text_router', [text([SHORT, 'reset my password', 'hello there'])]));
        assert.deepEqual(answer(allShort.result), { label: ['billing', 'account', 'other'], score: [1, 1, 0] });
        assert.deepEqual(allShort.result.output('KEYWORDS').strings(), ['refund invoice', 'password', '']);
        assert.deepEqual({ ran: allShort.ran, skipped: allShort.skipped }, CHEAP);

        const mixed = await traced(client(), () => client().infer('text_router', [text([SHORT, LONG])]));
        assertSameAnswer(answer(mixed.result), answer(await alone('text_classifier', [SHORT, LONG])), 'both rows by the classifier');
        assert.deepEqual(mixed.result.output('WORDS').numbers(), [3, 13]);
        assert.deepEqual(mixed.result.output('KEYWORDS').strings(), ['', ''], 'the default fills every row');
        assert.deepEqual({ ran: mixed.ran, skipped: mixed.skipped }, FULL);
      });

      test('a bad "path" and a text without words fail at the measuring step, saying why', async () => {
        await assert.rejects(client().infer('text_router', [text([SHORT])], { parameters: { path: 'fast' } }), (err: InferenceServerError) => {
          assert.match(err.message, /ensemble 'text_router' step 'measure' \(model 'text_length'\) failed: .*parameter "path" is "fast": give "cheap", "full", or leave it out/);
          return true;
        });
        await assert.rejects(client().infer('text_router', [text([SHORT, ' ?! '])]), (err: InferenceServerError) => {
          assert.match(err.message, /step 'measure' .*TEXT row 1 has no words/);
          return true;
        });
      });
    });
  }

  test('the README\'s curl bodies over HTTP, and the statistics call', async () => {
    const post = async (body: unknown): Promise<Record<string, unknown>> => {
      const res = await fetch(`${fixture.httpUrl}/v2/models/text_router/infer`, { method: 'POST', body: JSON.stringify(body) });
      const json = await res.json() as Record<string, unknown>;
      assert.equal(res.status, 200, JSON.stringify(json));
      return json;
    };
    type JsonOutput = { name: string; data: unknown[] };
    const outputs = (json: Record<string, unknown>): Record<string, unknown[]> =>
      Object.fromEntries((json['outputs'] as JsonOutput[]).map((o) => [o.name, o.data]));
    const input = (data: string) => ({ name: 'TEXT', datatype: 'BYTES', shape: [1, 1], data: [data] });

    const stats = async () => {
      const res = await fetch(`${fixture.httpUrl}/v2/models/text_router/stats`);
      const json = await res.json() as { model_stats: Array<{ step_stats: Array<{ step: string; success: { count: number }; skipped: number }> }> };
      return json.model_stats[0]!.step_stats.map((s) => ({ step: s.step, ran: s.success.count, skipped: s.skipped }));
    };
    const before = await stats();
    const short = outputs(await post({ inputs: [input('refund my invoice')] }));
    assert.deepEqual([short['LABEL'], short['SCORE'], short['WORDS'], short['KEYWORDS'], short['PROBABILITIES']], [['billing'], [1], [3], ['refund invoice'], undefined]);
    const long = outputs(await post({ inputs: [input('the app crashes every time I open the settings page after the update')] }));
    assert.deepEqual([long['WORDS'], long['KEYWORDS'], (long['PROBABILITIES'] as unknown[]).length], [[13], [''], 4]);
    const forced = outputs(await post({ parameters: { path: 'full' }, inputs: [input('refund my invoice')] }));
    assert.deepEqual([forced['KEYWORDS'], (forced['PROBABILITIES'] as unknown[]).length], [[''], 4]);
    const threshold = outputs(await post({ inputs: [input('refund my invoice'), { name: 'MAX_WORDS', datatype: 'INT32', shape: [1, 1], data: [2] }] }));
    assert.equal((threshold['PROBABILITIES'] as unknown[]).length, 4);

    const afterwards = await stats();
    assert.deepEqual(afterwards.map((s) => s.step), [
      "step 'measure' (model 'text_length')", "step 'keywords' (model 'keyword_labels')", "step 'featurize' (model 'text_features')",
      "step 'classify' (model 'feature_classifier')", "step 'name' (model 'class_labels')",
    ]);
    assert.deepEqual(afterwards.map((s, i) => [s.ran - before[i]!.ran, s.skipped - before[i]!.skipped]), [[4, 0], [1, 3], [3, 1], [3, 1], [3, 1]]);
  });
});

describe('text_router\'s scripts check their parameters once, at load', () => {
  let root: string | undefined;
  let engine: InferenceEngine | undefined;
  after(async () => {
    await engine?.close();
    if (root) await removeRepository(root);
  });

  test('a max_words that is not a whole number, and a label without keywords, fail the load saying why', async () => {
    const config = async (name: string, edit: (text: string) => string): Promise<string> => {
      const original = await readFile(join(PIPELINES_DIR, name, 'config.pbtxt'), 'utf8');
      const edited = edit(original);
      assert.notEqual(edited, original, `${name}: the edit applies`);
      return edited;
    };
    root = await makeRepository({
      text_length: { config: await config('text_length', (t) => t.replace('string_value: "6"', 'string_value: "six"')), versions: {} },
      keyword_labels: { config: await config('keyword_labels', (t) => t.replace(/^parameters \{ key: "account".*\n/m, '')), versions: {} },
    });
    for (const name of ['text_length', 'keyword_labels']) {
      await mkdir(join(root, name, '1'));
      await copyFile(join(PIPELINES_DIR, name, '1', 'model.ts'), join(root, name, '1', 'model.ts'));
    }
    engine = await startEngine(root);
    const reasons = Object.fromEntries(engine.loadFailures().map((f) => [f.name, f.reason]));
    assert.match(reasons['text_length'] ?? '', /parameters "max_words" is "six": give a whole number of words, 0 or more/);
    assert.match(reasons['keyword_labels'] ?? '', /parameters "account" is missing: give the beginnings of its keywords, comma-separated/);
  });
});
