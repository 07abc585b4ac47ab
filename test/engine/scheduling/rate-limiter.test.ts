import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter, type RateLimiterOptions, type RateLimiterSpec, type RegisteredInstance, type ResourceGrant } from '../../../engine/scheduling/rate-limiter.ts';

const on = (resources: RateLimiterOptions['resources'] = []): RateLimiter => RateLimiter.create({ mode: 'execution_count', resources })!;
const needs = (priority: number, ...resources: Array<[name: string, count: number, global?: boolean]>): RateLimiterSpec => ({
  priority, resources: resources.map(([name, count, global]) => ({ name, count, global: global === true })),
});
/** Lets granted promises' callbacks run. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Starts an acquire and records when it settles. */
function track(gate: RegisteredInstance, cancel?: AbortSignal): { grant: ResourceGrant | undefined; settled: boolean } {
  const state: { grant: ResourceGrant | undefined; settled: boolean } = { grant: undefined, settled: false };
  void gate.acquire(cancel).then((grant) => {
    state.grant = grant;
    state.settled = true;
  });
  return state;
}

test('--rate-limit=off builds no limiter', () => {
  assert.equal(RateLimiter.create({ mode: 'off', resources: [{ name: 'R', count: 1 }] }), undefined);
});

test('a pool holds the largest count any instance needs, per device; a global one is shared by all devices', () => {
  // Triton's documented example: A [R1: 4, R2: 4], B [R2: 5, R3: 10, R4: 5], C [R1: 1, R3: 7, R4: 2] on one device.
  const limiter = on();
  limiter.register('A', 0, needs(1, ['R1', 4], ['R2', 4]));
  limiter.register('B', 0, needs(1, ['R2', 5], ['R3', 10], ['R4', 5]));
  limiter.register('C', 0, needs(1, ['R1', 1], ['R3', 7], ['R4', 2]));
  assert.deepEqual(['R1', 'R2', 'R3', 'R4'].map((r) => limiter.poolSize(r, 0)), [4, 5, 10, 5]);
  limiter.register('D', 1, needs(1, ['R1', 2]));
  limiter.register('E', 1, needs(1, ['G', 3, true]));
  assert.equal(limiter.poolSize('R1', 1), 2, 'device 1 has a pool of its own');
  assert.equal(limiter.poolSize('G', 'global'), 3);
  assert.equal(limiter.poolSize('G', 1), undefined);
});

test('instances on different devices do not share a per-device resource; a global resource is one pool', async () => {
  const limiter = on();
  const d0 = limiter.register('d0', 0, needs(1, ['R', 1]));
  const d1 = limiter.register('d1', 1, needs(1, ['R', 1]));
  const a = track(d0);
  const b = track(d1);
  await tick();
  assert.ok(a.grant && b.grant, 'both run at once: each device has its own R');
  a.grant!.release();
  b.grant!.release();

  const g0 = limiter.register('g0', 0, needs(1, ['G', 1, true]));
  const g1 = limiter.register('g1', 1, needs(1, ['G', 1, true]));
  const c = track(g0);
  const d = track(g1);
  await tick();
  assert.ok(c.grant);
  assert.equal(d.settled, false, 'G is global: the second waits');
  c.grant!.release();
  await tick();
  assert.ok(d.grant, 'released G goes to the waiter');
  assert.equal(d.grant!.waited, true);
  assert.equal(c.grant!.waited, false);
});

test('turns follow executions x priority: priority 2 gets half the turns of priority 1', async () => {
  const limiter = on();
  const high = limiter.register('high', 0, needs(1, ['R', 1]));
  const low = limiter.register('low', 0, needs(2, ['R', 1]));
  const order: string[] = [];
  // Both always want to run again as soon as they finish.
  const loop = async (name: string, gate: RegisteredInstance): Promise<void> => {
    while (order.length < 30) {
      const grant = (await gate.acquire())!;
      order.push(name);
      await tick();
      grant.release();
    }
  };
  await Promise.all([loop('high', high), loop('low', low)]);
  const turns = order.slice(0, 30);
  const highTurns = turns.filter((n) => n === 'high').length;
  assert.equal(highTurns, 20, `high ran ${highTurns} of 30: ${turns.join(',')}`);
  // Priority 0 counts as 1.
  const limiter2 = on();
  const zero = limiter2.register('zero', 0, needs(0, ['R', 1]));
  const one = limiter2.register('one', 0, needs(1, ['R', 1]));
  const seen: string[] = [];
  const loop2 = async (name: string, gate: RegisteredInstance): Promise<void> => {
    while (seen.length < 20) {
      const grant = (await gate.acquire())!;
      seen.push(name);
      await tick();
      grant.release();
    }
  };
  await Promise.all([loop2('zero', zero), loop2('one', one)]);
  assert.equal(seen.slice(0, 20).filter((n) => n === 'zero').length, 10);
});

test('only the head of the queue is tried: an instance needing much is not passed by ones needing little', async () => {
  const limiter = on();
  const big = limiter.register('big', 0, needs(1, ['R', 2]));
  const small = limiter.register('small', 0, needs(1, ['R', 1]));
  const first = track(small);
  await tick();
  assert.ok(first.grant);
  const waitingBig = track(big);
  const waitingSmall = track(small);
  await tick();
  assert.equal(waitingBig.settled, false, 'one R is in use, big needs two');
  assert.equal(waitingSmall.settled, false, 'small would fit but big is ahead (it has run less)');
  first.grant!.release();
  await tick();
  assert.ok(waitingBig.grant);
  assert.equal(waitingSmall.settled, false);
  waitingBig.grant!.release();
  await tick();
  assert.ok(waitingSmall.grant);
  waitingSmall.grant!.release();
  waitingSmall.grant!.release();
  const again = track(big);
  await tick();
  assert.ok(again.grant, 'a second release gives nothing back twice: the pool is whole again, not over-full');
  const over = track(small);
  await tick();
  assert.equal(over.settled, false, 'the pool is 2, big holds both');
  again.grant!.release();
  await tick();
  assert.ok(over.grant);
});

test('a cancelled wait leaves the queue holding nothing, and lets the ones behind it go', async () => {
  const limiter = on();
  const big = limiter.register('big', 0, needs(1, ['R', 2]));
  const small = limiter.register('small', 0, needs(1, ['R', 1]));
  const running = track(small);
  await tick();
  const cancel = new AbortController();
  const blocked = track(big, cancel.signal);
  const behind = track(small);
  await tick();
  assert.equal(limiter.waitingCount, 2);
  cancel.abort();
  await tick();
  assert.equal(blocked.settled, true);
  assert.equal(blocked.grant, undefined, 'cancelled: no grant');
  assert.ok(behind.grant, 'the head left, so the small one behind it fits');
  assert.equal(limiter.waitingCount, 0);
  const gone = new AbortController();
  gone.abort();
  assert.equal(await big.acquire(gone.signal), undefined, 'already cancelled: never queued');
  running.grant!.release();
  behind.grant!.release();
});

test('--rate-limit-resource sets a pool, per device or for every device; a global pool takes the largest given', () => {
  const limiter = on([
    { name: 'R1', count: 10 }, { name: 'R2', count: 5, device: 0 }, { name: 'R2', count: 8, device: 1 }, { name: 'R3', count: 2 },
    { name: 'R4', count: 3, device: 0 }, { name: 'R4', count: 6, device: 1 },
  ]);
  for (const device of [0, 1]) limiter.register(`m${device}`, device, needs(1, ['R1', 1], ['R2', 1]));
  limiter.register('g', 0, needs(1, ['R3', 1, true], ['R4', 1, true]));
  // Triton's documented example on two devices.
  assert.deepEqual([limiter.poolSize('R1', 0), limiter.poolSize('R2', 0), limiter.poolSize('R1', 1), limiter.poolSize('R2', 1)], [10, 5, 10, 8]);
  assert.equal(limiter.poolSize('R3', 'global'), 2);
  assert.equal(limiter.poolSize('R4', 'global'), 6);
  // A name given twice for one device keeps the smaller count, as tritonserver does.
  const twice = on([{ name: 'R', count: 4 }, { name: 'R', count: 2 }]);
  twice.register('m', 0, needs(1, ['R', 1]));
  assert.equal(twice.poolSize('R', 0), 2);
});

test('a pool given smaller than an instance needs, or not given once others are, refuses the instance with Triton\'s error', () => {
  const limiter = on([{ name: 'R1', count: 2 }]);
  assert.throws(() => limiter.register('m', 0, needs(1, ['R1', 3])), {
    message: 'Resource count for "R1" is limited to 2 which will prevent scheduling of one or more model instances, the minimum required count is 3',
  });
  assert.throws(() => limiter.register('m', 0, needs(1, ['R9', 1])), {
    message: 'Resource count for "R9" is limited to 0 which will prevent scheduling of one or more model instances, the minimum required count is 1',
  });
  // Nothing of the refused instances stayed behind.
  limiter.register('ok', 0, needs(1, ['R1', 2]));
  assert.equal(limiter.poolSize('R1', 0), 2);
  assert.equal(limiter.poolSize('R9', 0), undefined);
  const perDevice = on([{ name: 'R', count: 4, device: 1 }]);
  assert.throws(() => perDevice.register('m', 0, needs(1, ['R', 1])), /limited to 0/, 'a count for device 1 is not one for device 0');
  perDevice.register('m', 1, needs(1, ['R', 4]));
});

test('a resource both global and per device is refused with Triton\'s error, across models', () => {
  const limiter = on();
  limiter.register('a', 0, needs(1, ['R', 1, true]));
  assert.throws(() => limiter.register('b', 0, needs(1, ['R', 1])), {
    message: 'Resource "R" is present as both global and device-specific resource in the model configuration.',
  });
  limiter.register('c', 0, needs(1, ['R', 2, true]));
  assert.equal(limiter.poolSize('R', 'global'), 2);
});

test('unregistering an instance shrinks the pools to what the others need', async () => {
  const limiter = on();
  const small = limiter.register('small', 0, needs(1, ['R', 1]));
  const large = limiter.register('large', 0, needs(1, ['R', 3]));
  assert.equal(limiter.poolSize('R', 0), 3);
  large.unregister();
  large.unregister();
  assert.equal(limiter.poolSize('R', 0), 1);
  const a = track(small);
  const b = track(small);
  await tick();
  assert.ok(a.grant);
  assert.equal(b.settled, false, 'the pool is 1 now');
  a.grant!.release();
  await tick();
  assert.ok(b.grant);
  b.grant!.release();
});

test('an instance needing nothing still takes its turn in the queue, and runs at once when nobody waits', async () => {
  const limiter = on();
  const free = limiter.register('free', 0, needs(1));
  const first = track(free);
  const second = track(free);
  await tick();
  assert.ok(first.grant && second.grant, 'nothing to hold: both granted');
  assert.equal(second.grant!.waited, false);
});
