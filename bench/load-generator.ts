/**
 * A small closed-loop HTTP load generator for benchmarks. `concurrency`
 * workers share one keep-alive agent with exactly that many sockets; each
 * sends its next request as soon as its previous response has been read in
 * full. Built on node:http rather than fetch/undici, whose per-request cost
 * on the client side would otherwise dominate a loopback measurement.
 */
import http from 'node:http';
import { LatencyRecorder, nowMs } from './latencies.ts';

export interface LoadSpec {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly concurrency: number;
  /** Load is applied but nothing is recorded for this long first. */
  readonly warmupMs: number;
  /** The measured window, right after the warmup. */
  readonly durationMs: number;
  /** Every response must have this status; others count as errors. Default 200. */
  readonly expectStatus?: number;
  /** When set, a response body of any other length counts as an error. */
  readonly expectBodyBytes?: number;
}

export interface LoadResult {
  /** Requests completed inside the measured window. */
  readonly requests: number;
  readonly errors: number;
  /** First error seen, for the report. */
  readonly firstError?: string;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  /** Latencies in milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly max: number;
}

/** Applies closed-loop load for warmup + duration and reports on the measured window only. */
export async function runClosedLoop(spec: LoadSpec): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency, maxFreeSockets: spec.concurrency });
  const expectStatus = spec.expectStatus ?? 200;
  const headers = { ...spec.headers, 'content-length': String(spec.body.byteLength) };
  const options: http.RequestOptions = { agent, host: spec.host, port: spec.port, path: spec.path, method: 'POST', headers };

  const latencies = new LatencyRecorder();
  let errors = 0;
  let firstError: string | undefined;

  const send = (): Promise<string | undefined> => new Promise((resolve) => {
    const req = http.request(options, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => { bytes += chunk.byteLength; });
      res.on('end', () => {
        if (res.statusCode !== expectStatus) resolve(`status ${res.statusCode}`);
        else if (spec.expectBodyBytes !== undefined && bytes !== spec.expectBodyBytes) {
          resolve(`response body of ${bytes} bytes, expected ${spec.expectBodyBytes}`);
        } else resolve(undefined);
      });
      res.on('error', (err) => resolve(err.message));
    });
    req.on('error', (err) => resolve(err.message));
    req.end(spec.body);
  });

  const start = nowMs();
  const windowStart = start + spec.warmupMs;
  const windowEnd = windowStart + spec.durationMs;

  const worker = async (): Promise<void> => {
    for (;;) {
      const t0 = nowMs();
      if (t0 >= windowEnd) return;
      const error = await send();
      const t1 = nowMs();
      // Only requests that both start and finish inside the window are measured.
      if (t0 < windowStart || t1 > windowEnd) continue;
      if (error !== undefined) {
        errors++;
        firstError ??= error;
      } else {
        latencies.record(t1 - t0);
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  agent.destroy();

  const { count, p50, p99, mean, max } = latencies.summary();
  const seconds = spec.durationMs / 1000;
  return {
    requests: count,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    seconds,
    requestsPerSecond: count / seconds,
    p50, p99, mean, max,
  };
}
