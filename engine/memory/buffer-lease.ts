/**
 * Who gives pooled memory back. A response whose outputs lie in buffers of
 * the server's BufferPool holds a lease on those buffers; its outputs are
 * plain tensors that say nothing about where their memory came from. The
 * holder ends the lease exactly once, in one of three ways:
 * - release(): done with the data (the response was encoded to the wire,
 *   copied, or dropped): every buffer goes back to the pool;
 * - take(): ownership moves on, to a holder that releases each buffer
 *   itself (an ensemble handing an intermediate tensor to its next step, a
 *   script bridge moving the memory into an isolate);
 * - keep(): the data stays in use for good (a decoupled ensemble's scope);
 *   the pool stops counting the buffers as lent.
 * Whichever comes first ends the lease; later calls do nothing, so every
 * path may end it in a `finally` without tracking whether another did.
 */
import type { BufferPool } from './buffer-pool.ts';
import type { Tensor } from '../tensor.ts';

export class BufferLease {
  private buffers: ArrayBuffer[] | undefined;

  constructor(private readonly pool: BufferPool | undefined, buffers: readonly ArrayBuffer[]) {
    this.buffers = pool && buffers.length > 0 ? distinct(buffers) : undefined;
  }

  /** A lease on the pool buffers of the tensors marked `pooled` (each buffer once); an ended one, shared, when there are none. */
  static ofTensors(pool: BufferPool | undefined, tensors: readonly Tensor[]): BufferLease {
    if (!pool) return NO_LEASE;
    const buffers = pooledBuffers(tensors);
    if (buffers.length === 0) return NO_LEASE;
    const lease = new BufferLease(pool, NO_BUFFERS);
    // Each buffer once already, in an array of its own: the lease holds it as it is.
    lease.buffers = buffers;
    return lease;
  }

  /** How many buffers the lease still holds: 0 once it ended. */
  get size(): number {
    return this.buffers?.length ?? 0;
  }

  /** Whether the lease ended (or never held anything). */
  get ended(): boolean {
    return this.buffers === undefined;
  }

  /** Gives every buffer back to the pool; only the first call (of release, take, keep) does anything. */
  release(): void {
    const buffers = this.end();
    for (const buffer of buffers) this.pool!.release(buffer);
  }

  /** Ends the lease and hands its buffers to the caller, who now releases (or disowns) each of them. */
  take(): ArrayBuffer[] {
    return this.end();
  }

  /** Ends the lease leaving the memory with whoever views it: the pool forgets the buffers. */
  keep(): void {
    const buffers = this.end();
    for (const buffer of buffers) this.pool!.disown(buffer);
  }

  private end(): ArrayBuffer[] {
    const buffers = this.buffers ?? [];
    this.buffers = undefined;
    return buffers;
  }
}

/** The buffers, each once, in a new array. */
function distinct(buffers: readonly ArrayBuffer[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const buffer of buffers) if (!out.includes(buffer)) out.push(buffer);
  return out;
}

const NO_BUFFERS: readonly ArrayBuffer[] = Object.freeze([]);

/** Every lease on nothing: it holds no buffer, so whatever ends it does nothing. */
const NO_LEASE = new BufferLease(undefined, []);

/** The pool buffers behind tensors marked `pooled`, each once. */
export function pooledBuffers(tensors: readonly Tensor[]): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const tensor of tensors) {
    if (tensor.datatype !== 'BYTES' && tensor.pooled === true && tensor.raw.buffer instanceof ArrayBuffer && !buffers.includes(tensor.raw.buffer)) {
      buffers.push(tensor.raw.buffer);
    }
  }
  return buffers;
}

/** Gives back to `pool` the buffers behind tensors marked `pooled`, each once: their holder owns them and nobody will read them. */
export function releaseMarked(pool: BufferPool | undefined, tensors: readonly Tensor[]): void {
  if (!pool) return;
  for (const buffer of pooledBuffers(tensors)) pool.release(buffer);
}

/** The tensor without its `pooled` mark: the memory stays where it is, and the lease (not the tensor) answers for it. */
export function unmarked(tensor: Tensor): Tensor {
  if (tensor.datatype === 'BYTES' || tensor.pooled !== true) return tensor;
  return { name: tensor.name, datatype: tensor.datatype, shape: tensor.shape, raw: tensor.raw };
}

/** The tensor marked `pooled` when its buffer is one of `owned`: ownership taken from a lease, handed on with the tensor. */
export function markedIfOwned(tensor: Tensor, owned: ReadonlySet<ArrayBufferLike>): Tensor {
  if (tensor.datatype === 'BYTES' || !owned.has(tensor.raw.buffer)) return tensor;
  return { ...tensor, pooled: true };
}
