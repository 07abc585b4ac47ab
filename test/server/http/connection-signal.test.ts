/**
 * The infer route's disconnect signal is one per keep-alive connection
 * (server/http/v2-routes.ts, connectionSignal): requests on one connection
 * share it, every listener a request put on it is gone once the request is
 * answered (so none pile up on a long-lived connection), and it fires when
 * the connection closes.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { Agent, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { ExecuteOutcome, ExecuteRequest } from '../../../engine/backend.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { EchoBackend, testModelConfig, withTestBackends } from '../../helpers/test-backends.ts';
import { pollFor } from '../../helpers/wait.ts';

const IO = 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]';
const ENSEMBLE = `name: "pair"
platform: "ensemble"
max_batch_size: 4
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling {
  step [
    { model_name: "echo" model_version: -1 input_map { key: "IN" value: "X" } output_map { key: "OUT" value: "mid" } },
    { model_name: "batched" model_version: -1 input_map { key: "IN" value: "mid" } output_map { key: "OUT" value: "Y" } }
  ]
}
`;

/** The echo, keeping the signal of every request it executes. */
class SignalRecorder extends EchoBackend {
  readonly signals: (AbortSignal | undefined)[] = [];

  override begin(...args: Parameters<EchoBackend['begin']>): Promise<ExecuteOutcome> {
    const requests: readonly ExecuteRequest[] = args[2];
    for (const r of requests) this.signals.push(r.signal);
    return super.begin(...args);
  }
}

const body = (input: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ inputs: [{ name: input, datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], ...extra });

function post(agent: Agent, url: string, model: string, text: string): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, agent, method: 'POST', path: `/v2/models/${model}/infer`, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(text);
  });
}

describe('the infer route signal, one per connection', () => {
  let root: string;
  let http: HttpFixture;
  const recorder = new SignalRecorder();

  before(async () => {
    root = await makeRepository({
      echo: { config: testModelConfig('echo', 'test_echo', 4, IO), versions: { 1: null } },
      batched: { config: testModelConfig('batched', 'test_echo', 4, IO, 'dynamic_batching { max_queue_delay_microseconds: 100 }'), versions: { 1: null } },
      pair: { config: ENSEMBLE, versions: { 1: null } },
    });
    http = await startHttp(root, { backends: withTestBackends(recorder) });
  });

  after(async () => {
    await http.close();
    await removeRepository(root);
  });

  test('requests on one connection share it, and leave no listener on it once answered', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const from = recorder.signals.length;
      const calls: [string, string, number][] = [
        ['echo', body('IN'), 200], ['batched', body('IN'), 200], ['pair', body('X'), 200],
        ['echo', body('NOPE'), 400], ['echo', JSON.stringify({ inputs: [{ name: 'IN', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] }), 400], ['missing', body('IN'), 404],
      ];
      for (let round = 0; round < 5; round++) {
        for (const [model, text, status] of calls) assert.equal(await post(agent, http.url, model, text), status, `${model} round ${round}`);
      }
      const seen = recorder.signals.slice(from);
      assert.equal(seen.length, 5 * 4, 'echo, batched, and the two ensemble steps, each round');
      // The ensemble is a chain (one step in flight at a time), so its steps carry the request's signal too.
      const signal = seen[0]!;
      assert.equal(seen.filter((s) => s === signal).length, 5 * 4, 'one signal for the connection');
      assert.equal(signal.aborted, false);
      assert.equal(getEventListeners(signal, 'abort').length, 0, 'every request took its listeners off');
    } finally {
      agent.destroy();
    }
  });

  test('another connection has its own, and closing a connection fires its signal', async () => {
    const first = new Agent({ keepAlive: true, maxSockets: 1 });
    const second = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const from = recorder.signals.length;
      assert.equal(await post(first, http.url, 'echo', body('IN')), 200);
      assert.equal(await post(second, http.url, 'echo', body('IN')), 200);
      const [a, b] = recorder.signals.slice(from);
      assert.ok(a && b && a !== b, 'one signal per connection');
      first.destroy();
      await pollFor('the closed connection to fire its signal', 5000, () => a.aborted);
      assert.equal((a.reason as Error).message, 'the client closed the connection');
      assert.equal(b.aborted, false, 'the other connection is still open');
    } finally {
      first.destroy();
      second.destroy();
    }
  });
});
