/**
 * Requests over node:http with one keep-alive agent per client, so repeated
 * calls reuse connections. Turns aborts, timeouts, socket failures and
 * non-2xx answers into InferenceServerErrors.
 */
import http from 'node:http';
import https from 'node:https';
import {
  cancelledError, codeForHttpStatus, deadlineError, InferenceServerError,
} from '../inference-server-error.ts';

/** A complete HTTP response. */
export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Per-call controls. */
export interface HttpCallOptions {
  readonly signal?: AbortSignal | undefined;
  readonly timeoutMs?: number | undefined;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Where to connect and what every request carries. */
export interface HttpConnectionOptions {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number | undefined;
}

/** The error a non-2xx response stands for: the server's `{"error": "..."}` message verbatim, the status mapped to a code. */
export function errorFromResponse(response: HttpResponse): InferenceServerError {
  const text = response.body.toString('utf8');
  let message = text;
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed?.error === 'string') message = parsed.error;
  } catch {
    // Not JSON: keep the body text as the message.
  }
  if (message === '') message = `HTTP ${response.status} ${http.STATUS_CODES[response.status] ?? ''}`.trim();
  return new InferenceServerError(message, codeForHttpStatus(response.status), { httpStatus: response.status });
}

/** An HTTP(S) origin with a keep-alive connection pool. */
export class HttpConnection {
  private readonly agent: http.Agent;
  private readonly options: HttpConnectionOptions;
  private readonly request: typeof http.request;

  constructor(options: HttpConnectionOptions) {
    this.options = options;
    this.agent = options.secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.request = options.secure ? https.request : http.request;
  }

  /**
   * Sends a request and reads the whole response. Resolves for any status;
   * rejects with InferenceServerError for aborts, timeouts and socket errors.
   */
  send(method: string, path: string, body: readonly Uint8Array[] | undefined, call: HttpCallOptions = {}): Promise<HttpResponse> {
    const timeoutMs = call.timeoutMs ?? this.options.timeoutMs;
    const { signal } = call;
    if (signal?.aborted) return Promise.reject(cancelledError(signal.reason));
    const length = body?.reduce((sum, chunk) => sum + chunk.byteLength, 0) ?? 0;
    return new Promise<HttpResponse>((resolve, reject) => {
      let failure: InferenceServerError | undefined;
      const req = this.request({
        agent: this.agent,
        host: this.options.host,
        port: this.options.port,
        method,
        path,
        headers: {
          ...this.options.headers,
          ...call.headers,
          ...(body ? { 'content-length': String(length) } : {}),
        },
      });
      const stop = (error: InferenceServerError): void => {
        failure ??= error;
        req.destroy(error);
      };
      const onAbort = (): void => stop(cancelledError(signal?.reason));
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => stop(deadlineError(timeoutMs)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      req.on('error', (err) => {
        settle();
        reject(failure ?? new InferenceServerError(err.message, 'UNAVAILABLE', { cause: err }));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => {
          settle();
          reject(failure ?? new InferenceServerError(err.message, 'UNAVAILABLE', { cause: err }));
        });
        res.on('end', () => {
          settle();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
        });
      });
      if (body && body.length > 1) {
        req.cork();
        for (const chunk of body) req.write(chunk);
        req.uncork();
        req.end();
      } else {
        req.end(body?.[0]);
      }
    });
  }

  /** Like send, but rejects non-2xx responses with the server's error. */
  async call(method: string, path: string, body: readonly Uint8Array[] | undefined, call: HttpCallOptions = {}): Promise<HttpResponse> {
    const response = await this.send(method, path, body, call);
    if (response.status < 200 || response.status >= 300) throw errorFromResponse(response);
    return response;
  }

  /** Closes pooled connections. */
  close(): void {
    this.agent.destroy();
  }
}
