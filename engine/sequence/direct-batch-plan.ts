/**
 * The direct strategy's decision for one idle instance, as a pure function
 * (the oldest strategy reuses the dynamic batcher's planBatch). Each slot of
 * the instance holds one sequence; a batch carries one row per slot from
 * slot 0 up to the last slot that sends a request, so every sequence keeps
 * its row. Slots with nothing to send get a filler row (READY false).
 *
 * As in Triton's DirectSequenceBatch:
 * - the batch goes at once unless both max_queue_delay_microseconds and
 *   minimum_slot_utilization are set; then it goes once the share of slots
 *   with a request reaches minimum_slot_utilization or the oldest request
 *   has waited the delay, and waits until then otherwise;
 * - requests whose shapes differ from the batch's (inputs that allow ragged
 *   batches excepted) sit this batch out behind a filler. The batch takes its
 *   shapes from the oldest waiting request, so no slot waits forever.
 */

/** The request at the front of a slot's sequence. */
export interface SlotHead {
  readonly enqueuedAt: number;
  /** Equal keys batch together. */
  readonly shapeKey: string;
}

export interface DirectPlanOptions {
  readonly maxQueueDelayMs: number;
  readonly minimumSlotUtilization: number;
  readonly now: number;
}

export type DirectBatchPlan =
  /** `rows[i]`: whether slot i sends its head (true) or a filler (false). */
  | { readonly kind: 'send'; readonly rows: readonly boolean[] }
  | { readonly kind: 'wait'; readonly until: number }
  | { readonly kind: 'empty' };

/** `heads[i]` is slot i's next request, undefined when the slot is free or has nothing queued. */
export function planDirectBatch(heads: readonly (SlotHead | undefined)[], options: DirectPlanOptions): DirectBatchPlan {
  const ready = heads.flatMap((head, slot) => (head ? [{ head, slot }] : []));
  if (ready.length === 0) return { kind: 'empty' };
  const oldest = ready.reduce((a, b) => (b.head.enqueuedAt < a.head.enqueuedAt ? b : a));
  const { maxQueueDelayMs, minimumSlotUtilization, now } = options;
  if (maxQueueDelayMs > 0 && minimumSlotUtilization > 0) {
    const waited = now - oldest.head.enqueuedAt;
    if (waited < maxQueueDelayMs && ready.length / heads.length < minimumSlotUtilization) {
      return { kind: 'wait', until: oldest.head.enqueuedAt + maxQueueDelayMs };
    }
  }
  const sending = new Set(ready.filter((r) => r.head.shapeKey === oldest.head.shapeKey).map((r) => r.slot));
  const last = Math.max(...sending);
  return { kind: 'send', rows: Array.from({ length: last + 1 }, (_, slot) => sending.has(slot)) };
}
