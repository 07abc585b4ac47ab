/**
 * How many models load at once (tritonserver's --model-load-thread-count).
 * A load waits for a free slot, in the order asked. A model that another
 * model's load is waiting on (a script's initialize() calling it) starts at
 * once, past the limit: holding it back behind the caller would deadlock.
 */
export class LoadSlots {
  private running = 0;
  private readonly queue: Array<{ readonly key: string; readonly start: () => void }> = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`load slots: expected a whole number of at least 1, got ${limit}`);
  }

  /** Runs `load` once a slot is free; the slot is freed when it settles. */
  run<T>(key: string, load: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.running++;
        load().then(resolve, reject).finally(() => {
          this.running--;
          this.next();
        });
      };
      if (this.running < this.limit) start();
      else this.queue.push({ key, start });
    });
  }

  /** Starts the waiting load of `key` now, if there is one. */
  promote(key: string): void {
    const at = this.queue.findIndex((q) => q.key === key);
    if (at >= 0) this.queue.splice(at, 1)[0]!.start();
  }

  private next(): void {
    if (this.running < this.limit) this.queue.shift()?.start();
  }
}
