/**
 * One ONNX Runtime instance: a worker thread owning an InferenceSession.
 * The instance concatenates a list of requests into one session.run and
 * splits the outputs back, moving tensor memory to and from the worker by
 * transfer. Tensor memory comes from the server's BufferPool: a lone
 * request's pooled inputs are moved as they are, other inputs are copied
 * into pool buffers, and outputs whose shape is known before the run are
 * written by ONNX Runtime into pool buffers that the caller then owns.
 * A worker that dies is replaced from the same WorkerInit; the runs it held
 * fail, later ones wait for the new worker.
 *
 * A light model may also run inline, on the event loop, in a second session
 * of the same model (execution-thread.ts says when, engine/scheduling/inline-budget.ts how
 * long the event loop may be held). Both paths build the same wire run and
 * read the same answer, so pool buffers, batching and timing are handled alike.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { bytesTensorFromWire } from '../../engine/bytes-tensor.ts';
import type { BatchInputSpec, CompiledModelConfig, TensorSpec } from '../../engine/config/compiled-model-config.ts';
import type { SignatureTensor } from '../../engine/config/model-signature.ts';
import { asSwitchyardError, serverError, type SwitchyardError } from '../../engine/errors.ts';
import { silentLogger, type Logger } from '../../engine/logger.ts';
import { batchInputTensor, concatBatch, splitBatch } from '../../engine/scheduling/batch-tensors.ts';
import { checkedProduct, elementByteSize, type FixedTensor, type Tensor } from '../../engine/tensor.ts';
import type { BackendInstance, ComputeTiming, ExecuteOutcome, ExecuteRequest, ExecuteResult } from '../../engine/backend.ts';
import { sizeClass, type BufferPool, type BufferPoolStats } from '../../engine/memory/buffer-pool.ts';
import { systemClock, type Clock } from '../../engine/scheduling/clock.ts';
import { adoptOwned, isMovable, transferList } from '../../engine/memory/owned-buffer.ts';
import { fromOrtType, toOrtType, type OrtType } from './ort-types.ts';
import { ExecutionThreadPolicy, type ExecutionThreadSettings } from './execution-thread.ts';
import { eventLoopBudget, type InlineBudget } from '../../engine/scheduling/inline-budget.ts';
import { InlineSession } from './inline-session.ts';
import type { FromWorker, SignatureEntry, ToWorker, WireResult, WireRun, WireTensor, WorkerData, WorkerInit } from './worker-protocol.ts';

const WORKER_URL = new URL('./onnx-worker.mjs', import.meta.url);
/** A replacement worker that failed to open its session is tried again no sooner than this. */
const RESTART_INTERVAL_MS = 1000;
/** How long a worker given up on may take to finish its native run and exit by itself before it is terminated. */
const STOP_GRACE_MS = 10_000;
const NO_TIME: ComputeTiming = { inputNs: 0, inferNs: 0, outputNs: 0 };
/**
 * Auto mode opens an inline session only for a model file up to this size:
 * the session loads on the event loop, which a large file would hold for long.
 */
export const INLINE_MAX_MODEL_BYTES = 32 * 1024 * 1024;
/**
 * The most input tensor bytes an inline run may carry. A model runs inline
 * because its measured runs were light, but a variable-size input can make
 * one run far heavier than those: a larger run goes to the worker (and the
 * runs after it follow it there until it is answered, so they keep their
 * order), and the event loop is never held for a run that size.
 */
export const INLINE_MAX_INPUT_BYTES = 256 * 1024;
/** The instance's threading when its model's parameters say nothing; tests and tools that open instances directly get the worker only. */
const WORKER_ONLY: InstanceThreading = { mode: 'worker', inlineMaxRunNs: 0, modelBytes: 0 };

/** The execution_thread settings, with what decides whether an inline session may open. */
export interface InstanceThreading extends ExecutionThreadSettings {
  /** Size of the model file, bytes. */
  readonly modelBytes: number;
}

interface Pending {
  /** Gets the worker's answer, success or a failed run alike. */
  readonly resolve: (result: WireResult) => void;
  /** The run never got an answer: the worker died, or the instance is stopping. */
  readonly reject: (error: Error) => void;
}

export interface InstanceSignature {
  readonly inputs: readonly SignatureTensor[];
  readonly outputs: readonly SignatureTensor[];
}

/** An output whose shape is known before the run, apart from the batch dimension. */
interface PreallocatedOutput {
  readonly type: OrtType;
  /** Dims past the batch dimension (all of them when the model does not batch). */
  readonly dims: readonly number[];
  readonly elementBytes: number;
}

export class OnnxInstance implements BackendInstance {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Runs asked for in the current tick; they go to the worker in one message. */
  private outbox: WireRun[] = [];
  private outboxTransfer: ArrayBuffer[] = [];
  /** The worker serving runs; undefined while a replacement starts, after one failed, or once closed. */
  private worker: Worker | undefined;
  /** Set while a replacement worker opens its session; runs asked for meanwhile wait on it. */
  private starting: Promise<void> | undefined;
  /** Why the last replacement failed; a run asked for within RESTART_INTERVAL_MS of that start gets this. */
  private down: SwitchyardError | undefined;
  /** When the last replacement started, on `clock`. */
  private lastStart = 0;
  private closing: Promise<void> | undefined;
  private batching = false;
  /** allow_ragged_batch inputs, joined into one 1-D tensor when batching. */
  private ragged: ReadonlySet<string> = new Set();
  private batchInputs: readonly BatchInputSpec[] = [];
  private preallocatable: ReadonlyMap<string, PreallocatedOutput> = new Map();
  private readonly policy: ExecutionThreadPolicy;
  /** The session on the event-loop thread, once open. */
  private inline: InlineSession | undefined;
  /** Set while the inline session opens (auto mode opens it when runs turn out light). */
  private openingInline: Promise<void> | undefined;
  /** Why this instance never runs inline, when it cannot. */
  private readonly inlineRefusal: string | undefined;
  private readonly runs = { inline: 0, worker: 0 };

  private constructor(
    readonly name: string,
    private readonly modelName: string,
    private readonly init: WorkerInit,
    worker: Worker,
    readonly signature: InstanceSignature,
    private readonly pool: BufferPool,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly threading: InstanceThreading,
    private readonly budget: InlineBudget,
  ) {
    this.attach(worker);
    this.policy = new ExecutionThreadPolicy(threading);
    this.inlineRefusal = inlineRefusal(init, signature, threading);
  }

  /**
   * Starts the worker and waits until its session is open.
   * @param clock what the restart interval is read from. Default: the monotonic system clock.
   * @param threading where runs go (execution_thread). Default: always the worker.
   * @param budget how long inline runs may hold the event loop. Default: the process's one budget.
   */
  static async create(
    name: string, modelName: string, init: WorkerInit, pool: BufferPool, logger: Logger = silentLogger, clock: Clock = systemClock,
    threading: InstanceThreading = WORKER_ONLY, budget: InlineBudget = eventLoopBudget,
  ): Promise<OnnxInstance> {
    const { worker, ready } = await startWorker(init);
    const toSignature = (entries: readonly SignatureEntry[]): SignatureTensor[] =>
      entries.map((e) => ({ name: e.name, datatype: fromOrtType(e.type), modelType: e.type, shape: e.shape }));
    const signature = { inputs: toSignature(ready.inputs), outputs: toSignature(ready.outputs) };
    const instance = new OnnxInstance(name, modelName, init, worker, signature, pool, logger, clock, threading, budget);
    if (threading.mode === 'inline') {
      try {
        if (instance.inlineRefusal) throw new Error(`parameters 'execution_thread' is 'inline' but ${instance.inlineRefusal}; use auto or worker`);
        instance.inline = await InlineSession.create(init);
      } catch (err) {
        await instance.finalize();
        throw err;
      }
    }
    return instance;
  }

  /**
   * Takes what execute() needs from the compiled config, once it is compiled:
   * whether requests join along dim 0, the ragged inputs, the batch inputs,
   * the outputs ONNX Runtime can write into pool memory.
   */
  configure(config: CompiledModelConfig): void {
    this.batching = config.maxBatchSize > 0;
    this.ragged = new Set(config.inputs.filter((s) => s.allowRaggedBatch && this.batching).map((s) => s.name));
    this.batchInputs = config.batchInputs;
    // A ragged model's outputs need not follow the requests' batch sizes, so their shape is not known ahead.
    const raggedModel = this.ragged.size > 0 || this.batchInputs.length > 0;
    this.preallocatable = new Map(config.outputs.flatMap((spec) => {
      const plan = raggedModel ? undefined : preallocation(spec, this.batching, this.signature.outputs.find((o) => o.name === spec.name));
      return plan ? [[spec.name, plan] as const] : [];
    }));
  }

  /** The counters of the pool this instance uses, which other instances may share. */
  poolStats(): BufferPoolStats {
    return this.pool.stats();
  }

  /** Runs handed to the worker (or waiting for one) that have no answer yet. */
  /** The options its session was opened with (thread counts, provider), for diagnostics. */
  get sessionOptions(): WorkerInit['options'] {
    return this.init.options;
  }

  get runsInFlight(): number {
    return this.pending.size;
  }

  /** Where the next run goes, as far as the measured run times say (auto mode) or the config does. */
  get executionThread(): 'inline' | 'worker' {
    return this.policy.thread;
  }

  /** Runs executed inline and on the worker so far. */
  get runCounts(): { readonly inline: number; readonly worker: number } {
    return { ...this.runs };
  }

  async execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    if (requests.length === 0) return { results: [], timing: NO_TIME };
    if (requests.length > 1 && !this.batching) {
      throw new Error(`instance ${this.name} does not batch but was given ${requests.length} requests`);
    }
    const wanted = wantedOutputs(requests);
    const joinStart = performance.now();
    // Every buffer that goes to the worker with this run; all of them come from the pool or were owned by a request.
    const buffers: ArrayBuffer[] = [];
    let run: WireRun;
    try {
      const inputs = this.joinInputs(requests, buffers);
      const outputBuffers = requests.length === 1 ? this.preallocate(wanted, requests[0]!.batchSize, buffers) : [];
      // Id 0 inline; post() gives a worker run its own.
      run = { id: 0, inputs, outputs: wanted, outputBuffers };
    } catch (err) {
      for (const buffer of buffers) this.pool.release(buffer);
      return this.failAll(requests, err, { ...NO_TIME, inputNs: nsSince(joinStart) });
    }
    const joinNs = nsSince(joinStart);

    let answer: WireResult;
    try {
      const oversize = runInputBytes(run) > INLINE_MAX_INPUT_BYTES;
      let thread = oversize ? 'worker' : this.threadNow();
      while (thread === 'wait') {
        await this.budget.yield();
        thread = this.threadNow();
      }
      if (thread === 'inline') {
        const result = this.inline!.run(run);
        answer = result instanceof Promise ? await result : result;
        this.budget.charge(answer.timing.inputNs + answer.timing.inferNs + answer.timing.outputNs);
        this.runs.inline += 1;
        this.policy.record('inline', answer.timing.inferNs);
      } else {
        answer = await this.run(run, buffers);
        this.runs.worker += 1;
        // A run sent to the worker for its size says nothing about the model's usual runs.
        if (!oversize) this.policy.record('worker', answer.timing.inferNs);
      }
    } catch (err) {
      // No answer: buffers that reached the dead worker are gone (detached), the rest go back.
      for (const buffer of buffers) this.pool.release(buffer);
      return this.failAll(requests, err, { ...NO_TIME, inputNs: joinNs });
    }
    for (const buffer of answer.inputBuffers) this.pool.release(buffer);
    const timing = { inputNs: joinNs + answer.timing.inputNs, inferNs: answer.timing.inferNs, outputNs: answer.timing.outputNs };
    if ('error' in answer) {
      for (const buffer of answer.outputBuffers) this.pool.release(buffer);
      return this.failAll(requests, new Error(answer.error), timing);
    }

    const cutStart = performance.now();
    const results = requests.length === 1 ? this.loneResult(requests[0]!, answer.outputs) : this.splitResults(requests, answer.outputs);
    return { results, timing: { inputNs: timing.inputNs, inferNs: timing.inferNs, outputNs: timing.outputNs + nsSince(cutStart) } };
  }

  /** Every request fails with the same error. */
  private failAll(requests: readonly ExecuteRequest[], err: unknown, timing: ComputeTiming): ExecuteOutcome {
    const error = asSwitchyardError(err, this.modelName);
    return { results: requests.map(() => ({ ok: false, error })), timing };
  }

  /** An output the run answered with, as a tensor, its memory accounted for. */
  private received(output: WireTensor, lone: boolean): Tensor {
    // The worker moved its output buffers to us: nothing else views them.
    if (output.data instanceof ArrayBuffer) adoptOwned(output.data);
    if (!output.preallocated && output.type !== 'string') this.pool.noteForeign(output.byteLength);
    // Only a lone request's preallocated output is a whole pool buffer; a batch's are views of one buffer.
    return fromWire(output, lone && output.preallocated === true);
  }

  /** A lone request's answer: its outputs as the run gave them, nothing to cut. */
  private loneResult(request: ExecuteRequest, outputs: readonly WireTensor[]): ExecuteResult[] {
    const tensors = outputs.map((o) => this.received(o, true));
    const named = request.outputs.map((name) => tensors.find((t) => t.name === name)!);
    return [{ ok: true, outputs: named }];
  }

  /** A batch's answers: each output cut back into one piece per request. */
  private splitResults(requests: readonly ExecuteRequest[], outputs: readonly WireTensor[]): ExecuteResult[] {
    const batchSizes = requests.map((r) => r.batchSize);
    const split = new Map(outputs.map((o) => {
      const tensor = this.received(o, false);
      return [o.name, this.batching ? splitBatch(tensor, batchSizes) : [tensor]] as const;
    }));
    return requests.map((request, index): ExecuteResult => ({
      ok: true,
      outputs: request.outputs.map((name) => split.get(name)![index]!),
    }));
  }

  /**
   * One wire tensor per model input, then the generated batch inputs. A lone
   * request's pooled tensor is moved to the worker as it is; anything else is
   * copied into pool memory (a client's tensor may be a view into an HTTP
   * body and must not be moved away). Pooled tensors that were copied are
   * released here: the request handed them over.
   */
  private joinInputs(requests: readonly ExecuteRequest[], buffers: ArrayBuffer[]): WireTensor[] {
    const allocate = (byteLength: number): ArrayBuffer => {
      const buffer = this.pool.acquire(byteLength);
      buffers.push(buffer);
      return buffer;
    };
    // Pooled tensors the requests handed over; most requests (a client's) have none.
    let handedOver: Set<ArrayBuffer> | undefined;
    for (const request of requests) {
      for (const t of request.inputs) {
        if (t.datatype !== 'BYTES' && t.pooled && t.raw.buffer instanceof ArrayBuffer) (handedOver ??= new Set()).add(t.raw.buffer);
      }
    }
    try {
      const lone = requests.length === 1;
      const first = requests[0]!;
      const inputs: WireTensor[] = [];
      for (const tensor of first.inputs) {
        const flatten = this.ragged.has(tensor.name);
        if (lone && this.movable(tensor, buffers)) {
          const buffer = tensor.raw.buffer as ArrayBuffer;
          handedOver?.delete(buffer);
          buffers.push(buffer);
          inputs.push(toWire(flatten ? { ...tensor, shape: [checkedProduct(tensor.shape)] } : tensor, this.modelName, allocate));
          continue;
        }
        if (lone && !flatten && tensor.datatype !== 'BYTES' && tensor.shape.length > 0) {
          // A lone request's tensor copied into a pool buffer as it is: what concatBatch would make of one part.
          const data = allocate(tensor.raw.byteLength);
          new Uint8Array(data, 0, tensor.raw.byteLength).set(tensor.raw);
          this.pool.noteCopy(tensor.raw.byteLength);
          const type = toOrtType(tensor.datatype);
          if (!type) throw serverError('UNSUPPORTED_DATATYPE', { model: this.modelName, tensor: tensor.name, datatype: tensor.datatype });
          inputs.push({ name: tensor.name, type, dims: tensor.shape, data, byteLength: tensor.raw.byteLength });
          continue;
        }
        const parts = requests.map((r) => r.inputs.find((t) => t.name === tensor.name) ?? tensor);
        const joined = concatBatch(parts, { allocate, flatten });
        if (joined.datatype !== 'BYTES') this.pool.noteCopy(joined.raw.byteLength);
        inputs.push(toWire(joined, this.modelName, allocate));
      }
      for (const spec of this.batchInputs) {
        const counts = requests.map((r) => {
          const source = r.inputs.find((t) => t.name === spec.sourceInput);
          return source ? checkedProduct(source.shape) : 0;
        });
        for (const target of spec.targetNames) {
          inputs.push(toWire(batchInputTensor(target, spec.kind, spec.datatype, counts, { allocate }), this.modelName, allocate));
        }
      }
      return inputs;
    } finally {
      if (handedOver) for (const buffer of handedOver) this.pool.release(buffer);
    }
  }

  /**
   * Whether a tensor can go to the worker without a copy: it owns a whole
   * pool buffer (so it can come back to the pool) not already moving in this run.
   */
  private movable(tensor: Tensor, buffers: readonly ArrayBuffer[]): tensor is FixedTensor {
    if (!this.pool.enabled || tensor.datatype === 'BYTES' || !tensor.pooled || !isMovable(tensor.raw, true)) return false;
    const buffer = tensor.raw.buffer as ArrayBuffer;
    return buffer.byteLength === sizeClass(buffer.byteLength) && !buffers.includes(buffer);
  }

  /**
   * Pool buffers for the wanted outputs whose shape is known before the run.
   * Only for a lone request: its outputs are handed over whole and can come
   * back to the pool, while a batch's are cut into views of one buffer that never does.
   */
  private preallocate(outputs: readonly string[], batchSize: number, buffers: ArrayBuffer[]): WireTensor[] {
    const preallocated: WireTensor[] = [];
    if (!this.pool.enabled) return preallocated;
    for (const name of outputs) {
      const plan = this.preallocatable.get(name);
      if (!plan) continue;
      const dims = this.batching ? [batchSize, ...plan.dims] : plan.dims;
      const byteLength = checkedProduct(dims) * plan.elementBytes;
      if (byteLength === 0) continue;
      const data = this.pool.acquire(byteLength);
      buffers.push(data);
      preallocated.push({ name, type: plan.type, dims, data, byteLength });
    }
    return preallocated;
  }

  /**
   * Where a run asked for now goes. Inline only while no worker run is
   * outstanding, so an instance's runs keep their order across a switch; and
   * only while the event loop's budget has room: 'wait' means yield to the
   * event loop, then ask again. Synchronous, so a worker run is queued in the
   * same tick as execute() is called.
   */
  private threadNow(): 'inline' | 'worker' | 'wait' {
    if (this.policy.thread !== 'inline' || this.closing || this.pending.size > 0) return 'worker';
    if (!this.inline) {
      this.openInline();
      return 'worker';
    }
    return this.budget.hasRoom ? 'inline' : 'wait';
  }

  /** Auto mode found the model light: open its inline session, in the background (runs use the worker meanwhile). */
  private openInline(): void {
    if (this.openingInline) return;
    if (this.inlineRefusal) {
      this.policy.giveUpInline();
      return;
    }
    this.openingInline = InlineSession.create(this.init).then((session) => {
      if (this.closing) return session.close();
      this.inline = session;
      this.logger.info(`'${this.modelName}': instance ${this.name} runs inline (recent runs computed under ` +
        `${this.threading.inlineMaxRunNs / 1000} µs)`);
    }, (err: unknown) => {
      this.policy.giveUpInline();
      this.logger.warn(`'${this.modelName}': instance ${this.name} stays on its worker: the inline session did not open ` +
        `(${err instanceof Error ? err.message.trim() : String(err)})`);
    });
  }

  private run(run: Omit<WireRun, 'id'>, transfer: readonly ArrayBuffer[]): Promise<WireResult> {
    if (this.worker && !this.closing) return this.post(run, transfer);
    return this.serving().then(() => this.post(run, transfer));
  }

  /** Queues a run for the worker now serving. */
  private post(run: Omit<WireRun, 'id'>, transfer: readonly ArrayBuffer[]): Promise<WireResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.outbox.length === 0) queueMicrotask(() => this.flush());
      this.outbox.push({ ...run, id });
      this.outboxTransfer.push(...transfer);
    });
  }

  /**
   * Resolves once a worker serves runs: now, when the replacement being
   * started opens its session, or after starting one (at most once per
   * RESTART_INTERVAL_MS after a failed start). Rejects with why there is none.
   */
  private async serving(): Promise<void> {
    if (this.closing) throw serverError('SERVER_STOPPING', { model: this.modelName });
    if (this.worker) return;
    if (!this.starting) {
      if (this.down && this.clock.now() - this.lastStart < RESTART_INTERVAL_MS) throw this.down;
      this.restart();
    }
    await this.starting;
    if (this.closing) throw serverError('SERVER_STOPPING', { model: this.modelName });
    if (!this.worker) throw this.down ?? serverError('INFERENCE_FAILED', { model: this.modelName, detail: `instance ${this.name} has no worker` });
  }

  /** One postMessage for every run asked for in this tick: the thread hand-off is the costly part. */
  private flush(): void {
    if (this.outbox.length === 0 || !this.worker) return;
    const message: ToWorker = { kind: 'run', runs: this.outbox };
    const transfer = this.outboxTransfer;
    this.outbox = [];
    this.outboxTransfer = [];
    try {
      this.worker.postMessage(message, transferList(transfer));
    } catch (err) {
      // Nothing was sent (the message could not be cloned): those runs fail, the worker goes on.
      const error = asSwitchyardError(err, this.modelName);
      for (const run of message.runs) {
        this.pending.get(run.id)?.reject(error);
        this.pending.delete(run.id);
      }
    }
  }

  /** Listens to one worker; events from a worker that was replaced are ignored. */
  private attach(worker: Worker): void {
    this.worker = worker;
    let thrown: Error | undefined;
    worker.on('message', (message: FromWorker) => {
      if (this.worker === worker) this.onMessage(message);
    });
    // An uncaught error in the worker is followed by its exit; say what it was then.
    worker.on('error', (err) => { thrown = err; });
    worker.on('exit', (code) => this.lost(worker, `worker exited with code ${code}${thrown ? `: ${thrown.message}` : ''}`));
  }

  private onMessage(message: FromWorker): void {
    if (message.kind !== 'results') return;
    for (const result of message.results) {
      const pending = this.pending.get(result.id);
      if (!pending) continue;
      this.pending.delete(result.id);
      pending.resolve(result);
    }
  }

  /** The serving worker stopped without being asked to: fail what it held and start another. */
  private lost(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    if (this.closing) return;
    const error = serverError('INFERENCE_FAILED', {
      model: this.modelName, detail: `instance ${this.name} stopped unexpectedly (${why}); a new worker is starting`,
    });
    this.logger.error(`'${this.modelName}': instance ${this.name} stopped unexpectedly (${why}); ` +
      `${this.pending.size} run(s) failed; starting a new worker`);
    // Runs still in the outbox were never sent; their buffers are still here and go back to the pool in execute().
    this.outbox = [];
    this.outboxTransfer = [];
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    this.restart();
  }

  /** Starts a replacement worker from the same WorkerInit. */
  private restart(): void {
    this.lastStart = this.clock.now();
    this.down = undefined;
    this.starting = startWorker(this.init).then(({ worker }) => {
      if (this.closing) {
        void worker.terminate();
        return;
      }
      this.attach(worker);
      this.logger.info(`'${this.modelName}': instance ${this.name} has a new worker and serves again`);
    }, (err: unknown) => {
      const detail = err instanceof Error ? err.message.trim() : String(err);
      this.down = serverError('INFERENCE_FAILED', {
        model: this.modelName,
        detail: `instance ${this.name} has no running worker: a new one could not open the session (${detail}); ` +
          `the next request after ${RESTART_INTERVAL_MS / 1000} s tries again`,
      });
      this.logger.error(`'${this.modelName}': instance ${this.name} could not restart its worker: ${detail}`);
    }).finally(() => {
      this.starting = undefined;
    });
  }

  /**
   * Stops the worker thread at once, as a crash would: its runs fail and a
   * new worker starts. For fault tests, and for an operator freeing a stuck instance.
   */
  async terminateWorker(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.lost(worker, 'worker was terminated');
    await stopWorker(worker, STOP_GRACE_MS);
  }

  finalize(): Promise<void> {
    this.closing ??= (async () => {
      await this.openingInline;
      await this.inline?.close();
      this.inline = undefined;
      await this.starting;
      const worker = this.worker;
      if (worker) {
        const closed = new Promise<void>((resolve) => {
          worker.on('message', (m: FromWorker) => m.kind === 'closed' && resolve());
          worker.once('exit', () => resolve());
        });
        worker.postMessage({ kind: 'close' } satisfies ToWorker);
        const done = await Promise.race([closed.then(() => true), new Promise<false>((r) => setTimeout(r, 5000, false).unref())]);
        // Closed, the worker is idle and terminate() is safe; still running after 5 s, it is asked to stop after its run.
        if (done) await worker.terminate();
        else await stopWorker(worker, STOP_GRACE_MS);
      }
      this.worker = undefined;
      const stopped = serverError('SERVER_STOPPING', { model: this.modelName });
      for (const pending of this.pending.values()) pending.reject(stopped);
      this.pending.clear();
    })();
    return this.closing;
  }
}

/** Each worker's stop flag (WorkerData.stop). */
const stopFlags = new WeakMap<Worker, Int32Array>();

/**
 * Stops a worker without cutting a native run short: it exits by itself once
 * idle (at once if it is). Worker#terminate() is the fallback for a run that
 * has not returned within `graceMs`, which nothing else could stop either.
 */
async function stopWorker(worker: Worker, graceMs: number): Promise<void> {
  const exited = once(worker, 'exit').catch(() => {});
  const flag = stopFlags.get(worker);
  if (flag) Atomics.store(flag, 0, 1);
  worker.postMessage({ kind: 'stop' } satisfies ToWorker);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => { timer = setTimeout(resolve, graceMs, 'late'); });
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome === 'late') await worker.terminate();
}

/** Starts a worker thread and waits until its session is open, or for why it could not open. */
async function startWorker(init: WorkerInit): Promise<{ worker: Worker; ready: Extract<FromWorker, { kind: 'ready' }> }> {
  const stop = new SharedArrayBuffer(4);
  // The worker is plain JavaScript: it needs none of the parent's loader flags.
  const worker = new Worker(WORKER_URL, { workerData: { ...init, stop } satisfies WorkerData, execArgv: [] });
  stopFlags.set(worker, new Int32Array(stop));
  const ready = await new Promise<Extract<FromWorker, { kind: 'ready' }>>((resolve, reject) => {
    const onExit = (code: number): void => reject(new Error(`worker thread exited with code ${code} before the session opened`));
    worker.once('error', reject);
    worker.once('exit', onExit);
    worker.once('message', (message: FromWorker) => {
      worker.off('error', reject);
      worker.off('exit', onExit);
      if (message.kind === 'ready') resolve(message);
      else reject(new Error(message.kind === 'failed' ? message.message : `unexpected worker message '${message.kind}'`));
    });
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });
  return { worker, ready };
}

/** Bytes of tensor data a run's inputs carry. */
function runInputBytes(run: WireRun): number {
  let bytes = 0;
  for (const input of run.inputs) bytes += input.byteLength;
  return bytes;
}

const nsSince = (start: number): number => Math.round((performance.now() - start) * 1e6);

/** The outputs a run computes: every one its requests want, each once (a lone request's own list when it names each once). */
function wantedOutputs(requests: readonly ExecuteRequest[]): readonly string[] {
  if (requests.length === 1) {
    const outputs = requests[0]!.outputs;
    let distinct = true;
    for (let i = 1; i < outputs.length && distinct; i++) distinct = outputs.indexOf(outputs[i]!) === i;
    if (distinct) return outputs;
  }
  return [...new Set(requests.flatMap((r) => r.outputs))];
}

function toWire(tensor: Tensor, model: string, allocate: (byteLength: number) => ArrayBuffer): WireTensor {
  const type = toOrtType(tensor.datatype);
  if (!type) throw serverError('UNSUPPORTED_DATATYPE', { model, tensor: tensor.name, datatype: tensor.datatype });
  if (tensor.datatype === 'BYTES') {
    // The worker turns the wire form into the strings the binding takes: no per-element work here.
    const data = allocate(tensor.raw.byteLength);
    new Uint8Array(data, 0, tensor.raw.byteLength).set(tensor.raw);
    return { name: tensor.name, type, dims: tensor.shape, data, byteLength: tensor.raw.byteLength };
  }
  // Always a pool buffer starting at offset 0: a copy joinInputs made, or a pooled tensor it moved.
  return { name: tensor.name, type, dims: tensor.shape, data: tensor.raw.buffer as ArrayBuffer, byteLength: tensor.raw.byteLength };
}

function fromWire(wire: WireTensor, pooled: boolean): Tensor {
  const datatype = fromOrtType(wire.type)!;
  if (datatype === 'BYTES') {
    return bytesTensorFromWire(wire.name, wire.dims, new Uint8Array(wire.data, 0, wire.byteLength));
  }
  const raw = new Uint8Array(wire.data as ArrayBuffer, 0, wire.byteLength);
  return pooled ? { name: wire.name, datatype, shape: wire.dims, raw, pooled } : { name: wire.name, datatype, shape: wire.dims, raw };
}

/**
 * How an output can be preallocated, or undefined when its shape is not
 * known before the run. ONNX Runtime refuses a buffer whose shape differs
 * from what it computes, so the config must fix every dim past the batch,
 * without a reshape, and the model must agree on the rank and every dim it fixes.
 */
function preallocation(spec: TensorSpec, batching: boolean, model: SignatureTensor | undefined): PreallocatedOutput | undefined {
  const type = toOrtType(spec.datatype);
  const elementBytes = elementByteSize(spec.datatype);
  if (!model || model.datatype !== spec.datatype || !type || elementBytes === undefined) return undefined;
  if (spec.dims.length !== spec.modelDims.length || spec.dims.some((d, i) => d < 0 || d !== spec.modelDims[i])) return undefined;
  // A model with a fixed batch dim would refuse any other batch size.
  if (batching && (model.shape[0] ?? 0) >= 0) return undefined;
  const modelDims = batching ? model.shape.slice(1) : model.shape;
  if (modelDims.length !== spec.dims.length || modelDims.some((d, i) => d >= 0 && d !== spec.dims[i])) return undefined;
  return { type, dims: spec.dims, elementBytes };
}

/** Why an instance cannot run inline, or undefined when it can. */
function inlineRefusal(init: WorkerInit, signature: InstanceSignature, threading: InstanceThreading): string | undefined {
  if (init.options.executionProvider !== 'cpu') return 'its instance runs on the CUDA execution provider';
  // The worker thread deletes Float16Array (see onnx-worker.mjs); the event loop cannot, so float16 stays there.
  const float16 = [...signature.inputs, ...signature.outputs].some((t) => t.modelType === 'float16');
  if (float16 && 'Float16Array' in globalThis) return 'the model has float16 tensors, which this Node passes as Float16Array that the binding cannot read';
  if (threading.mode === 'auto' && threading.modelBytes > INLINE_MAX_MODEL_BYTES) {
    return `the model file is larger than ${INLINE_MAX_MODEL_BYTES / 1024 / 1024} MiB and would load on the event loop`;
  }
  return undefined;
}
