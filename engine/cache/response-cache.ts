/**
 * The response cache (Triton's `local` cache): answers of earlier requests,
 * kept in memory and shared by every model that enables response_cache,
 * so an identical request is answered without running the model.
 *
 * An entry is found by a key made of the model, the loaded version and a
 * SHA-256 over everything in the request that can change the answer: each
 * input's name, datatype, shape and bytes (order of inputs aside), the
 * outputs asked for, and the request's parameters bar the ones that only
 * steer scheduling. The cache is bounded by bytes (each key plus its
 * outputs' names, shapes and data) and drops the least recently used
 * entries to make room; an answer larger than the whole cache is not kept.
 *
 * Entries hold their own copies of the output bytes, and lookups hand out
 * fresh copies: whatever callers do with their tensors (give pooled memory
 * back, move buffers to a worker) never reaches a cached answer.
 */
import { createHash, type Hash } from 'node:crypto';
import type { InferenceRequest, ParameterValue } from '../inference-request.ts';
import { ownedCopy } from '../memory/owned-buffer.ts';
import type { Tensor } from '../tensor.ts';

export interface ResponseCacheOptions {
  /** Bytes the entries may take in all (--cache-config local,size=N). */
  readonly sizeBytes: number;
}

/** Totals since the server started, for the metrics endpoint (Triton's nv_cache_* family). */
export interface ResponseCacheStats {
  /** The configured size in bytes. */
  readonly capacityBytes: number;
  /** Entries held now. */
  readonly entries: number;
  /** Bytes the entries take now. */
  readonly bytes: number;
  /** bytes / capacityBytes, 0..1. */
  readonly utilization: number;
  readonly lookups: number;
  readonly hits: number;
  readonly misses: number;
  /** Answers stored (answers too large for the cache are not). */
  readonly inserts: number;
  /** Entries dropped to make room for newer ones. */
  readonly evictions: number;
  /** Entries dropped because their model was unloaded or reloaded. */
  readonly invalidations: number;
  /** Time spent in lookups and in inserts, in nanoseconds. */
  readonly lookupNs: number;
  readonly insertNs: number;
}

/** Request parameters that steer queueing or the sequence batcher but never the answer. */
const SCHEDULING_PARAMETERS: ReadonlySet<string> = new Set([
  'priority', 'timeout', 'sequence_id', 'sequence_start', 'sequence_end',
]);

interface Entry {
  readonly model: string;
  readonly outputs: readonly Tensor[];
  readonly bytes: number;
}

export class ResponseCache {
  readonly capacityBytes: number;
  /** In least recently used first order: a hit moves its entry to the end. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private lookups = 0;
  private hits = 0;
  private inserts = 0;
  private evictions = 0;
  private invalidations = 0;
  private lookupNs = 0;
  private insertNs = 0;

  constructor(options: ResponseCacheOptions) {
    if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes < 1) {
      throw new RangeError(`response cache size must be a positive number of bytes, not ${options.sizeBytes}`);
    }
    this.capacityBytes = options.sizeBytes;
  }

  /**
   * The key of a request to `model`: `generation` tells apart loads of the
   * same version number (a reload with new files must not see old answers).
   */
  keyOf(model: string, version: number, generation: number, request: InferenceRequest, outputs: readonly string[]): string {
    const hash = createHash('sha256');
    const inputs = [...request.inputs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const input of inputs) hashTensor(hash, input);
    hashText(hash, 'outputs');
    for (const name of [...outputs].sort()) hashText(hash, name);
    const parameters = Object.entries(request.parameters ?? {})
      .filter(([key]) => !SCHEDULING_PARAMETERS.has(key))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    hashText(hash, 'parameters');
    for (const [key, value] of parameters) {
      hashText(hash, key);
      hashText(hash, parameterText(value));
    }
    return `${model}\u0000${version}\u0000${generation}\u0000${hash.digest('base64')}`;
  }

  /** Copies of the cached outputs, or undefined on a miss; a hit makes its entry the most recently used. */
  lookup(key: string): Tensor[] | undefined {
    const started = performance.now();
    this.lookups++;
    const entry = this.entries.get(key);
    let found: Tensor[] | undefined;
    if (entry) {
      this.hits++;
      this.entries.delete(key);
      this.entries.set(key, entry);
      found = entry.outputs.map(copyTensor);
    }
    this.lookupNs += (performance.now() - started) * 1e6;
    return found;
  }

  /**
   * Keeps a copy of `outputs` under `key`, dropping the least recently used
   * entries to make room. Returns false when the answer alone is larger
   * than the cache, which then keeps nothing. An entry already there (two
   * identical requests missed at once) stays as it is.
   */
  insert(key: string, model: string, outputs: readonly Tensor[]): boolean {
    const started = performance.now();
    try {
      if (this.entries.has(key)) return true;
      const bytes = keyBytes(key) + outputs.reduce((n, t) => n + tensorBytes(t), 0);
      if (bytes > this.capacityBytes) return false;
      for (const [oldest, entry] of this.entries) {
        if (this.bytes + bytes <= this.capacityBytes) break;
        this.drop(oldest, entry);
        this.evictions++;
      }
      this.entries.set(key, { model, outputs: outputs.map(copyTensor), bytes });
      this.bytes += bytes;
      this.inserts++;
      return true;
    } finally {
      this.insertNs += (performance.now() - started) * 1e6;
    }
  }

  /** Drops every entry of `model` (all versions); for unload and reload. Returns how many went. */
  evictModel(model: string): number {
    let dropped = 0;
    for (const [key, entry] of this.entries) {
      if (entry.model !== model) continue;
      this.drop(key, entry);
      dropped++;
    }
    this.invalidations += dropped;
    return dropped;
  }

  stats(): ResponseCacheStats {
    return {
      capacityBytes: this.capacityBytes,
      entries: this.entries.size,
      bytes: this.bytes,
      utilization: this.bytes / this.capacityBytes,
      lookups: this.lookups,
      hits: this.hits,
      misses: this.lookups - this.hits,
      inserts: this.inserts,
      evictions: this.evictions,
      invalidations: this.invalidations,
      lookupNs: Math.round(this.lookupNs),
      insertNs: Math.round(this.insertNs),
    };
  }

  private drop(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}

const encoder = new TextEncoder();

/** Length-prefixed, so that no two different sequences of fields hash alike. */
function hashBytes(hash: Hash, bytes: Uint8Array): void {
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(bytes.byteLength), true);
  hash.update(length);
  hash.update(bytes);
}

function hashText(hash: Hash, text: string): void {
  hashBytes(hash, encoder.encode(text));
}

function hashTensor(hash: Hash, tensor: Tensor): void {
  hashText(hash, tensor.name);
  hashText(hash, tensor.datatype);
  hashText(hash, tensor.shape.join(','));
  // BYTES data is length-prefixed, so its bytes alone fix the elements' boundaries.
  hashBytes(hash, tensor.raw);
}

/** A parameter's value with its type, so that 1, "1" and true differ. */
function parameterText(value: ParameterValue): string {
  return `${typeof value}:${String(value)}`;
}

function keyBytes(key: string): number {
  return Buffer.byteLength(key);
}

function tensorBytes(tensor: Tensor): number {
  const header = Buffer.byteLength(tensor.name) + tensor.datatype.length + 8 * tensor.shape.length;
  if (tensor.datatype !== 'BYTES') return header + tensor.raw.byteLength;
  return header + tensor.raw.byteLength + tensor.offsets.byteLength;
}

function copyTensor(tensor: Tensor): Tensor {
  if (tensor.datatype === 'BYTES') {
    return { name: tensor.name, datatype: 'BYTES', shape: [...tensor.shape], raw: ownedCopy(tensor.raw), offsets: tensor.offsets.slice() };
  }
  return { name: tensor.name, datatype: tensor.datatype, shape: [...tensor.shape], raw: ownedCopy(tensor.raw) };
}
