/** The direct strategy's batch decision as a pure function: rows per slot, fillers, shapes, delay and utilization. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planDirectBatch, type SlotHead } from '../../../engine/sequence/direct-batch-plan.ts';

const head = (enqueuedAt: number, shapeKey = 'INPUT:1'): SlotHead => ({ enqueuedAt, shapeKey });
const now = (at: number) => ({ maxQueueDelayMs: 0, minimumSlotUtilization: 0, now: at });

test('rows run from slot 0 to the last slot that sends; slots with nothing get fillers', () => {
  assert.deepEqual(planDirectBatch([undefined, head(1), undefined, head(2), undefined], now(5)), { kind: 'send', rows: [false, true, false, true] });
  assert.deepEqual(planDirectBatch([undefined, undefined], now(5)), { kind: 'empty' });
});

test('the oldest request sets the shapes; requests of other shapes sit the batch out', () => {
  const heads = [head(3, 'INPUT:4'), head(1, 'INPUT:2'), head(2, 'INPUT:4'), head(4, 'INPUT:2')];
  assert.deepEqual(planDirectBatch(heads, now(5)), { kind: 'send', rows: [false, true, false, true] });
});

test('with both a queue delay and a minimum slot utilization, a thin batch waits until the oldest request has waited the delay', () => {
  const options = { maxQueueDelayMs: 10, minimumSlotUtilization: 0.5, now: 4 };
  assert.deepEqual(planDirectBatch([head(2), undefined, undefined, undefined], options), { kind: 'wait', until: 12 });
  assert.deepEqual(planDirectBatch([head(2), undefined, undefined, undefined], { ...options, now: 12 }), { kind: 'send', rows: [true] });
  assert.deepEqual(planDirectBatch([head(2), undefined, head(3), undefined], options), { kind: 'send', rows: [true, false, true] }, '2 of 4 slots reach 0.5');
  assert.deepEqual(planDirectBatch([head(2), undefined, undefined, undefined], { ...options, minimumSlotUtilization: 0 }), { kind: 'send', rows: [true] },
    'either setting alone never delays (Triton)');
});
