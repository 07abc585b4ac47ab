/**
 * Lets long decoding work give the event loop back: the work runs in
 * chunks, and between chunks `pauseIfDue` waits one turn (setImmediate,
 * so timers and sockets run) once SLICE_MS have passed since the last
 * pause. A 2 GiB message decodes in many short turns instead of one long
 * one, and health checks and other requests answer meanwhile.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** The longest a decoding task runs before it lets other work in, in milliseconds. */
export const SLICE_MS = 20;

/** Bytes of wire data handled between two looks at the clock: a few milliseconds of work at most. */
export const CHUNK_BYTES = 1 << 16;

export class LoopSlice {
  private since = performance.now();

  constructor(private readonly signal?: AbortSignal) {}

  /** Waits one event-loop turn when this slice has run SLICE_MS; then stops if the call was cancelled meanwhile. */
  async pauseIfDue(): Promise<void> {
    if (performance.now() - this.since < SLICE_MS) return;
    await nextTurn();
    this.signal?.throwIfAborted();
    this.since = performance.now();
  }
}
