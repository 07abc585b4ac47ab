/**
 * The dynamic batcher's rules, on a manual clock with scripted instances:
 * every delay, timeout, priority and ordering decision is checked exactly.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SwitchyardError } from '../../../engine/errors.ts';
import { harness, rows, tagOf } from './scripted-instance.ts';

const isError = (value: unknown): value is SwitchyardError => value instanceof SwitchyardError;
const tags = (outcomes: readonly unknown[]): unknown[] =>
  outcomes.map((o) => (isError(o) ? o.code : tagOf(o as never)));

describe('dynamic batching: when a batch closes', () => {
  test('with no queue delay a request goes at once to an idle instance; requests queued meanwhile go together', async () => {
    const h = harness('max_batch_size: 8\ndynamic_batching { }');
    const first = h.send(rows(1));
    assert.deepEqual(h.executions.map((e) => e.sizes), [[1]], 'the first request did not wait');
    const waiting = [2, 3, 4].map((t) => h.send(rows(t)));
    assert.equal(h.executions.length, 1, 'the instance is busy, so the others queue');
    h.executions[0]!.finish();
    await first;
    assert.deepEqual(h.executions.map((e) => e.sizes), [[1], [1, 1, 1]]);
    h.executions[1]!.finish();
    assert.deepEqual(tags(await Promise.all(waiting)), [2, 3, 4]);
    const reasons = h.stats.snapshot('m', '1').batch_close_reasons;
    assert.equal(reasons.queue_empty, 2);
  });

  test('max_batch_size caps a batch; the rest waits for the next one', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }');
    const busy = h.send(rows(0));
    const queued = Array.from({ length: 10 }, (_, i) => h.send(rows(i + 1)));
    h.executions[0]!.finish();
    await busy;
    for (let i = 1; i <= 3; i++) {
      await h.settle();
      h.executions[i]!.finish();
    }
    assert.deepEqual(h.executions.map((e) => e.sizes.length), [1, 4, 4, 2]);
    assert.deepEqual(tags(await Promise.all(queued)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const reasons = h.stats.snapshot('m', '1').batch_close_reasons;
    assert.equal(reasons.max_batch_size, 2);
    assert.equal(reasons.queue_empty, 2);
  });

  test('a request larger than one row is packed whole, never split across batches', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }');
    const busy = h.send(rows(0));
    const queued = [h.send(rows(1, 1)), h.send(rows(2, 3)), h.send(rows(3, 2))];
    h.executions[0]!.finish();
    await busy;
    assert.deepEqual(h.executions[1]!.sizes, [1, 3]);
    h.executions[1]!.finish();
    await h.settle();
    assert.deepEqual(h.executions[2]!.sizes, [2]);
    h.executions[2]!.finish();
    assert.deepEqual(tags(await Promise.all(queued)), [1, 2, 3]);
  });

  test('max_queue_delay_microseconds holds a small batch until its oldest request has waited that long', async () => {
    const h = harness('max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 1000 }');
    const a = h.send(rows(1));
    assert.equal(h.executions.length, 0, 'waits for more requests');
    h.clock.advance(0.6);
    const b = h.send(rows(2));
    assert.equal(h.executions.length, 0);
    h.clock.advance(0.39);
    assert.equal(h.executions.length, 0, 'not yet: the oldest has waited 0.99 ms');
    h.clock.advance(0.01);
    assert.deepEqual(h.executions.map((e) => e.sizes), [[1, 1]]);
    h.executions[0]!.finish();
    assert.deepEqual(tags(await Promise.all([a, b])), [1, 2]);
    const stats = h.stats.snapshot('m', '1');
    assert.equal(stats.batch_close_reasons.queue_delay, 1);
    // Queue time is measured on the same clock: 1.0 ms and 0.4 ms.
    assert.equal(stats.inference_stats.queue.count, 2);
    assert.equal(stats.inference_stats.queue.ns, 1_400_000);
  });

  test('reaching a preferred batch size sends the batch before the delay runs out', async () => {
    const h = harness('max_batch_size: 8\ndynamic_batching { preferred_batch_size: [2, 4] max_queue_delay_microseconds: 50000 }');
    const a = h.send(rows(1));
    assert.equal(h.executions.length, 0);
    const b = h.send(rows(2));
    assert.deepEqual(h.executions.map((e) => e.sizes), [[1, 1]], 'sent at preferred size 2 without waiting');
    h.executions[0]!.finish();
    await Promise.all([a, b]);
    assert.equal(h.stats.snapshot('m', '1').batch_close_reasons.preferred_batch_size, 1);
  });

  test('with several preferred sizes reachable, the largest goes and the rest waits', async () => {
    const h = harness('max_batch_size: 8\ndynamic_batching { preferred_batch_size: [2, 4] max_queue_delay_microseconds: 50000 }');
    // Block the instance with one 8-row request (max_batch_size: sent at once), then queue 5 one-row requests.
    const busy = h.send(rows(100, 8));
    assert.deepEqual(h.executions.map((e) => e.sizes), [[8]], 'max_batch_size reached: sent at once');
    const queued = Array.from({ length: 5 }, (_, i) => h.send(rows(i)));
    h.executions[0]!.finish();
    await busy;
    assert.deepEqual(h.executions.map((e) => e.sizes.length), [1, 4], 'largest preferred size reached (4) goes; one waits');
    h.executions[1]!.finish();
    await h.settle();
    assert.equal(h.executions.length, 2, 'the fifth waits for company or the delay');
    h.clock.advance(50);
    assert.deepEqual(h.executions.map((e) => e.sizes.length), [1, 4, 1]);
    h.executions[2]!.finish();
    assert.deepEqual(tags(await Promise.all(queued)), [0, 1, 2, 3, 4]);
    assert.deepEqual(h.stats.snapshot('m', '1').batch_close_reasons, {
      max_batch_size: 1, preferred_batch_size: 1, queue_delay: 1, shape_mismatch: 0, queue_empty: 0,
    });
  });

  test('only requests with the same non-batch shape share a batch; a different shape closes it', async () => {
    const h = harness('max_batch_size: 8\ndynamic_batching { }');
    const busy = h.send(rows(0));
    const queued = [h.send(rows(1, 1, 4)), h.send(rows(2, 1, 4)), h.send(rows(3, 1, 8)), h.send(rows(4, 1, 4))];
    h.executions[0]!.finish();
    await busy;
    for (let i = 1; i <= 3; i++) {
      await h.settle();
      h.executions[i]!.finish();
    }
    assert.deepEqual(h.executions.map((e) => e.requests.map((r) => r.inputs[0]!.shape[1])), [[4], [4, 4], [8], [4]]);
    assert.deepEqual(tags(await Promise.all(queued)), [1, 2, 3, 4]);
    assert.equal(h.stats.snapshot('m', '1').batch_close_reasons.shape_mismatch, 2);
  });
});

test('with verbose logging each batch logs its size, why it closed, and where it went', async () => {
  const lines: string[] = [];
  const logger = { error: () => {}, warn: () => {}, info: () => {}, verbose: (m: string) => lines.push(m), verboseEnabled: true };
  const h = harness('max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 1000 }', 1, logger);
  const sent = [h.send(rows(1)), h.send(rows(2, 2))];
  h.clock.advance(1);
  h.executions[0]!.finish();
  await Promise.all(sent);
  assert.deepEqual(lines, ["model 'm': batch of 2 request(s), batch size 3, closed by queue_delay " +
    '(its oldest request waited max_queue_delay_microseconds); to instance i0, 0 still queued']);
});

test('the verbose batch line names the requests\' ids (and traces), at most eight, then how many more', async () => {
  const lines: string[] = [];
  const logger = { error: () => {}, warn: () => {}, info: () => {}, verbose: (m: string) => lines.push(m), verboseEnabled: true };
  const h = harness('max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 1000 }', 1, logger);
  const sent = Array.from({ length: 10 }, (_, i) => h.send({ ...rows(i), ...(i === 1 ? {} : { id: `r${i}` }) }));
  h.clock.advance(1);
  h.executions[0]!.finish();
  await Promise.all(sent);
  assert.match(lines[0]!, /; requests 'r0', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8' and 1 more$/);
});

describe('instances', () => {
  test('instance_group count runs batches concurrently, each batch to an idle instance', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }\ninstance_group { count: 2 kind: KIND_CPU }', 2);
    const a = h.send(rows(1));
    const b = h.send(rows(2));
    assert.deepEqual(h.executions.map((e) => e.instance), ['i0', 'i1'], 'the second request did not wait for the first');
    const c = h.send(rows(3));
    assert.equal(h.executions.length, 2, 'both instances are busy');
    h.executions[1]!.finish();
    await b;
    assert.equal(h.executions[2]!.instance, 'i1', 'the instance that became idle took the waiting request');
    h.executions[0]!.finish();
    h.executions[2]!.finish();
    assert.deepEqual(tags(await Promise.all([a, c])), [1, 3]);
  });

  test('a busy instance is handed a full batch to stage behind its current run, but not a partial one', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { max_queue_delay_microseconds: 100000 }');
    const running = h.send(rows(0, 4));
    const partial = [1, 2, 3].map((t) => h.send(rows(t)));
    assert.deepEqual(h.executions.map((e) => e.sizes.length), [1], 'three requests wait: the batch could still grow');
    const fourth = h.send(rows(4));
    assert.deepEqual(h.executions.map((e) => e.sizes), [[4], [1, 1, 1, 1]], 'full: staged on the busy instance at once');
    assert.equal(h.executions[1]!.instance, 'i0');
    h.executions[0]!.finish();
    h.executions[1]!.finish();
    assert.deepEqual(tags(await Promise.all([running, ...partial, fourth])), [0, 1, 2, 3, 4]);
  });

  test('preserve_ordering answers in arrival order even when a later batch finishes first', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { preserve_ordering: true }\ninstance_group { count: 2 kind: KIND_CPU }', 2);
    const answered: number[] = [];
    const a = h.send(rows(1)).then((o) => answered.push(tagOf(o as never)));
    const b = h.send(rows(2)).then((o) => answered.push(tagOf(o as never)));
    h.executions[1]!.finish();
    await h.settle();
    assert.deepEqual(answered, [], 'the second result waits for the first');
    h.executions[0]!.finish();
    await Promise.all([a, b]);
    assert.deepEqual(answered, [1, 2]);
  });

  test('without preserve_ordering a later batch is answered as soon as it finishes', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }\ninstance_group { count: 2 kind: KIND_CPU }', 2);
    const answered: number[] = [];
    const a = h.send(rows(1)).then((o) => answered.push(tagOf(o as never)));
    const b = h.send(rows(2)).then((o) => answered.push(tagOf(o as never)));
    h.executions[1]!.finish();
    await b;
    assert.deepEqual(answered, [2]);
    h.executions[0]!.finish();
    await a;
  });

  test('a failed batch fails every request in it with the backend message; the next batch runs', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }');
    const busy = h.send(rows(0));
    const doomed = [h.send(rows(1)), h.send(rows(2))];
    h.executions[0]!.finish();
    await busy;
    h.executions[1]!.failAll('Gather: index 99 out of range');
    for (const outcome of await Promise.all(doomed)) {
      assert.ok(isError(outcome));
      assert.equal(outcome.httpStatus, 500);
      assert.match(outcome.message, /index 99 out of range/);
    }
    const next = h.send(rows(3));
    h.executions[2]!.finish();
    assert.deepEqual(tags([await next]), [3]);
    const stats = h.stats.snapshot('m', '1');
    assert.equal(stats.inference_stats.fail.count, 2);
    assert.equal(stats.inference_stats.success.count, 2);
    assert.equal(stats.execution_count, 2, 'the failed execution is not counted');
  });
});

describe('priority levels', () => {
  const config = 'max_batch_size: 1\ndynamic_batching { priority_levels: 3 default_priority_level: 2 }';

  test('higher priority requests are served first; 0 or no priority means the default level', async () => {
    const h = harness(config);
    const busy = h.send(rows(0));
    const order: number[] = [];
    const queued = [
      h.send(rows(1, 1, 4, { priority: 3 })), h.send(rows(2)), h.send(rows(3, 1, 4, { priority: 1 })),
      h.send(rows(4, 1, 4, { priority: 0 })), h.send(rows(5, 1, 4, { priority: 1n })),
    ].map((p) => p.then((o) => order.push(tagOf(o as never))));
    h.executions[0]!.finish();
    await busy;
    for (let i = 1; i <= 5; i++) {
      await h.settle();
      h.executions[i]!.finish();
    }
    await Promise.all(queued);
    assert.deepEqual(order, [3, 5, 2, 4, 1]);
  });

  test('a priority outside the levels, or not a non-negative integer, is refused with 400', async () => {
    const h = harness(config);
    for (const [priority, pattern] of [
      [4, /invalid 'priority' parameter 4 for model 'm': the model has priority levels 1 \(highest\) to 3; use one of them, or 0 for the default level 2/],
      [-1, /invalid value -1 for the 'priority' parameter/],
      ['high', /invalid value 'high' for the 'priority' parameter of a request to model 'm': expected a non-negative integer/],
      [1.5, /invalid value 1.5 for the 'priority' parameter/],
    ] as const) {
      const outcome = await h.send(rows(1, 1, 4, { priority }));
      assert.ok(isError(outcome), `priority ${priority}`);
      assert.equal(outcome.httpStatus, 400);
      assert.equal(outcome.grpcCode, 3);
      assert.match(outcome.message, pattern);
    }
    assert.equal(h.executions.length, 0);
  });

  test('a model without priority levels ignores the priority parameter, as Triton does', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }');
    const outcome = h.send(rows(1, 1, 4, { priority: 9 }));
    h.executions[0]!.finish();
    assert.deepEqual(tags([await outcome]), [1]);
  });

  test('priority_queue_policy gives a level its own policy; the others use default_queue_policy', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { priority_levels: 2 default_priority_level: 2 ' +
      'default_queue_policy { max_queue_size: 1 } priority_queue_policy { key: 1 value { max_queue_size: 3 } } }');
    const busy = h.send(rows(0));
    const high = [1, 2, 3].map((t) => h.send(rows(t, 1, 4, { priority: 1 })));
    const low = [4, 5].map((t) => h.send(rows(t, 1, 4, { priority: 2 })));
    const refused = await h.send(rows(6, 1, 4, { priority: 1 }));
    assert.ok(isError(refused));
    assert.match(refused.message, /^Exceeds maximum queue size: model 'm' priority level 1 holds at most 3 queued request\(s\)$/);
    const lowOutcomes = await Promise.race([Promise.all(low), h.settle().then(() => undefined)]);
    assert.equal(lowOutcomes, undefined, 'the first low-priority request is still queued');
    const second = await low[1];
    assert.ok(isError(second));
    assert.match(second.message, /priority level 2 holds at most 1/);
    h.executions[0]!.finish();
    await busy;
    for (let i = 1; i <= 4; i++) {
      await h.settle();
      h.executions[i]!.finish();
    }
    assert.deepEqual(tags(await Promise.all([...high, low[0]!])), [1, 2, 3, 4]);
  });
});

describe('queue policy', () => {
  test('max_queue_size: a full queue answers 503 / UNAVAILABLE with Triton\'s wording', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { default_queue_policy { max_queue_size: 2 } }');
    const busy = h.send(rows(0));
    const queued = [h.send(rows(1)), h.send(rows(2))];
    const refused = await h.send(rows(3));
    assert.ok(isError(refused));
    assert.equal(refused.httpStatus, 503);
    assert.equal(refused.grpcCode, 14);
    assert.match(refused.message, /^Exceeds maximum queue size/);
    h.executions[0]!.finish();
    await busy;
    await h.settle();
    h.executions[1]!.finish();
    await h.settle();
    h.executions[2]!.finish();
    assert.deepEqual(tags(await Promise.all(queued)), [1, 2]);
    assert.equal(h.stats.snapshot('m', '1').inference_stats.fail.count, 1);
  });

  test('REJECT: a request still queued when its timeout passes is answered "Request timeout expired"', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 2000 } }');
    const busy = h.send(rows(0));
    const queued = h.send(rows(1));
    h.clock.advance(1.9);
    assert.equal(await Promise.race([queued, h.settle().then(() => 'pending')]), 'pending');
    h.clock.advance(0.1);
    const outcome = await queued;
    assert.ok(isError(outcome));
    assert.equal(outcome.httpStatus, 503);
    assert.match(outcome.message, /^Request timeout expired: the request waited 2\.0 ms in the queue of model 'm', longer than its timeout of 2000 us$/);
    h.executions[0]!.finish();
    await busy;
    assert.equal(h.executions.length, 1, 'the expired request was never computed');
  });

  test('DELAY: a timed-out request moves behind the requests still in time', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 1000 } }');
    const busy = h.send(rows(0));
    const order: number[] = [];
    const late = h.send(rows(1)).then((o) => order.push(tagOf(o as never)));
    h.clock.advance(1.5);
    const fresh = [2, 3].map((t) => h.send(rows(t)).then((o) => order.push(tagOf(o as never))));
    h.executions[0]!.finish();
    await busy;
    for (let i = 1; i <= 3; i++) {
      await h.settle();
      h.executions[i]!.finish();
    }
    await Promise.all([late, ...fresh]);
    assert.deepEqual(order, [2, 3, 1], 'the delayed request still runs, after the others');
  });

  test('allow_timeout_override: a request may shorten the default timeout but not lengthen it', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { default_queue_policy { default_timeout_microseconds: 5000 allow_timeout_override: true } }');
    const busy = h.send(rows(0));
    const short = h.send(rows(1, 1, 4, { timeout: 1000 }));
    const long = h.send(rows(2, 1, 4, { timeout: 60_000_000 }));
    h.clock.advance(1);
    assert.match((await short as Error).message, /^Request timeout expired.*timeout of 1000 us$/);
    h.clock.advance(4);
    assert.match((await long as Error).message, /^Request timeout expired.*timeout of 5000 us$/, 'capped at the default');
    h.executions[0]!.finish();
    await busy;
  });

  test('allow_timeout_override with no default timeout: the request\'s own timeout applies', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { default_queue_policy { allow_timeout_override: true } }');
    const busy = h.send(rows(0));
    const timed = h.send(rows(1, 1, 4, { timeout: 3000 }));
    h.clock.advance(3);
    assert.match((await timed as Error).message, /^Request timeout expired/);
    h.executions[0]!.finish();
    await busy;
  });

  test('without allow_timeout_override the timeout parameter is ignored, as Triton does', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { }');
    const busy = h.send(rows(0));
    const queued = h.send(rows(1, 1, 4, { timeout: 10 }));
    h.clock.advance(1000);
    h.executions[0]!.finish();
    await busy;
    await h.settle();
    h.executions[1]!.finish();
    assert.deepEqual(tags([await queued]), [1]);
  });

  test('a timeout parameter that is not a non-negative integer is refused with 400', async () => {
    const h = harness('max_batch_size: 1\ndynamic_batching { default_queue_policy { allow_timeout_override: true } }');
    const outcome = await h.send(rows(1, 1, 4, { timeout: 'soon' }));
    assert.ok(isError(outcome));
    assert.equal(outcome.httpStatus, 400);
    assert.match(outcome.message, /invalid value 'soon' for the 'timeout' parameter of a request to model 'm': expected a non-negative integer \(microseconds\)/);
  });
});

describe('cancellation', () => {
  test('a request cancelled while queued leaves the queue and is never computed', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }');
    const busy = h.send(rows(0));
    const controller = new AbortController();
    const cancelled = h.send(rows(1, 1, 4, undefined, controller.signal));
    const kept = h.send(rows(2));
    controller.abort(new Error('client disconnected'));
    const outcome = await cancelled;
    assert.ok(isError(outcome));
    assert.equal(outcome.code, 'CANCELLED');
    assert.match(outcome.message, /client disconnected/);
    h.executions[0]!.finish();
    await busy;
    assert.deepEqual(h.executions[1]!.sizes, [1], 'only the kept request runs');
    h.executions[1]!.finish();
    assert.deepEqual(tags([await kept]), [2]);
  });

  test('a request cancelled while executing is answered at once and its result dropped', async () => {
    const h = harness('max_batch_size: 4\ndynamic_batching { }');
    const controller = new AbortController();
    const running = h.send(rows(1, 1, 4, undefined, controller.signal));
    controller.abort(new Error('deadline exceeded'));
    assert.equal(((await running) as SwitchyardError).code, 'CANCELLED');
    h.executions[0]!.finish();
    await h.settle();
    assert.equal(h.scheduler.inflightCount(), 0);
  });
});

describe('statistics', () => {
  test('per batch size compute times, per request queue and compute times, counts', async () => {
    const h = harness('max_batch_size: 8\ndynamic_batching { }');
    const first = h.send(rows(0, 2));
    const rest = [h.send(rows(1)), h.send(rows(2, 3))];
    h.clock.advance(2);
    h.executions[0]!.finish();
    await first;
    h.executions[1]!.finish();
    await Promise.all(rest);
    const stats = h.stats.snapshot('m', '1');
    assert.equal(stats.inference_count, 6);
    assert.equal(stats.execution_count, 2);
    assert.deepEqual(stats.batch_stats.map((b) => [b.batch_size, b.compute_infer.count, b.compute_infer.ns]), [[2, 1, 5000], [4, 1, 5000]]);
    assert.equal(stats.inference_stats.success.count, 3);
    assert.equal(stats.inference_stats.compute_input.ns, 3000);
    assert.equal(stats.inference_stats.queue.ns, 4_000_000, 'the two later requests each waited 2 ms');
    assert.ok(stats.last_inference > 0);
  });
});

test('stop refuses queued requests and waits for executing ones', async () => {
  const h = harness('max_batch_size: 1\ndynamic_batching { }');
  const running = h.send(rows(1));
  const queued = h.send(rows(2));
  const stopped = h.scheduler.stop();
  assert.equal(((await queued) as SwitchyardError).code, 'SERVER_STOPPING');
  h.executions[0]!.finish();
  await stopped;
  assert.deepEqual(tags([await running]), [1]);
});
