/** dynamic_batching compiles to the scheduler's spec, and its mistakes fail the load naming file, line and field. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelConfigError } from '../../../engine/config/config-error.ts';
import { compileTestConfig } from '../scheduling/scripted-instance.ts';

const batchingOf = (text: string) => {
  const config = compileTestConfig(text);
  assert.equal(config.scheduling.kind, 'dynamic');
  return config.scheduling.kind === 'dynamic' ? config.scheduling.batching : undefined;
};

test('priorities and queue policies compile per level; unset levels take default_queue_policy', () => {
  const batching = batchingOf(`max_batch_size: 8
dynamic_batching {
  preferred_batch_size: [ 8, 2, 4, 4 ]
  max_queue_delay_microseconds: 250
  preserve_ordering: true
  priority_levels: 3
  default_priority_level: 2
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 9000 allow_timeout_override: true max_queue_size: 16 }
  priority_queue_policy { key: 1 value { max_queue_size: 4 } }
}`)!;
  assert.deepEqual(batching.preferredBatchSizes, [2, 4, 8]);
  assert.equal(batching.maxQueueDelayMicroseconds, 250);
  assert.equal(batching.preserveOrdering, true);
  assert.equal(batching.priorityLevels, 3);
  assert.equal(batching.defaultPriorityLevel, 2);
  assert.deepEqual(batching.queuePolicies, [
    { timeoutAction: 'REJECT', defaultTimeoutMicroseconds: 0, allowTimeoutOverride: false, maxQueueSize: 4 },
    { timeoutAction: 'DELAY', defaultTimeoutMicroseconds: 9000, allowTimeoutOverride: true, maxQueueSize: 16 },
    { timeoutAction: 'DELAY', defaultTimeoutMicroseconds: 9000, allowTimeoutOverride: true, maxQueueSize: 16 },
  ]);
});

test('without priority levels there is one queue with default_queue_policy; without dynamic_batching, no batching', () => {
  const batching = batchingOf('max_batch_size: 8\ndynamic_batching { default_queue_policy { max_queue_size: 3 } }')!;
  assert.equal(batching.priorityLevels, 0);
  assert.deepEqual(batching.preferredBatchSizes, [8], 'unset preferred sizes complete to max_batch_size');
  assert.equal(batching.queuePolicies.length, 1);
  assert.equal(batching.queuePolicies[0]!.maxQueueSize, 3);
  assert.equal(batchingOf('max_batch_size: 8'), undefined);
});

for (const [title, text, pattern] of [
  ['a default level outside the levels', 'dynamic_batching {\n  priority_levels: 2\n  default_priority_level: 3\n}',
    /config\.pbtxt:4: dynamic_batching\.default_priority_level: is 3, outside the priority levels 1\.\.2\. Fix: set default_priority_level to a level between 1 \(highest\) and 2/],
  ['levels set but no default level', 'dynamic_batching {\n  priority_levels: 2\n}',
    /dynamic_batching\.default_priority_level: is 0, outside the priority levels 1\.\.2/],
  ['a default level without levels', 'dynamic_batching {\n  default_priority_level: 1\n}',
    /dynamic_batching\.default_priority_level: is 1 but priority_levels is not set\. Fix: set priority_levels/],
  ['a policy for a level that does not exist', 'dynamic_batching {\n  priority_levels: 2\n  default_priority_level: 1\n  priority_queue_policy { key: 5 value { max_queue_size: 1 } }\n}',
    /dynamic_batching\.priority_queue_policy\[5\]: names level 5, outside the priority levels 1\.\.2/],
  ['a preferred size above max_batch_size', 'dynamic_batching {\n  preferred_batch_size: [ 4, 16 ]\n}',
    /dynamic_batching\.preferred_batch_size: 16 is outside 1\.\.max_batch_size \(8\)/],
] as const) {
  test(`refused at load: ${title}`, () => {
    assert.throws(() => compileTestConfig(`max_batch_size: 8\n${text}`), (err: Error) => {
      assert.ok(err instanceof ModelConfigError, err.message);
      assert.match(err.message, pattern);
      return true;
    });
  });
}
