/**
 * An ONNX Runtime session on the event-loop thread, for an instance that runs
 * light models inline. It opens the same model file with the same session
 * options as the instance's worker and runs the same wire form (ort-run.mjs),
 * so inputs, outputs and pool buffers are handled alike on both paths.
 *
 * Why not the public InferenceSession: onnxruntime-node's session.run wraps
 * the native run, which is synchronous, in a promise resolved from a
 * setImmediate (dist/backend.js in 1.30). Inline, that costs a trip round
 * the event loop and about 5-7 µs of CPU per run (21 µs against 14-18 µs for
 * add_sub, measured here), a third of the run itself. The native
 * binding's InferenceSession (dist/binding.js: initOrt, then
 * binding.InferenceSession with loadModel and run) is what that wrapper
 * calls, so it is used directly when it has that shape. Any other shape (a
 * later onnxruntime-node), or a load through it that fails, falls back to
 * the public API, which gives the same results one hop later.
 */
import { createRequire } from 'node:module';
import type { WireResult, WireRun, WorkerInit } from './worker-protocol.ts';
import { ortSessionOptions, runWire, type SessionRun } from './ort-run.mjs';

type OrtModule = typeof import('onnxruntime-node');
type OrtTensorClass = OrtModule['Tensor'];

interface NativeSession {
  loadModel(path: string, options: object): void;
  run(feeds: object, fetches: object, options: object): ReturnType<SessionRun>;
  dispose(): void;
}

interface BindingModule {
  readonly initOrt: () => void;
  readonly binding: { readonly InferenceSession: new () => NativeSession };
}

const require = createRequire(import.meta.url);

export class InlineSession {
  private constructor(
    private readonly tensor: OrtTensorClass,
    private readonly runSession: SessionRun,
    private readonly dispose: () => Promise<void>,
    /** Whether runs call the native binding directly (synchronously), not the public API. */
    readonly direct: boolean,
  ) {}

  /** Opens the model on this thread. Loading blocks the event loop for as long as the model takes to load. */
  static async create(init: WorkerInit): Promise<InlineSession> {
    const ort = require('onnxruntime-node') as OrtModule;
    const options = ortSessionOptions(init.options);
    const native = openNative(init.modelPath, options);
    if (native) {
      const run: SessionRun = (feeds, fetches) => native.run(feeds, fetches, {});
      return new InlineSession(ort.Tensor, run, async () => native.dispose(), true);
    }
    const session = await ort.InferenceSession.create(init.modelPath, options);
    return new InlineSession(ort.Tensor, (feeds, fetches) => session.run(feeds, fetches), () => session.release(), false);
  }

  /** One run, synchronously when direct; its buffers stay on this thread. */
  run(wire: WireRun): WireResult | Promise<WireResult> {
    return runWire(this.tensor, this.runSession, wire, []);
  }

  close(): Promise<void> {
    return this.dispose();
  }
}

/** The binding's own session, or undefined when the binding does not have the shape this code knows. */
function openNative(modelPath: string, options: object): NativeSession | undefined {
  let loaded: Partial<BindingModule> | undefined;
  try {
    loaded = require('onnxruntime-node/dist/binding.js') as Partial<BindingModule>;
  } catch {
    return undefined;
  }
  if (typeof loaded?.initOrt !== 'function' || typeof loaded.binding?.InferenceSession !== 'function') return undefined;
  try {
    loaded.initOrt();
    const session = new loaded.binding.InferenceSession();
    if (typeof session.loadModel !== 'function' || typeof session.run !== 'function' || typeof session.dispose !== 'function') return undefined;
    session.loadModel(modelPath, options);
    return session;
  } catch {
    return undefined;
  }
}
