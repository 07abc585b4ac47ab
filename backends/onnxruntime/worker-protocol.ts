/**
 * Messages between an ONNX instance and its worker thread. Tensor data
 * travels as transferred ArrayBuffers; BYTES in the length-prefixed wire
 * form, turned into the strings ONNX Runtime takes (and back) in the worker,
 * so that no per-element work happens on the event loop. Input buffers and preallocated
 * output buffers belong to the server's pool: inputs travel back with the
 * run's result, outputs as the result's data (or beside the error).
 */
import type { ComputeTiming } from '../../engine/backend.ts';
import type { OrtType } from './ort-types.ts';

export interface WireTensor {
  readonly name: string;
  readonly type: OrtType;
  readonly dims: readonly number[];
  /**
   * A buffer whose first byteLength bytes are the tensor (a pooled input
   * buffer is usually larger): element bytes, or for BYTES ('string') each
   * element's 4-byte little-endian length and then its UTF-8 bytes.
   */
  readonly data: ArrayBuffer;
  /** Bytes of data the tensor uses. */
  readonly byteLength: number;
  /** An output ONNX Runtime wrote into a buffer the instance sent (from the pool), not one it allocated. */
  readonly preallocated?: boolean;
}

export interface WorkerSessionOptions {
  readonly intraOpNumThreads: number;
  readonly interOpNumThreads: number;
  readonly executionProvider: 'cpu' | 'cuda';
  readonly deviceId: number;
  readonly graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Whether the session's idle threads spin for work (ONNX Runtime's
   * default) or sleep: parameters.allow_spinning. Spinning saves a wake-up
   * per operator, but between runs it burns cores that other models,
   * scripts and the event loop need.
   */
  readonly allowSpinning?: boolean;
}

export interface WorkerInit {
  readonly modelPath: string;
  readonly options: WorkerSessionOptions;
}

export interface SignatureEntry {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly number[];
}

/** One session.run. Several travel in one message when they were queued in the same tick. */
export interface WireRun {
  readonly id: number;
  readonly inputs: readonly WireTensor[];
  readonly outputs: readonly string[];
  /**
   * Outputs whose shape was known before the run: ONNX Runtime writes them
   * into these buffers (transferred) instead of allocating. Each names one of `outputs`.
   */
  readonly outputBuffers?: readonly WireTensor[];
}

/**
 * One run's answer. Either way it carries the run's input buffers back to
 * the pool, and the worker's share of the timing: building the ort.Tensors,
 * session.run, and reading the outputs into transferable buffers. A failed
 * run also returns its preallocated output buffers; a good one returns them as outputs.
 */
export type WireResult =
  | { readonly id: number; readonly outputs: readonly WireTensor[]; readonly inputBuffers: readonly ArrayBuffer[]; readonly timing: ComputeTiming }
  | {
    readonly id: number; readonly error: string; readonly inputBuffers: readonly ArrayBuffer[];
    readonly outputBuffers: readonly ArrayBuffer[]; readonly timing: ComputeTiming;
  };

export type ToWorker =
  | { readonly kind: 'run'; readonly runs: readonly WireRun[] }
  | { readonly kind: 'close' }
  /** Exit now if idle, else as soon as the native run under way returns (see WorkerData.stop). */
  | { readonly kind: 'stop' };

/**
 * What a worker thread starts with: its session's init, and a stop flag the
 * instance sets (Atomics) when it gives the worker up. A worker stopped with
 * Worker#terminate() while ONNX Runtime's native run is under way can abort
 * the whole process when the run returns into a dying environment (node-addon-api
 * throws where nothing can catch); one that sees the flag exits by itself,
 * from JavaScript, between runs.
 */
export interface WorkerData extends WorkerInit {
  readonly stop: SharedArrayBuffer;
}

export type FromWorker =
  | { readonly kind: 'ready'; readonly inputs: readonly SignatureEntry[]; readonly outputs: readonly SignatureEntry[] }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'results'; readonly results: readonly WireResult[] }
  | { readonly kind: 'closed' };
