/**
 * Infer responses compressed as the client's Accept-Encoding asks, by
 * Triton's rule: of `identity`, `deflate` and `gzip`, the one with the
 * highest q-value wins (q defaults to 1, a tie keeps the first listed, q=0
 * never wins, other codings and `*` are ignored), and every successful
 * infer response is compressed whatever its size. Large bodies are
 * compressed on libuv's thread pool (zlib's async API), small ones in place.
 * Inference-Header-Content-Length keeps the uncompressed JSON length, which
 * is what a client reads once it has inflated the body.
 */
import { promisify } from 'node:util';
import { deflate, deflateSync, gzip, gzipSync } from 'node:zlib';

export type ResponseCompression = 'identity' | 'deflate' | 'gzip';

const CODINGS: readonly ResponseCompression[] = ['identity', 'deflate', 'gzip'];

/** The coding Triton would pick for this Accept-Encoding header. */
export function responseCompression(acceptEncoding: string | string[] | undefined): ResponseCompression {
  if (acceptEncoding === undefined) return 'identity';
  const header = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding;
  let chosen: ResponseCompression = 'identity';
  let weight = 0;
  for (const entry of header.split(',')) {
    const [coding = '', ...params] = entry.split(';').map((part) => part.trim());
    const q = params.find((p) => p.startsWith('q='));
    const w = q === undefined ? 1 : Number(q.slice(2));
    const known = CODINGS.find((c) => c === coding.toLowerCase());
    if (known !== undefined && Number.isFinite(w) && w > weight) {
      chosen = known;
      weight = w;
    }
  }
  return chosen;
}

/**
 * Bodies up to this size are compressed in the event loop's thread: well
 * under a millisecond, and the reply goes out in the same turn as the
 * inference result, so a shutdown that has seen the request finish never
 * closes its connection before the answer is written. Larger bodies go to
 * the thread pool.
 */
export const SYNC_COMPRESSION_MAX_BYTES = 64 * 1024;

const compressors = { deflate: promisify(deflate), gzip: promisify(gzip) };
const syncCompressors = { deflate: deflateSync, gzip: gzipSync };

type Compressed = { body: string | Buffer; headers: Readonly<Record<string, string>> };

/** The body compressed with `coding`, and the header that says so; identity leaves both as they are. */
export function compressedBody(body: string | Buffer, coding: ResponseCompression): Compressed | Promise<Compressed> {
  if (coding === 'identity') return { body, headers: {} };
  const headers = { 'content-encoding': coding };
  if (Buffer.byteLength(body) <= SYNC_COMPRESSION_MAX_BYTES) return { body: syncCompressors[coding](body), headers };
  return compressors[coding](body).then((compressed) => ({ body: compressed, headers }));
}
