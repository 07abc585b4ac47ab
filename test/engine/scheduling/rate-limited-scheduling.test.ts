/**
 * The dynamic and sequence batchers with a rate limiter between them and
 * their instances: in-memory instances finished by hand show exactly which
 * execution runs while another holds a resource.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CompiledModelConfig } from '../../../engine/config/compiled-model-config.ts';
import { RateLimiter } from '../../../engine/scheduling/rate-limiter.ts';
import { harness, rows, tagOf } from './scripted-instance.ts';
import { sequenceConfig, sequenceHarness } from '../sequence/sequence-harness.ts';

const GLOBAL_G = 'instance_group [ { count: 1 kind: KIND_CPU rate_limiter { resources [ { name: "G" global: true count: 1 } ] } } ]';

/** One limiter, and the gates of each config's instances (one per group here). */
function limiterWith(...configs: CompiledModelConfig[]) {
  const limiter = RateLimiter.create({ mode: 'execution_count' })!;
  const gates = configs.map((config, m) => config.instanceGroups.map((group, g) => limiter.register(`m${m}/${g}`, 0, group.rateLimiter)));
  return { limiter, gates };
}

test('two models sharing a global resource of 1 never execute at once; a release hands the turn over', async () => {
  const configText = `max_batch_size: 8\ndynamic_batching { }\n${GLOBAL_G}`;
  const probeA = harness(configText, 1, undefined, undefined, 'a');
  const probeB = harness(configText, 1, undefined, undefined, 'b');
  const { limiter, gates } = limiterWith(probeA.config, probeB.config);
  const a = harness(configText, 1, undefined, gates[0], 'a');
  const b = harness(configText, 1, undefined, gates[1], 'b');
  const answerA = a.send(rows(1));
  const answerB = b.send(rows(2));
  await a.settle();
  assert.equal(a.executions.length + b.executions.length, 1, 'one of them runs, the other waits for G');
  assert.equal(a.executions.length, 1, 'a asked first');
  assert.equal(limiter.waitingCount, 1);
  // b's batch was formed before it waited; a later request queues behind it.
  const answerB2 = b.send(rows(3));
  a.executions[0]!.finish();
  await a.settle();
  assert.equal(tagOf((await answerA) as never), 1);
  assert.equal(b.executions.length, 1, 'G came back: b runs');
  assert.equal(a.executions.length, 1);
  b.executions[0]!.finish();
  await b.settle();
  assert.equal(tagOf((await answerB) as never), 2);
  assert.equal(b.executions.length, 2);
  b.executions[1]!.finish();
  assert.equal(tagOf((await answerB2) as never), 3);
  assert.equal(limiter.waitingCount, 0);
});

test('without a limiter the same two models run at once', async () => {
  const configText = `max_batch_size: 8\ndynamic_batching { }\n${GLOBAL_G}`;
  const a = harness(configText, 1, undefined, undefined, 'a');
  const b = harness(configText, 1, undefined, undefined, 'b');
  const answers = [a.send(rows(1)), b.send(rows(2))];
  await a.settle();
  assert.equal(a.executions.length + b.executions.length, 2);
  a.executions[0]!.finish();
  b.executions[0]!.finish();
  await Promise.all(answers);
});

test('a request cancelled while its batch waits for resources is answered at once, and its batch leaves the limiter\'s queue', async () => {
  const configText = `max_batch_size: 8\n${GLOBAL_G}`;
  const probe = harness(configText);
  const { limiter, gates } = limiterWith(probe.config, probe.config);
  const a = harness(configText, 1, undefined, gates[0], 'a');
  const b = harness(configText, 1, undefined, gates[1], 'b');
  const running = a.send(rows(1));
  const cancel = new AbortController();
  const waiting = b.send(rows(2, 1, 4, undefined, cancel.signal));
  await a.settle();
  assert.equal(limiter.waitingCount, 1);
  cancel.abort(new Error('client went away'));
  const outcome = await waiting;
  assert.ok(outcome instanceof Error);
  assert.equal((outcome as Error & { code?: string }).code, 'CANCELLED');
  await b.settle();
  assert.equal(limiter.waitingCount, 0, 'its place is released');
  assert.equal(b.scheduler.inflightCount(), 0);
  a.executions[0]!.finish();
  await running;
  await b.settle();
  assert.equal(b.executions.length, 0, 'the cancelled request is never computed');
  const later = b.send(rows(3));
  await b.settle();
  b.executions[0]!.finish();
  assert.equal(tagOf((await later) as never), 3);
});

test('rate limited, an instance holds one batch at a time: resources are held only while it computes', async () => {
  const configText = 'max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_CPU rate_limiter { resources [ { name: "R" count: 1 } ] } } ]';
  const probe = harness(configText);
  const { gates } = limiterWith(probe.config);
  const h = harness(configText, 1, undefined, gates[0]);
  const answers = [h.send(rows(1)), h.send(rows(2))];
  await h.settle();
  assert.equal(h.executions.length, 1, 'unlimited, the instance would hold both (pipelining)');
  h.executions[0]!.finish();
  await h.settle();
  assert.equal(h.executions.length, 2);
  h.executions[1]!.finish();
  assert.deepEqual((await Promise.all(answers)).map((o) => tagOf(o as never)), [1, 2]);
});

test('the sequence batcher waits for resources too, and a sequence\'s state carries over the wait', async () => {
  const text = `${sequenceConfig(1, 'direct { }')}${GLOBAL_G}`;
  const probe = sequenceHarness(text);
  const other = harness(`max_batch_size: 8\n${GLOBAL_G}`, 1, undefined, undefined, 'other');
  const { limiter, gates } = limiterWith(probe.config, other.config);
  const seq = sequenceHarness(text, { gates: gates[0] });
  const plain = harness(`max_batch_size: 8\n${GLOBAL_G}`, 1, undefined, gates[1], 'other');
  const busy = plain.send(rows(9));
  await plain.settle();
  const first = seq.send(1, { sequence_id: 7, sequence_start: true });
  await seq.settle();
  assert.equal(seq.executions.length, 0, 'G is held by the other model');
  assert.equal(limiter.waitingCount, 1);
  plain.executions[0]!.finish();
  await busy;
  await seq.settle();
  assert.equal(seq.executions.length, 1);
  seq.executions[0]!.finish();
  await first;
  const second = seq.send(2, { sequence_id: 7, sequence_end: true });
  await seq.settle();
  seq.executions[1]!.finish();
  const out = await second;
  assert.ok(!(out instanceof Error));
  assert.equal(seq.executions[1]!.rows[0]!.state, 1, 'the state the first request left');

  // Cancelled while waiting: the row is not computed and the place is released.
  const hold = plain.send(rows(8));
  await plain.settle();
  const cancel = new AbortController();
  const waiting = seq.send(5, { sequence_id: 8, sequence_start: true }, { signal: cancel.signal });
  await seq.settle();
  assert.equal(limiter.waitingCount, 1);
  cancel.abort();
  assert.equal(((await waiting) as Error & { code?: string }).code, 'CANCELLED');
  await seq.settle();
  assert.equal(limiter.waitingCount, 0);
  plain.executions[1]!.finish();
  await hold;
  await seq.settle();
  assert.equal(seq.executions.length, 2, 'nothing ran for the cancelled request');
});
