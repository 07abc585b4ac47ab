/**
 * ExecuteCalls, the ctx.infer bookkeeping of one execute(): the limit on
 * calls in flight (held by the host even if a script got past the isolate's
 * own count), the signal every call carries, fired when the execute ends or
 * every client went away, and the parked state re-entrant instances follow.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { silentLogger } from '../../engine/logger.ts';
import type { InferenceRequest } from '../../engine/inference-request.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import { ExecuteCalls } from '../../scripts-runtime/execute-calls.ts';
import { createHostBridge } from '../../scripts-runtime/host-bridge.ts';

const LIMIT = 4;

describe('ExecuteCalls', () => {
  test(`takes ${LIMIT} calls in flight, refuses the next naming the parameter, and takes one again once one answered`, () => {
    const calls = new ExecuteCalls('flood', ['flood@flood_0#1'], LIMIT, []);
    for (let i = 0; i < LIMIT; i++) calls.begin('target');
    assert.throws(() => calls.begin('target'), {
      code: 'INFER_CALLS_IN_FLIGHT',
      message: `ctx.infer from model 'flood': this execute() already has ${LIMIT} calls in flight, its limit (parameters.max_infer_calls_in_flight); await some before making more`,
    });
    calls.finish();
    calls.begin('target');
  });

  test('is parked while a call is in flight, and says so on each change', () => {
    let changes = 0;
    const calls = new ExecuteCalls('m', [], LIMIT, [], { parked: () => { changes++; } });
    assert.equal(calls.parked, false);
    calls.begin('t');
    calls.begin('t');
    assert.equal(calls.parked, true);
    calls.finish();
    calls.finish();
    assert.equal(calls.parked, false);
    assert.equal(changes, 2);
  });

  test('close() fires the signal with the reason and refuses later calls', () => {
    const calls = new ExecuteCalls('m', [], LIMIT, []);
    calls.begin('t');
    calls.close('execute() returned');
    assert.equal(calls.signal.aborted, true);
    assert.equal((calls.signal.reason as Error).message, 'execute() returned');
    assert.throws(() => calls.begin('t'), { code: 'INFER_AFTER_EXECUTE' });
  });

  test('the signal fires once every client of the batch went away, not before; later calls are CANCELLED', () => {
    const clients = [new AbortController(), new AbortController()];
    let gone = 0;
    const calls = new ExecuteCalls('m', [], LIMIT, clients.map((c) => c.signal), { gone: () => { gone++; } });
    calls.begin('t'); // a call in flight, listening on the signal
    clients[0]!.abort();
    assert.equal(calls.signal.aborted, false, 'one request of the batch still wants its answer');
    clients[1]!.abort();
    assert.equal(calls.signal.aborted, true);
    assert.equal(gone, 1);
    assert.match(calls.cancelled!, /every client of the calling execute\(\) of 'm' went away/);
    calls.finish();
    assert.throws(() => calls.begin('t'), { code: 'CANCELLED', message: /inference request for model 't' was cancelled/ });
  });

  test('an execute that ends with no call in flight leaves its signal alone; one taken afterwards is already aborted', () => {
    const calls = new ExecuteCalls('m', [], LIMIT, []);
    const early = calls.signal;
    calls.close('execute() returned');
    assert.equal(early.aborted, false, 'nothing listens: no abort, no Error made');
    assert.equal(calls.open, false);
    const late = new ExecuteCalls('m', [], LIMIT, []);
    late.close('execute() returned');
    assert.equal(late.signal.aborted, true);
    assert.match(String((late.signal.reason as Error).message), /execute\(\) returned/);
    assert.throws(() => late.begin('t'), { code: 'INFER_AFTER_EXECUTE' });
  });

  test('a quiet signal (never aborted, no listener left) goes to a later execute; a signal still listened on, or aborted, never does', () => {
    const first = new ExecuteCalls('m', [], LIMIT, []);
    const quiet = first.signal;
    first.begin('t');
    const listener = (): void => {};
    quiet.addEventListener('abort', listener);
    quiet.removeEventListener('abort', listener);
    first.finish();
    first.close('execute() returned');
    assert.equal(first.signal.aborted, true, 'the ended execute hands out an aborted signal from now on, not the one it gave back');
    const second = new ExecuteCalls('m', [], LIMIT, []);
    assert.equal(second.signal, quiet, 'the next execute takes the quiet signal');
    assert.equal(second.signal.aborted, false);

    // Still listened on when its execute ended: kept out of reuse.
    quiet.addEventListener('abort', listener);
    second.close('execute() returned');
    const third = new ExecuteCalls('m', [], LIMIT, []);
    assert.notEqual(third.signal, quiet, 'a signal with a listener left is not handed on');
    quiet.removeEventListener('abort', listener);

    // Aborted (the execute ended with a call in flight): never handed on.
    const aborted = third.signal;
    third.begin('t');
    third.close('execute() returned');
    assert.equal(aborted.aborted, true);
    for (let i = 0; i < 4; i++) {
      const next = new ExecuteCalls('m', [], LIMIT, []);
      assert.notEqual(next.signal, aborted, 'an aborted signal is not handed on');
      assert.equal(next.signal.aborted, false);
      next.close('execute() returned');
    }
  });

  test('a request without a signal keeps the calls alive; a batch whose clients all left already starts cancelled', () => {
    const client = new AbortController();
    const calls = new ExecuteCalls('m', [], LIMIT, [client.signal, undefined]);
    client.abort();
    assert.equal(calls.signal.aborted, false);
    const early = new AbortController();
    early.abort();
    assert.equal(new ExecuteCalls('m', [], LIMIT, [early.signal]).signal.aborted, true);
  });
});

describe('the bridge holds the limit itself', () => {
  test(`${LIMIT} calls of one execute reach the server, the next is answered with the limit, and each carries the execute's chain and signal`, async () => {
    const seen: InferenceRequest[] = [];
    let release = (): void => {};
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const infer = async (request: InferenceRequest): Promise<InferenceResponse> => {
      seen.push(request);
      await gate;
      return { modelName: request.modelName, modelVersion: '1', outputs: [] };
    };
    const calls = new ExecuteCalls('flood', ['flood@flood_0#7'], LIMIT, []);
    const bridge = createHostBridge({ modelName: 'flood', instance: 'flood_0', infer, logger: silentLogger, callsOf: (batch) => (batch === 7 ? calls : undefined) });
    const call = { model: 'target', inputs: {} };
    const answers = Array.from({ length: LIMIT + 1 }, () => bridge.infer(call, 7));
    assert.deepEqual(await answers[LIMIT], {
      error: `ctx.infer from model 'flood': this execute() already has ${LIMIT} calls in flight, its limit (parameters.max_infer_calls_in_flight); await some before making more`,
      code: 'INFER_CALLS_IN_FLIGHT',
    });
    assert.equal(seen.length, LIMIT);
    for (const request of seen) {
      assert.deepEqual(request.callChain, ['flood@flood_0#7']);
      assert.equal(request.signal, calls.signal);
    }
    release();
    for (const answer of answers.slice(0, LIMIT)) assert.deepEqual(await answer, { outputs: {} });
    assert.deepEqual(await bridge.infer(call, 8), {
      error: "ctx.infer from model 'flood' outside a running execute(): the execute() that made it has returned or ran past its time limit, " +
        'and its calls were cancelled; make and await calls inside execute(requests, ctx), with the ctx it was given',
      code: 'INFER_AFTER_EXECUTE',
    });
  });
});
