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
 * With padded batching (`passOthers`) a request of another shape key (a
 * bucket) does not close the batch: the queue's first MAX_SCANNED_REQUESTS
 * requests are grouped by key, each group keeping queue order, and each
 * group is judged as a batch of its own, in the order of the group's first
 * request (so the oldest, highest-priority request's group comes first).
 * The first group ready to go (full, at a preferred size, past its queue
 * delay, or with no delay) is sent; when none is, the batcher waits for the
 * earliest of their deadlines. A full batch of one bucket never waits
 * behind a lone request of another that is waiting for company, and
 * forming a batch looks at a bounded part of the queue.
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

/** Requests a padded batch is formed from, at most: the queue's first, in order (later ones wait their turn). */
export const MAX_SCANNED_REQUESTS = 1024;

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
  return options.passOthers ? planByGroup(queue, options) : planOne(queue, options);
}

/** Padded batching: the first group (by shape key) ready to go, else a wait for the earliest deadline. */
function planByGroup<T extends Candidate>(queue: Iterable<T>, options: PlanOptions): BatchPlan<T> {
  const groups = new Map<string, T[]>();
  let seen = 0;
  for (const entry of queue) {
    if (++seen > MAX_SCANNED_REQUESTS) break;
    const group = groups.get(entry.shapeKey);
    if (group) group.push(entry);
    else groups.set(entry.shapeKey, [entry]);
  }
  let until = Infinity;
  for (const group of groups.values()) {
    const plan = planOne(group, options);
    if (plan.kind === 'send') return plan;
    if (plan.kind === 'wait') until = Math.min(until, plan.until);
  }
  return until === Infinity ? { kind: 'empty' } : { kind: 'wait', until };
}

function planOne<T extends Candidate>(queue: Iterable<T>, options: PlanOptions): BatchPlan<T> {
  const { maxBatchSize, preferredBatchSizes, maxQueueDelayMs, now } = options;
  const entries: T[] = [];
  let size = 0;
  let oldest = Infinity;
  let stop: BatchCloseReason | undefined;
  /** Entries and size at the largest preferred size reached so far. */
  let preferred: { count: number; size: number } | undefined;
  for (const entry of queue) {
    if (entries.length > 0) {
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
