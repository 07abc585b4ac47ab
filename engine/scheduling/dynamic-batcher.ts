/**
 * Queues requests for a model version and hands them to instances.
 * Without `dynamic_batching` each request runs alone, and an instance may
 * hold a few of them at once (PIPELINE_DEPTH): it still runs them one after
 * another, but the next one is already waiting in its worker, so the thread
 * hand-off costs little. With `dynamic_batching` an instance takes one batch
 * at a time, and requests that are waiting meanwhile with compatible shapes
 * are joined into the next batch, up to max_batch_size. Requests never wait
 * while an instance has room.
 */
import type { BackendInstance, ExecuteRequest } from '../../backends/backend.ts';
import type { CompiledModelConfig, DynamicBatchingSpec } from '../config/compiled-model-config.ts';
import { asSwitchyardError, serverError } from '../errors.ts';
import type { InferenceRequest } from '../inference-request.ts';
import type { Logger } from '../logger.ts';
import type { NormalizedRequest } from '../request-normalizer.ts';
import type { Tensor } from '../tensor.ts';
import type { Scheduler } from './scheduler.ts';

/**
 * Unbatched requests an instance may hold at once (running plus waiting in its
 * worker). Deep for quick models, where the thread hand-off costs more than the
 * inference; shallow for slow ones, so a cancelled request is rarely computed.
 */
export const PIPELINE_DEPTH = { quick: 16, slow: 2 } as const;
/** An execution shorter than this on average makes the model "quick". */
const QUICK_EXECUTION_MS = 1;

interface Slot {
  readonly instance: BackendInstance;
  inflight: number;
}

interface Pending {
  readonly request: InferenceRequest;
  readonly normalized: NormalizedRequest;
  readonly resolve: (outputs: readonly Tensor[]) => void;
  readonly reject: (error: Error) => void;
  settled: boolean;
  cleanup: () => void;
}

export class DynamicBatcher implements Scheduler {
  private readonly queue: Pending[] = [];
  private readonly slots: Slot[];
  /** Moving average of execution time in ms; undefined until the first one ends. */
  private executionMs: number | undefined;
  private executing = 0;
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly config: CompiledModelConfig,
    instances: readonly BackendInstance[],
    private readonly batching: DynamicBatchingSpec | undefined,
    private readonly logger: Logger,
  ) {
    this.slots = instances.map((instance) => ({ instance, inflight: 0 }));
  }

  enqueue(request: InferenceRequest, normalized: NormalizedRequest): Promise<readonly Tensor[]> {
    const model = this.config.name;
    if (this.stopped) return Promise.reject(serverError('SERVER_STOPPING', { model }));
    if (request.signal?.aborted) return Promise.reject(serverError('CANCELLED', { model, reason: abortReason(request.signal) }));
    return new Promise((resolve, reject) => {
      const pending: Pending = { request, normalized, resolve, reject, settled: false, cleanup: noop };
      // A request cancelled while waiting leaves the queue; one already handed to
      // an instance is answered CANCELLED at once and its result dropped.
      const signal = request.signal;
      if (signal) {
        const onAbort = (): void => {
          const index = this.queue.indexOf(pending);
          if (index >= 0) this.queue.splice(index, 1);
          settle(pending, serverError('CANCELLED', { model, reason: abortReason(signal) }));
          this.checkDrained();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        pending.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.queue.push(pending);
      this.dispatch();
    });
  }

  inflightCount(): number {
    return this.queue.length + this.executing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const pending of this.queue.splice(0)) settle(pending, serverError('SERVER_STOPPING', { model: this.config.name }));
    if (this.executing > 0) await new Promise<void>((resolve) => { this.drained = resolve; });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const slot = this.freestSlot();
      if (!slot) return;
      void this.run(slot, this.takeBatch());
    }
  }

  /** How much work an instance may hold: one batch when batching, else a pipeline sized by speed. */
  private depth(): number {
    if (this.batching) return 1;
    return this.executionMs !== undefined && this.executionMs < QUICK_EXECUTION_MS ? PIPELINE_DEPTH.quick : PIPELINE_DEPTH.slow;
  }

  /** The instance with the least work that still has room, so idle instances go first. */
  private freestSlot(): Slot | undefined {
    const depth = this.depth();
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.inflight < depth && (!best || slot.inflight < best.inflight)) best = slot;
    }
    return best;
  }

  /** The oldest request, plus (when batching) later queued requests that fit beside it. */
  private takeBatch(): Pending[] {
    const first = this.queue.shift()!;
    const batch = [first];
    if (!this.batching) return batch;
    let size = first.normalized.batchSize;
    for (let i = 0; i < this.queue.length && size < this.config.maxBatchSize;) {
      const candidate = this.queue[i]!;
      if (size + candidate.normalized.batchSize <= this.config.maxBatchSize && compatible(first.request, candidate.request)) {
        this.queue.splice(i, 1);
        batch.push(candidate);
        size += candidate.normalized.batchSize;
      } else {
        i++;
      }
    }
    return batch;
  }

  private async run(slot: Slot, batch: Pending[]): Promise<void> {
    const { instance } = slot;
    const ahead = slot.inflight;
    slot.inflight++;
    this.executing += batch.length;
    const live = batch.filter((p) => !p.settled);
    if (this.logger.verboseEnabled) {
      this.logger.verbose(`${this.config.name}: ${live.length} request(s), batch size ${live.reduce((n, p) => n + p.normalized.batchSize, 0)}, ` +
        `to instance ${instance.name}; ${this.queue.length} still queued`);
    }
    try {
      const requests: ExecuteRequest[] = live.map((p) => ({
        inputs: p.request.inputs, outputs: p.normalized.outputs, batchSize: p.normalized.batchSize,
      }));
      const started = performance.now();
      const results = await instance.execute(requests);
      // The wait includes the runs already ahead in the instance's pipeline; share it out to get one run's time.
      const took = (performance.now() - started) / (ahead + 1);
      this.executionMs = this.executionMs === undefined ? took : 0.8 * this.executionMs + 0.2 * took;
      results.forEach((result, i) => settle(live[i]!, result.ok ? result.outputs : result.error));
    } catch (err) {
      const error = asSwitchyardError(err, this.config.name);
      for (const pending of live) settle(pending, error);
    } finally {
      this.executing -= batch.length;
      slot.inflight--;
      if (!this.stopped) this.dispatch();
      this.checkDrained();
    }
  }

  private checkDrained(): void {
    if (this.executing === 0 && this.drained) {
      this.drained();
      this.drained = undefined;
    }
  }
}

const noop = (): void => {};

function settle(pending: Pending, outcome: readonly Tensor[] | Error): void {
  if (pending.settled) return;
  pending.settled = true;
  pending.cleanup();
  if (outcome instanceof Error) pending.reject(outcome);
  else pending.resolve(outcome);
}

/** Same inputs with the same shape past the batch dimension. */
function compatible(a: InferenceRequest, b: InferenceRequest): boolean {
  if (a.inputs.length !== b.inputs.length) return false;
  return a.inputs.every((ta) => {
    const tb = b.inputs.find((t) => t.name === ta.name);
    return tb !== undefined && tb.shape.length === ta.shape.length && ta.shape.every((d, i) => i === 0 || d === tb.shape[i]);
  });
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason.message;
  return typeof reason === 'string' ? reason : 'the client went away';
}
