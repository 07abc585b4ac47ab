/**
 * Decoupled TypeScript models through the engine: request.send() streams
 * responses in order through engine.inferStream, the final flag lands on
 * the last one (sent by the script or by the host closing the request), a
 * request may get no response at all, error responses and checks fail one
 * response without ending the stream, a throw fails what is still open,
 * cancellation reaches the script, unary infer() is refused, response_stats
 * count the responses, and the config refuses decoupled ONNX models.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ParameterValue } from '../../../engine/inference-request.ts';
import type { StreamedResponse } from '../../../engine/inference-response.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubModel } from '../../../generator/models.ts';
import { makeStreamingRepository, DECOUPLED_POLICY } from '../../helpers/decoupled-fixtures.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import {
  bytesTensor, capturingLogger, rejection, scriptConfig, stringsOf, within, writeScripts, type CapturingLogger,
} from '../../helpers/script-fixtures.ts';
import { pollFor, waitForLogLine } from '../../helpers/wait.ts';

let root: string;
let engine: InferenceEngine;
let logger: CapturingLogger;

before(async () => {
  root = await makeStreamingRepository();
  logger = capturingLogger();
  engine = await startEngine(root, { logger });
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

const streamRequest = (parameters: Record<string, ParameterValue>, extra: { signal?: AbortSignal; id?: string } = {}) => ({
  modelName: 'streamer', inputs: [bytesTensor('text_input', [1], ['tok'])], parameters, ...extra,
});

async function collect(parameters: Record<string, ParameterValue>, extra: { signal?: AbortSignal; id?: string } = {}): Promise<StreamedResponse[]> {
  const items: StreamedResponse[] = [];
  const stream = await engine.inferStream(streamRequest(parameters, extra));
  assert.equal(stream.decoupled, true);
  for await (const item of stream) items.push(item);
  return items;
}

/** Each item as 'tok 0', 'error: ...' or 'final', with '!' after a final one. */
const show = (items: readonly StreamedResponse[]): string[] => items.map((item) => {
  const text = item.response ? stringsOf(item.response.outputs[0]).join() : item.error ? `error: ${item.error.message}` : 'final';
  return item.final && (item.response || item.error) ? `${text}!` : text;
});

describe('a decoupled script streams', () => {
  test('N responses in order, then the empty final the host closes the request with', async () => {
    const items = await within(10_000, 'stream', collect({ tokens: 5 }, { id: 'r1' }));
    assert.deepEqual(show(items), ['tok 0', 'tok 1', 'tok 2', 'tok 3', 'tok 4', 'final']);
    assert.equal(items[0]!.response!.modelName, 'streamer');
    assert.equal(items[0]!.response!.modelVersion, '1');
    assert.equal(items[0]!.response!.id, 'r1');
    assert.deepEqual(items[0]!.response!.outputs[0]!.shape, [1]);
  });

  test('the final flag on the last response when the script sends it so', async () => {
    assert.deepEqual(show(await collect({ tokens: 3, final_with_last: true })), ['tok 0', 'tok 1', 'tok 2!']);
  });

  test('send(undefined, { final: true }) closes the request without a response', async () => {
    assert.deepEqual(show(await collect({ tokens: 2, close: true })), ['tok 0', 'tok 1', 'final']);
  });

  test('zero responses: only the empty final', async () => {
    assert.deepEqual(show(await collect({ tokens: 0 })), ['final']);
  });

  test('an error response fails that response alone; the stream goes on', async () => {
    const items = await collect({ tokens: 3, fail_at: 1 });
    assert.deepEqual(show(items), ['tok 0', "error: inference failed in model 'streamer': token 1 failed", 'tok 2', 'final']);
    assert.equal(items[1]!.error!.httpStatus, 500);
  });

  test('a response that fails the config check becomes an error response naming the output', async () => {
    const items = await collect({ tokens: 2, bad_at: 0 });
    assert.match(show(items)[0]!, /^error: .*output 'nope', which the model config does not declare/);
    assert.deepEqual(show(items).slice(1), ['tok 1', 'final']);
  });

  test('a throw mid-stream ends the request with a final error after the responses sent', async () => {
    const items = await collect({ tokens: 5, throw_at: 2 });
    assert.deepEqual(show(items), ['tok 0', 'tok 1', "error: inference failed in model 'streamer': execute() threw: boom at token 2!"]);
    // The isolate is kept: the next request streams as before.
    assert.deepEqual(show(await collect({ tokens: 1 })), ['tok 0', 'final']);
  });

  test('requests batched together each get their own responses', async () => {
    const runs = await Promise.all([1, 2, 3].map((n) => collect({ tokens: n })));
    assert.deepEqual(runs.map(show), [['tok 0', 'final'], ['tok 0', 'tok 1', 'final'], ['tok 0', 'tok 1', 'tok 2', 'final']]);
  });
});

describe('cancellation', () => {
  test('an abort mid-stream ends the stream, and the script sees send() answer false and stops', async () => {
    const controller = new AbortController();
    const stream = await engine.inferStream(streamRequest({ tokens: 100_000, tick: true, id: 'cancel-1' }, { signal: controller.signal }));
    const items: StreamedResponse[] = [];
    for await (const item of stream) {
      items.push(item);
      if (items.length === 5) controller.abort(new Error('the test went away'));
    }
    const last = items[items.length - 1]!;
    assert.equal(last.final, true);
    assert.equal(last.error?.code, 'CANCELLED');
    const line = await waitForLogLine(logger, 'stopped cancel-1', 10_000);
    const [, at, sends] = /at (\d+) after (\d+) sends, isCancelled true/.exec(line) ?? [];
    assert.ok(Number(sends) < 5 + 3, `the script stopped within a few tokens of the abort (${line})`);
    assert.equal(at, sends);
  });

  test('a reader that stops iterating cancels the request too', async () => {
    const stream = await engine.inferStream(streamRequest({ tokens: 100_000, tick: true, id: 'cancel-2' }));
    let seen = 0;
    for await (const item of stream) {
      assert.ok(item.response);
      if (++seen === 3) break;
    }
    const line = await waitForLogLine(logger, 'stopped cancel-2', 10_000);
    assert.ok(Number(/after (\d+) sends/.exec(line)![1]) < 3 + 3, line);
  });
});

describe('unary inference and statistics', () => {
  test('infer() on a decoupled model is refused up front, naming it and the streaming entries', async () => {
    const error = await rejection(engine.infer(streamRequest({ tokens: 1 })));
    assert.equal(error.code, 'DECOUPLED_UNARY');
    assert.equal(error.httpStatus, 501);
    assert.equal(error.grpcCode, 12);
    assert.match(error.message, /doesn't support models with decoupled transaction policy: model 'streamer'/);
    assert.match(error.message, /ModelStreamInfer/);
    assert.match(error.message, /\/v2\/models\/streamer\/generate_stream/);
  });

  test('inferStream on a model that is not decoupled gives exactly one final response', async () => {
    const stream = await engine.inferStream({ modelName: 'shout', inputs: [bytesTensor('text_input', [1, 1], ['hi'])] });
    assert.equal(stream.decoupled, false);
    const items: StreamedResponse[] = [];
    for await (const item of stream) items.push(item);
    assert.equal(items.length, 1);
    assert.equal(items[0]!.final, true);
    assert.deepEqual(stringsOf(items[0]!.response!.outputs.find((t) => t.name === 'text_output')), ['HI']);
  });

  test('inferStream rejects what infer() would before anything is queued', async () => {
    assert.equal((await rejection(engine.inferStream({ modelName: 'missing', inputs: [] }))).code, 'MODEL_NOT_FOUND');
    assert.equal((await rejection(engine.inferStream({ modelName: 'streamer', inputs: [] }))).code, 'MISSING_INPUTS');
  });

  test('response_stats count each response by its position; requests count once', async () => {
    const name = 'streamer';
    const before = engine.modelStatistics(name).model_stats[0]!;
    await collect({ tokens: 2, fail_at: 1 });
    // The stream ends with the request's final response; the scheduler counts the request once execute() is over.
    await pollFor('the request to be counted', 5000,
      () => engine.modelStatistics(name).model_stats[0]!.inference_stats.success.count !== before.inference_stats.success.count);
    const afterStats = engine.modelStatistics(name).model_stats[0]!;
    const count = (index: string, key: 'success' | 'fail' | 'empty_response'): number =>
      (afterStats.response_stats[index]?.[key].count ?? 0) - (before.response_stats[index]?.[key].count ?? 0);
    assert.equal(count('0', 'success'), 1);
    assert.equal(count('1', 'fail'), 1);
    assert.equal(count('2', 'empty_response'), 1);
    assert.equal(afterStats.inference_stats.success.count - before.inference_stats.success.count, 1);
    assert.deepEqual(engine.modelStatistics('shout').model_stats[0]!.response_stats, {});
  });
});

describe('misuse of send()', () => {
  const MISUSE_SCRIPT = `
const token = (text: string) => ({ outputs: { text_output: { shape: [1], data: [text] } } });
export default class {
  held: any;
  async execute(requests: any[], ctx: any) {
    const r = requests[0];
    const attempt = (f: () => unknown): string => { try { return 'returned ' + String(f()); } catch (e: any) { return 'threw: ' + e.message; } };
    const mode = r.parameters.mode;
    let result = '';
    if (mode === 'after_final') { r.send(token('last'), { final: true }); result = attempt(() => r.send(token('more'))); }
    if (mode === 'bad_options') result = attempt(() => r.send(token('x'), 5));
    if (mode === 'nothing') result = attempt(() => r.send(undefined));
    if (mode === 'not_an_object') result = attempt(() => r.send('text'));
    if (mode === 'function') result = attempt(() => r.send({ outputs: { text_output: { shape: [1], data: [() => 1] } } }));
    if (mode === 'hold') this.held = r;
    if (mode === 'late') result = attempt(() => this.held.send(token('late')));
    ctx.log.info('misuse ' + mode + ': ' + result);
  }
}
`;
  let misuseRoot: string;
  let engine: InferenceEngine;
  let log: CapturingLogger;

  before(async () => {
    misuseRoot = await makeRepository({
      misuse: {
        config: scriptConfig({
          maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]]], outputs: [['text_output', 'TYPE_STRING', [1]]], extra: DECOUPLED_POLICY,
        }),
        versions: {},
      },
    });
    await writeScripts(misuseRoot, { misuse: { 1: MISUSE_SCRIPT } });
    log = capturingLogger();
    engine = await startEngine(misuseRoot, { logger: log });
  });
  after(async () => {
    await engine?.close();
    await removeRepository(misuseRoot);
  });

  async function run(mode: string): Promise<{ items: string[]; line: string }> {
    const stream = await engine.inferStream({ modelName: 'misuse', inputs: [bytesTensor('text_input', [1], ['x'])], parameters: { mode } });
    const items: StreamedResponse[] = [];
    for await (const item of stream) items.push(item);
    // The stream may end (at a final send) before execute() goes on to log.
    const line = await waitForLogLine(log, `misuse ${mode}:`, 5000);
    return { items: show(items), line: line.slice(line.indexOf(`misuse ${mode}:`) + `misuse ${mode}: `.length) };
  }

  test('a send after the final response throws, and the final response stands', async () => {
    assert.deepEqual(await run('after_final'), { items: ['last!'], line: 'threw: send() after the final response of this request' });
  });

  test('options that are not an object, a send with no response, a response that is not an object: each throws, saying what send() takes', async () => {
    assert.deepEqual((await run('bad_options')).line, 'threw: send(response, options): options is { final?: boolean }');
    assert.match((await run('nothing')).line, /^threw: send\(\) needs a response \(\{ outputs \} or \{ error \}\), or send\(undefined, \{ final: true \}\)/);
    assert.deepEqual((await run('not_an_object')).line, 'threw: send() takes a response object ({ outputs } or { error }), got string');
  });

  test('a response that is not plain data cannot leave the isolate', async () => {
    assert.match((await run('function')).line, /^threw: send\(\): the response cannot leave the isolate \(.*\); a response is plain data/);
  });

  test('a send after execute() returned throws; the request was closed when it did', async () => {
    assert.deepEqual((await run('hold')).items, ['final']);
    assert.match((await run('late')).line, /^threw: send\(\) after execute\(\) returned: a decoupled model sends every response before its execute\(\) resolves/);
  });
});

describe('config', () => {
  test('an ONNX model cannot be decoupled; the load fails saying which backends can', async () => {
    const onnxRoot = await makeRepository({ add_sub: { config: addSubConfig('add_sub', DECOUPLED_POLICY), versions: { 1: addSubModel('INT32', 16) } } });
    const engine = await startEngine(onnxRoot);
    try {
      const [failure] = engine.loadFailures();
      assert.match(failure!.reason, /model_transaction_policy\.decoupled.*backend 'onnxruntime' answers each request exactly once, so its models cannot be decoupled/);
    } finally {
      await engine.close();
      await removeRepository(onnxRoot);
    }
  });
});
