/**
 * Closed-loop gRPC load for benchmarks, with a grpc-js client on one channel
 * (one HTTP/2 connection, as a typical client has). Requests are encoded
 * once up front and responses are not decoded, only their length checked,
 * so the client spends its CPU on grpc-js itself rather than on protobuf.
 *
 * Two shapes of load:
 * - unary: `concurrency` callers, each sending its next call as soon as the
 *   previous one has answered;
 * - streaming: `streams` bidirectional streams, each keeping `window`
 *   messages in flight (a new one is written for every reply read).
 */
import * as grpc from '@grpc/grpc-js';
import { LatencyRecorder, nowMs } from './latencies.ts';
import type { LoadResult } from './load-generator.ts';

const identity = (bytes: Buffer): Buffer => bytes;

/** How long after the window a stream may still be waiting for replies before it is cancelled. */
const STALL_MS = 10_000;

/** A private subchannel pool, so each cell opens its own connection and never inherits a previous cell's. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

interface CommonSpec {
  /** host:port */
  readonly address: string;
  /** Full method path, e.g. /inference.GRPCInferenceService/ModelInfer. */
  readonly path: string;
  /** The encoded request message, sent as is every time. */
  readonly body: Buffer;
  /** Load is applied but nothing is recorded for this long first. */
  readonly warmupMs: number;
  /** The measured window, right after the warmup. */
  readonly durationMs: number;
  /** When set, a response message of any other length counts as an error. */
  readonly expectBodyBytes?: number;
}

export interface GrpcUnarySpec extends CommonSpec {
  readonly concurrency: number;
}

export interface GrpcStreamSpec extends CommonSpec {
  readonly streams: number;
  /** Messages each stream keeps in flight. */
  readonly window: number;
}

/** Counts successes (with their latency) and errors inside the measured window. */
class WindowTally {
  readonly latencies = new LatencyRecorder();
  errors = 0;
  firstError: string | undefined;
  readonly windowStart: number;
  readonly windowEnd: number;

  constructor(private readonly spec: CommonSpec) {
    this.windowStart = nowMs() + spec.warmupMs;
    this.windowEnd = this.windowStart + spec.durationMs;
  }

  /** One exchange: counted only if it both started and finished inside the window. */
  settle(t0: number, t1: number, outcome: { error: string } | { response: Buffer }): void {
    if (t0 < this.windowStart || t1 > this.windowEnd) return;
    const expect = this.spec.expectBodyBytes;
    if ('error' in outcome) this.fail(outcome.error);
    else if (expect !== undefined && outcome.response.byteLength !== expect) {
      this.fail(`response message of ${outcome.response.byteLength} bytes, expected ${expect}`);
    } else this.latencies.record(t1 - t0);
  }

  /** A failure that is not one exchange's (a stream breaking), counted whenever it happens. */
  fail(message: string): void {
    this.errors++;
    this.firstError ??= message;
  }

  result(): LoadResult {
    const { count, p50, p99, mean, max } = this.latencies.summary();
    const seconds = this.spec.durationMs / 1000;
    return {
      requests: count,
      errors: this.errors,
      ...(this.firstError !== undefined ? { firstError: this.firstError } : {}),
      seconds,
      requestsPerSecond: count / seconds,
      p50, p99, mean, max,
    };
  }
}

function connect(address: string): Promise<grpc.Client> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + 10_000, (err) => {
      if (err) {
        client.close();
        reject(err);
      } else resolve(client);
    });
  });
}

/** Closed-loop unary calls for warmup + duration; reports on the measured window only. */
export async function runGrpcUnary(spec: GrpcUnarySpec): Promise<LoadResult> {
  const client = await connect(spec.address);
  const tally = new WindowTally(spec);
  const call = (): Promise<{ error: string } | { response: Buffer }> => new Promise((resolve) => {
    client.makeUnaryRequest(spec.path, identity, identity, spec.body, (err, response) => {
      resolve(err ? { error: `${grpc.status[err.code]}: ${err.details}` } : { response: response! });
    });
  });
  const caller = async (): Promise<void> => {
    for (;;) {
      const t0 = nowMs();
      if (t0 >= tally.windowEnd) return;
      const outcome = await call();
      tally.settle(t0, nowMs(), outcome);
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, caller));
  client.close();
  return tally.result();
}

/**
 * Windowed ModelStreamInfer-style load. Latency pairs each reply with the
 * oldest message still in flight on its stream, which is right when replies
 * come back in request order (both servers in the benchmark answer in order).
 */
export async function runGrpcStream(spec: GrpcStreamSpec): Promise<LoadResult> {
  const client = await connect(spec.address);
  const tally = new WindowTally(spec);
  const stream = (): Promise<void> => new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(spec.path, identity, identity);
    const sentAt: number[] = [];
    let ending = false;
    const send = (): void => {
      sentAt.push(nowMs());
      call.write(spec.body);
    };
    call.on('data', (response: Buffer) => {
      const t1 = nowMs();
      tally.settle(sentAt.shift()!, t1, { response });
      if (t1 < tally.windowEnd) send();
      else if (sentAt.length === 0 && !ending) {
        ending = true;
        call.end();
      }
    });
    // A broken stream loses everything in flight; it counts as one error.
    call.on('error', (err: grpc.ServiceError) => tally.fail(`stream failed: ${grpc.status[err.code]}: ${err.details}`));
    // A server that stops answering would leave the stream open for ever; give up well after the window.
    const stalled = setTimeout(() => call.cancel(), Math.max(0, tally.windowEnd - nowMs()) + STALL_MS);
    call.on('status', () => {
      clearTimeout(stalled);
      resolve();
    });
    for (let i = 0; i < spec.window; i++) send();
  });
  await Promise.all(Array.from({ length: spec.streams }, stream));
  client.close();
  return tally.result();
}
