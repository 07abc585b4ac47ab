/**
 * One instance of a TypeScript model: one isolate running the author's
 * class. Batches run one after another, except that while every batch it
 * runs waits on ctx.infer, the instance starts the next one (re-entrancy),
 * up to max_concurrent_executes at once: a call back into the model, from
 * its own batch or from another request's chain, never waits on a batch
 * that waits on it. When a limit or a crash ends the isolate, the batches
 * it was running fail with the reason and a fresh isolate (initialize()
 * included) starts at once for the next batch.
 *
 * A decoupled model's requests answer through request.send() while the
 * batch runs (a ResponseSender each); the batch's results only say whether
 * execute() ended well.
 */
import type { CompiledModelConfig } from '../../engine/config/compiled-model-config.ts';
import { quoted, serverError, SwitchyardError, type StatusClass } from '../../engine/errors.ts';
import type { Logger } from '../../engine/logger.ts';
import type { BufferPool } from '../../engine/memory/buffer-pool.ts';
import type { InferFunction, StreamingInferFunction } from '../../engine/infer-function.ts';
import type { CompiledScript } from '../../scripts-runtime/compile.ts';
import { ExecuteCalls } from '../../scripts-runtime/execute-calls.ts';
import { createHostBridge, fromScriptTensor, toScriptTensor } from '../../scripts-runtime/host-bridge.ts';
import { IsolatedVmSandbox } from '../../scripts-runtime/isolated-vm-sandbox.ts';
import { SandboxFailure, type SandboxLimits, type ScriptRequest } from '../../scripts-runtime/sandbox.ts';
import type { BackendInstance, ComputeTiming, ExecuteOutcome, ExecuteRequest, ExecuteResult, Reentrancy } from '../../engine/backend.ts';
import { ResponseSender } from './response-sender.ts';

export interface ScriptInstanceOptions {
  readonly name: string;
  readonly version: number;
  readonly script: CompiledScript;
  readonly config: CompiledModelConfig;
  readonly limits: SandboxLimits;
  /** Batches one instance runs at once, all but one waiting on ctx.infer (parameters.max_concurrent_executes). */
  readonly maxConcurrentExecutes: number;
  /** ctx.infer calls one execute() may have in flight (parameters.max_infer_calls_in_flight). */
  readonly maxInferCallsInFlight: number;
  readonly infer: InferFunction;
  /** The server's inferStream(), for ctx.inferStream. */
  readonly inferStream?: StreamingInferFunction;
  readonly logger: Logger;
  readonly bufferPool?: BufferPool;
  /** BYTES inputs execute() receives as Uint8Array elements rather than UTF-8 strings (parameters.binary_inputs). */
  readonly binaryInputs?: ReadonlySet<string>;
}

/** The statuses a script's error response may carry: Triton's TritonError codes (its UNKNOWN is INTERNAL here). */
export const SCRIPT_ERROR_STATUSES = ['INVALID_ARG', 'NOT_FOUND', 'UNAVAILABLE', 'INTERNAL', 'UNSUPPORTED', 'ALREADY_EXISTS', 'CANCELLED'] as const;

/** A value a script handed over, for a message: short, never its whole contents. */
const describeValue = (v: unknown): string => (typeof v === 'string' ? `'${v.slice(0, 40)}${v.length > 40 ? '...' : ''}'` : typeof v);

const nsSince = (start: number): number => Math.round((performance.now() - start) * 1e6);

/** A batch handed to the instance that has not started: it starts once the instance has room (see canStart). */
interface Waiting {
  readonly batch: number;
  readonly calls: ExecuteCalls;
  /** Resolves the batch's wait: true to run, false when every client went away first. */
  readonly start: (run: boolean) => void;
}

export class ScriptInstance implements BackendInstance {
  private sandbox!: Promise<IsolatedVmSandbox>;
  private readonly waiting: Waiting[] = [];
  /** The batches running now, by number (the isolate tags their ctx.infer calls and responses with it): their calls. */
  private readonly running = new Map<number, ExecuteCalls>();
  private batches = 0;
  /** The decoupled batches running now: a sender per request. */
  private readonly decoupled = new Map<number, readonly ResponseSender[]>();
  private roomListener: () => void = () => {};
  private idle: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly options: ScriptInstanceOptions) {}

  /** Starts the isolate and runs initialize(); a script that throws there fails the load. */
  static async create(options: ScriptInstanceOptions): Promise<ScriptInstance> {
    const instance = new ScriptInstance(options);
    instance.sandbox = instance.start();
    await instance.sandbox;
    return instance;
  }

  /** A new isolate, its initialize() run; the ctx.infer calls initialize() made are cancelled once it returns. */
  private async start(): Promise<IsolatedVmSandbox> {
    const { config, name, version, maxInferCallsInFlight: max } = this.options;
    const initialize = new ExecuteCalls(config.name, [], max, []);
    const bridge = createHostBridge({
      modelName: config.name, instance: name, infer: this.options.infer, logger: this.options.logger,
      ...(this.options.inferStream ? { inferStream: this.options.inferStream } : {}),
      callsOf: (batch) => (batch === 0 && initialize.open ? initialize : this.callsOf(batch)),
      ...(this.options.bufferPool ? { bufferPool: this.options.bufferPool } : {}),
      ...(config.decoupled ? { respond: (...sent) => this.deliver(...sent) } : {}),
    });
    const limitError = serverError('INFER_CALLS_IN_FLIGHT', { model: config.name, max });
    try {
      return await IsolatedVmSandbox.create(this.options.script, {
        name: config.name, version: String(version), instance: name, config: config.json, decoupled: config.decoupled === true,
        inferLimit: { max, code: limitError.code, message: limitError.message },
      }, this.options.limits, bridge);
    } finally {
      initialize.close(`initialize() of '${config.name}' returned before the call answered`);
    }
  }

  get name(): string {
    return this.options.name;
  }

  /** Bytes of the isolate's heap in use (0 while a new isolate starts). */
  async heapUsedBytes(): Promise<number> {
    return await (await this.sandbox.catch(() => undefined))?.heapUsedBytes() ?? 0;
  }

  reentrancy(): Reentrancy {
    let parked = 0;
    for (const calls of this.running.values()) if (calls.parked) parked++;
    const limit = this.options.maxConcurrentExecutes;
    const held = this.waiting.length + this.running.size;
    return { parked, full: held >= limit, saturated: this.running.size >= limit && parked === this.running.size, limit };
  }

  onRoom(listener: () => void): void {
    this.roomListener = listener;
  }

  async execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    const model = this.options.config.name;
    const batch = ++this.batches;
    const chain = [...new Set(requests.flatMap((r) => r.callChain ?? [])), `${model}@${this.name}#${batch}`];
    let leave = (): void => {};
    const calls = new ExecuteCalls(model, chain, this.options.maxInferCallsInFlight, requests.map((r) => r.signal), {
      parked: () => {
        this.pump();
        this.roomListener();
      },
      gone: () => {
        leave();
        // Before its calls fail CANCELLED, the running script hears that its requests are cancelled.
        for (const sender of this.decoupled.get(batch) ?? []) sender.cancel();
      },
    }, requests.find((r) => r.trace)?.trace, requestLabel(requests));
    const run = await new Promise<boolean>((start) => {
      const entry: Waiting = { batch, calls, start };
      // Every client went away while the batch waited: it leaves without touching the isolate.
      leave = () => {
        const index = this.waiting.indexOf(entry);
        if (index < 0) return;
        this.waiting.splice(index, 1);
        start(false);
      };
      this.waiting.push(entry);
      this.pump();
    });
    try {
      if (!run || calls.cancelled !== undefined) {
        const error = serverError('CANCELLED', { model, reason: calls.cancelled });
        return { results: requests.map(() => ({ ok: false, error })), timing: { inputNs: 0, inferNs: 0, outputNs: 0 } };
      }
      return await this.runBatch(batch, requests);
    } finally {
      calls.close(`the execute() of '${model}' that made this call ended before it answered`);
      this.running.delete(batch);
      this.pump();
      if (this.waiting.length + this.running.size === 0) this.idle?.();
    }
  }

  /** Starts waiting batches, in order, while there is room. */
  private pump(): void {
    while (this.waiting.length > 0 && this.canStart()) {
      const next = this.waiting.shift()!;
      this.running.set(next.batch, next.calls);
      next.start(true);
    }
  }

  /** Room for one more batch: none runs, or every one running waits on ctx.infer and there are fewer than the limit. */
  private canStart(): boolean {
    if (this.running.size === 0) return true;
    if (this.running.size >= this.options.maxConcurrentExecutes) return false;
    for (const calls of this.running.values()) if (!calls.parked) return false;
    return true;
  }

  /**
   * The calls of batch `batch`. Batch 0 is initialize()'s ctx, which a script
   * may keep and use later: its calls count as the batch running, when only
   * one does; with several running there is no telling which made the call.
   */
  private callsOf(batch: number): ExecuteCalls | undefined {
    if (batch !== 0) return this.running.get(batch);
    return this.running.size === 1 ? this.running.values().next().value : undefined;
  }

  private async runBatch(batch: number, requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    const model = this.options.config.name;
    const failAll = (error: SwitchyardError, timing: ComputeTiming): ExecuteOutcome =>
      ({ results: requests.map(() => ({ ok: false, error })), timing });
    const start = performance.now();
    if (this.closed) return failAll(serverError('SERVER_STOPPING', { model }), { inputNs: 0, inferNs: 0, outputNs: 0 });
    const transfer: ArrayBuffer[] = [];
    const scriptRequests: ScriptRequest[] = requests.map((r) => ({
      inputs: Object.fromEntries(r.inputs.map((t) => [t.name, toScriptTensor(t, transfer, this.options.bufferPool, this.options.binaryInputs?.has(t.name))])),
      parameters: r.parameters ?? {},
    }));
    const inputNs = nsSince(start);
    const runStart = performance.now();
    const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
    const current = this.sandbox;
    let sandbox: IsolatedVmSandbox;
    try {
      sandbox = await current;
    } catch (err) {
      // The replacement isolate's initialize() failed: this batch fails with why, the next one tries again.
      this.restart(current);
      return failAll(serverError('INFERENCE_FAILED', {
        model, detail: `instance ${this.name} has no isolate: starting a new one failed (${message(err)}); the next request tries again`,
      }), { inputNs, inferNs: 0, outputNs: 0 });
    }
    if (this.options.config.decoupled) return this.runDecoupled(current, sandbox, batch, requests, scriptRequests, transfer, inputNs);
    let responses: readonly unknown[];
    try {
      responses = await sandbox.execute(scriptRequests, transfer, batch);
    } catch (err) {
      const timing = { inputNs, inferNs: nsSince(runStart), outputNs: 0 };
      if (err instanceof SandboxFailure) {
        this.options.logger.error(`'${model}'${labelled(requests)}: ${err.message}`);
        this.restart(current);
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
    current: Promise<IsolatedVmSandbox>, sandbox: IsolatedVmSandbox, batch: number, requests: readonly ExecuteRequest[],
    scriptRequests: readonly ScriptRequest[], transfer: ArrayBuffer[], inputNs: number,
  ): Promise<ExecuteOutcome> {
    const model = this.options.config.name;
    const runStart = performance.now();
    const senders = requests.map((request, index) => new ResponseSender(
      request, (response) => this.result(request, response, index, requests.length), () => sandbox.cancel(batch, index), runStart,
    ));
    this.decoupled.set(batch, senders);
    let failure: SwitchyardError | undefined;
    try {
      await sandbox.executeDecoupled(scriptRequests, transfer, batch);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      if (err instanceof SandboxFailure) {
        this.options.logger.error(`'${model}'${labelled(requests)}: ${detail}`);
        this.restart(current);
      }
      failure = serverError('INFERENCE_FAILED', { model, detail: err instanceof SandboxFailure ? detail : `execute() threw: ${detail}` });
    } finally {
      this.decoupled.delete(batch);
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
    return this.decoupled.get(batch)?.[index]?.deliver(response, final) ?? false;
  }

  /** One request's answer, checked against the config: every requested output, of its declared type and shape. */
  private result(request: ExecuteRequest, response: unknown, index: number, of: number): ExecuteResult {
    const config = this.options.config;
    const model = config.name;
    const which = of > 1 ? ` (request ${index + 1} of ${of})` : '';
    const failed = (detail: string): ExecuteResult => ({ ok: false, error: serverError('INFERENCE_FAILED', { model, detail }) });
    if (typeof response !== 'object' || response === null) return failed(`execute() returned ${String(response)} as a response${which}; return { outputs: { ... } } or { error: '...' }`);
    const answer = response as { outputs?: unknown; error?: unknown; status?: unknown };
    if (answer.error !== undefined) {
      if (answer.status === undefined) return failed(String(answer.error));
      if (typeof answer.status !== 'string' || !(SCRIPT_ERROR_STATUSES as readonly string[]).includes(answer.status)) {
        return failed(`the error response${which} has status ${describeValue(answer.status)}; use one of ${SCRIPT_ERROR_STATUSES.join(', ')} (or leave it out: INTERNAL). Its error: ${String(answer.error)}`);
      }
      const status = answer.status as StatusClass;
      // The script says whose fault it is: INVALID_ARG answers 400 / INVALID_ARGUMENT, as Triton's TritonError codes do.
      return { ok: false, error: new SwitchyardError('INFERENCE_FAILED', status, serverError('INFERENCE_FAILED', { model, detail: String(answer.error) }).message) };
    }
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

  /** Starts a replacement isolate now, so the next batch does not wait for it; once per failed one, however many batches it ended. */
  private restart(failed: Promise<IsolatedVmSandbox>): void {
    if (this.closed || this.sandbox !== failed) return;
    this.sandbox = this.start();
    this.sandbox.catch((err: unknown) => {
      this.options.logger.error(`'${this.options.config.name}': instance ${this.name} could not start a new isolate: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  async finalize(): Promise<void> {
    this.closed = true;
    if (this.waiting.length + this.running.size > 0) await new Promise<void>((resolve) => { this.idle = resolve; });
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

/** At most this many requests of a batch are named in its script's log lines. */
const LOGGED_REQUESTS = 8;

/** How a batch's log lines name its requests: `[request 'r1' trace 12, request 'r2']`; undefined when none has an id or a trace. */
function requestLabel(requests: readonly ExecuteRequest[]): string | undefined {
  const named = requests.filter((r) => r.id || r.trace);
  if (named.length === 0) return undefined;
  const shown = named.slice(0, LOGGED_REQUESTS).map((r) =>
    [r.id ? `request '${quoted(r.id, 64)}'` : 'request', r.trace ? `trace ${r.trace.logId}` : ''].filter((p) => p !== '').join(' '));
  return `[${shown.join(', ')}${named.length > shown.length ? `, and ${named.length - shown.length} more` : ''}]`;
}

/** The batch's request label after a space, for a log line about the batch, or nothing. */
function labelled(requests: readonly ExecuteRequest[]): string {
  const label = requestLabel(requests);
  return label === undefined ? '' : ` ${label}`;
}
