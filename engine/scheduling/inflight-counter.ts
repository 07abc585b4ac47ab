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

  /** Counts one more item and returns its ticket, which leaves once every hold on it is done. */
  ticket(): InflightTicket {
    this.enter();
    return new InflightTicket(this);
  }

  /** Resolves once nothing is in flight: at once if nothing is now. */
  idle(): Promise<void> {
    if (this.current === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * One request's place in the count. It starts with one hold (its answer) and
 * a batch that runs it adds another, so a request answered early (cancelled
 * while its batch executes) still counts until the batch is done with it.
 */
export class InflightTicket {
  private holds = 1;

  constructor(private readonly counter: InflightCounter) {}

  hold(): void {
    if (this.holds > 0) this.holds++;
  }

  /** Ends one hold; the last one leaves the count. A ticket already left ignores further calls. */
  done(): void {
    if (this.holds === 0) return;
    if (--this.holds === 0) this.counter.leave();
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
