/**
 * In-memory backends for tests, in the spirit of MLServer's fake models:
 * scheduler, batcher, sequence, ensemble and codec tests run the real engine
 * and frontends on them, with no ONNX Runtime worker and no isolate.
 *
 * - EchoBackend (`backend: "test_echo"`): each output is an input, renamed.
 * - SlowBackend (`test_slow`): echoes, but every execution waits at a gate
 *   the test opens; it shows how many executions wait there.
 * - FailingBackend (`test_failing`): execute rejects, or answers errors, for
 *   every request or only for the flagged ones.
 * - CountingBackend (`test_counting`): echoes; what every backend here
 *   records (batch sizes, request tags, concurrency) is what it is for.
 *
 * A model's signature is its config's own inputs and outputs (each needs
 * data_type and dims; with max_batch_size > 0 a batch dimension is put in
 * front), so a version folder holds no file. An output takes the input at
 * its position in the config, or the one the config parameter
 * `echo_<OUTPUT>` names; with the parameter `echo_omit_missing: "true"` an
 * output whose input the request left out is left out of the answer (a
 * member that does not produce an output it declares), else the request
 * fails. Instances run their executions one after another,
 * as the backend contract asks; batched requests are joined into one tensor
 * per input and cut back apart (engine/scheduling/batch-tensors.ts), as the
 * ONNX instance does, so every answer of one batch views one buffer.
 */
import type {
  Backend, BackendInstance, BackendModel, ExecuteOutcome, ExecuteRequest, ExecuteResult, ModelLoadContext,
} from '../../engine/backend.ts';
import { BackendRegistry } from '../../engine/backend-registry.ts';
import { bytesStrings } from '../../engine/bytes-tensor.ts';
import type { CompiledModelConfig, InstanceGroupSpec } from '../../engine/config/compiled-model-config.ts';
import { signatureFromConfig } from '../../engine/config/model-signature.ts';
import { serverError } from '../../engine/errors.ts';
import type { ParameterValue } from '../../engine/inference-request.ts';
import { concatBatch, splitBatch } from '../../engine/scheduling/batch-tensors.ts';
import { typedView, type Tensor } from '../../engine/tensor.ts';
import { defaultBackends } from '../../backends/default-backends.ts';

/** What a test waits for at most, unless it says otherwise. */
const DEFAULT_WAIT_MS = 5000;

/** One execute() call, as the backend saw it. */
export interface ExecutionRecord {
  readonly model: string;
  readonly version: number;
  readonly instance: string;
  /** Each request's size along the batch dimension, in batch order. */
  readonly batchSizes: readonly number[];
  /** Each request's first input's first element (a number, or a BYTES element as text), to trace answers to requests. */
  readonly tags: readonly (number | string | undefined)[];
  /** Each request's parameters. */
  readonly parameters: readonly (Readonly<Record<string, ParameterValue>> | undefined)[];
  /** Executions of this backend running when this one began, itself included. */
  readonly concurrency: number;
}



function tagOf(request: ExecuteRequest): number | string | undefined {
  const first = request.inputs[0];
  if (!first) return undefined;
  if (first.datatype === 'BYTES') return bytesStrings(first)[0];
  const value = typedView(first.datatype, first.raw)[0];
  return value === undefined ? undefined : Number(value);
}

/** A copy of `tensor` in fresh memory, its shape kept. */
function copied(tensor: Tensor): Tensor {
  return { ...concatBatch([tensor]), shape: tensor.shape };
}

/**
 * What every test backend shares: loading from the config alone, one
 * execution at a time per instance, echoing, and the record of executions.
 */
abstract class InMemoryBackend implements Backend {
  readonly defaultModelFilename = '';
  readonly platforms: readonly string[];
  /** Every execution so far, in the order they began. */
  readonly executions: ExecutionRecord[] = [];
  /** Executions handed to an instance and not yet answered (waiting behind another, at a gate, or running). */
  inFlight = 0;
  /** Executions begun and not yet answered. */
  running = 0;
  /** The most executions of this backend that ever ran at once. */
  peakConcurrency = 0;
  private readonly watchers = new Set<() => void>();

  constructor(readonly name: string) {
    this.platforms = [`${name}_platform`];
  }

  async loadModel(context: ModelLoadContext): Promise<BackendModel> {
    const signature = signatureFromConfig(context.config, this.name, `${context.modelName}/${context.version} (${this.name}: no model file)`);
    const sources = new Map(signature.outputs.map((output, i) => {
      const named = context.settings.parameters.get(`echo_${output.name}`);
      const source = named ?? signature.inputs[i]?.name;
      if (source === undefined || !signature.inputs.some((input) => input.name === source)) {
        throw new Error(`output '${output.name}' has no input to echo: name one with the parameter 'echo_${output.name}'`);
      }
      return [output.name, source] as const;
    }));
    const model: LoadedModel = {
      backend: this, context, sources, batching: Number(context.config?.['max_batch_size'] ?? 0) > 0,
      omitMissing: context.settings.parameters.get('echo_omit_missing') === 'true',
    };
    return {
      signature,
      createInstance: async (_config: CompiledModelConfig, group: InstanceGroupSpec, index: number): Promise<BackendInstance> =>
        new InMemoryInstance(`${group.name}_${index}`, model),
      finalize: async () => {},
    };
  }

  /** Records the execution, then answers it (hook for each backend). */
  async begin(model: LoadedModel, instance: string, requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    this.running++;
    this.peakConcurrency = Math.max(this.peakConcurrency, this.running);
    this.executions.push({
      model: model.context.modelName, version: model.context.version, instance,
      batchSizes: requests.map((r) => r.batchSize), tags: requests.map(tagOf), parameters: requests.map((r) => r.parameters),
      concurrency: this.running,
    });
    this.changed();
    const started = performance.now();
    try {
      const results = await this.answer(model, requests);
      return { results, timing: { inputNs: 0, inferNs: Math.round((performance.now() - started) * 1e6), outputNs: 0 } };
    } finally {
      this.running--;
      this.changed();
    }
  }

  /** Answers each request of one execution; the echo unless a backend says otherwise. */
  protected answer(model: LoadedModel, requests: readonly ExecuteRequest[]): Promise<readonly ExecuteResult[]> {
    return Promise.resolve(echo(model, requests));
  }

  /** Resolves once `condition` holds (checked now and after every change); rejects after `ms` naming `what` and showing the counts. */
  until(condition: () => boolean, what: string, ms = DEFAULT_WAIT_MS): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!condition()) return;
        clearTimeout(timer);
        this.watchers.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.watchers.delete(check);
        reject(new Error(`${this.name}: timed out after ${ms} ms waiting for ${what}; ${this.describe()}`));
      }, ms);
      this.watchers.add(check);
    });
  }

  /** The counts, for failure messages. */
  describe(): string {
    return `in flight ${this.inFlight}, running ${this.running}, executions so far ${this.executions.length}`;
  }

  changed(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

interface LoadedModel {
  readonly backend: InMemoryBackend;
  readonly context: ModelLoadContext;
  /** Output name -> the input it echoes. */
  readonly sources: ReadonlyMap<string, string>;
  readonly batching: boolean;
  /** Leave out an output whose input is absent, instead of failing the request. */
  readonly omitMissing: boolean;
}

/** Outputs are inputs renamed; a batch is joined per input and cut back apart. */
function echo(model: LoadedModel, requests: readonly ExecuteRequest[]): ExecuteResult[] {
  const batchSizes = requests.map((r) => r.batchSize);
  const cut = new Map<string, Tensor[]>();
  for (const output of new Set(requests.flatMap((r) => r.outputs))) {
    const source = model.sources.get(output)!;
    const parts = requests.map((r) => r.inputs.find((t) => t.name === source));
    if (parts.some((p) => p === undefined)) continue;
    const pieces = requests.length === 1 ? [copied(parts[0]!)] : splitBatch(concatBatch(parts as Tensor[]), batchSizes);
    cut.set(output, pieces.map((piece) => ({ ...piece, name: output })));
  }
  return requests.map((request, index): ExecuteResult => {
    const missing = request.outputs.find((name) => !cut.has(name));
    if (missing !== undefined && model.omitMissing) {
      return { ok: true, outputs: request.outputs.filter((name) => cut.has(name)).map((name) => cut.get(name)![index]!) };
    }
    if (missing !== undefined) {
      const detail = `${model.backend.name}: no input '${model.sources.get(missing)}' to echo as '${missing}'`;
      return { ok: false, error: serverError('INFERENCE_FAILED', { model: model.context.modelName, detail }) };
    }
    return { ok: true, outputs: request.outputs.map((name) => cut.get(name)![index]!) };
  });
}

class InMemoryInstance implements BackendInstance {
  /** The end of the last execution handed over: the next one starts after it. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(readonly name: string, private readonly model: LoadedModel) {}

  execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    const { backend, batching } = this.model;
    if (requests.length > 1 && !batching) {
      return Promise.reject(new Error(`instance ${this.name} does not batch but was given ${requests.length} requests`));
    }
    backend.inFlight++;
    backend.changed();
    const run = this.tail.then(() => backend.begin(this.model, this.name, requests)).finally(() => {
      backend.inFlight--;
      backend.changed();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async finalize(): Promise<void> {
    await this.tail;
  }
}

/** `backend: "test_echo"`. */
export class EchoBackend extends InMemoryBackend {
  constructor() {
    super('test_echo');
  }
}

/** `backend: "test_counting"`: the echo, there to have its records read. */
export class CountingBackend extends InMemoryBackend {
  constructor() {
    super('test_counting');
  }

  /** Every request size the backend saw, batch by batch. */
  get batchSizes(): number[][] {
    return this.executions.map((e) => [...e.batchSizes]);
  }
}

/**
 * `backend: "test_slow"`: every execution waits at a closed gate until the
 * test lets it through (release) or opens the gate (open); then it echoes.
 */
export class SlowBackend extends InMemoryBackend {
  /** Executions at the gate. */
  waiting = 0;
  private permits = 0;
  private opened = false;
  private readonly queue: (() => void)[] = [];

  constructor() {
    super('test_slow');
  }

  /** Lets the next `count` executions through (those waiting first, then the next ones to arrive). */
  release(count = 1): void {
    this.permits += count;
    this.pass();
  }

  /** Lets every execution through, now and from now on. */
  open(): void {
    this.opened = true;
    this.pass();
  }

  /** Closes the gate again: executions from now on wait. */
  close(): void {
    this.opened = false;
  }

  /** Resolves once `count` executions wait at the gate. */
  untilWaiting(count: number, ms = DEFAULT_WAIT_MS): Promise<void> {
    return this.until(() => this.waiting >= count, `${count} execution(s) at the gate`, ms);
  }

  override describe(): string {
    return `${super.describe()}, at the gate ${this.waiting}`;
  }

  protected override async answer(model: LoadedModel, requests: readonly ExecuteRequest[]): Promise<readonly ExecuteResult[]> {
    if (!this.opened && this.permits === 0) {
      this.waiting++;
      this.changed();
      await new Promise<void>((resolve) => this.queue.push(resolve));
      this.waiting--;
    } else if (!this.opened) {
      this.permits--;
    }
    return echo(model, requests);
  }

  private pass(): void {
    while (this.queue.length > 0 && (this.opened || this.permits > 0)) {
      if (!this.opened) this.permits--;
      this.queue.shift()!();
    }
  }
}

/** How a FailingBackend model fails; the config parameter `fail_mode` overrides the backend's. */
export type FailMode =
  /** execute() rejects: a broken backend, which the engine must still answer for. */
  | 'throw'
  /** Every request of the batch is answered with the error, as a runtime that refused the batch. */
  | 'batch'
  /** Only requests whose parameter `fail` is true get the error; the rest are echoed. */
  | 'flagged';

export interface FailingBackendOptions {
  /** Default 'flagged'. */
  readonly mode?: FailMode;
  /** Default 'test failure'; the config parameter `fail_message` overrides it. */
  readonly message?: string;
}

/** `backend: "test_failing"`. Errors are INFERENCE_FAILED with the message as detail. */
export class FailingBackend extends InMemoryBackend {
  constructor(private readonly options: FailingBackendOptions = {}) {
    super('test_failing');
  }

  protected override async answer(model: LoadedModel, requests: readonly ExecuteRequest[]): Promise<readonly ExecuteResult[]> {
    const parameters = model.context.settings.parameters;
    const mode = (parameters.get('fail_mode') ?? this.options.mode ?? 'flagged') as FailMode;
    const message = parameters.get('fail_message') ?? this.options.message ?? 'test failure';
    if (mode === 'throw') throw new Error(message);
    const error = serverError('INFERENCE_FAILED', { model: model.context.modelName, detail: message });
    const echoed = echo(model, requests);
    return requests.map((request, i) => (mode === 'batch' || request.parameters?.['fail'] === true ? { ok: false, error } : echoed[i]!));
  }
}

/** A registry of the default backends (ONNX Runtime, TypeScript) and the test backends given. */
export function withTestBackends(...backends: readonly InMemoryBackend[]): BackendRegistry {
  return BackendRegistry.of([...defaultBackends().list(), ...backends], { defaultBackend: 'onnxruntime' });
}

/**
 * A model config over a test backend: `io` is the input and output lists
 * in config.pbtxt form; `extra` any further fields (dynamic_batching, parameters).
 */
export function testModelConfig(name: string, backend: string, maxBatchSize: number, io: string, extra = ''): string {
  return `name: "${name}"\nbackend: "${backend}"\nmax_batch_size: ${maxBatchSize}\n${io}\n${extra}\n`;
}
