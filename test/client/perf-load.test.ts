/**
 * Load generation without a server: the request planner (round-robin data,
 * sequence ids and start/end flags), the recorder's windows, and the
 * closed and open loops driven by a local send function that only keeps
 * count. No timing is asserted, only what was sent and in which order.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import type { Payload } from '../../client/perf/data.ts';
import {
  intervalGenerator, Recorder, RequestPlanner, startConcurrencyLoad, startRateLoad, warmUp,
  type PayloadStream, type PlannedRequest, type SequenceSettings,
} from '../../client/perf/load.ts';
import { pollFor } from '../helpers/wait.ts';

const payload = (tag: number): Payload => ({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: Int32Array.of(tag) }] });
const tagOf = (request: PlannedRequest): number => (request.payload.inputs[0]!.data as Int32Array)[0]!;
const stream = (...tags: number[]): PayloadStream => ({ payloads: tags.map(payload), requestsPerPass: tags.length });
const fixedLength = (length: number, extra: Partial<SequenceSettings> = {}): SequenceSettings =>
  ({ baseLength: length, lengthVariation: 0, idStart: 1, idEnd: undefined, ...extra });

describe('request planner', () => {
  test('without sequences, payloads go round-robin and carry no parameters', () => {
    const planner = new RequestPlanner([stream(0, 1, 2)], undefined);
    const sent = Array.from({ length: 7 }, (_, i) => planner.next(i % 3));
    assert.deepEqual(sent.map(tagOf), [0, 1, 2, 0, 1, 2, 0]);
    assert.ok(sent.every((r) => r.parameters === undefined && !r.sequenceEnd));
  });

  test('a slot runs whole sequences: one id, start on the first request, end on the last', () => {
    const planner = new RequestPlanner([stream(10, 11)], fixedLength(3));
    const sent = Array.from({ length: 6 }, () => planner.next(0));
    assert.deepEqual(sent.map((r) => r.parameters), [
      { sequence_id: 1, sequence_start: true, sequence_end: false },
      { sequence_id: 1, sequence_start: false, sequence_end: false },
      { sequence_id: 1, sequence_start: false, sequence_end: true },
      { sequence_id: 2, sequence_start: true, sequence_end: false },
      { sequence_id: 2, sequence_start: false, sequence_end: false },
      { sequence_id: 2, sequence_start: false, sequence_end: true },
    ]);
    assert.deepEqual(sent.map((r) => r.sequenceEnd), [false, false, true, false, false, true]);
    assert.deepEqual(sent.map(tagOf), [10, 11, 10, 10, 11, 10], 'each sequence replays its stream from the start');
  });

  test('concurrent slots never share a sequence id', () => {
    const planner = new RequestPlanner([stream(0)], fixedLength(2, { idStart: 100 }));
    const order = [0, 1, 2, 0, 1, 2, 0, 1];
    const ids = order.map((slot) => [slot, planner.next(slot).parameters?.['sequence_id']] as const);
    assert.deepEqual(ids, [[0, 100], [1, 101], [2, 102], [0, 100], [1, 101], [2, 102], [0, 103], [1, 104]]);
  });

  test('ids wrap within --sequence-id-range', () => {
    const planner = new RequestPlanner([stream(0)], fixedLength(1, { idStart: 5, idEnd: 7 }));
    const ids = Array.from({ length: 5 }, () => planner.next(0).parameters?.['sequence_id']);
    assert.deepEqual(ids, [5, 6, 5, 6, 5]);
  });

  test('each new sequence takes the next data stream, and without --sequence-length its length', () => {
    const planner = new RequestPlanner([stream(1, 2, 3), stream(7)], { ...fixedLength(1), baseLength: undefined });
    const tags = Array.from({ length: 6 }, () => planner.next(0)).map((r) => [tagOf(r), r.sequenceEnd]);
    assert.deepEqual(tags, [[1, false], [2, false], [3, true], [7, true], [1, false], [2, false]]);
  });

  test('lengths vary by up to ±variation%, never below 1', () => {
    const low = new RequestPlanner([stream(0)], fixedLength(10, { lengthVariation: 20 }), () => 0);
    const high = new RequestPlanner([stream(0)], fixedLength(10, { lengthVariation: 20 }), () => 0.999999);
    assert.equal(low.sequenceLength(stream(0)), 8);
    assert.equal(high.sequenceLength(stream(0)), 11);
    const tiny = new RequestPlanner([stream(0)], fixedLength(1, { lengthVariation: 100 }), () => 0);
    assert.equal(tiny.sequenceLength(stream(0)), 1);
  });

  test('open sequences are closed with a sequence_end request, once', () => {
    const planner = new RequestPlanner([stream(0)], fixedLength(5));
    planner.next(0);
    planner.next(0);
    planner.next(1);
    const closing = planner.closeOpenSequences();
    assert.deepEqual(closing.map((r) => r.parameters), [
      { sequence_id: 1, sequence_start: false, sequence_end: true },
      { sequence_id: 2, sequence_start: false, sequence_end: true },
    ]);
    assert.deepEqual(planner.closeOpenSequences(), []);
    assert.equal(planner.next(0).parameters?.['sequence_start'], true);
  });
});

describe('recorder windows', () => {
  const at = (endNs: bigint, ok = true) => ({ startNs: endNs - 5n, endNs, ok, error: ok ? undefined : 'boom', sequenceEnd: false, delayed: false });

  test('a window takes what ended inside it, drops what ended before, keeps what ended after', () => {
    const recorder = new Recorder();
    for (const end of [5n, 10n, 15n, 20n, 25n]) recorder.record(at(end));
    assert.deepEqual(recorder.take(10n, 20n).map((r) => r.endNs), [10n, 15n, 20n]);
    assert.equal(recorder.size, 1);
    assert.deepEqual(recorder.take(20n, 30n).map((r) => r.endNs), [25n]);
  });
});

/**
 * A send function that answers on the next turn of the event loop (or after `delayMs`, standing in for a
 * server's latency so that requests overlap) and remembers what it saw.
 */
function countingSender(delayMs = 0) {
  const seen: PlannedRequest[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const liveIds = new Set<unknown>();
  let overlappingSequence = false;
  const send = async (request: PlannedRequest): Promise<void> => {
    const id = request.parameters?.['sequence_id'];
    if (id !== undefined && liveIds.has(id)) overlappingSequence = true;
    if (id !== undefined) liveIds.add(id);
    seen.push(request);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await (delayMs > 0 ? sleep(delayMs) : new Promise((resolve) => setImmediate(resolve)));
    inFlight--;
    if (id !== undefined) liveIds.delete(id);
  };
  return { send, seen, get maxInFlight() { return maxInFlight; }, get overlappingSequence() { return overlappingSequence; } };
}

/** Each sequence id's requests, in send order, must start with sequence_start and end with sequence_end. */
function checkSequences(seen: readonly PlannedRequest[]): number {
  const byId = new Map<unknown, PlannedRequest[]>();
  for (const request of seen) {
    const id = request.parameters?.['sequence_id'];
    byId.set(id, [...(byId.get(id) ?? []), request]);
  }
  for (const [id, requests] of byId) {
    assert.equal(requests[0]!.parameters?.['sequence_start'], true, `sequence ${String(id)} starts with sequence_start`);
    assert.equal(requests.at(-1)!.parameters?.['sequence_end'], true, `sequence ${String(id)} ends with sequence_end`);
    assert.equal(requests.filter((r) => r.parameters?.['sequence_end']).length, 1, `sequence ${String(id)} ends once`);
    assert.equal(requests.filter((r) => r.parameters?.['sequence_start']).length, 1, `sequence ${String(id)} starts once`);
  }
  return byId.size;
}

/** Lets a load run until `enough` holds (what the test's assertions need), failing after 5 s. */
function sent(what: string, enough: () => boolean): Promise<true> {
  return pollFor(what, 5000, () => enough());
}

describe('closed loop', () => {
  test('holds exactly N requests in flight and records every one', async () => {
    const sender = countingSender();
    const recorder = new Recorder();
    const load = startConcurrencyLoad(4, new RequestPlanner([stream(0)], undefined), sender.send, recorder);
    await sent('20 requests', () => sender.seen.length >= 20);
    await load.stop();
    assert.equal(sender.maxInFlight, 4);
    assert.ok(sender.seen.length > 4);
    assert.equal(recorder.size, sender.seen.length, 'every sent request was recorded');
    const all = recorder.take(0n, process.hrtime.bigint());
    assert.ok(all.every((r) => r.ok && r.endNs >= r.startNs));
  });

  test('failures are recorded with the error message', async () => {
    const recorder = new Recorder();
    const load = startConcurrencyLoad(2, new RequestPlanner([stream(0)], undefined), async () => {
      throw new Error('model is not ready');
    }, recorder);
    await sent('4 failures recorded', () => recorder.size >= 4);
    await load.stop();
    const records = recorder.take(0n, process.hrtime.bigint());
    assert.ok(records.length > 0);
    assert.ok(records.every((r) => !r.ok && r.error === 'model is not ready'));
  });

  test('sequences: one in flight per sequence, complete start..end, all closed on stop', async () => {
    const sender = countingSender();
    const load = startConcurrencyLoad(3, new RequestPlanner([stream(0)], fixedLength(4)), sender.send, new Recorder());
    await sent('5 sequences of 4 requests', () => sender.seen.length >= 20);
    await load.stop();
    assert.equal(sender.overlappingSequence, false);
    assert.ok(checkSequences(sender.seen) > 3);
  });
});

describe('open loop', () => {
  test('constant gaps are 1/rate; Poisson gaps are exponential in the random draw', () => {
    assert.equal(intervalGenerator(250, 'constant')(), 4e6);
    const draws = [0.5, 0];
    const poisson = intervalGenerator(1000, 'poisson', () => draws.shift()!);
    assert.ok(Math.abs(poisson() - Math.LN2 * 1e6) < 1e-6);
    assert.ok(poisson() === 0, "a draw of 0 sends at once");
  });

  test('sends on schedule without waiting for answers', async () => {
    const sender = countingSender(20);
    const recorder = new Recorder();
    const load = startRateLoad({ rate: 2000, distribution: 'constant', sequences: 1 }, new RequestPlanner([stream(0)], undefined), sender.send, recorder);
    await sent('10 requests', () => sender.seen.length >= 10);
    await load.stop();
    assert.ok(sender.maxInFlight > 1, 'requests overlap: the loop is open');
    assert.equal(recorder.size, sender.seen.length);
  });

  test('sequences round-robin over --num-of-sequences, each one request at a time and in order', async () => {
    const sender = countingSender(3);
    const recorder = new Recorder();
    const load = startRateLoad({ rate: 3000, distribution: 'poisson', sequences: 2 }, new RequestPlanner([stream(0)], fixedLength(3)), sender.send, recorder);
    await sent('4 sequences of 3 requests', () => sender.seen.length >= 12);
    await load.stop();
    assert.equal(sender.overlappingSequence, false);
    assert.ok(checkSequences(sender.seen) >= 2);
    const records = recorder.take(0n, process.hrtime.bigint());
    assert.ok(records.some((r) => r.delayed), 'requests queued behind their sequence count as delayed');
  });
});

describe('warm-up', () => {
  test('sends exactly the requested count', async () => {
    const sender = countingSender();
    await warmUp(7, 3, new RequestPlanner([stream(0)], undefined), sender.send);
    assert.equal(sender.seen.length, 7);
    assert.ok(sender.maxInFlight <= 3);
  });
});
