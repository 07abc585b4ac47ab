/**
 * Tensor memory shared by the whole server: batch inputs written for a
 * worker, outputs a worker writes into, and intermediate tensors an ensemble
 * passes between steps. A buffer is acquired, moved around (to a worker and
 * back, from one step to the next) and released by whoever holds it last, so
 * steady traffic of one shape allocates nothing per request.
 * Buffers come in power-of-two size classes from 4 KiB. Each class keeps a
 * bounded number of free buffers (keepCount): enough small ones for every
 * request in flight at a few dozen concurrent clients (each holds its
 * outputs until they are encoded), few of the big ones, so the pool's
 * memory stays bounded.
 */

import { adoptOwned, allocateOwned } from './owned-buffer.ts';

const SMALLEST = 4096;
/** A class keeps this many free buffers, or more of a small class (KEEP_SMALL_BYTES_PER_CLASS)... */
const KEEP_PER_CLASS = 8;
/**
 * ...as many as fit in this many bytes: 256 buffers of 4 KiB, 16 of 64 KiB.
 * Concurrent requests each hold their response's buffers until they are
 * encoded, so a class that kept only KEEP_PER_CLASS would drop most of them
 * at 32 clients and allocate afresh on the next burst.
 */
const KEEP_SMALL_BYTES_PER_CLASS = 1024 * 1024;
/** ...and no more than this many bytes of one class, though always at least two buffers. */
const KEEP_BYTES_PER_CLASS = 64 * 1024 * 1024;

/** How many free buffers of a size class the pool keeps. */
export function keepCount(size: number): number {
  const wanted = Math.max(KEEP_PER_CLASS, Math.floor(KEEP_SMALL_BYTES_PER_CLASS / size));
  return Math.max(2, Math.min(wanted, Math.floor(KEEP_BYTES_PER_CLASS / size)));
}

export interface BufferPoolOptions {
  /**
   * Keep released buffers for reuse, and let holders move pooled tensors and
   * have outputs written into pooled memory. Off, every acquire allocates a
   * buffer of exactly the size asked and release drops it: the baseline that
   * pooling is measured against. Default: true.
   */
  readonly enabled?: boolean;
}

export interface BufferPoolStats {
  /** Buffers created because no free one of the class was there (every acquire, when disabled). */
  readonly allocated: number;
  readonly allocatedBytes: number;
  /** Acquires answered with a buffer released earlier. */
  readonly reused: number;
  readonly reusedBytes: number;
  /** Tensor memory obtained outside the pool, e.g. an output ONNX Runtime allocated itself. */
  readonly foreignBytes: number;
  /** Bytes copied from request tensors into staging buffers, where they could not be moved. */
  readonly copiedBytes: number;
  /**
   * Buffers acquired and not yet given back (released or disowned). Steady
   * at its starting value between requests: a count that only grows is
   * memory some path never returned.
   */
  readonly outstanding: number;
  /** Buffers whose holder kept them for good (see disown): they left the pool. */
  readonly disowned: number;
}

export class BufferPool {
  readonly enabled: boolean;
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Every buffer in `free`, to tell a second release of one from a first in constant time. */
  private readonly freeSet = new Set<ArrayBuffer>();
  private allocated = 0;
  private allocatedBytes = 0;
  private reused = 0;
  private reusedBytes = 0;
  private foreignBytes = 0;
  private copiedBytes = 0;
  private outstanding = 0;
  private disowned = 0;

  constructor(options: BufferPoolOptions = {}) {
    this.enabled = options.enabled ?? true;
  }

  /** A buffer of at least byteLength bytes; its contents are whatever an earlier holder left. */
  acquire(byteLength: number): ArrayBuffer {
    const size = this.enabled ? sizeClass(byteLength) : byteLength;
    const buffer = this.free.get(size)?.pop();
    this.outstanding++;
    if (buffer) {
      this.freeSet.delete(buffer);
      this.reused++;
      this.reusedBytes += size;
      return buffer;
    }
    this.allocated++;
    this.allocatedBytes += size;
    return allocateOwned(size);
  }

  /**
   * Takes a buffer back. A detached one (it was moved to a worker that then
   * died) reads as 0 bytes and is dropped, so callers may release whatever
   * they acquired. A buffer of no size class, or one back already, is ignored
   * (and not counted as returned).
   */
  release(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (!this.enabled || size === 0) {
      this.outstanding--;
      return;
    }
    // Not one of ours (no size class), or back already: nothing was lent.
    if (size !== sizeClass(size) || this.freeSet.has(buffer)) return;
    this.outstanding--;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    if (list.length >= keepCount(size)) return;
    // Whoever releases holds the last view, so a buffer a worker moved back is ours to move again.
    adoptOwned(buffer);
    list.push(buffer);
    this.freeSet.add(buffer);
  }

  /**
   * A buffer acquired from the pool that its holder keeps for good (moved
   * into a script's isolate, held by a decoupled ensemble): it stops being
   * counted as lent and is never seen again.
   */
  disown(_buffer: ArrayBuffer): void {
    this.outstanding--;
    this.disowned++;
  }

  /** Counts tensor memory that some runtime allocated instead of the pool. */
  noteForeign(byteLength: number): void {
    this.foreignBytes += byteLength;
  }

  /** Counts bytes copied out of a request tensor that could not be moved. */
  noteCopy(byteLength: number): void {
    this.copiedBytes += byteLength;
  }

  stats(): BufferPoolStats {
    return {
      allocated: this.allocated, allocatedBytes: this.allocatedBytes, reused: this.reused, reusedBytes: this.reusedBytes,
      foreignBytes: this.foreignBytes, copiedBytes: this.copiedBytes, outstanding: this.outstanding, disowned: this.disowned,
    };
  }
}

/** The smallest class holding byteLength bytes. */
export function sizeClass(byteLength: number): number {
  if (byteLength <= SMALLEST) return SMALLEST;
  return 2 ** Math.ceil(Math.log2(byteLength));
}
