/**
 * One ONNX Runtime instance: a worker thread owning an InferenceSession.
 * The instance concatenates a list of requests into one session.run and
 * splits the outputs back, moving tensor memory to and from the worker by
 * transfer.
 */
import { Worker } from 'node:worker_threads';
import type { SignatureTensor } from '../../engine/config/model-signature.ts';
import { asSwitchyardError, serverError } from '../../engine/errors.ts';
import { concatBatch, splitBatch } from '../../engine/scheduling/batch-tensors.ts';
import type { Tensor } from '../../engine/tensor.ts';
import type { BackendInstance, ExecuteRequest, ExecuteResult } from '../backend.ts';
import { fromOrtType, toOrtType } from './ort-types.ts';
import type { FromWorker, SignatureEntry, ToWorker, WireRun, WireTensor, WorkerInit } from './worker-protocol.ts';

const WORKER_URL = new URL('./onnx-worker.mjs', import.meta.url);
const encoder = new TextEncoder();
const decoder = new TextDecoder();


interface Pending {
  readonly resolve: (outputs: readonly WireTensor[]) => void;
  readonly reject: (error: Error) => void;
}

export interface InstanceSignature {
  readonly inputs: readonly SignatureTensor[];
  readonly outputs: readonly SignatureTensor[];
}

export class OnnxInstance implements BackendInstance {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Runs asked for in the current tick; they go to the worker in one message. */
  private outbox: WireRun[] = [];
  private outboxTransfer: ArrayBuffer[] = [];
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    private readonly modelName: string,
    private readonly worker: Worker,
    readonly signature: InstanceSignature,
    private batching: boolean,
  ) {
    worker.on('message', (message: FromWorker) => this.onMessage(message));
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`worker thread exited with code ${code}`)));
  }

  /** Starts the worker and waits until its session is open. */
  static async create(name: string, modelName: string, init: WorkerInit): Promise<OnnxInstance> {
    // The worker is plain JavaScript: it needs none of the parent's loader flags.
    const worker = new Worker(WORKER_URL, { workerData: init, execArgv: [] });
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
    const toSignature = (entries: readonly SignatureEntry[]): SignatureTensor[] =>
      entries.map((e) => ({ name: e.name, datatype: fromOrtType(e.type), modelType: e.type, shape: e.shape }));
    return new OnnxInstance(name, modelName, worker, { inputs: toSignature(ready.inputs), outputs: toSignature(ready.outputs) }, false);
  }

  /** Whether execute() joins requests along dim 0; set once the config is compiled. */
  setBatching(batching: boolean): void {
    this.batching = batching;
  }

  async execute(requests: readonly ExecuteRequest[]): Promise<ExecuteResult[]> {
    if (requests.length === 0) return [];
    if (requests.length > 1 && !this.batching) {
      throw new Error(`instance ${this.name} does not batch but was given ${requests.length} requests`);
    }
    const wanted = [...new Set(requests.flatMap((r) => r.outputs))];
    const transfer: ArrayBuffer[] = [];
    const inputs = requests[0]!.inputs.map((first) => {
      const joined = concatBatch(requests.map((r) => r.inputs.find((t) => t.name === first.name) ?? first));
      return toWire(joined, transfer, this.modelName);
    });
    let outputs: readonly WireTensor[];
    try {
      outputs = await this.run(inputs, wanted, transfer);
    } catch (err) {
      const error = asSwitchyardError(err, this.modelName);
      return requests.map(() => ({ ok: false, error }));
    }
    const batchSizes = requests.map((r) => r.batchSize);
    const split = new Map(outputs.map((o) => {
      const tensor = fromWire(o);
      return [o.name, this.batching ? splitBatch(tensor, batchSizes) : [tensor]] as const;
    }));
    return requests.map((request, index) => ({
      ok: true,
      outputs: request.outputs.map((name) => split.get(name)![index]!),
    }));
  }

  private run(inputs: readonly WireTensor[], outputs: readonly string[], transfer: ArrayBuffer[]): Promise<readonly WireTensor[]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.outbox.length === 0) queueMicrotask(() => this.flush());
      this.outbox.push({ id, inputs, outputs });
      this.outboxTransfer.push(...transfer);
    });
  }

  /** One postMessage for every run asked for in this tick: the thread hand-off is the costly part. */
  private flush(): void {
    const message: ToWorker = { kind: 'run', runs: this.outbox };
    const transfer = this.outboxTransfer;
    this.outbox = [];
    this.outboxTransfer = [];
    this.worker.postMessage(message, transfer);
  }

  private onMessage(message: FromWorker): void {
    if (message.kind !== 'results') return;
    for (const result of message.results) {
      const pending = this.pending.get(result.id);
      if (!pending) continue;
      this.pending.delete(result.id);
      if ('outputs' in result) pending.resolve(result.outputs);
      else pending.reject(new Error(result.error));
    }
  }

  private fail(err: Error): void {
    if (this.closing) return;
    this.failure = err;
    for (const pending of this.pending.values()) pending.reject(err);
    this.pending.clear();
  }

  finalize(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => {
        this.worker.on('message', (m: FromWorker) => m.kind === 'closed' && resolve());
        this.worker.once('exit', () => resolve());
      });
      this.worker.postMessage({ kind: 'close' } satisfies ToWorker);
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
      await this.worker.terminate();
      const stopped = serverError('SERVER_STOPPING', { model: this.modelName });
      for (const pending of this.pending.values()) pending.reject(stopped);
      this.pending.clear();
    })();
    return this.closing;
  }
}

function toWire(tensor: Tensor, transfer: ArrayBuffer[], model: string): WireTensor {
  const type = toOrtType(tensor.datatype);
  if (!type) throw serverError('UNSUPPORTED_DATATYPE', { model, tensor: tensor.name, datatype: tensor.datatype });
  if (tensor.datatype === 'BYTES') {
    return { name: tensor.name, type, dims: tensor.shape, data: tensor.elements.map((e) => decoder.decode(e)) };
  }
  const buffer = tensor.raw.buffer as ArrayBuffer;
  transfer.push(buffer);
  return { name: tensor.name, type, dims: tensor.shape, data: buffer };
}

function fromWire(wire: WireTensor): Tensor {
  const datatype = fromOrtType(wire.type)!;
  if (datatype === 'BYTES') {
    return { name: wire.name, datatype, shape: wire.dims, elements: (wire.data as readonly string[]).map((s) => encoder.encode(s)) };
  }
  return { name: wire.name, datatype, shape: wire.dims, raw: new Uint8Array(wire.data as ArrayBuffer) };
}
