/**
 * One instance of a TypeScript model: one isolate running the author's
 * class. Batches run one after another. When a limit or a crash ends the
 * isolate, the batch it was running fails with the reason and a fresh
 * isolate (initialize() included) starts at once for the next batch.
 *
 * A decoupled model's requests answer through request.send() while the
 * batch runs (a ResponseSender each); the batch's results only say whether
 * execute() ended well.
 */
import type { CompiledModelConfig } from '../../engine/config/compiled-model-config.ts';
import { serverError, type SwitchyardError } from '../../engine/errors.ts';
import type { Logger } from '../../engine/logger.ts';
import type { BufferPool } from '../../engine/memory/buffer-pool.ts';
import type { InferFunction } from '../../engine/scheduling/scheduler.ts';
import type { CompiledScript } from '../../scripts-runtime/compile.ts';
import { createHostBridge, fromScriptTensor, toScriptTensor } from '../../scripts-runtime/host-bridge.ts';
import { IsolatedVmSandbox } from '../../scripts-runtime/isolated-vm-sandbox.ts';
import { SandboxFailure, type HostBridge, type SandboxLimits, type ScriptRequest } from '../../scripts-runtime/sandbox.ts';
import type { BackendInstance, ComputeTiming, ExecuteOutcome, ExecuteRequest, ExecuteResult } from '../backend.ts';
import { ResponseSender } from './response-sender.ts';

export interface ScriptInstanceOptions {
  readonly name: string;
  readonly version: number;
  readonly script: CompiledScript;
  readonly config: CompiledModelConfig;
  readonly limits: SandboxLimits;
  readonly infer: InferFunction;
  readonly logger: Logger;
  readonly bufferPool?: BufferPool;
}

const nsSince = (start: number): number => Math.round((performance.now() - start) * 1e6);

/** Where the bridge hands a decoupled request's responses. */
type Respond = NonNullable<HostBridge['respond']>;

export class ScriptInstance implements BackendInstance {
  private sandbox: Promise<IsolatedVmSandbox>;
  private queue: Promise<unknown> = Promise.resolve();
  /** The call chain of the batch running now: the calls up the stack, then this batch's own frame. */
  private chain: readonly string[] = [];
  /** This batch's entry in call chains, `model@instance#n`, while it runs. */
  private frame: string | undefined;
  private batches = 0;
  /** The decoupled batch running now: its number (the isolate tags responses with it) and a sender per request. */
  private decoupled: { readonly batch: number; readonly senders: readonly ResponseSender[] } | undefined;
  private closed = false;

  private constructor(private readonly options: ScriptInstanceOptions, first: IsolatedVmSandbox) {
    this.sandbox = Promise.resolve(first);
  }

  /** Starts the isolate and runs initialize(); a script that throws there fails the load. */
  static async create(options: ScriptInstanceOptions): Promise<ScriptInstance> {
    let instance: ScriptInstance | undefined;
    const sandbox = await ScriptInstance.start(options, () => instance?.chain ?? [], (...sent) => instance?.deliver(...sent) ?? false);
    instance = new ScriptInstance(options, sandbox);
    return instance;
  }

  private static start(options: ScriptInstanceOptions, chain: () => readonly string[], respond: Respond): Promise<IsolatedVmSandbox> {
    const bridge = createHostBridge({
      modelName: options.config.name, instance: options.name, infer: options.infer, logger: options.logger, callChain: chain,
      ...(options.bufferPool ? { bufferPool: options.bufferPool } : {}),
      ...(options.config.decoupled ? { respond } : {}),
    });
    return IsolatedVmSandbox.create(options.script, {
      name: options.config.name, version: String(options.version), instance: options.name, config: options.config.json,
      decoupled: options.config.decoupled === true,
    }, options.limits, bridge);
  }

  get name(): string {
    return this.options.name;
  }

  /** Whether the batch running now made one of the calls in `chain`: it cannot take that chain's next call. */
  heldBy(chain: readonly string[]): boolean {
    return this.frame !== undefined && chain.includes(this.frame);
  }

  /** Bytes of the isolate's heap in use (0 while a new isolate starts). */
  async heapUsedBytes(): Promise<number> {
    return await (await this.sandbox.catch(() => undefined))?.heapUsedBytes() ?? 0;
  }

  execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    const run = this.queue.then(() => this.run(requests));
    this.queue = run.catch(() => {});
    return run;
  }

  private async run(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    try {
      return await this.runBatch(requests);
    } finally {
      this.frame = undefined;
    }
  }

  private async runBatch(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    const model = this.options.config.name;
    const failAll = (error: SwitchyardError, timing: ComputeTiming): ExecuteOutcome =>
      ({ results: requests.map(() => ({ ok: false, error })), timing });
    const start = performance.now();
    if (this.closed) return failAll(serverError('SERVER_STOPPING', { model }), { inputNs: 0, inferNs: 0, outputNs: 0 });
    this.frame = `${model}@${this.name}#${++this.batches}`;
    this.chain = [...new Set(requests.flatMap((r) => r.callChain ?? [])), this.frame];
    const transfer: ArrayBuffer[] = [];
    const scriptRequests: ScriptRequest[] = requests.map((r) => ({
      inputs: Object.fromEntries(r.inputs.map((t) => [t.name, toScriptTensor(t, transfer, this.options.bufferPool)])),
      parameters: r.parameters ?? {},
    }));
    const inputNs = nsSince(start);
    const runStart = performance.now();
    const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
    let sandbox: IsolatedVmSandbox;
    try {
      sandbox = await this.sandbox;
    } catch (err) {
      // The replacement isolate's initialize() failed: this batch fails with why, the next one tries again.
      this.restart();
      return failAll(serverError('INFERENCE_FAILED', {
        model, detail: `instance ${this.name} has no isolate: starting a new one failed (${message(err)}); the next request tries again`,
      }), { inputNs, inferNs: 0, outputNs: 0 });
    }
    if (this.options.config.decoupled) return this.runDecoupled(sandbox, requests, scriptRequests, transfer, inputNs);
    let responses: readonly unknown[];
    try {
      responses = await sandbox.execute(scriptRequests, transfer);
    } catch (err) {
      const timing = { inputNs, inferNs: nsSince(runStart), outputNs: 0 };
      if (err instanceof SandboxFailure) {
        this.options.logger.error(`'${model}': ${err.message}`);
        this.restart();
        return failAll(serverError('INFERENCE_FAILED', { model, detail: err.message }), timing);
      }
      return failAll(serverError('INFERENCE_FAILED', { model, detail: `execute() threw: ${message(err)}` }), timing);
    }
    const inferNs = nsSince(runStart);
    const outputStart = performance.now();
    const results = requests.map((request, index) => this.result(request, responses[index], index, requests.length));
    return { results, timing: { inputNs, inferNs, outputNs: nsSince(outputStart) } };
  }

  /**
   * A decoupled batch: responses leave through the senders while execute()
   * runs; when it ends, requests still open are closed. A failure (a throw,
   * a limit) fails the requests that had not sent their final response yet.
   */
  private async runDecoupled(
    sandbox: IsolatedVmSandbox, requests: readonly ExecuteRequest[], scriptRequests: readonly ScriptRequest[], transfer: ArrayBuffer[], inputNs: number,
  ): Promise<ExecuteOutcome> {
    const model = this.options.config.name;
    const batch = this.batches;
    const runStart = performance.now();
    const senders = requests.map((request, index) => new ResponseSender(
      request, (response) => this.result(request, response, index, requests.length), () => sandbox.cancel(batch, index), runStart,
    ));
    this.decoupled = { batch, senders };
    let failure: SwitchyardError | undefined;
    try {
      await sandbox.executeDecoupled(scriptRequests, transfer, batch);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      if (err instanceof SandboxFailure) {
        this.options.logger.error(`'${model}': ${detail}`);
        this.restart();
      }
      failure = serverError('INFERENCE_FAILED', { model, detail: err instanceof SandboxFailure ? detail : `execute() threw: ${detail}` });
    } finally {
      this.decoupled = undefined;
    }
    const results = senders.map((sender): ExecuteResult => {
      if (failure && !sender.final) {
        sender.abandon();
        return { ok: false, error: failure };
      }
      sender.close();
      return { ok: true, outputs: [] };
    });
    return { results, timing: { inputNs, inferNs: nsSince(runStart), outputNs: 0 } };
  }

  /**
   * A response a decoupled request sent, routed to its sender; responses of a batch that is over are dropped.
   * Answers whether it was wanted, once there is room for the next one.
   */
  private deliver(batch: number, index: number, response: unknown, final: boolean): boolean | Promise<boolean> {
    if (this.decoupled?.batch !== batch) return false;
    return this.decoupled.senders[index]?.deliver(response, final) ?? false;
  }

  /** One request's answer, checked against the config: every requested output, of its declared type and shape. */
  private result(request: ExecuteRequest, response: unknown, index: number, of: number): ExecuteResult {
    const config = this.options.config;
    const model = config.name;
    const which = of > 1 ? ` (request ${index + 1} of ${of})` : '';
    const failed = (detail: string): ExecuteResult => ({ ok: false, error: serverError('INFERENCE_FAILED', { model, detail }) });
    if (typeof response !== 'object' || response === null) return failed(`execute() returned ${String(response)} as a response${which}; return { outputs: { ... } } or { error: '...' }`);
    const answer = response as { outputs?: unknown; error?: unknown };
    if (answer.error !== undefined) return failed(String(answer.error));
    if (typeof answer.outputs !== 'object' || answer.outputs === null) {
      return failed(`the response${which} has no outputs object; return { outputs: { NAME: { datatype, shape, data } } } or { error: '...' }`);
    }
    const outputs = answer.outputs as Record<string, unknown>;
    for (const name of Object.keys(outputs)) {
      if (!config.outputByName.has(name)) {
        return failed(`the response${which} has output '${name}', which the model config does not declare (outputs: ${config.outputs.map((o) => o.name).join(', ')})`);
      }
    }
    try {
      return {
        ok: true,
        outputs: request.outputs.map((name) => {
          if (!(name in outputs)) throw new Error(`the response${which} has no output '${name}'`);
          const spec = config.outputByName.get(name)!;
          const tensor = fromScriptTensor(name, outputs[name], `output '${name}'${which}`, spec);
          checkShape(tensor.shape, spec.dims, config.maxBatchSize > 0 ? request.batchSize : undefined, `output '${name}'${which}`);
          return tensor;
        }),
      };
    } catch (err) {
      return failed(err instanceof Error ? err.message : String(err));
    }
  }

  /** Starts a replacement isolate now, so the next batch does not wait for it. */
  private restart(): void {
    if (this.closed) return;
    this.sandbox = ScriptInstance.start(this.options, () => this.chain, (...sent) => this.deliver(...sent));
    this.sandbox.catch((err: unknown) => {
      this.options.logger.error(`'${this.options.config.name}': instance ${this.name} could not start a new isolate: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  async finalize(): Promise<void> {
    this.closed = true;
    await this.queue;
    await (await this.sandbox.catch(() => undefined))?.dispose();
  }
}

function checkShape(shape: readonly number[], dims: readonly number[], batch: number | undefined, where: string): void {
  const expected = batch === undefined ? dims : [batch, ...dims];
  const fits = shape.length === expected.length && expected.every((d, i) => d === -1 || d === shape[i]);
  if (!fits) {
    const shown = `[${expected.map((d) => (d === -1 ? '-1' : String(d))).join(',')}]`;
    throw new Error(`${where} has shape [${shape.join(',')}], but the model config gives ${shown}` +
      (batch === undefined ? '' : ` (the first dim is this request's batch size, ${batch})`));
  }
}
