/**
 * Time as the schedulers see it. Production uses the monotonic system
 * clock; tests inject a ManualClock and move time by hand, so queue delays
 * and timeouts are tested exactly, without sleeping.
 */
export interface Clock {
  /** Monotonic milliseconds (fractional). */
  now(): number;
  /** Calls `fn` once, `ms` from now. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** A wait shorter than a millisecond, which setTimeout cannot make (it waits at least 1 ms). */
interface ShortWait {
  readonly immediate: ReturnType<typeof setImmediate>;
}

/**
 * The system clock. A timer under a millisecond (a queue delay of 100 µs,
 * or the rest of a longer one) fires on the next turn of the event loop,
 * after the I/O that arrived meanwhile: the scheduler then looks at the time
 * again and waits once more if it is early. That spends the remaining
 * fraction of a millisecond turning the loop instead of sleeping a whole
 * millisecond, which setTimeout's floor would make every such delay cost.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => (ms < 1 ? { immediate: setImmediate(fn) } satisfies ShortWait : setTimeout(fn, ms)),
  clearTimer: (handle) => {
    if (typeof handle === 'object' && handle !== null && 'immediate' in handle) clearImmediate((handle as ShortWait).immediate);
    else clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

interface ManualTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** A clock that only moves when told to; due timers fire in time order during advance(). */
export class ManualClock implements Clock {
  private current = 0;
  private seq = 0;
  private timers: ManualTimer[] = [];

  now(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const timer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return timer;
  }

  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, each at its own time. */
  advance(ms: number): void {
    const end = this.current + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = end;
  }

  /** Timers still waiting. */
  get pending(): number {
    return this.timers.length;
  }
}
