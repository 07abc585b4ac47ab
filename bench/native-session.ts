/**
 * The cheapest way to run a model from Node that the floors of the benches
 * use: onnxruntime-node's native binding called directly on the calling
 * thread (dist/binding.js; no promise, no setImmediate), the same binding
 * Switchyard's inline sessions call. One intra-op thread, as the served
 * models have.
 */
import { createRequire } from 'node:module';

type Ort = typeof import('onnxruntime-node');
interface NativeSession {
  loadModel(path: string, options: object): void;
  run(feeds: object, fetches: object, options: object): unknown;
}

export interface FloorSession {
  /** onnxruntime-node's Tensor class, for feeds and preallocated fetches. */
  readonly Tensor: Ort['Tensor'];
  /** One synchronous run; outputs land in the fetches' tensors. */
  run(feeds: object, fetches: object): void;
}

export function openFloorSession(modelPath: string): FloorSession {
  const require = createRequire(import.meta.url);
  const ort = require('onnxruntime-node') as Ort;
  const binding = require('onnxruntime-node/dist/binding.js') as { initOrt(): void; binding: { InferenceSession: new () => NativeSession } };
  binding.initOrt();
  const session = new binding.binding.InferenceSession();
  session.loadModel(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  return { Tensor: ort.Tensor, run: (feeds, fetches) => { session.run(feeds, fetches, {}); } };
}
