/**
 * The lifecycle of one model version as an explicit state machine:
 *   LOADING -> READY | UNAVAILABLE
 *   READY -> UNLOADING -> UNAVAILABLE
 *   UNAVAILABLE -> LOADING (a reload)
 * Any other move is a bug and throws.
 */
export type ModelVersionState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

const ALLOWED: Readonly<Record<ModelVersionState, readonly ModelVersionState[]>> = {
  LOADING: ['READY', 'UNAVAILABLE'],
  READY: ['UNLOADING'],
  UNLOADING: ['UNAVAILABLE'],
  UNAVAILABLE: ['LOADING'],
};

export class ModelLifecycle {
  private current: ModelVersionState = 'LOADING';
  private why = '';

  get state(): ModelVersionState {
    return this.current;
  }

  /** Why the version is in its state: the load error, or 'unloaded'. Empty when READY or LOADING. */
  get reason(): string {
    return this.why;
  }

  moveTo(next: ModelVersionState, reason = ''): void {
    if (!ALLOWED[this.current].includes(next)) {
      throw new Error(`model version cannot go from ${this.current} to ${next}`);
    }
    this.current = next;
    this.why = reason;
  }
}
