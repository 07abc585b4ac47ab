/**
 * A small closed-loop HTTP load generator for benchmarks. `concurrency`
 * workers each keep one keep-alive connection and send their next request as
 * soon as the previous response has been read in full.
 *
 * Two clients: node:http (an Agent with exactly `concurrency` sockets), and
 * `raw`, which writes the request's bytes, prepared once, straight to a TCP
 * socket and reads the response with just enough HTTP/1.1 parsing (status
 * line, Content-Length). On a 2-core machine the client shares the CPU with
 * the server under test, and `raw` costs the client a fraction of what
 * node:http does, so more of the machine goes to the server.
 */
import http from 'node:http';
import net from 'node:net';
import { runCallLoop } from './call-loop.ts';

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
  /** Which client sends the requests. Default 'node-http'. */
  readonly client?: 'node-http' | 'raw';
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
  const client = spec.client === 'raw' ? rawClient(spec) : nodeHttpClient(spec);
  try {
    return await runCallLoop(spec, (index) => client.send(index));
  } finally {
    client.close();
  }
}

export interface OneResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One POST on its own connection, read in full: for checking a server's answer before loading it. */
export function postOnce(port: number, path: string, payload: { readonly headers: Readonly<Record<string, string>>; readonly body: Buffer }): Promise<OneResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path, method: 'POST', agent: false,
      headers: { ...payload.headers, 'content-length': String(payload.body.byteLength) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload.body);
  });
}

interface Client {
  /** Sends one request on worker `index`'s connection; resolves with an error text, or undefined for a good answer. */
  send(index: number): Promise<string | undefined>;
  close(): void;
}

/** Checks a finished response against the spec. */
function verdict(spec: LoadSpec, status: number | undefined, bodyBytes: number): string | undefined {
  if (status !== (spec.expectStatus ?? 200)) return `status ${status}`;
  if (spec.expectBodyBytes !== undefined && bodyBytes !== spec.expectBodyBytes) {
    return `response body of ${bodyBytes} bytes, expected ${spec.expectBodyBytes}`;
  }
  return undefined;
}

function nodeHttpClient(spec: LoadSpec): Client {
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency, maxFreeSockets: spec.concurrency });
  const headers = { ...spec.headers, 'content-length': String(spec.body.byteLength) };
  const options: http.RequestOptions = { agent, host: spec.host, port: spec.port, path: spec.path, method: 'POST', headers };
  return {
    send: () => new Promise((resolve) => {
      const req = http.request(options, (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => { bytes += chunk.byteLength; });
        res.on('end', () => resolve(verdict(spec, res.statusCode, bytes)));
        res.on('error', (err) => resolve(err.message));
      });
      req.on('error', (err) => resolve(err.message));
      req.end(spec.body);
    }),
    close: () => agent.destroy(),
  };
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * One TCP connection per worker, the request bytes built once. Responses must
 * carry Content-Length (fastify's do for buffered bodies); a chunked or
 * malformed response counts as an error and the connection is replaced.
 */
function rawClient(spec: LoadSpec): Client {
  const head = [`POST ${spec.path} HTTP/1.1`, `host: ${spec.host}:${spec.port}`, 'connection: keep-alive',
    ...Object.entries(spec.headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${spec.body.byteLength}`, '', ''].join('\r\n');
  const request = Buffer.concat([Buffer.from(head, 'latin1'), spec.body]);

  interface Connection {
    socket: net.Socket;
    buffered: Buffer | undefined;
    waiting: ((error: string | undefined) => void) | undefined;
  }
  const connections: (Connection | undefined)[] = [];

  const open = (index: number): Connection => {
    const socket = net.connect({ host: spec.host, port: spec.port, noDelay: true });
    const connection: Connection = { socket, buffered: undefined, waiting: undefined };
    const finish = (error: string | undefined): void => {
      const waiting = connection.waiting;
      connection.waiting = undefined;
      waiting?.(error);
    };
    const drop = (error: string): void => {
      if (connections[index] === connection) connections[index] = undefined;
      socket.destroy();
      finish(error);
    };
    socket.on('data', (chunk: Buffer) => {
      const data = connection.buffered ? Buffer.concat([connection.buffered, chunk]) : chunk;
      const headerEnd = data.indexOf(HEADER_END);
      if (headerEnd < 0) {
        connection.buffered = data;
        return;
      }
      const headerText = data.toString('latin1', 0, headerEnd);
      const status = Number(headerText.slice(9, 12));
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(headerText);
      if (!length) {
        drop(`response without content-length (status ${status})`);
        return;
      }
      const bodyBytes = Number(length[1]);
      const total = headerEnd + HEADER_END.byteLength + bodyBytes;
      if (data.byteLength < total) {
        connection.buffered = data;
        return;
      }
      if (data.byteLength > total) {
        drop('more bytes than one response: the server answered something not asked for');
        return;
      }
      connection.buffered = undefined;
      finish(verdict(spec, status, bodyBytes));
    });
    socket.on('error', (err) => drop(err.message));
    socket.on('close', () => drop('connection closed by the server'));
    return connection;
  };

  return {
    send: (index) => new Promise((resolve) => {
      const connection = connections[index] ??= open(index);
      connection.waiting = resolve;
      connection.socket.write(request);
    }),
    close: () => {
      for (const connection of connections) connection?.socket.destroy();
    },
  };
}
