/**
 * The dynamic batcher's decision, as a pure function: given the queue in
 * batch-forming order and the time, either send a batch (and say why it
 * closed) or wait until a given time for more requests.
 *
 * The rules follow Triton's dynamic batcher:
 * - requests join in queue order while they fit max_batch_size and have the
 *   same shapes as the first (inputs allowing ragged batches excepted);
 *   the first one that does not fit or does not match closes the batch;
 * - a batch that reached a preferred_batch_size is sent at once, at the
 *   largest preferred size it reached, unless the queue delay has already run
 *   out (then everything gathered goes);
 * - otherwise, with max_queue_delay_microseconds 0 whatever is there goes now;
 *   with a delay it waits for more until the oldest request in it has waited
 *   that long.
 *
 * With padded batching (`passOthers`) a request of another shape key does
 * not close the batch: it keeps its place in the queue for a later batch,
 * and requests behind it that match the first still join. The first (oldest,
 * highest priority) request still decides the key. At most
 * MAX_PASSED_REQUESTS are passed over per batch, so forming one batch looks
 * at a bounded part of the queue; past that the batch closes as
 * shape_mismatch.
 */
import type { BatchCloseReason } from '../observability/model-stats.ts';

export interface PlanOptions {
  readonly maxBatchSize: number;
  /** Ascending. */
  readonly preferredBatchSizes: readonly number[];
  readonly maxQueueDelayMs: number;
  readonly now: number;
  /** Pass over requests of another shape key instead of closing the batch at the first one (padded batching). */
  readonly passOthers?: boolean;
}

/** Requests of other shape keys one padded batch may pass over before it closes. */
export const MAX_PASSED_REQUESTS = 1024;

export interface Candidate {
  readonly enqueuedAt: number;
  /** Rows this request adds (its own batch size). */
  readonly batchSize: number;
  /** Equal keys batch together: the shapes past the batch dimension of inputs that must match. */
  readonly shapeKey: string;
}

export type BatchPlan<T> =
  | { readonly kind: 'send'; readonly entries: T[]; readonly size: number; readonly reason: BatchCloseReason }
  | { readonly kind: 'wait'; readonly until: number }
  | { readonly kind: 'empty' };

export function planBatch<T extends Candidate>(queue: Iterable<T>, options: PlanOptions): BatchPlan<T> {
  const { maxBatchSize, preferredBatchSizes, maxQueueDelayMs, now } = options;
  const entries: T[] = [];
  let size = 0;
  let oldest = Infinity;
  let stop: BatchCloseReason | undefined;
  /** Entries and size at the largest preferred size reached so far. */
  let preferred: { count: number; size: number } | undefined;
  let passed = 0;
  for (const entry of queue) {
    if (entries.length > 0) {
      if (options.passOthers && entry.shapeKey !== entries[0]!.shapeKey) {
        if (++passed <= MAX_PASSED_REQUESTS) continue;
        stop = 'shape_mismatch';
        break;
      }
      if (size + entry.batchSize > maxBatchSize) {
        stop = 'max_batch_size';
        break;
      }
      if (entry.shapeKey !== entries[0]!.shapeKey) {
        stop = 'shape_mismatch';
        break;
      }
    }
    entries.push(entry);
    size += entry.batchSize;
    oldest = Math.min(oldest, entry.enqueuedAt);
    if (preferredBatchSizes.includes(size)) preferred = { count: entries.length, size };
    if (size >= maxBatchSize) {
      stop = 'max_batch_size';
      break;
    }
  }
  if (entries.length === 0) return { kind: 'empty' };

  const delayExpired = maxQueueDelayMs > 0 && now - oldest >= maxQueueDelayMs;
  if (preferred && !delayExpired) {
    const reason: BatchCloseReason = preferred.size >= maxBatchSize ? 'max_batch_size' : 'preferred_batch_size';
    return { kind: 'send', entries: entries.slice(0, preferred.count), size: preferred.size, reason };
  }
  if (stop) return { kind: 'send', entries, size, reason: stop };
  // The queue ran out before the batch closed by itself.
  const largestPreferred = preferredBatchSizes[preferredBatchSizes.length - 1] ?? maxBatchSize;
  if (size >= largestPreferred) return { kind: 'send', entries, size, reason: 'preferred_batch_size' };
  if (maxQueueDelayMs === 0) return { kind: 'send', entries, size, reason: 'queue_empty' };
  if (delayExpired) return { kind: 'send', entries, size, reason: 'queue_delay' };
  return { kind: 'wait', until: oldest + maxQueueDelayMs };
}
