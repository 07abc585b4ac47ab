/**
 * The host side of ctx.inferStream: the response streams one script
 * instance has open, each an engine ResponseStream read one response per
 * request of the script (pull, so the callee's own bounded stream buffer is
 * what holds it back while the script is slow: backpressure).
 *
 * A stream counts as one call in flight of the execute() that opened it,
 * from open until it ends, for max_infer_calls_in_flight and for the
 * scheduler's view of a parked execute. It ends when:
 * - its final response has been read, or an error response (which the script sees as a rejection);
 * - the script closes it (break out of for await, return(), cancel());
 * - its execute() ends, or every client of the batch went away (the execute's signal).
 * Ended any way but the first, the callee's request is cancelled: its
 * signal fires (a queued request leaves its queue, a decoupled script's
 * send() answers false) and responses it still sends are dropped.
 */
import type { SwitchyardError } from '../engine/errors.ts';
import type { InferenceRequest } from '../engine/inference-request.ts';
import type { StreamedResponse } from '../engine/inference-response.ts';
import type { StreamingInferFunction } from '../engine/infer-function.ts';
import type { ExecuteCalls } from './execute-calls.ts';
import type { ScriptInferAnswer } from './sandbox.ts';

/** How a stream operation is answered: an id (open), a response, the end, or an error (code as in ctx.infer). */
export type ScriptStreamAnswer =
  | { readonly stream: number }
  | (Exclude<ScriptInferAnswer, { readonly error: string }> & { readonly final?: true })
  | { readonly done: true }
  | { readonly error: string; readonly code?: string };

interface OpenStream {
  readonly iterator: AsyncIterator<StreamedResponse>;
  readonly controller: AbortController;
  readonly calls: ExecuteCalls;
  readonly unfollow: () => void;
  /** A next() being answered: the engine's iterator takes one reader at a time. */
  reading: boolean;
}

export class ScriptStreams {
  private readonly streams = new Map<number, OpenStream>();
  private lastId = 0;

  constructor(
    private readonly inferStream: StreamingInferFunction,
    /** Turns one response into the script's form (its pooled memory moves or is copied, and given back). */
    private readonly toScript: (response: NonNullable<StreamedResponse['response']>) => ScriptInferAnswer,
  ) {}

  /**
   * Starts `request` (already checked, carrying `calls`' chain) on the
   * server's inferStream. Its place among the execute's calls is taken
   * before, and given back if the start fails. Rejects with the engine's
   * error, as ctx.infer would.
   */
  async open(request: InferenceRequest, calls: ExecuteCalls): Promise<ScriptStreamAnswer> {
    calls.begin(request.modelName);
    const controller = new AbortController();
    const stop = (): void => controller.abort(calls.signal.reason);
    calls.signal.addEventListener('abort', stop, { once: true });
    const unfollow = (): void => calls.signal.removeEventListener('abort', stop);
    let stream;
    try {
      stream = await this.inferStream({ ...request, signal: controller.signal });
    } catch (err) {
      unfollow();
      calls.finish();
      throw err;
    }
    const id = ++this.lastId;
    const entry: OpenStream = { iterator: stream[Symbol.asyncIterator](), controller, calls, unfollow, reading: false };
    this.streams.set(id, entry);
    // The execute ended meanwhile (or ends later): the stream goes with it.
    if (controller.signal.aborted) this.end(id, true);
    else controller.signal.addEventListener('abort', () => this.end(id, true), { once: true });
    return { stream: id };
  }

  /** The stream's next response in the script's form, `{ done }` after the last, or its error (which ends it). */
  async next(id: number): Promise<ScriptStreamAnswer> {
    const entry = this.streams.get(id);
    if (!entry) return { done: true };
    if (entry.reading) return { error: 'ctx.inferStream: next() was called again before the previous next() settled; await each one' };
    entry.reading = true;
    let item: IteratorResult<StreamedResponse>;
    try {
      item = await entry.iterator.next();
    } finally {
      entry.reading = false;
    }
    if (item.done) {
      this.end(id, false);
      return { done: true };
    }
    const { response, error, final } = item.value;
    if (error) {
      // The script sees the error as a rejection: its for-await ends there, so the stream ends with it.
      this.end(id, !final);
      return answerOf(error);
    }
    if (!response) {
      this.end(id, false);
      return { done: true };
    }
    if (!final) return this.toScript(response);
    // The last response ends the stream; the script's next next() answers done without asking.
    this.end(id, false);
    return { ...this.toScript(response), final: true };
  }

  /** The script is done with the stream: the callee is cancelled if it had not finished. */
  close(id: number): ScriptStreamAnswer {
    this.end(id, true);
    return { done: true };
  }

  private end(id: number, cancel: boolean): void {
    const entry = this.streams.get(id);
    if (!entry) return;
    this.streams.delete(id);
    entry.unfollow();
    entry.calls.finish();
    // Abandoning the engine's stream drops what it holds unread and refuses the callee's later responses.
    void entry.iterator.return?.();
    if (cancel && !entry.controller.signal.aborted) entry.controller.abort(new Error('the calling script closed the stream'));
  }
}

function answerOf(error: SwitchyardError): ScriptStreamAnswer {
  return { error: error.message, code: error.code };
}
