/**
 * ctx.inferStream: a script reads a decoupled model's responses as an async
 * iterator. In order and complete; one response from a model that is not
 * decoupled; an error response rejects and ends the stream; break, return()
 * and cancel() stop the callee, and so does the calling execute() ending or
 * its client going away; the callee is held back while the script does not
 * read (backpressure); a decoupled script forwards a stream while rewriting
 * it; bad calls are refused with the field named; the same holds for inline
 * executes. The callee is `streamer` (test/helpers/decoupled-fixtures.ts),
 * which logs `stopped <id> at <i> after <n> sends` when it is cancelled.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import type { ParameterValue } from '../../../engine/inference-request.ts';
import type { StreamedResponse } from '../../../engine/inference-response.ts';
import { makeStreamingRepository, DECOUPLED_POLICY } from '../../helpers/decoupled-fixtures.ts';
import { removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import {
  bytesTensor, capturingLogger, scriptConfig, stringsOf, within, writeScripts, type CapturingLogger,
} from '../../helpers/script-fixtures.ts';
import { SlowBackend, testModelConfig, withTestBackends } from '../../helpers/test-backends.ts';
import { waitForLogLine } from '../../helpers/wait.ts';

/**
 * Reads ctx.inferStream(callee) and answers what it saw as JSON: { texts, error?, code? }.
 * Its own parameters steer it (model, take, cancel_after, hold, leave_open, twice, bad); the rest go to the callee.
 */
const READER_SCRIPT = `
const OWN = ['model', 'take', 'cancel_after', 'hold', 'leave_open', 'twice', 'bad', 'extra_streams'];
export default class {
  async execute(requests: any[], ctx: any) {
    const out = [];
    for (const request of requests) out.push(await this.read(request, ctx));
    return out.map((report) => ({ outputs: { text_output: { datatype: 'BYTES', shape: [1], data: [JSON.stringify(report)] } } }));
  }
  async read(request: any, ctx: any) {
    const p = request.parameters;
    const passed: any = {};
    for (const key of Object.keys(p)) if (!OWN.includes(key)) passed[key] = p[key];
    const model = p.model ?? 'streamer';
    const call: any = model === 'shout'
      ? { model, inputs: { text_input: { datatype: 'BYTES', shape: [1, 1], data: ['tok'] } } }
      : { model, inputs: { text_input: { datatype: 'BYTES', shape: [1], data: ['tok'] } }, parameters: passed };
    if (p.bad === 'input') call.inputs.text_input = { datatype: 'BYTES', shape: [2], data: ['x'] };
    const texts: string[] = [];
    let stream: any;
    try {
      if (p.bad === 'call') stream = ctx.inferStream(null);
      else stream = ctx.inferStream(call);
      if (p.extra_streams !== undefined) {
        const extra = [];
        let refused;
        for (let i = 0; i < p.extra_streams; i++) {
          try { extra.push(ctx.inferStream(call)); } catch (err: any) { refused = err.code + ': ' + err.message; }
        }
        for (const other of extra) await other.cancel();
        // Their places are free again once cancelled.
        const again = ctx.inferStream(call);
        await again.cancel();
        if (refused !== undefined) texts.push(refused);
      }
      if (p.twice === true) {
        const first = stream.next();
        const second = stream.next();
        try { await second; } finally { texts.push('first: ' + (await first).value.outputs.text_output.data[0]); await stream.cancel(); }
      }
      for await (const response of stream) {
        texts.push(response.outputs.text_output.data[0]);
        if (p.hold === true && texts.length === 1) await ctx.infer({ model: 'gate', inputs: { X: { datatype: 'INT32', shape: [1], data: [1] } } });
        if (p.take === texts.length) break;
        if (p.cancel_after === texts.length) await stream.cancel();
        if (p.leave_open === true) return { texts };
      }
      return { texts };
    } catch (err: any) {
      return { texts, error: err.message, code: err.code };
    }
  }
}
`;

/** Forwards streamer's tokens, upper-cased, as its own responses; stops reading once its client went away. */
const RELAY_SCRIPT = `
export default class {
  async execute(requests: any[], ctx: any) {
    await Promise.all(requests.map(async (request: any) => {
      const text = request.inputs.text_input.data[0];
      const stream = ctx.inferStream({ model: 'streamer', inputs: { text_input: { datatype: 'BYTES', shape: [1], data: [text] } }, parameters: request.parameters });
      for await (const response of stream) {
        const word: string = response.outputs.text_output.data[0];
        if (!request.send({ outputs: { text_output: { shape: [1], data: [word.toUpperCase()] } } })) break;
      }
    }));
  }
}
`;

const TEXT_IO = { maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]]] as const, outputs: [['text_output', 'TYPE_STRING', [1]]] as const };

let root: string;
let engine: InferenceEngine;
let logger: CapturingLogger;
const gate = new SlowBackend();

before(async () => {
  root = await makeStreamingRepository({
    reader: { config: scriptConfig({ ...TEXT_IO, executeTimeoutMs: 20_000, parameters: { max_infer_calls_in_flight: 2 } }), versions: {} },
    reader_inline: { config: scriptConfig({ ...TEXT_IO, executeTimeoutMs: 20_000, parameters: { max_infer_calls_in_flight: 2, inline_slice_ms: 50 } }), versions: {} },
    relay: { config: scriptConfig({ ...TEXT_IO, executeTimeoutMs: 20_000, extra: DECOUPLED_POLICY }), versions: {} },
    gate: { config: testModelConfig('gate', 'test_slow', 0, 'input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]\noutput [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]'), versions: { 1: null } },
  });
  await writeScripts(root, { reader: { 1: READER_SCRIPT }, reader_inline: { 1: READER_SCRIPT }, relay: { 1: RELAY_SCRIPT } });
  logger = capturingLogger();
  engine = await startEngine(root, { logger, backends: withTestBackends(gate) });
  assert.deepEqual(engine.loadFailures().map((f) => f.name), []);
});
after(async () => {
  gate.open();
  await engine?.close();
  await removeRepository(root);
});

interface Report { readonly texts: readonly string[]; readonly error?: string; readonly code?: string }

async function read(parameters: Record<string, ParameterValue>, model = 'reader'): Promise<Report> {
  const response = await within(15_000, `${model} ${JSON.stringify(parameters)}`,
    engine.infer({ modelName: model, inputs: [bytesTensor('text_input', [1], ['go'])], parameters }));
  return JSON.parse(stringsOf(response.outputs[0])[0]!) as Report;
}

/** How many responses streamer sent for request `id` before it saw the cancel, from its log line. */
async function sendsBeforeStop(id: string): Promise<number> {
  const line = await waitForLogLine(logger, `stopped ${id} at `, 10_000);
  return Number(/after (\d+) sends/.exec(line)![1]);
}

const tokens = (n: number): string[] => Array.from({ length: n }, (_, i) => `tok ${i}`);

for (const model of ['reader', 'reader_inline']) {
  describe(`${model}: ctx.inferStream reads`, () => {
    test('every response of a decoupled model, in order, however the callee closes its request', async () => {
      assert.deepEqual(await read({ tokens: 5 }, model), { texts: tokens(5) });
      assert.deepEqual(await read({ tokens: 3, final_with_last: true }, model), { texts: tokens(3) });
      assert.deepEqual(await read({ tokens: 2, close: true }, model), { texts: tokens(2) });
      assert.deepEqual(await read({ tokens: 0 }, model), { texts: [] });
    });

    test('the one answer of a model that is not decoupled', async () => {
      assert.deepEqual(await read({ model: 'shout' }, model), { texts: ['TOK'] });
    });

    test('an error response rejects with its message and ends the stream: the callee is cancelled', async () => {
      const id = `${model}-fail`;
      const report = await read({ tokens: 1000, fail_at: 2, id }, model);
      assert.deepEqual(report.texts, tokens(2));
      assert.equal(report.error, "inference failed in model 'streamer': token 2 failed");
      assert.equal(report.code, 'INFERENCE_FAILED');
      assert.ok(await sendsBeforeStop(id) < 1000);
    });

    test('break stops the callee: it sends at most what the stream buffer holds past the last response read', async () => {
      const id = `${model}-break`;
      assert.deepEqual(await read({ tokens: 1000, take: 2, id }, model), { texts: tokens(2) });
      assert.ok(await sendsBeforeStop(id) <= 2 + 16 + 1);
    });

    test('cancel() stops the callee, and the loop then ends', async () => {
      const id = `${model}-cancel`;
      assert.deepEqual(await read({ tokens: 1000, cancel_after: 3, id }, model), { texts: tokens(3) });
      assert.ok(await sendsBeforeStop(id) <= 3 + 16 + 1);
    });

    test('a stream left open when execute() returns is cancelled with it', async () => {
      const id = `${model}-open`;
      assert.deepEqual(await read({ tokens: 1000, leave_open: true, id }, model), { texts: tokens(1) });
      assert.ok(await sendsBeforeStop(id) <= 1 + 16 + 1);
    });

    test('bad calls: a request that is not an object, an input of the wrong shape, an unknown model', async () => {
      const notObject = await read({ bad: 'call' }, model);
      assert.match(notObject.error!, /^ctx\.inferStream takes a request object/);
      const badInput = await read({ bad: 'input', tokens: 1 }, model);
      assert.match(badInput.error!, /^ctx\.inferStream to 'streamer': input 'text_input' has 1 element\(s\) but shape \[2\] holds 2/);
      const unknown = await read({ model: 'no_such_model' }, model);
      assert.equal(unknown.code, 'MODEL_NOT_FOUND');
      assert.deepEqual(unknown.texts, []);
    });

    test('next() called again before the previous one settled is refused; the stream itself goes on', async () => {
      const report = await read({ tokens: 5, twice: true }, model);
      assert.match(report.error!, /next\(\) was called again before the previous next\(\) settled/);
      assert.deepEqual(report.texts, ['first: tok 0']);
    });

    test('an open stream counts as a call in flight: one past max_infer_calls_in_flight (2) is refused at once', async () => {
      // Two streams open at once fit the limit of 2; a third is refused; cancelled, they give their places back.
      assert.deepEqual(await read({ tokens: 2, extra_streams: 1 }, model), { texts: tokens(2) });
      const report = await read({ tokens: 2, extra_streams: 2 }, model);
      assert.match(report.texts[0]!, /^INFER_CALLS_IN_FLIGHT: /);
      assert.deepEqual(report.texts.slice(1), tokens(2));
    });
  });
}

describe('ctx.inferStream backpressure', () => {
  test('while the script does not read, the callee waits once the stream buffer is full, and stops when the script breaks', async () => {
    const id = 'held';
    const reading = read({ tokens: 1000, hold: true, take: 2, id });
    // The reader took one response and waits at the gate; the callee fills the stream buffer (16) and waits in send().
    await gate.untilWaiting(1, 10_000);
    // Other scripts take many turns meanwhile: a callee that ignored the full buffer would run far ahead.
    for (let i = 0; i < 50; i++) await engine.infer({ modelName: 'tick', inputs: [{ name: 'X', datatype: 'INT32', shape: [1], raw: new Uint8Array(4) }] });
    gate.release(1);
    assert.deepEqual(await reading, { texts: tokens(2) });
    const sends = await sendsBeforeStop(id);
    assert.ok(sends <= 2 + 16 + 1, `the callee sent ${sends} responses, more than the stream buffer lets it run ahead`);
  });
});

describe('a decoupled script forwards a stream', () => {
  const relay = async (parameters: Record<string, ParameterValue>, signal?: AbortSignal): Promise<StreamedResponse[]> => {
    const stream = await engine.inferStream({
      modelName: 'relay', inputs: [bytesTensor('text_input', [1], ['tok'])], parameters, ...(signal ? { signal } : {}),
    });
    const items: StreamedResponse[] = [];
    for await (const item of stream) {
      items.push(item);
      if (signal && items.length === 2) (signal as AbortSignal & { stop?: () => void }).stop?.();
    }
    return items;
  };

  test('each token rewritten as it arrives, then the final', async () => {
    const items = await within(15_000, 'relay', relay({ tokens: 4 }));
    assert.deepEqual(items.map((i) => (i.response ? stringsOf(i.response.outputs[0])[0] : i.final ? 'final' : 'other')), ['TOK 0', 'TOK 1', 'TOK 2', 'TOK 3', 'final']);
  });

  test('its client going away cancels the relay, and through it the callee', async () => {
    const controller = new AbortController();
    const signal = Object.assign(controller.signal, { stop: () => controller.abort(new Error('client went away')) });
    const items = await within(15_000, 'relay', relay({ tokens: 1000, id: 'relayed' }, signal));
    assert.ok(items.length >= 2);
    assert.ok(await sendsBeforeStop('relayed') < 1000);
  });
});
