/**
 * Infer request bodies sent with `Content-Encoding: gzip` or `deflate`,
 * inflated as they arrive (node:zlib, on libuv's thread pool) as a fastify
 * preParsing hook. The body limit (--http-max-input-size) bounds the
 * inflated size: inflating stops at the first byte past it and the request
 * gets 413, so a small body that inflates to gigabytes costs at most the
 * limit in memory and one chunk of inflating past it. As in Triton, either
 * encoding accepts either format (gzip or zlib header), `identity` or an
 * empty value means none, and any other value is refused with 400
 * "Unsupported compression type" and an Accept-Encoding header naming the two.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createUnzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { quoted, serverError } from '../../engine/errors.ts';

export const SUPPORTED_CONTENT_ENCODINGS = 'gzip, deflate';

/** The request's compression: 'none', one to inflate, or undefined for an encoding this server cannot decode. */
export function requestCompression(header: string | string[] | undefined): 'none' | 'gzip' | 'deflate' | undefined {
  if (header === undefined) return 'none';
  const value = (Array.isArray(header) ? header.join(',') : header ?? '').trim().toLowerCase();
  if (value === '' || value === 'identity') return 'none';
  return value === 'gzip' || value === 'deflate' ? value : undefined;
}

/** Passes inflated bytes on, and fails with 413 at the first byte past `limit`. */
class InflatedLimit extends Transform {
  private inflated = 0;
  /** The compressed bytes read so far: fastify checks Content-Length against this, not the inflated size. */
  receivedEncodedLength = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.inflated += chunk.byteLength;
    if (this.inflated > this.limit) done(serverError('BODY_TOO_LARGE', { limit: this.limit, decompressed: true }));
    else done(null, chunk);
  }
}

/** The body as fastify should read it: `raw` inflated and bounded by `limit`. */
export function inflatedBody(raw: Readable, encoding: 'gzip' | 'deflate', limit: number): Readable {
  const unzip = createUnzip();
  const out = new InflatedLimit(limit);
  const stop = () => {
    // Nothing more is inflated; the rest of the request is read and dropped, so the error can be answered on it.
    raw.unpipe(unzip);
    unzip.destroy();
    raw.resume();
  };
  raw.on('data', (chunk: Buffer) => {
    out.receivedEncodedLength += chunk.byteLength;
  });
  unzip.on('error', (err) => {
    stop();
    out.destroy(serverError('BAD_REQUEST', {
      detail: `the request body could not be decompressed (Content-Encoding: ${encoding}): ${quoted(err.message)}`,
    }));
  });
  out.on('error', stop);
  raw.pipe(unzip).pipe(out);
  return out;
}

/**
 * A route's preParsing hook: infer bodies inflated within `limit`, unknown
 * encodings refused. Callback style, not async: it runs on every infer
 * request, and an async hook costs a promise and a microtask each time.
 */
export function decompressRequest(limit: number) {
  return (req: FastifyRequest, reply: FastifyReply, payload: Readable, done: (err: Error | null, body?: Readable) => void): void => {
    const compression = requestCompression(req.headers['content-encoding']);
    if (compression === 'none') {
      done(null, payload);
      return;
    }
    if (compression === undefined) {
      reply.header('accept-encoding', SUPPORTED_CONTENT_ENCODINGS);
      done(serverError('BAD_REQUEST', { detail: 'Unsupported compression type' }));
      return;
    }
    done(null, inflatedBody(payload, compression, limit));
  };
}
