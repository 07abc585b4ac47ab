/**
 * A bare grpc-js client for tests: it speaks the wire format straight from
 * proto/grpc_service.proto, independent of our client SDK, and can send
 * arbitrary bytes (to test malformed messages).
 */
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { grpcService, grpcType, HEALTH_SERVICE, INFERENCE_SERVICE } from '../../server/grpc/grpc-schema.ts';

export type Message = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface CallOutcome {
  readonly response?: Message;
  readonly error?: grpc.ServiceError;
}

export class RawGrpcClient {
  private readonly client: grpc.Client;

  constructor(address: string, options: grpc.ClientOptions = {}) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), options);
  }

  private method(name: string): { path: string; request: protobuf.Type; response: protobuf.Type } {
    const [serviceName, service] = name === 'Check'
      ? [HEALTH_SERVICE, grpcService(HEALTH_SERVICE)]
      : [INFERENCE_SERVICE, grpcService(INFERENCE_SERVICE)];
    const method = service.methods[name]!;
    method.resolve();
    return { path: `/${serviceName}/${name}`, request: method.resolvedRequestType!, response: method.resolvedResponseType! };
  }

  /** A unary call with a message object (or raw bytes); resolves with the response or the error, never rejects. */
  call(name: string, request: Message | Buffer, options: grpc.CallOptions = {}, metadata = new grpc.Metadata()): Promise<CallOutcome> {
    const { path, request: requestType, response: responseType } = this.method(name);
    const bytes = Buffer.isBuffer(request) ? request : Buffer.from(requestType.encode(requestType.fromObject(request)).finish());
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => responseType.decode(b) as unknown as Message,
        bytes, metadata, options, (error, response) => {
          resolve(error ? { error } : { response: response! });
        });
    });
  }

  /** Opens ModelStreamInfer; messages come back decoded as ModelStreamInferResponse. */
  stream(options: grpc.CallOptions = {}, metadata = new grpc.Metadata()): grpc.ClientDuplexStream<Message, Message> {
    const requestType = grpcType('inference.ModelInferRequest');
    const responseType = grpcType('inference.ModelStreamInferResponse');
    return this.client.makeBidiStreamRequest(`/${INFERENCE_SERVICE}/ModelStreamInfer`,
      (m: Message) => (Buffer.isBuffer(m) ? m : Buffer.from(requestType.encode(requestType.fromObject(m)).finish())),
      (b: Buffer) => responseType.decode(b) as unknown as Message, metadata, options);
  }

  /** Writes the messages on one ModelStreamInfer call, half-closes, and collects every response until the server ends it. */
  async streamAll(messages: readonly (Message | Buffer)[], options: grpc.CallOptions = {}): Promise<Message[]> {
    const stream = this.stream(options);
    const received: Message[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: Message) => received.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    for (const message of messages) stream.write(message);
    stream.end();
    await done;
    return received;
  }

  close(): void {
    this.client.close();
  }
}

/** A Long (or number) as a JavaScript number. */
export function num(value: unknown): number {
  if (typeof value === 'number') return value;
  const long = value as { low: number; high: number; unsigned?: boolean };
  return Number((BigInt(long.high) << 32n) | BigInt(long.low >>> 0));
}

/** The strings of a BYTES raw output, as gRPC carries them: a 4-byte little-endian length before each. */
export function strings(raw: Uint8Array | undefined): string[] {
  if (!raw) return [];
  const buffer = Buffer.from(raw);
  const out: string[] = [];
  for (let at = 0; at < buffer.length;) {
    const length = buffer.readUInt32LE(at);
    out.push(buffer.toString('utf8', at + 4, at + 4 + length));
    at += 4 + length;
  }
  return out;
}

/** A protobuf varint, for messages written by hand (attacks protobufjs would not encode). */
export function protoVarint(value: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(value));
  const bytes: number[] = [];
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Buffer.from(bytes);
}

/** A length-delimited field: tag, length, body. */
export function protoField(number: number, body: Buffer): Buffer {
  return Buffer.concat([protoVarint(number * 8 + 2), protoVarint(body.byteLength), body]);
}
