/**
 * The one rule for moving memory between threads and isolates. Moving an
 * ArrayBuffer (a postMessage transfer list, an isolated-vm transferList)
 * detaches it for every view on it. Memory that came from outside is not
 * ours to move: a small Buffer is a slice of Node's shared pool slab, a
 * request body may be a socket read, and detaching either breaks whatever
 * else views it (another request's body, fastify's parser). So only buffers
 * this server allocated itself are ever moved, and only when the mover holds
 * the sole view; everything else is copied (left out of the transfer list,
 * or copied with ownedCopy).
 *
 * Buffer#slice shares memory (unlike Uint8Array#slice), so code that wants a
 * copy of a view that may be a Buffer uses ownedCopy, never `.slice()`.
 */

const ours = new WeakSet<ArrayBuffer>();

/** A fresh zeroed buffer of this server's own: one that may be moved. */
export function allocateOwned(byteLength: number): ArrayBuffer {
  const buffer = new ArrayBuffer(byteLength);
  ours.add(buffer);
  return buffer;
}

/**
 * Marks a buffer whose only holder is the caller as the server's own, e.g.
 * one a worker moved to us, handed back to the pool.
 */
export function adoptOwned(buffer: ArrayBuffer): void {
  ours.add(buffer);
}

export function isOwned(buffer: ArrayBufferLike): buffer is ArrayBuffer {
  return buffer instanceof ArrayBuffer && ours.has(buffer);
}

/** A copy of the bytes in a buffer of our own, exactly as long. */
export function ownedCopy(view: ArrayBufferView): Uint8Array {
  const copy = new Uint8Array(allocateOwned(view.byteLength));
  copy.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  return copy;
}

/**
 * Whether `view`'s buffer may be moved: the server allocated it, and the
 * view is its only one. `exclusive` says the holder owns the whole buffer
 * though the view covers only its start (a pooled tensor in a size class).
 */
export function isMovable(view: ArrayBufferView, exclusive = false): boolean {
  return isOwned(view.buffer) && view.byteOffset === 0 && (exclusive || view.byteLength === view.buffer.byteLength);
}

/**
 * A transfer list: the buffers that are ours, each once. Anything else in
 * `buffers` stays out and is copied by the structured clone instead of moved.
 */
export function transferList(buffers: Iterable<ArrayBufferLike>): ArrayBuffer[] {
  const list = new Set<ArrayBuffer>();
  for (const buffer of buffers) if (isOwned(buffer) && buffer.byteLength > 0) list.add(buffer);
  return [...list];
}
