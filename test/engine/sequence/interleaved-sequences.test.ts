/**
 * Many sequences at once, their requests interleaved in random order and
 * pipelined (sent without waiting for answers), with duplicate STARTs,
 * requests after END, duplicate ENDs, integer IDs past 2^53 next to each
 * other, and the integer and string forms of the same digits. Instances
 * answer after random delays. Every answer is checked against a running sum
 * kept per sequence: states never mix and each sequence's requests run in
 * the order they were sent. Both strategies, more sequences than slots.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../../generator/onnx-builder.ts';
import type { ParameterValue } from '../../../engine/inference-request.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { outputValue, sequenceConfig, sequenceHarness } from './sequence-harness.ts';
import { bytesStrings } from '../../../engine/bytes-tensor.ts';

interface Op {
  readonly id: string | number | bigint;
  readonly value: number;
  readonly start: boolean;
  readonly end: boolean;
}

function scriptFor(id: string | number | bigint, random: () => number): Op[] {
  const value = (): number => 1 + Math.floor(random() * 100);
  const ops: Op[] = [{ id, value: value(), start: true, end: false }];
  const steps = 2 + Math.floor(random() * 7);
  for (let i = 0; i < steps; i++) {
    const roll = random();
    if (roll < 0.1) ops.push({ id, value: value(), start: true, end: false });
    else if (roll < 0.18) {
      // END, then a request that must be refused, then a fresh START.
      ops.push({ id, value: value(), start: false, end: true }, { id, value: value(), start: false, end: false });
      if (random() < 0.5) ops.push({ id, value: value(), start: false, end: true });
      ops.push({ id, value: value(), start: true, end: random() < 0.2 });
    } else {
      ops.push({ id, value: value(), start: false, end: false });
    }
  }
  ops.push({ id, value: value(), start: false, end: true });
  return ops;
}

const key = (id: Op['id']): string => `${typeof id === 'string' ? 's' : 'n'}${id}`;

async function runInterleaved(strategy: string, seed: number): Promise<void> {
  const random = seededRandom(seed);
  const h = sequenceHarness(sequenceConfig(4, strategy).replace('TYPE_UINT64', 'TYPE_STRING'), {
    instances: 2, corridType: 'BYTES', autoFinish: () => Math.floor(random() * 4),
  });
  const top = (1n << 64n) - 1n;
  const ids: Array<Op['id']> = [];
  for (let i = 1; i <= 10; i++) ids.push(i, String(i));
  for (let i = 0n; i < 6n; i++) ids.push(top - i);
  ids.push('user-a', 'user-b', Number.MAX_SAFE_INTEGER, BigInt(Number.MAX_SAFE_INTEGER) + 1n);
  const scripts = ids.map((id) => scriptFor(id, random));

  const sums = new Map<string, number | undefined>();
  const checks: Array<Promise<void>> = [];
  let sent = 0;
  while (scripts.some((s) => s.length > 0)) {
    const open = scripts.filter((s) => s.length > 0);
    const op = open[Math.floor(random() * open.length)]!.shift()!;
    const k = key(op.id);
    let expected: number | 'not-started';
    if (op.start) {
      expected = op.value;
      sums.set(k, op.end ? undefined : op.value);
    } else {
      const sum = sums.get(k);
      if (sum === undefined) expected = 'not-started';
      else {
        expected = sum + op.value;
        sums.set(k, op.end ? undefined : expected);
      }
    }
    const parameters: Record<string, ParameterValue> = { sequence_id: op.id };
    if (op.start) parameters['sequence_start'] = true;
    if (op.end) parameters['sequence_end'] = true;
    const label = `request ${sent++} ${k} ${JSON.stringify({ ...op, id: String(op.id) })}`;
    checks.push(h.send(op.value, parameters).then((outcome: readonly Tensor[] | Error) => {
      if (expected === 'not-started') {
        assert.ok(outcome instanceof Error, `${label}: expected the START error`);
        assert.match(outcome.message, /must specify the START flag on the first request of the sequence/, label);
        return;
      }
      assert.equal(outputValue(outcome), expected, label);
      const corrid = (outcome as readonly Tensor[]).find((t) => t.name === 'CORRID_OUT')!;
      assert.equal(corrid.datatype === 'BYTES' ? bytesStrings(corrid)[0] : '', String(op.id), `${label}: CORRID`);
    }));
    if (random() < 0.3) await h.settle();
  }
  await Promise.all(checks);
  await h.settle();
  assert.ok(sent > 200, `${sent} requests`);
  assert.equal(h.scheduler.inflightCount(), 0);
  assert.equal(h.clock.pending, 0, 'every sequence ended, so no idle timer is left');
  const fillers = h.executions.flatMap((e) => e.rows).filter((r) => r.ready === 0);
  for (const filler of fillers) assert.deepEqual(filler, { input: 0, state: 0, start: 0, end: 0, ready: 0, corrid: '' });
}

for (const seed of [1, 2, 3]) {
  test(`direct strategy, seed ${seed}: interleaved sequences never mix state`, async () => {
    await runInterleaved('direct { }', seed);
  });
  test(`oldest strategy, seed ${seed}: interleaved sequences never mix state`, async () => {
    await runInterleaved('oldest { max_candidate_sequences: 3 }', seed);
  });
}
