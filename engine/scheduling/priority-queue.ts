/**
 * The waiting room of a scheduler: one FIFO per priority level, each with
 * its queue policy. A level's requests whose timeout passed either leave
 * (REJECT) or move to the level's delayed list, served after the level's
 * requests still in time (DELAY). Iteration order is the order batches are
 * formed in: level 1 first; within a level, in-time requests, then delayed.
 */
import type { QueuePolicySpec } from '../config/compiled-model-config.ts';

export interface Queued {
  readonly levelIndex: number;
  /** Clock time (ms) the request entered the queue. */
  readonly enqueuedAt: number;
  /** Clock time (ms) its timeout falls due; undefined without a timeout. */
  readonly deadline: number | undefined;
}

interface Level<T> {
  readonly policy: QueuePolicySpec;
  readonly waiting: T[];
  readonly delayed: T[];
}

export class PriorityQueue<T extends Queued> {
  private readonly levels: Level<T>[];
  private count = 0;

  constructor(policies: readonly QueuePolicySpec[]) {
    this.levels = policies.map((policy) => ({ policy, waiting: [], delayed: [] }));
  }

  get size(): number {
    return this.count;
  }

  /** Adds an entry at the back of its level; false when the level is full (max_queue_size). */
  push(entry: T): boolean {
    const level = this.levels[entry.levelIndex]!;
    const max = level.policy.maxQueueSize;
    if (max > 0 && level.waiting.length + level.delayed.length >= max) return false;
    level.waiting.push(entry);
    this.count++;
    return true;
  }

  /** Removes an entry wherever it is; false if it was not queued. */
  remove(entry: T): boolean {
    const level = this.levels[entry.levelIndex]!;
    return this.removeFrom(level.waiting, entry) || this.removeFrom(level.delayed, entry);
  }

  private removeFrom(list: T[], entry: T): boolean {
    const index = list.indexOf(entry);
    if (index < 0) return false;
    if (index === 0) list.shift();
    else list.splice(index, 1);
    this.count--;
    return true;
  }

  /** Entries in batch-forming order. Do not change the queue while iterating. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const level of this.levels) {
      yield* level.waiting;
      yield* level.delayed;
    }
  }

  /** The first entry in batch-forming order. */
  peek(): T | undefined {
    for (const level of this.levels) {
      const first = level.waiting[0] ?? level.delayed[0];
      if (first) return first;
    }
    return undefined;
  }

  /**
   * Applies the timeout policies at `now`: entries past their deadline are
   * moved to their level's delayed list (DELAY) or removed and returned (REJECT).
   */
  expire(now: number): T[] {
    const rejected: T[] = [];
    for (const level of this.levels) {
      if (!anyDue(level.waiting, now)) continue;
      const keep: T[] = [];
      for (const entry of level.waiting) {
        if (entry.deadline === undefined || entry.deadline > now) keep.push(entry);
        else if (level.policy.timeoutAction === 'DELAY') level.delayed.push(entry);
        else {
          rejected.push(entry);
          this.count--;
        }
      }
      level.waiting.splice(0, level.waiting.length, ...keep);
    }
    return rejected;
  }

  /** The earliest deadline among entries still in time. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const level of this.levels) {
      for (const entry of level.waiting) {
        if (entry.deadline !== undefined && (next === undefined || entry.deadline < next)) next = entry.deadline;
      }
    }
    return next;
  }

  /** Removes and returns every entry. */
  drain(): T[] {
    const all = [...this];
    for (const level of this.levels) {
      level.waiting.length = 0;
      level.delayed.length = 0;
    }
    this.count = 0;
    return all;
  }
}

/** Whether an entry's deadline has come by `now`. */
function anyDue(entries: readonly Queued[], now: number): boolean {
  for (const entry of entries) if (entry.deadline !== undefined && entry.deadline <= now) return true;
  return false;
}
