/**
 * Server memory per idle sequence, measured in a child process started with
 * --expose-gc so that every reading follows a forced full GC.
 *
 * One model (the benchmark's state MLP, `oldest` with a slot for every
 * sequence opened, max_sequence_idle_microseconds one hour) gets N START
 * requests, each answered and checked, and the sequences are left open and
 * idle; then N more. The main thread's heapUsed and arrayBuffers are read
 * before, after the first N and after the second N: the first difference
 * includes one-off costs (the map and set that index sequences growing, the
 * batches' pool buffers), the second is the marginal cost. A sample of the
 * sequences is then stepped once more, without START, to show they were
 * still open.
 *
 * Then, with the server closed, the same readings around the parts a
 * sequence is made of, built alone: N SequenceActors brought to
 * `active.idle` (each arms its idle timer), N left in `waiting` (no timer),
 * N bare setTimeout handles, and N state Maps shaped like the batcher's.
 */
import type { FixedTensor } from '../../engine/tensor.ts';
import { nowMs } from '../latencies.ts';
import { buildSequenceRepository, STATE_BYTES, STATE_WIDTH } from './state-mlp-repository.ts';

export interface IdleMemoryInit {
  readonly sequences: number;
  readonly maxBatchSize: number;
  /** START requests in flight at once while opening. */
  readonly wave: number;
}

export interface MemoryDelta {
  /** Per item, in bytes. */
  readonly heapUsed: number;
  readonly arrayBuffers: number;
}

export interface IdlePart {
  readonly part: string;
  readonly how: string;
  readonly perItem: MemoryDelta;
}

export interface IdleMemoryResult {
  readonly sequences: number;
  readonly stateBytes: number;
  /** From before any sequence to N idle sequences, per sequence. */
  readonly first: MemoryDelta;
  /** From N to 2N idle sequences, per sequence. */
  readonly second: MemoryDelta;
  readonly heapBefore: number;
  readonly heapAfter: number;
  readonly openSeconds: number;
  /** Of the sampled sequences, how many took a step without START after the measurement. */
  readonly stillOpen: number;
  readonly sampled: number;
  readonly parts: readonly IdlePart[];
}

const IDLE_MICROSECONDS = 3_600_000_000;
const MODEL = 'idle_oldest';
const SAMPLE = 100;

function gcNow(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
}

interface Reading { readonly heapUsed: number; readonly arrayBuffers: number }

async function read(): Promise<Reading> {
  // A turn of the event loop first, so that nothing of the last step is still on a stack.
  await new Promise((resolve) => setImmediate(resolve));
  gcNow();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heapUsed, arrayBuffers };
}

const per = (from: Reading, to: Reading, n: number): MemoryDelta => ({
  heapUsed: (to.heapUsed - from.heapUsed) / n, arrayBuffers: (to.arrayBuffers - from.arrayBuffers) / n,
});

/** Bytes per item that `build` keeps alive, holding its N results until measured. */
async function measurePart<T>(n: number, build: (i: number) => T, release: (items: T[]) => void): Promise<MemoryDelta> {
  const before = await read();
  const items = Array.from({ length: n }, (_, i) => build(i));
  const after = await read();
  release(items);
  items.length = 0;
  return per(before, after, n);
}

export async function measureIdleMemory(init: IdleMemoryInit): Promise<IdleMemoryResult> {
  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { silentLogger } = await import('../../engine/logger.ts');
  const { createEngine } = await import('../../server/composition-root.ts');
  const { bytesOf, typedView } = await import('../../engine/tensor.ts');
  const n = init.sequences;
  const repository = await buildSequenceRepository([{
    name: MODEL, maxBatchSize: init.maxBatchSize, maxSequenceIdleMicroseconds: IDLE_MICROSECONDS,
    strategy: `oldest { max_candidate_sequences: ${2 * n + 64} preferred_batch_size: [ ${init.maxBatchSize} ] }`,
  }]);
  const values = new Float32Array(STATE_WIDTH).map((_, j) => (j % 7) - 3);
  const input: FixedTensor = { name: 'INPUT', datatype: 'FP32', shape: [1, STATE_WIDTH], raw: bytesOf(values) };
  const step = async (id: number, flags: { start?: boolean; end?: boolean }, times: number): Promise<void> => {
    const response = await engine.infer({
      modelName: MODEL, inputs: [input], parameters: { sequence_id: id, sequence_start: flags.start ?? false, sequence_end: flags.end ?? false },
    });
    const output = response.outputs.find((t) => t.name === 'OUTPUT');
    if (!output || output.datatype !== 'FP32') throw new Error(`sequence ${id}: no FP32 OUTPUT`);
    const got = typedView('FP32', output.raw);
    for (let j = 0; j < STATE_WIDTH; j++) {
      if (got[j] !== times * values[j]!) throw new Error(`sequence ${id}: OUTPUT[${j}] = ${got[j]}, expected ${times * values[j]!}`);
    }
  };
  const open = async (first: number, count: number): Promise<void> => {
    for (let at = 0; at < count; at += init.wave) {
      const ids = Array.from({ length: Math.min(init.wave, count - at) }, (_, i) => first + at + i);
      await Promise.all(ids.map((id) => step(id, { start: true }, 1)));
    }
  };

  const engine = await createEngine({ modelRepositories: [repository.root], logger: silentLogger });
  let result: Omit<IdleMemoryResult, 'parts'>;
  try {
    if (engine.loadFailures().length > 0) throw new Error(`model failed to load: ${JSON.stringify(engine.loadFailures())}`);
    // Warm-up: sequences opened and ended, so code is compiled and pool buffers exist before the baseline.
    await open(1, 4 * init.wave);
    await Promise.all(Array.from({ length: 4 * init.wave }, (_, i) => step(1 + i, { end: true }, 2)));

    const base = 1_000_000;
    const m0 = await read();
    const t0 = nowMs();
    await open(base, n);
    const openSeconds = (nowMs() - t0) / 1000;
    const m1 = await read();
    await open(base + n, n);
    const m2 = await read();
    let stillOpen = 0;
    const sampled = Array.from({ length: SAMPLE }, (_, i) => base + Math.floor((i * 2 * n) / SAMPLE));
    await Promise.all(sampled.map((id) => step(id, { end: true }, 2).then(() => { stillOpen++; }, () => undefined)));
    result = {
      sequences: n, stateBytes: STATE_BYTES, first: per(m0, m1, n), second: per(m1, m2, n),
      heapBefore: m0.heapUsed, heapAfter: m2.heapUsed, openSeconds, stillOpen, sampled: SAMPLE,
    };
  } finally {
    await engine.close();
    await removeRepository(repository.root);
  }
  return { ...result, parts: await measureParts(n) };
}

/** The pieces of an idle sequence, each built N times alone. */
async function measureParts(n: number): Promise<IdleMemoryResult['parts']> {
  const { SequenceActor } = await import('../../engine/sequence/sequence-machine.ts');
  const { systemClock } = await import('../../engine/scheduling/clock.ts');
  const idleMs = IDLE_MICROSECONDS / 1000;
  const actor = (): InstanceType<typeof SequenceActor> => new SequenceActor({ idleMs, clock: systemClock, onEnd: () => undefined });
  const stop = (actors: InstanceType<typeof SequenceActor>[]): void => actors.forEach((a) => a.send({ type: 'STOP' }));
  const parts: IdlePart[] = [];
  // Once, so that xstate's code is compiled before the first reading.
  stop([actor()]);
  parts.push({
    part: 'SequenceActor', how: 'in active.idle, idle timer armed',
    perItem: await measurePart(n, () => {
      const a = actor();
      a.send({ type: 'SLOT' });
      a.send({ type: 'DRAINED' });
      if (a.state !== 'active.idle') throw new Error(`actor in ${a.state}`);
      return a;
    }, stop),
  });
  parts.push({ part: 'SequenceActor', how: 'in waiting, no timer', perItem: await measurePart(n, actor, stop) });
  parts.push({
    part: 'setTimeout handle', how: 'alone, for comparison',
    perItem: await measurePart(n, () => setTimeout(() => undefined, idleMs), (timers) => timers.forEach((t) => clearTimeout(t))),
  });
  parts.push({
    part: 'state Map', how: `one FP32 [1, ${STATE_WIDTH}] tensor, as the batcher keeps it`,
    perItem: await measurePart(n, () => new Map([['STATE_IN', { name: 'STATE_IN', datatype: 'FP32', shape: [1, STATE_WIDTH], raw: new Uint8Array(STATE_BYTES) }]]),
      () => undefined),
  });
  return parts;
}
