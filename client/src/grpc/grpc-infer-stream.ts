/**
 * ModelStreamInfer as an InferStream: requests are written as they are
 * sent, and responses queue until the caller's loop takes them.
 */
import type * as grpc from '@grpc/grpc-js';
import type { InferOptions } from '../client-options.ts';
import type { InferStream, StreamResult } from '../infer-stream.ts';
import { InferenceServerError } from '../inference-server-error.ts';
import type { Tensor } from '../tensor.ts';
import { errorFromStatus, type DecodedMessage } from './grpc-connection.ts';
import { inferResultFromMessage, type ModelInferResponseMessage } from './infer-message.ts';

/** Builds the request object for one send. */
export type StreamRequestEncoder = (model: string, inputs: readonly Tensor[], options: Omit<InferOptions, 'signal' | 'timeoutMs'>) => object;

interface Waiter {
  resolve(result: IteratorResult<StreamResult>): void;
  reject(error: unknown): void;
}

/** One ModelStreamInferResponse as a StreamResult. */
function streamResult(message: DecodedMessage): StreamResult {
  const response = message['infer_response'] as ModelInferResponseMessage | undefined;
  const id = response?.id || undefined;
  const errorMessage = message['error_message'];
  if (typeof errorMessage === 'string' && errorMessage !== '') {
    // The stream message carries no status code, only the text.
    return { error: new InferenceServerError(errorMessage, 'UNKNOWN'), ...(id ? { id } : {}) };
  }
  try {
    return { result: inferResultFromMessage(response ?? {}), ...(id ? { id } : {}) };
  } catch (err) {
    return { error: err as InferenceServerError, ...(id ? { id } : {}) };
  }
}

/** A live ModelStreamInfer call. */
export class GrpcInferStream implements InferStream {
  private readonly call: grpc.ClientDuplexStream<object, DecodedMessage>;
  private readonly encode: StreamRequestEncoder;
  private readonly queue: StreamResult[] = [];
  private readonly waiters: Waiter[] = [];
  private failure: InferenceServerError | undefined;
  private finished = false;
  private closedForSending = false;

  constructor(call: grpc.ClientDuplexStream<object, DecodedMessage>, encode: StreamRequestEncoder) {
    this.call = call;
    this.encode = encode;
    call.on('data', (message: DecodedMessage) => this.push(streamResult(message)));
    call.on('end', () => this.finish());
    call.on('error', (err: grpc.ServiceError) => this.finish(this.finished ? undefined : errorFromStatus(err)));
  }

  private push(result: StreamResult): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve({ value: result, done: false });
    else this.queue.push(result);
  }

  private finish(failure?: InferenceServerError): void {
    if (this.finished) return;
    this.finished = true;
    this.closedForSending = true;
    this.failure = failure;
    for (const waiter of this.waiters.splice(0)) this.settle(waiter);
  }

  /** Answers a waiter once nothing is queued: the stream's failure (once), or the end. */
  private settle(waiter: Waiter): void {
    if (this.failure) {
      waiter.reject(this.failure);
      this.failure = undefined;
    } else {
      waiter.resolve({ value: undefined, done: true });
    }
  }

  send(model: string, inputs: readonly Tensor[], options: Omit<InferOptions, 'signal' | 'timeoutMs'> = {}): void {
    if (this.closedForSending) throw new InferenceServerError('the stream is ended or cancelled; open a new one with streamInfer()', 'FAILED_PRECONDITION');
    this.call.write(this.encode(model, inputs, options));
  }

  end(): void {
    if (this.closedForSending) return;
    this.closedForSending = true;
    this.call.end();
  }

  cancel(): void {
    this.queue.length = 0;
    if (this.finished) return;
    this.finish();
    this.call.cancel();
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamResult> {
    return {
      next: () => new Promise<IteratorResult<StreamResult>>((resolve, reject) => {
        const queued = this.queue.shift();
        if (queued) resolve({ value: queued, done: false });
        else if (this.finished) this.settle({ resolve, reject });
        else this.waiters.push({ resolve, reject });
      }),
      return: async () => {
        this.cancel();
        return { value: undefined, done: true };
      },
    };
  }
}
