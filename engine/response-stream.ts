/**
 * The responses of one request as InferenceEngine.inferStream hands them
 * out: an async iterable, fed by a decoupled model's responses as it sends
 * them, or holding the single answer of any other model. Items wait in a
 * buffer until read. The stream ends after the item marked `final`; a
 * request that fails once running ends it with a final error item, so a
 * reader never sees the iteration throw.
 *
 * A reader that stops early (break, return) abandons the stream: later
 * responses are refused, which tells the model that nobody listens any more,
 * and response_stats counts one 'cancel' for it.
 *
 * The buffer is bounded (StreamBufferLimits): once it holds maxResponses
 * items or maxBytes of tensor data, accept() still takes the response but
 * answers a promise, and the producer waits on it before sending again. It
 * settles true when the reader has taken enough to make room, or false when
 * the reader stops or the request fails. So a reader that does not read (a
 * client that does not drain its socket) holds a bounded amount of memory.
 */
import type { SwitchyardError } from './errors.ts';
import type { InferenceRequest } from './inference-request.ts';
import type { InferenceResponse, ModelResponse, ResponseTaken, StreamedResponse } from './inference-response.ts';
import type { ModelStats } from './observability/model-stats.ts';
import type { Tensor } from './tensor.ts';

/** The server's entry for any number of responses per request, as the steps of a decoupled ensemble call it. */
export type InferStreamFunction = (request: InferenceRequest) => Promise<ResponseStream>;

/** How much of a decoupled model's output may wait, unread, in one stream before its producer waits. */
export interface StreamBufferLimits {
  readonly maxResponses: number;
  readonly maxBytes: number;
}

/** --stream-buffer-responses and --stream-buffer-bytes. */
export const DEFAULT_STREAM_BUFFER: StreamBufferLimits = { maxResponses: 16, maxBytes: 16 * 1024 * 1024 };

export interface ResponseStreamOptions {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id?: string;
  /** Whether the model may send any number of responses (model_transaction_policy.decoupled). */
  readonly decoupled: boolean;
  /** Where a decoupled model's responses are counted (response_stats). */
  readonly stats?: ModelStats;
  /** performance.now() when the request arrived: the first response's delay is measured from it. */
  readonly startedAt?: number;
  /** Default DEFAULT_STREAM_BUFFER. */
  readonly buffer?: StreamBufferLimits;
}

export class ResponseStream implements AsyncIterable<StreamedResponse> {
  readonly decoupled: boolean;
  private readonly buffered: { readonly item: StreamedResponse; readonly bytes: number }[] = [];
  private bufferedBytes = 0;
  private readonly limits: StreamBufferLimits;
  /** Producers waiting for room, settled with whether more is wanted. */
  private readonly waiting: ((room: boolean) => void)[] = [];
  private wake: (() => void) | undefined;
  /** The final item is in the buffer (or was read). */
  private ended = false;
  /** The reader stopped; nothing more is kept. */
  private abandoned = false;
  private sent = 0;

  constructor(private readonly options: ResponseStreamOptions) {
    this.decoupled = options.decoupled;
    this.limits = options.buffer ?? DEFAULT_STREAM_BUFFER;
  }

  /** Whether more responses are still wanted: false once the final one came, or the reader stopped. */
  get open(): boolean {
    return !this.ended && !this.abandoned;
  }

  /**
   * A decoupled model's response. Answers false when it is not wanted (the
   * stream ended or was abandoned), and a promise when the buffer is full:
   * see ResponseTaken.
   */
  accept(response: ModelResponse): ResponseTaken {
    if (!this.open) return false;
    const timing = response.timing ?? { inferNs: 0, outputNs: 0 };
    const outcome = response.error ? 'fail' : response.outputs ? 'success' : 'empty_response';
    const stats = this.options.stats;
    if (stats && this.sent === 0 && this.options.startedAt !== undefined) stats.recordFirstResponse((performance.now() - this.options.startedAt) * 1e6);
    stats?.recordResponse(this.sent++, outcome, timing.inferNs, timing.outputNs);
    if (response.error) this.push({ error: response.error, final: response.final });
    else if (response.outputs) this.push({ response: this.wrap(response.outputs, response.parameters), final: response.final }, outputBytes(response.outputs));
    else if (response.final) this.push({ final: true });
    if (response.final || !this.full) return true;
    return new Promise<boolean>((resolve) => { this.waiting.push(resolve); });
  }

  /** The stream of a model that is not decoupled: its one answer, final. */
  static answered(response: InferenceResponse): ResponseStream {
    const stream = new ResponseStream({ modelName: response.modelName, modelVersion: response.modelVersion, decoupled: false });
    stream.push({ response, final: true });
    return stream;
  }

  /**
   * The answer of a stream that is not decoupled, which holds it from the
   * start: read as iterating would read it, without the wait for a turn.
   */
  takeAnswer(): StreamedResponse {
    const entry = this.decoupled ? undefined : this.buffered.shift();
    if (!entry) throw new Error('takeAnswer() reads the one answer of a stream that is not decoupled, once');
    this.bufferedBytes -= entry.bytes;
    return entry.item;
  }

  /** The request finished: its responses have gone already, and one left open gets an empty final. */
  close(): void {
    if (this.open) this.push({ final: true });
  }

  /** The request failed (refused by the scheduler, cancelled, or its execution failed): a final error item. */
  fail(error: SwitchyardError): void {
    if (!this.open) return;
    if (this.decoupled && error.code === 'CANCELLED') this.options.stats?.recordResponse(this.sent, 'cancel', 0, 0);
    this.push({ error, final: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamedResponse> {
    return {
      next: async (): Promise<IteratorResult<StreamedResponse>> => {
        while (this.buffered.length === 0 && !this.ended && !this.abandoned) {
          await new Promise<void>((resolve) => { this.wake = resolve; });
        }
        const entry = this.buffered.shift();
        if (!entry) return { value: undefined, done: true };
        this.bufferedBytes -= entry.bytes;
        if (!this.full) this.settleWaiting(this.open);
        return { value: entry.item, done: false };
      },
      return: async (): Promise<IteratorResult<StreamedResponse>> => {
        // A reader that stops before the end cancels the request: its one 'cancel' in response_stats.
        if (this.decoupled && this.open) this.options.stats?.recordResponse(this.sent, 'cancel', 0, 0);
        this.abandoned = true;
        // Responses nobody will read are dropped: their pooled memory goes back.
        for (const entry of this.buffered) entry.item.response?.lease?.release();
        this.buffered.length = 0;
        this.bufferedBytes = 0;
        this.settleWaiting(false);
        this.signal();
        return { value: undefined, done: true };
      },
    };
  }

  /** Whether a producer should wait before its next response. */
  private get full(): boolean {
    return this.buffered.length >= this.limits.maxResponses || this.bufferedBytes >= this.limits.maxBytes;
  }

  private push(item: StreamedResponse, bytes = 0): void {
    if (item.final) {
      this.ended = true;
      // Nothing more will be taken: a producer still waiting hears so now.
      this.settleWaiting(false);
    }
    this.buffered.push({ item, bytes });
    this.bufferedBytes += bytes;
    this.signal();
  }

  private settleWaiting(room: boolean): void {
    for (const resolve of this.waiting.splice(0)) resolve(room);
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private wrap(outputs: readonly Tensor[], parameters: InferenceResponse['parameters']): InferenceResponse {
    const { modelName, modelVersion, id } = this.options;
    return { modelName, modelVersion, ...(id ? { id } : {}), outputs, ...(parameters ? { parameters } : {}) };
  }
}

/** The tensor data a response holds, which is what a full stream buffer bounds. */
function outputBytes(outputs: readonly Tensor[]): number {
  let bytes = 0;
  for (const tensor of outputs) bytes += tensor.raw.byteLength; // BYTES too: its raw is the length-prefixed wire form
  return bytes;
}
