/**
 * One grpc-js channel to the server, with unary and bidirectional calls
 * whose messages protobufjs encodes and decodes. Failures become
 * InferenceServerErrors carrying the server's status and message.
 */
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { cancelledError, codeForGrpcStatus, InferenceServerError } from '../inference-server-error.ts';

/** The gRPC service every method belongs to. */
const SERVICE_PATH = '/inference.GRPCInferenceService';

/** Per-call controls. */
export interface GrpcCallOptions {
  readonly signal?: AbortSignal | undefined;
  readonly timeoutMs?: number | undefined;
}

/** Where to connect and what every call carries. */
export interface GrpcConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number | undefined;
}

/** A message object as protobufjs decodes it. */
export type DecodedMessage = Record<string, unknown>;

/** The InferenceServerError for a grpc-js call error. */
export function errorFromStatus(err: grpc.ServiceError | grpc.StatusObject): InferenceServerError {
  return new InferenceServerError(err.details, codeForGrpcStatus(err.code), { grpcCode: err.code, cause: err });
}

function serializer(type: protobuf.Type): (value: object) => Buffer {
  return (value) => {
    const bytes = type.encode(value).finish();
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(type: protobuf.Type): (bytes: Buffer) => DecodedMessage {
  return (bytes) => type.decode(bytes) as unknown as DecodedMessage;
}

/** A channel to GRPCInferenceService. Connects lazily on the first call. */
export class GrpcConnection {
  private readonly client: grpc.Client;
  private readonly options: GrpcConnectionOptions;

  constructor(options: GrpcConnectionOptions) {
    this.options = options;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.client = new grpc.Client(`${host}:${options.port}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(this.options.headers)) metadata.set(key, value);
    return metadata;
  }

  private deadline(timeoutMs: number | undefined): grpc.CallOptions {
    const ms = timeoutMs ?? this.options.timeoutMs;
    return ms === undefined ? {} : { deadline: Date.now() + ms };
  }

  /** Calls a unary method: encodes `request` as `requestType`, decodes the answer as `responseType`. */
  unary(method: string, requestType: protobuf.Type, responseType: protobuf.Type, request: object, call: GrpcCallOptions = {}): Promise<DecodedMessage> {
    const { signal } = call;
    if (signal?.aborted) return Promise.reject(cancelledError(signal.reason, { grpcCode: grpc.status.CANCELLED }));
    return new Promise((resolve, reject) => {
      let onAbort: (() => void) | undefined;
      const pending = this.client.makeUnaryRequest(
        `${SERVICE_PATH}/${method}`, serializer(requestType), deserializer(responseType), request,
        this.metadata(), this.deadline(call.timeoutMs),
        (err, response) => {
          if (onAbort) signal?.removeEventListener('abort', onAbort);
          if (err) {
            reject(signal?.aborted && err.code === grpc.status.CANCELLED
              ? cancelledError(signal.reason, { grpcCode: err.code }) : errorFromStatus(err));
          } else {
            resolve(response!);
          }
        },
      );
      if (signal) {
        onAbort = () => pending.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  /** Opens a bidirectional stream on a method. Streams live until ended or cancelled, so no deadline applies. */
  bidi(method: string, requestType: protobuf.Type, responseType: protobuf.Type): grpc.ClientDuplexStream<object, DecodedMessage> {
    return this.client.makeBidiStreamRequest(
      `${SERVICE_PATH}/${method}`, serializer(requestType), deserializer(responseType), this.metadata(), {},
    );
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
