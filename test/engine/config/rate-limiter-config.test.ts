/** instance_group.rate_limiter compiles in every config form, shows in the completed config, and its mistakes fail the load. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readModelSettings } from '../../../engine/config/compile-model-config.ts';
import { ModelConfigError } from '../../../engine/config/config-error.ts';
import { parseModelConfig } from '../../../engine/config/parse-model-config.ts';
import { NO_RATE_LIMITER_SPEC } from '../../../engine/scheduling/rate-limiter.ts';
import { compileTestConfig } from '../scheduling/scripted-instance.ts';
import { defaultBackends } from '../../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

const groupsOf = (file: string, text: string) => readModelSettings('m', '/repo/m', parseModelConfig(`/repo/m/${file}`, text), BACKENDS).instanceGroups;

test('rate_limiter resources and priority compile from pbtxt, YAML and JSON alike', () => {
  const expected = { resources: [{ name: 'R1', global: false, count: 4 }, { name: 'G', global: true, count: 1 }], priority: 2 };
  const pbtxt = groupsOf('config.pbtxt', `instance_group [ { count: 2 kind: KIND_CPU rate_limiter {
    resources [ { name: "R1" count: 4 }, { name: "G" global: true count: 1 } ]
    priority: 2 } } ]`);
  const yaml = groupsOf('config.yaml', `instance_group:
  - count: 2
    kind: KIND_CPU
    rate_limiter:
      resources:
        - { name: R1, count: 4 }
        - { name: G, global: true, count: 1 }
      priority: 2
`);
  const json = groupsOf('config.json', JSON.stringify({
    instance_group: [{ count: 2, kind: 'KIND_CPU', rate_limiter: { resources: [{ name: 'R1', count: 4 }, { name: 'G', global: true, count: 1 }], priority: 2 } }],
  }));
  for (const groups of [pbtxt, yaml, json]) assert.deepEqual(groups[0]!.rateLimiter, expected);
});

test('a group without rate_limiter needs nothing; the completed config shows rate_limiter only where it is declared', () => {
  const plain = compileTestConfig('max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_CPU } ]');
  assert.equal(plain.instanceGroups[0]!.rateLimiter, NO_RATE_LIMITER_SPEC);
  assert.equal((plain.json['instance_group'] as Array<Record<string, unknown>>)[0]!['rate_limiter'], undefined);
  const limited = compileTestConfig('max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_CPU rate_limiter { resources [ { name: "R" count: 3 } ] } } ]');
  assert.deepEqual((limited.json['instance_group'] as Array<Record<string, unknown>>)[0]!['rate_limiter'],
    { resources: [{ name: 'R', global: false, count: 3 }], priority: 0 });
  assert.deepEqual(compileTestConfig('max_batch_size: 8').instanceGroups[0]!.rateLimiter, NO_RATE_LIMITER_SPEC, 'the default group');
});

for (const [title, group, pattern] of [
  ['a resource without a name', 'rate_limiter { resources [ { count: 1 } ] }',
    /instance_group\[0\]\.rate_limiter\.resources\[0\]\.name: is empty\. Fix: name the resource/],
  ['a resource listed twice', 'rate_limiter { resources [ { name: "R" count: 1 }, { name: "R" count: 2 } ] }',
    /instance_group\[0\]\.rate_limiter\.resources\[1\]\.name: 'R' is listed twice in this rate_limiter/],
  ['a count that is not a whole number', 'rate_limiter { resources [ { name: "R" count: 1.5 } ] }',
    /config\.pbtxt:\d+: instance_group\[0\]\.rate_limiter\.resources\[0\]\.count: is '1\.5', not a whole number/],
  ['a negative priority', 'rate_limiter { priority: -1 }',
    /instance_group\[0\]\.rate_limiter\.priority: is '-1', not a whole number of 0 or more \(Expected integer, got: -\)/],
] as const) {
  test(`refused at load: ${title}`, () => {
    assert.throws(() => compileTestConfig(`max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_CPU ${group} } ]`), (err: Error) => {
      assert.ok(err instanceof ModelConfigError, err.message);
      assert.match(err.message, pattern);
      return true;
    });
  });
}

test('refused at load: a negative count or priority, or one past uint32, in a JSON config', () => {
  for (const [limiter, field] of [
    [{ resources: [{ name: 'R', count: -1 }] }, /rate_limiter\.resources\[0\]\.count: is -1/],
    [{ resources: [{ name: 'R', count: 4294967296 }] }, /rate_limiter\.resources\[0\]\.count: is 4294967296/],
    [{ priority: -2 }, /rate_limiter\.priority: is -2/],
    [{ priority: 4294967296 }, /rate_limiter\.priority: is 4294967296/],
  ] as const) {
    const text = JSON.stringify({ instance_group: [{ count: 1, kind: 'KIND_CPU', rate_limiter: limiter }] });
    assert.throws(() => groupsOf('config.json', text), (err: Error) => {
      assert.ok(err instanceof ModelConfigError, err.message);
      assert.match(err.message, field);
      return true;
    }, JSON.stringify(limiter));
  }
  // The bounds themselves are fine.
  const edge = groupsOf('config.json', JSON.stringify({
    instance_group: [{ count: 1, kind: 'KIND_CPU', rate_limiter: { resources: [{ name: 'R', count: 4294967295 }, { name: 'Z', count: 0 }], priority: 4294967295 } }],
  }));
  assert.deepEqual(edge[0]!.rateLimiter, { resources: [{ name: 'R', global: false, count: 4294967295 }, { name: 'Z', global: false, count: 0 }], priority: 4294967295 });
});
