/**
 * The responses of one request as InferenceServer.inferStream hands them
 * out: an async iterable, fed by a decoupled model's responses as it sends
 * them, or holding the single answer of any other model. Items wait in a
 * buffer until read. The stream ends after the item marked `final`; a
 * request that fails once running ends it with a final error item, so a
 * reader never sees the iteration throw.
 *
 * A reader that stops early (break, return) abandons the stream: later
 * responses are refused, which tells the model that nobody listens any more.
 */
import type { SwitchyardError } from './errors.ts';
import type { InferenceResponse, ModelResponse, StreamedResponse } from './inference-response.ts';
import type { ModelStats } from './observability/model-stats.ts';
import type { Tensor } from './tensor.ts';

export interface ResponseStreamOptions {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id?: string;
  /** Whether the model may send any number of responses (model_transaction_policy.decoupled). */
  readonly decoupled: boolean;
  /** Where a decoupled model's responses are counted (response_stats). */
  readonly stats?: ModelStats;
}

export class ResponseStream implements AsyncIterable<StreamedResponse> {
  readonly decoupled: boolean;
  private readonly buffered: StreamedResponse[] = [];
  private wake: (() => void) | undefined;
  /** The final item is in the buffer (or was read). */
  private ended = false;
  /** The reader stopped; nothing more is kept. */
  private abandoned = false;
  private sent = 0;

  constructor(private readonly options: ResponseStreamOptions) {
    this.decoupled = options.decoupled;
  }

  /** Whether more responses are still wanted: false once the final one came, or the reader stopped. */
  get open(): boolean {
    return !this.ended && !this.abandoned;
  }

  /** A decoupled model's response. Answers false when it is not wanted (the stream ended or was abandoned). */
  accept(response: ModelResponse): boolean {
    if (!this.open) return false;
    const timing = response.timing ?? { inferNs: 0, outputNs: 0 };
    const outcome = response.error ? 'fail' : response.outputs ? 'success' : 'empty_response';
    this.options.stats?.recordResponse(this.sent++, outcome, timing.inferNs, timing.outputNs);
    if (response.error) this.push({ error: response.error, final: response.final });
    else if (response.outputs) this.push({ response: this.wrap(response.outputs), final: response.final });
    else if (response.final) this.push({ final: true });
    return true;
  }

  /** The stream of a model that is not decoupled: its one answer, final. */
  static answered(response: InferenceResponse): ResponseStream {
    const stream = new ResponseStream({ modelName: response.modelName, modelVersion: response.modelVersion, decoupled: false });
    stream.push({ response, final: true });
    return stream;
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
        const item = this.buffered.shift();
        return item ? { value: item, done: false } : { value: undefined, done: true };
      },
      return: async (): Promise<IteratorResult<StreamedResponse>> => {
        this.abandoned = true;
        this.buffered.length = 0;
        this.signal();
        return { value: undefined, done: true };
      },
    };
  }

  private push(item: StreamedResponse): void {
    if (item.final) this.ended = true;
    this.buffered.push(item);
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private wrap(outputs: readonly Tensor[]): InferenceResponse {
    const { modelName, modelVersion, id } = this.options;
    return { modelName, modelVersion, ...(id ? { id } : {}), outputs };
  }
}
