/**
 * Work in flight, counted, with waiters told the moment none is left. Unload
 * and shutdown wait on idle() instead of polling the count on a timer.
 */
export class InflightCounter {
  private current = 0;
  private waiters: (() => void)[] = [];

  get count(): number {
    return this.current;
  }

  enter(): void {
    this.current++;
  }

  leave(): void {
    if (this.current === 0) throw new Error('InflightCounter.leave() without a matching enter()');
    if (--this.current > 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once nothing is in flight: at once if nothing is now. */
  idle(): Promise<void> {
    if (this.current === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Waits for `idle` at most `timeoutMs` (unbounded when infinite); true if it
 * came in time. The timer is cleared either way, so nothing is left pending.
 */
export async function idleWithin(idle: Promise<void>, timeoutMs: number): Promise<boolean> {
  if (!Number.isFinite(timeoutMs)) {
    await idle;
    return true;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs)); });
  try {
    return await Promise.race([idle.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}
