/**
 * Priorities, queue policies and dynamic batching seen from the wire: the
 * same request gets the same status and message over HTTP and gRPC, and
 * the server keeps serving afterwards. A long max_queue_delay holds requests
 * in the queue, so what is queued at any moment is known without timing luck.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';

const HOLD_US = 400_000;

const MODELS = {
  // Requests wait up to HOLD_US for company; at most 2 wait at the low level, 3 at the high one.
  held: addSubConfig('held', `dynamic_batching {
    max_queue_delay_microseconds: ${HOLD_US}
    priority_levels: 2
    default_priority_level: 2
    default_queue_policy { max_queue_size: 2 allow_timeout_override: true }
    priority_queue_policy { key: 1 value { max_queue_size: 3 } }
  }`),
  plain: addSubConfig('plain', 'dynamic_batching { }'),
};

function httpBody(tag: number, parameters?: Record<string, unknown>): string {
  const data = Array.from({ length: 16 }, () => tag);
  return JSON.stringify({
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data },
    ],
    ...(parameters ? { parameters } : {}),
  });
}

function grpcRequest(model: string, tag: number, parameters?: Record<string, Message>): Message {
  const contents = { int_contents: Array.from({ length: 16 }, () => tag) };
  return {
    model_name: model,
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents },
    ],
    ...(parameters ? { parameters } : {}),
  };
}

describe('schedule policy over HTTP and gRPC', () => {
  let root: string;
  let fixture: DualFixture;
  let grpc: RawGrpcClient;

  const post = async (model: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const response = await fetch(`${fixture.httpUrl}/v2/models/${model}/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    return { status: response.status, json: await response.json() as Record<string, unknown> };
  };

  before(async () => {
    root = await makeRepository({
      held: { config: MODELS.held, versions: { 1: addSubModel('INT32', 16) } },
      plain: { config: MODELS.plain, versions: { 1: addSubModel('INT32', 16) } },
    });
    fixture = await startBoth(root);
    grpc = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    grpc.close();
    await fixture.close();
    await removeRepository(root);
  });

  test('a priority outside the levels: 400 / INVALID_ARGUMENT with the same message', async () => {
    const expected = "invalid 'priority' parameter 3 for model 'held': the model has priority levels 1 (highest) to 2; use one of them, or 0 for the default level 2";
    const http = await post('held', httpBody(1, { priority: 3 }));
    assert.equal(http.status, 400);
    assert.equal(http.json['error'], expected);
    const call = await grpc.call('ModelInfer', grpcRequest('held', 1, { priority: { int64_param: 3 } }));
    assert.equal(call.error?.code, 3);
    assert.equal(call.error?.details, expected);
  });

  test('a full queue: 503 / UNAVAILABLE, "Exceeds maximum queue size"; the queued requests still complete', async () => {
    const queued = [post('held', httpBody(1)), post('held', httpBody(2))];
    // Both wait for the queue delay; the level holds 2, so the next one is refused on arrival.
    await waitFor(() => queuedCount(fixture) === 2);
    const refused = await post('held', httpBody(3));
    assert.equal(refused.status, 503);
    assert.equal(refused.json['error'], "Exceeds maximum queue size: model 'held' priority level 2 holds at most 2 queued request(s)");
    const call = await grpc.call('ModelInfer', grpcRequest('held', 3));
    assert.equal(call.error?.code, 14);
    assert.match(call.error?.details ?? '', /^Exceeds maximum queue size/);
    // The high level has its own, larger queue.
    const high = await grpc.call('ModelInfer', grpcRequest('held', 4, { priority: { uint64_param: 1 } }));
    assert.equal(high.error, undefined);
    for (const outcome of await Promise.all(queued)) assert.equal(outcome.status, 200);
  });

  test('a request timeout that expires in the queue: 503 / UNAVAILABLE, "Request timeout expired"', async () => {
    const http = await post('held', httpBody(1, { timeout: 1000 }));
    assert.equal(http.status, 503);
    assert.match(String(http.json['error']), /^Request timeout expired: the request waited \d+\.\d ms in the queue of model 'held', longer than its timeout of 1000 us$/);
    const call = await grpc.call('ModelInfer', grpcRequest('held', 1, { timeout: { int64_param: 1000 } }));
    assert.equal(call.error?.code, 14);
    assert.match(call.error?.details ?? '', /^Request timeout expired/);
  });

  test('a timeout that is not an integer: 400 / INVALID_ARGUMENT', async () => {
    const http = await post('held', httpBody(1, { timeout: 'soon' }));
    assert.equal(http.status, 400);
    assert.match(String(http.json['error']), /invalid value 'soon' for the 'timeout' parameter of a request to model 'held'/);
    const call = await grpc.call('ModelInfer', grpcRequest('held', 1, { timeout: { string_param: 'soon' } }));
    assert.equal(call.error?.code, 3);
  });

  test('concurrent requests held by the queue delay run as one batch, each answered with its own rows', async () => {
    const before = executions(fixture, 'held');
    // Level 1 holds up to 3 waiting requests.
    const answers = await Promise.all([5, 6, 7].map((tag) => post('held', httpBody(tag, { priority: 1 }))));
    for (const [i, answer] of answers.entries()) {
      assert.equal(answer.status, 200);
      const outputs = answer.json['outputs'] as { name: string; data: number[] }[];
      assert.deepEqual(outputs.find((o) => o.name === 'OUTPUT0')!.data, Array.from({ length: 16 }, () => 2 * (5 + i)));
    }
    assert.equal(executions(fixture, 'held') - before, 1, 'one model execution for the three requests');
  });

  test('an HTTP client that disconnects while queued leaves the queue; its request is never computed', async () => {
    const before = fixture.engine.modelStatistics('held').model_stats[0]!;
    const body = httpBody(9);
    const url = new URL(fixture.httpUrl);
    const socket = net.connect({ host: url.hostname, port: Number(url.port) });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`POST /v2/models/held/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await waitFor(() => queuedCount(fixture) === 1);
    socket.destroy();
    await waitFor(() => queuedCount(fixture) === 0, HOLD_US / 2000);
    const after = fixture.engine.modelStatistics('held').model_stats[0]!;
    assert.equal(after.inference_stats.fail.count - before.inference_stats.fail.count, 1, 'answered CANCELLED');
    assert.equal(after.execution_count, before.execution_count, 'nothing was computed');
  });

  test('the server keeps serving after every refusal', async () => {
    const ok = await post('plain', httpBody(2));
    assert.equal(ok.status, 200);
  });
});

function executions(fixture: DualFixture, model: string): number {
  return fixture.engine.modelStatistics(model).model_stats.reduce((n, s) => n + s.execution_count, 0);
}

/** Requests queued or executing for a model, read from the engine. */
function queuedCount(fixture: DualFixture): number {
  return fixture.engine.pendingRequestCount('held');
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
