/** Messages between an ONNX instance and its worker thread. Fixed-size tensor data travels as transferred ArrayBuffers. */
import type { OrtType } from './ort-types.ts';

export interface WireTensor {
  readonly name: string;
  readonly type: OrtType;
  readonly dims: readonly number[];
  /** Whole buffer holding exactly the tensor's bytes (fixed types), or the strings (BYTES). */
  readonly data: ArrayBuffer | readonly string[];
}

export interface WorkerSessionOptions {
  readonly intraOpNumThreads: number;
  readonly interOpNumThreads: number;
  readonly executionProvider: 'cpu' | 'cuda';
  readonly deviceId: number;
  readonly graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
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
}

export type WireResult =
  | { readonly id: number; readonly outputs: readonly WireTensor[] }
  | { readonly id: number; readonly error: string };

export type ToWorker =
  | { readonly kind: 'run'; readonly runs: readonly WireRun[] }
  | { readonly kind: 'close' };

export type FromWorker =
  | { readonly kind: 'ready'; readonly inputs: readonly SignatureEntry[]; readonly outputs: readonly SignatureEntry[] }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'results'; readonly results: readonly WireResult[] }
  | { readonly kind: 'closed' };
