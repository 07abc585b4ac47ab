/**
 * How tasks and results cross between the server and a JSON codec process
 * without one long pause. Node's IPC serializes a message in one go and, on
 * the other side, joins and deserializes it in one go: for a 128 MiB tensor
 * that is tens of milliseconds of blocked event loop each way. So every
 * typed array over PIECE_BYTES travels ahead of its message in pieces of
 * PIECE_BYTES, each its own message, copied into place as it arrives; the
 * message itself carries a small marker where the array was.
 */

/** Largest piece of a typed array sent as one IPC message. */
export const PIECE_BYTES = 1024 * 1024;

/** Where a large array was: its index among the message's arrays. */
interface Marker {
  readonly '\u0000piece': number;
  readonly type: 'Buffer' | 'Uint8Array' | 'Uint32Array';
}

export type PieceMessage =
  | { readonly kind: 'piece-start'; readonly index: number; readonly byteLength: number }
  | { readonly kind: 'piece'; readonly index: number; readonly at: number; readonly bytes: Uint8Array };

const MARK = '\u0000piece';

function isMarker(value: unknown): value is Marker {
  return typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>)[MARK] === 'number';
}

/** Arrays and plain objects with `walk` applied to each item, `parameters` (client values) left as they are; anything else unchanged. */
function mapPlain(value: unknown, walk: (item: unknown) => unknown): unknown {
  if (Array.isArray(value)) return value.map(walk);
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = key === 'parameters' ? item : walk(item);
  return out;
}

/**
 * The message with each large typed array replaced by a marker, and the
 * pieces (views, not copies) to send before it. Only plain objects and
 * arrays are walked, and never `parameters`, which hold client values (so a
 * client cannot plant a marker); a json-object task's result is client JSON
 * and is sent whole.
 */
export function inPieces(message: unknown): { readonly message: unknown; readonly pieces: readonly PieceMessage[] } {
  const pieces: PieceMessage[] = [];
  const send = (piece: PieceMessage): void => void pieces.push(piece);
  let next = 0;
  const walk = (value: unknown): unknown => {
    if (value instanceof Uint8Array || value instanceof Uint32Array) {
      if (value.byteLength <= PIECE_BYTES) return value;
      const index = next++;
      send({ kind: 'piece-start', index, byteLength: value.byteLength });
      const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      for (let at = 0; at < bytes.byteLength; at += PIECE_BYTES) {
        send({ kind: 'piece', index, at, bytes: bytes.subarray(at, Math.min(at + PIECE_BYTES, bytes.byteLength)) });
      }
      const type = Buffer.isBuffer(value) ? 'Buffer' : value instanceof Uint32Array ? 'Uint32Array' : 'Uint8Array';
      return { [MARK]: index, type } satisfies Marker;
    }
    return mapPlain(value, walk);
  };
  return { message: walk(message), pieces };
}

/** The receiving side: collects pieces, then puts the arrays back into the message that follows them. */
export class PieceJoiner {
  private readonly arrays = new Map<number, Uint8Array>();

  /** Takes a piece message; false for anything else. */
  take(message: unknown): boolean {
    const piece = message as PieceMessage;
    if (piece?.kind === 'piece-start') {
      this.arrays.set(piece.index, new Uint8Array(piece.byteLength));
      return true;
    }
    if (piece?.kind === 'piece') {
      this.arrays.get(piece.index)?.set(piece.bytes, piece.at);
      return true;
    }
    return false;
  }

  /** The message with its markers replaced by the arrays collected; forgets them. */
  join<T>(message: T): T {
    if (this.arrays.size === 0) return message;
    const walk = (value: unknown): unknown => {
      if (isMarker(value)) {
        const bytes = this.arrays.get(value[MARK])!;
        if (value.type === 'Uint32Array') return new Uint32Array(bytes.buffer, 0, bytes.byteLength / 4);
        return value.type === 'Buffer' ? Buffer.from(bytes.buffer, 0, bytes.byteLength) : bytes;
      }
      return mapPlain(value, walk);
    };
    const joined = walk(message) as T;
    this.arrays.clear();
    return joined;
  }
}
