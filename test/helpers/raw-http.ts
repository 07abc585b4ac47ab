/**
 * HTTP requests sent exactly as written: fetch would normalise `..` out of a
 * path and re-encode it, which hides what a hostile client can send.
 */
import { request } from 'node:http';

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** The body's bytes as they came, for compressed or binary bodies. */
  readonly raw: Buffer;
}

export interface RawRequest {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  /** A string or buffer is sent with Content-Length; an array of chunks is sent chunked, without one. */
  readonly body?: string | Buffer | readonly Buffer[];
}

/** One request to `baseUrl` (http://host:port) with `path` untouched. */
export function rawHttp(baseUrl: string, path: string, init: RawRequest = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method: init.method ?? 'GET', path, headers: init.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = init.body;
    if (Array.isArray(body)) {
      for (const chunk of body) req.write(chunk);
      req.end();
    } else {
      req.end(body as string | Buffer | undefined);
    }
  });
}
