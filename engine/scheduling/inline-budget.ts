/**
 * How long inline work may hold the event loop in one stretch: ONNX runs on
 * the event loop (execution_thread) and the synchronous slices of inline
 * script executes (inline_slice_ms). Everything in the process charges the
 * one budget (there is one event loop); once a macrotask's inline work
 * passes it, the next inline run (or the next inline ctx.infer a script
 * hands over) first waits for setImmediate, so I/O and timers get their
 * turn in between.
 */

/** Inline compute allowed between two yields to the event loop: 1 ms. */
export const INLINE_TICK_BUDGET_NS = 1_000_000;

export class InlineBudget {
  private spentNs = 0;
  private resetQueued = false;

  constructor(readonly budgetNs: number) {}

  /** Whether an inline run may start now, without yielding first. */
  get hasRoom(): boolean {
    return this.spentNs < this.budgetNs;
  }

  /** Counts a finished inline run; the count starts again at the next check phase. */
  charge(ns: number): void {
    this.spentNs += ns;
    if (this.resetQueued) return;
    this.resetQueued = true;
    setImmediate(() => {
      this.spentNs = 0;
      this.resetQueued = false;
    });
  }

  /** Resolves after the event loop has had its turn (queued behind the budget's reset). */
  yield(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }
}

/** The event loop's one budget. */
export const eventLoopBudget = new InlineBudget(INLINE_TICK_BUDGET_NS);
