/**
 * Load generation: which request goes next (round-robin data, sequences
 * with their ids and start/end flags), a record of every completed request,
 * and the two load shapes: a closed loop holding N requests in flight, and
 * an open loop sending at a fixed rate.
 */
import type { Payload } from './data.ts';

export interface PlannedRequest {
  readonly payload: Payload;
  /** sequence_id / sequence_start / sequence_end for sequence models. */
  readonly parameters: Readonly<Record<string, number | boolean>> | undefined;
  /** The last request of its sequence. */
  readonly sequenceEnd: boolean;
}

/** Sends one request; resolves on success and rejects with the server's error. */
export type Sender = (request: PlannedRequest) => Promise<void>;

export interface SequenceSettings {
  /** Requests per sequence; undefined takes each data stream's own length. */
  readonly baseLength: number | undefined;
  /** Percent; a sequence's length is base ± up to this much (at least 1). */
  readonly lengthVariation: number;
  readonly idStart: number;
  /** Exclusive; ids wrap around within [idStart, idEnd). */
  readonly idEnd: number | undefined;
}

export interface PayloadStream {
  readonly payloads: readonly Payload[];
  /** Requests in one pass over the stream, which sets a sequence's length when no --sequence-length is given. */
  readonly requestsPerPass: number;
}

interface SlotSequence {
  readonly id: number;
  readonly length: number;
  readonly stream: PayloadStream;
  position: number;
}

/**
 * Hands out requests. Without sequences it walks the payloads round-robin.
 * With sequences every slot (a virtual client) runs one sequence at a time:
 * a fresh sequence_id, sequence_start on its first request, sequence_end on
 * its last, the data of one stream in order.
 */
export class RequestPlanner {
  readonly #streams: readonly PayloadStream[];
  readonly #sequence: SequenceSettings | undefined;
  readonly #random: () => number;
  readonly #slots = new Map<number, SlotSequence>();
  #next = 0;
  #sequencesStarted = 0;

  constructor(streams: readonly PayloadStream[], sequence: SequenceSettings | undefined, random: () => number = Math.random) {
    if (streams.length === 0 || streams.some((s) => s.payloads.length === 0)) throw new Error('RequestPlanner needs at least one payload per stream');
    this.#streams = streams;
    this.#sequence = sequence;
    this.#random = random;
  }

  get isSequence(): boolean {
    return this.#sequence !== undefined;
  }

  /** perf_analyzer's rule: base + a uniform offset of up to ±variation%, never below 1. */
  sequenceLength(stream: PayloadStream): number {
    const settings = this.#sequence as SequenceSettings;
    const base = settings.baseLength ?? stream.requestsPerPass;
    const offset = Math.trunc((2 * this.#random() - 1) * (settings.lengthVariation / 100) * base);
    return Math.max(1, base + offset);
  }

  #nextSequenceId(): number {
    const settings = this.#sequence as SequenceSettings;
    const n = this.#sequencesStarted++;
    return settings.idEnd === undefined ? settings.idStart + n : settings.idStart + (n % (settings.idEnd - settings.idStart));
  }

  next(slot: number): PlannedRequest {
    if (this.#sequence === undefined) {
      const stream = this.#streams[0] as PayloadStream;
      const payload = stream.payloads[this.#next++ % stream.payloads.length] as Payload;
      return { payload, parameters: undefined, sequenceEnd: false };
    }
    let current = this.#slots.get(slot);
    if (current === undefined) {
      const stream = this.#streams[this.#sequencesStarted % this.#streams.length] as PayloadStream;
      current = { id: this.#nextSequenceId(), length: this.sequenceLength(stream), stream, position: 0 };
      this.#slots.set(slot, current);
    }
    const position = current.position++;
    const last = position === current.length - 1;
    if (last) this.#slots.delete(slot);
    return {
      payload: current.stream.payloads[position % current.stream.payloads.length] as Payload,
      parameters: { sequence_id: current.id, sequence_start: position === 0, sequence_end: last },
      sequenceEnd: last,
    };
  }

  /**
   * One closing request (sequence_end) for every sequence still open, so a
   * stopped run leaves no sequence behind on the server.
   */
  closeOpenSequences(): PlannedRequest[] {
    const closing = [...this.#slots.values()].map((s) => ({
      payload: s.stream.payloads[s.position % s.stream.payloads.length] as Payload,
      parameters: { sequence_id: s.id, sequence_start: s.position === 0, sequence_end: true },
      sequenceEnd: true,
    }));
    this.#slots.clear();
    return closing;
  }
}

export interface RequestRecord {
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly ok: boolean;
  /** The server's message for a failed request. */
  readonly error: string | undefined;
  readonly sequenceEnd: boolean;
  /** Sent later than its schedule (request-rate mode). */
  readonly delayed: boolean;
}

/** Completed requests, kept in completion order until a window takes them. */
export class Recorder {
  readonly #records: RequestRecord[] = [];

  record(record: RequestRecord): void {
    this.#records.push(record);
  }

  get size(): number {
    return this.#records.length;
  }

  /**
   * The requests that ended within [startNs, endNs]; anything that ended
   * before the window is dropped, anything after stays for the next one.
   */
  take(startNs: bigint, endNs: bigint): RequestRecord[] {
    let cut = 0;
    while (cut < this.#records.length && (this.#records[cut] as RequestRecord).endNs <= endNs) cut++;
    const taken = this.#records.splice(0, cut);
    return taken.filter((r) => r.endNs >= startNs);
  }
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Sends one request and records its outcome; never rejects. */
async function issue(request: PlannedRequest, send: Sender, recorder: Recorder | undefined, delayed: boolean): Promise<boolean> {
  const startNs = process.hrtime.bigint();
  try {
    await send(request);
    recorder?.record({ startNs, endNs: process.hrtime.bigint(), ok: true, error: undefined, sequenceEnd: request.sequenceEnd, delayed });
    return true;
  } catch (error) {
    recorder?.record({ startNs, endNs: process.hrtime.bigint(), ok: false, error: messageOf(error), sequenceEnd: request.sequenceEnd, delayed });
    return false;
  }
}

const yieldToTimers = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface RunningLoad {
  /** Stops sending, waits for requests in flight, and closes open sequences. */
  stop(): Promise<void>;
}

async function closeSequences(planner: RequestPlanner, send: Sender): Promise<void> {
  await Promise.all(planner.closeOpenSequences().map((request) => issue(request, send, undefined, false)));
}

/** Closed loop: `concurrency` virtual clients, each sending its next request as soon as the last one returns. */
export function startConcurrencyLoad(concurrency: number, planner: RequestPlanner, send: Sender, recorder: Recorder): RunningLoad {
  let stopped = false;
  const clients = Array.from({ length: concurrency }, async (_, slot) => {
    while (!stopped) {
      const ok = await issue(planner.next(slot), send, recorder, false);
      // A request that fails at once must not starve the window timer.
      if (!ok) await yieldToTimers();
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(clients);
      await closeSequences(planner, send);
    },
  };
}

/** Gaps between sends at `rate` per second: constant, or exponential for a Poisson process. */
export function intervalGenerator(rate: number, distribution: 'constant' | 'poisson', random: () => number = Math.random): () => number {
  const meanNs = 1e9 / rate;
  if (distribution === 'constant') return () => meanNs;
  return () => -Math.log(1 - random()) * meanNs;
}

/** A send counts as delayed when it leaves this much later than scheduled. */
export const DELAY_TOLERANCE_NS = 2_000_000n;

export interface RateLoadOptions {
  readonly rate: number;
  readonly distribution: 'constant' | 'poisson';
  /** Concurrent sequences (sequence models only); each keeps one request in flight. */
  readonly sequences: number;
  readonly random?: () => number;
}

/**
 * Open loop: requests leave on a schedule regardless of responses. Timers
 * wake the loop and every request that has come due is sent, so rates above
 * the timer resolution still hold on average. For sequence models the
 * schedule round-robins over `sequences` sequences; a request whose
 * sequence still has one in flight waits for it (and counts as delayed).
 */
export function startRateLoad(options: RateLoadOptions, planner: RequestPlanner, send: Sender, recorder: Recorder): RunningLoad {
  const nextGap = intervalGenerator(options.rate, options.distribution, options.random);
  const inFlight = new Set<Promise<unknown>>();
  const sequenceTails = new Map<number, Promise<unknown>>();
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let counter = 0;

  const fire = (lateNs: bigint): void => {
    const slot = counter++ % Math.max(1, options.sequences);
    const request = planner.next(slot);
    const late = lateNs > DELAY_TOLERANCE_NS;
    let sent: Promise<unknown>;
    if (planner.isSequence) {
      const tail = sequenceTails.get(slot);
      sent = tail === undefined ? issue(request, send, recorder, late) : tail.then(() => issue(request, send, recorder, true));
      sequenceTails.set(slot, sent);
      void sent.then(() => {
        if (sequenceTails.get(slot) === sent) sequenceTails.delete(slot);
      });
    } else {
      sent = issue(request, send, recorder, late);
    }
    inFlight.add(sent);
    void sent.then(() => inFlight.delete(sent));
  };

  // Nanoseconds since the load started, small enough to stay exact as a number.
  const origin = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - origin);

  const loop = (async () => {
    let due = 0;
    while (!stopped) {
      const now = elapsed();
      if (due > now) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, Math.max(1, Math.floor((due - now) / 1e6)));
        });
        continue;
      }
      // Send everything that has come due; a late timer catches up in one go.
      while (!stopped && due <= elapsed()) {
        fire(BigInt(Math.round(elapsed() - due)));
        due += nextGap();
      }
      await yieldToTimers();
    }
  })();

  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      await loop;
      await Promise.all(inFlight);
      await closeSequences(planner, send);
    },
  };
}

/** Sends `count` requests, `concurrency` at a time, without recording them. */
export async function warmUp(count: number, concurrency: number, planner: RequestPlanner, send: Sender): Promise<void> {
  let remaining = count;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async (_, slot) => {
      while (remaining > 0) {
        remaining--;
        await issue(planner.next(slot), send, undefined, false);
      }
    }),
  );
  await closeSequences(planner, send);
}
