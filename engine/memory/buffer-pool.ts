/**
 * Tensor memory shared by the whole server: batch inputs written for a
 * worker, outputs a worker writes into, and intermediate tensors an ensemble
 * passes between steps. A buffer is acquired, moved around (to a worker and
 * back, from one step to the next) and released by whoever holds it last, so
 * steady traffic of one shape allocates nothing per request.
 * Buffers come in power-of-two size classes from 4 KiB; a few of each class
 * are kept, fewer of the big ones, so the pool's memory stays bounded.
 */

const SMALLEST = 4096;
/** At most this many free buffers of one class... */
const KEEP_PER_CLASS = 8;
/** ...and no more than this many bytes of one class, though always at least two buffers. */
const KEEP_BYTES_PER_CLASS = 64 * 1024 * 1024;

export interface PoolStats {
  /** Buffers created because no free one of the class was there. */
  readonly allocated: number;
  /** Requests answered with a buffer that came back from an earlier run. */
  readonly reused: number;
}

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private allocated = 0;
  private reused = 0;

  /** A buffer of at least byteLength bytes; its contents are whatever an earlier batch left. */
  acquire(byteLength: number): ArrayBuffer {
    const size = sizeClass(byteLength);
    const buffer = this.free.get(size)?.pop();
    if (buffer) {
      this.reused++;
      return buffer;
    }
    this.allocated++;
    return new ArrayBuffer(size);
  }

  /**
   * Takes a buffer back. A detached one (it was moved to a worker that then
   * died) reads as 0 bytes and is dropped, so callers may release whatever they acquired.
   */
  release(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (size === 0 || size !== sizeClass(size)) return;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    const keep = Math.max(2, Math.min(KEEP_PER_CLASS, Math.floor(KEEP_BYTES_PER_CLASS / size)));
    if (list.length < keep && !list.includes(buffer)) list.push(buffer);
  }

  stats(): PoolStats {
    return { allocated: this.allocated, reused: this.reused };
  }
}

/** The smallest class holding byteLength bytes. */
export function sizeClass(byteLength: number): number {
  if (byteLength <= SMALLEST) return SMALLEST;
  return 2 ** Math.ceil(Math.log2(byteLength));
}
