/**
 * ScriptSandbox on isolated-vm: one V8 isolate per model instance, with its
 * own heap limit, and nothing in it but the standard JavaScript built-ins,
 * the author's code and the bootstrap (isolate-bootstrap/bootstrap.ts). Every call
 * into it is async, so the event loop never waits on a script.
 *
 * Time: isolated-vm's own timeout stops synchronous code only; a script
 * that loops after an `await` would run on. So a host watchdog disposes the
 * isolate when an execute() (or initialize/finalize) passes its deadline,
 * whatever the script is doing. isolated-vm's timeout is not used at all:
 * the watchdog covers synchronous loops too, and each of its timers stays
 * armed until due even after the call returned, which slows every later call. A disposed sandbox stays dead; the instance
 * that owns it makes a new one.
 *
 * Inline executes (limits.inlineSliceMs > 0, parameters.inline_slice_ms): execute() runs on the host's own thread
 * (applySync), and so does each continuation after a ctx.infer answer, so a call pays no hand-off to the isolate's
 * thread and back. Each such synchronous slice holds the event loop, at most inlineSliceMs: isolated-vm's timeout
 * stops a slice past it, and the isolate is disposed as for any limit. The watchdog still bounds the whole execute().
 *
 * The bootstrap's entry points answer an Outcome, { ok, value } or { ok: false, message, code }, never a throw:
 * what the script threw reaches the host as a bounded message and code, not as a copy of the thrown value.
 */

import type ivm from 'isolated-vm-types';
import { transferList } from '../engine/memory/owned-buffer.ts';
import { eventLoopBudget } from '../engine/scheduling/inline-budget.ts';
import { isolatedVm } from './isolated-vm-line.ts';
import type { CompiledScript } from './compile.ts';
import { isolateBootstrapSource, type BootstrapSettings } from './isolate-bootstrap/bootstrap-source.ts';
import {
  SandboxFailure, type HostBridge, type SandboxIdentity, type SandboxLimits, type ScriptInferAnswer, type ScriptRequest,
  type ScriptResponse, type ScriptSandbox, type ScriptStreamOperation,
} from './sandbox.ts';
import type { ScriptStreamAnswer } from './script-streams.ts';

/** What every bootstrap entry point resolves to. */
type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string; readonly code?: string };

/** An inline execute waiting for its outcome, which the isolate hands over through the settled Reference. */
interface InlineExecute {
  readonly resolve: (outcome: Outcome<ScriptResponse[]>) => void;
  readonly reject: (failure: SandboxFailure) => void;
}

export class IsolatedVmSandbox implements ScriptSandbox {
  private ended: SandboxFailure | undefined;
  private closing: Promise<void> | undefined;
  /** Inline executes running now, by batch. */
  private readonly inline = new Map<number, InlineExecute>();

  private constructor(
    private readonly isolate: ivm.Isolate,
    private readonly entry: {
      readonly execute: ivm.Reference; readonly executeInline: ivm.Reference; readonly answer: ivm.Reference;
      readonly executeDecoupled: ivm.Reference; readonly cancel: ivm.Reference; readonly finalize: ivm.Reference;
      readonly collect: ivm.Reference;
    },
    private readonly limits: SandboxLimits,
    private readonly what: string,
  ) {}

  /** Starts an isolate, loads the script into it and runs its initialize(ctx). */
  static async create(script: CompiledScript, identity: SandboxIdentity, limits: SandboxLimits, bridge: HostBridge): Promise<IsolatedVmSandbox> {
    const isolate = new isolatedVm.Isolate({ memoryLimit: limits.memoryLimitMb });
    const what = `script '${identity.name}' (${identity.instance})`;
    let made: IsolatedVmSandbox | undefined;
    try {
      const context = await isolate.createContext();
      const compiled = await isolate.compileScript(`(function (module, exports) {\n${script.code}\n})`, { filename: script.file });
      const factory = await compiled.run(context, { reference: true }) as ivm.Reference;
      // The answer goes in later, as the argument of a call of its own (answer(ticket, ...)): a plain value whose buffers
      // move across, never a handle the script could reach, copied in inside a call where running past the memory limit
      // ends the isolate (answered as a settled promise, such a copy aborted the process).
      const infer = new isolatedVm.Reference((call: unknown, batch: number, ticket: number): void => {
        bridge.infer(call, batch)
          // A rejection here would surface in the host, not the script: always answer.
          .catch((err: unknown): ScriptInferAnswer => ({ error: err instanceof Error ? err.message : String(err) }))
          .then((answer) => made?.answerCall(ticket, answer, 'ctx.infer'))
          .catch(() => {});
      });
      // ctx.inferStream's steps (open, next, close), answered like ctx.infer.
      const stream = new isolatedVm.Reference((operation: ScriptStreamOperation, batch: number, ticket: number): void => {
        bridge.stream(operation, batch)
          .catch((err: unknown): ScriptStreamAnswer => ({ error: err instanceof Error ? err.message : String(err) }))
          .then((answer) => made?.answerCall(ticket, answer, 'ctx.inferStream'))
          .catch(() => {});
      });
      const log = new isolatedVm.Reference((level: 'info' | 'warn' | 'error', text: string, batch?: number) => bridge.log(level, text, batch));
      // Arrives as a plain copy; the script's send() blocks until this settles (room in the stream). The bridge never throws.
      const respond = new isolatedVm.Reference(async (batch: number, index: number, response: unknown, final: boolean): Promise<boolean> =>
        await bridge.respond?.(batch, index, response, final) ?? false);
      // Inline ctx.infer: called synchronously from inside the isolate's slice. The engine takes it once the slice has
      // returned: in a microtask while the event loop's inline budget has room, else on the next turn of the loop. Calls
      // between inline scripts would otherwise chain slices without end, and starve every timer (the watchdog's
      // included) and all I/O; the budget bounds the chain to about a millisecond.
      const inferInline = new isolatedVm.Reference((call: unknown, batch: number, ticket: number): void => {
        afterSlice(() => {
          bridge.infer(call, batch)
            .catch((err: unknown): ScriptInferAnswer => ({ error: err instanceof Error ? err.message : String(err) }))
            .then((answer) => made?.answerInline(ticket, answer, 'ctx.infer'), () => {});
        });
      });
      const streamInline = new isolatedVm.Reference((operation: ScriptStreamOperation, batch: number, ticket: number): void => {
        afterSlice(() => {
          bridge.stream(operation, batch)
            .catch((err: unknown): ScriptStreamAnswer => ({ error: err instanceof Error ? err.message : String(err) }))
            .then((answer) => made?.answerInline(ticket, answer, 'ctx.inferStream'), () => {});
        });
      });
      const settled = new isolatedVm.Reference((batch: number, outcome: Outcome<ScriptResponse[]>): void => made?.settleInline(batch, outcome));
      const settings: BootstrapSettings = {
        maxTransferBytes: limits.maxTransferMb * 1024 * 1024, logLineMaxChars: limits.logLineMaxChars,
        logLinesPerExecute: limits.logLinesPerExecute, allowWebAssembly: limits.allowWebAssembly,
      };
      const api = await context.evalClosure(await isolateBootstrapSource(), [
        infer, log, factory.derefInto(), respond, new isolatedVm.ExternalCopy(settings).copyInto(), inferInline, settled, stream, streamInline,
      ], {
        result: { reference: true },
      }) as ivm.Reference;
      const entry = {
        load: await api.get('load', { reference: true }) as ivm.Reference,
        execute: await api.get('execute', { reference: true }) as ivm.Reference,
        executeInline: await api.get('executeInline', { reference: true }) as ivm.Reference,
        answer: await api.get('answer', { reference: true }) as ivm.Reference,
        executeDecoupled: await api.get('executeDecoupled', { reference: true }) as ivm.Reference,
        cancel: await api.get('cancel', { reference: true }) as ivm.Reference,
        finalize: await api.get('finalize', { reference: true }) as ivm.Reference,
        collect: await api.get('collect', { reference: true }) as ivm.Reference,
      };
      const sandbox = new IsolatedVmSandbox(isolate, entry, limits, what);
      made = sandbox;
      await sandbox.guarded('initialize', () => entry.load.apply(undefined, [identity], {
        arguments: { copy: true }, result: { promise: true, copy: true },
      }) as Promise<Outcome<undefined>>);
      return sandbox;
    } catch (err) {
      if (!isolate.isDisposed) isolate.dispose();
      throw err;
    }
  }

  /** A full garbage collection in the isolate (before judging whether a large answer fits); nothing once it is gone. */
  async collectGarbage(): Promise<void> {
    if (!this.alive) return;
    await this.entry.collect.apply(undefined, [], { timeout: COLLECT_TIMEOUT_MS }).catch(() => {});
  }

  get alive(): boolean {
    return this.ended === undefined && !this.isolate.isDisposed;
  }

  /**
   * Bytes of the isolate's heap in use, or 0 once it is gone. Asked through
   * the async API: the sync one would wait for a script that is running.
   */
  async heapUsedBytes(): Promise<number> {
    if (!this.alive) return 0;
    try {
      return (await this.isolate.getHeapStatistics()).used_heap_size;
    } catch {
      return 0; // disposed meanwhile
    }
  }

  async execute(requests: readonly ScriptRequest[], transfer: readonly ArrayBuffer[], batch: number): Promise<readonly ScriptResponse[]> {
    if (this.ended) throw this.ended;
    const argument = intoIsolate(requests, transferList(transfer));
    if (this.limits.inlineSliceMs > 0) {
      return await this.guarded('execute', () => new Promise<Outcome<ScriptResponse[]>>((resolve, reject) => {
        this.inline.set(batch, { resolve, reject });
        this.slice(() => this.entry.executeInline.applySync(undefined, [argument, batch], { timeout: this.limits.inlineSliceMs }));
      }));
    }
    return await this.guarded('execute', () => this.entry.execute.apply(undefined, [argument, batch], {
      result: { promise: true, copy: true },
    }) as Promise<Outcome<ScriptResponse[]>>);
  }

  async executeDecoupled(requests: readonly ScriptRequest[], transfer: readonly ArrayBuffer[], batch: number): Promise<void> {
    if (this.ended) throw this.ended;
    const argument = intoIsolate(requests, transferList(transfer));
    await this.guarded('execute', () => this.entry.executeDecoupled.apply(undefined, [argument, batch], {
      result: { promise: true, copy: true },
    }) as Promise<Outcome<undefined>>);
  }

  cancel(batch: number, index: number): void {
    if (!this.alive) return;
    try {
      this.entry.cancel.applyIgnored(undefined, [batch, index]);
    } catch {
      // The isolate went away meanwhile: nothing is left to tell.
    }
  }

  dispose(): Promise<void> {
    this.closing ??= (async () => {
      if (this.alive) {
        await this.guarded('finalize', () => this.entry.finalize.apply(undefined, [], {
          result: { promise: true, copy: true },
        }) as Promise<Outcome<undefined>>).catch(() => {});
      }
      this.disposeIsolate();
    })();
    return this.closing;
  }

  /**
   * A ctx.infer (or ctx.inferStream step) of an execute on the isolate's
   * own thread answered: the answer goes in as the argument of answer().
   * One that does not fit is refused first when it is large (a message the
   * script can catch); past the limit anyway, the copy ends the isolate.
   */
  async answerCall(ticket: number, given: ScriptInferAnswer | ScriptStreamAnswer, call: string): Promise<void> {
    if (!this.alive) return;
    const answer = await fittingAnswer(this.isolate, this, given, this.limits.memoryLimitMb, call);
    if (!this.alive) return;
    let copy: ivm.Copy<never>;
    try {
      copy = intoIsolate(answer, transferableBuffers(answer));
    } catch (err) {
      // An answer that cannot be copied (a buffer already given away): the call fails, it does not hang.
      copy = intoIsolate({ error: `${call}'s answer could not be handed to the script: ${err instanceof Error ? err.message : String(err)}` }, []);
    }
    await this.entry.answer.apply(undefined, [ticket, copy], {}).catch(() => {
      // The isolate ended (its memory limit, a timeout): the execute waiting on this call fails with why.
    });
  }

  /** An inline ctx.infer (or ctx.inferStream step) answered: its continuation runs now, as one more slice of the execute that made it. */
  private answerInline(ticket: number, given: ScriptInferAnswer | ScriptStreamAnswer, call: string): void {
    if (!this.alive) return;
    // Between slices nothing runs in the isolate, so the synchronous statistics do not wait.
    const bytes = answerBytes(given);
    const noRoom = (): ScriptInferAnswer | undefined => refusalIfNoRoom(this.isolate.getHeapStatisticsSync(), bytes, this.limits.memoryLimitMb, call);
    let answer = given;
    if (bytes >= CHECK_ROOM_FROM_BYTES && noRoom()) {
      // Answers the script let go may be what fills it: collect them, then judge again.
      this.entry.collect.applySync(undefined, [], { timeout: COLLECT_TIMEOUT_MS });
      answer = noRoom() ?? given;
    }
    const copy = intoIsolate(answer, transferableBuffers(answer));
    this.slice(() => this.entry.answer.applySync(undefined, [ticket, copy], { timeout: this.limits.inlineSliceMs }));
  }

  /** An inline execute's outcome, handed over from inside a slice. */
  private settleInline(batch: number, outcome: Outcome<ScriptResponse[]>): void {
    const waiting = this.inline.get(batch);
    this.inline.delete(batch);
    waiting?.resolve(outcome);
  }

  /** Runs one synchronous slice of an inline execute; a slice that fails (past its time, out of memory) ends the sandbox. */
  private slice(run: () => unknown): void {
    const start = performance.now();
    try {
      run();
      eventLoopBudget.charge((performance.now() - start) * 1e6);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.ended ??= /Script execution timed out/.test(message)
        ? new SandboxFailure('timeout', `${this.what} held the event loop past parameters.inline_slice_ms (${this.limits.inlineSliceMs} ms) ` +
          'in one synchronous part of execute(); its isolate was disposed and a new one is starting')
        : /memory limit/i.test(message)
          ? new SandboxFailure('memory', `${this.what} ran past its memory limit of ${this.limits.memoryLimitMb} MB in execute() ` +
            `(parameters.memory_limit_mb); its isolate was disposed and a new one is starting`)
          : new SandboxFailure('crashed', `${this.what} stopped in execute(): ${message}; a new isolate is starting`);
      this.disposeIsolate();
    }
  }

  /**
   * Whether isolated-vm ended the isolate for its memory limit while this
   * call awaited (an answer copied in past the limit): the call then only
   * hears that its promise was abandoned. The host disposes an isolate
   * only after saying why (`ended`), so an isolate gone without a reason
   * went for its memory.
   */
  private outOfMemory(message: string): boolean {
    return /Promise was abandoned/.test(message) && this.isolate.isDisposed && this.ended === undefined;
  }

  /** Frees the isolate; inline executes still waiting fail with why it ended. */
  private disposeIsolate(): void {
    if (!this.isolate.isDisposed) this.isolate.dispose();
    const failure = this.ended ?? new SandboxFailure('crashed', `${this.what} was disposed`);
    for (const waiting of this.inline.values()) waiting.reject(failure);
    this.inline.clear();
  }

  /**
   * Runs one call into the isolate under the watchdog. A call that outlives
   * the deadline (a decoupled send() waiting for room included) gets its
   * isolate disposed; a limit or crash becomes a SandboxFailure that ends
   * the sandbox; the script's own errors become an Error with the message
   * and code it gave.
   */
  private async guarded<T>(stage: string, call: () => Promise<Outcome<T>>): Promise<T> {
    const timeout = (): SandboxFailure => new SandboxFailure('timeout', `${this.what} ran past its time limit of ${this.limits.executeTimeoutMs} ms ` +
      `in ${stage}() (parameters.execute_timeout_ms); its isolate was disposed and a new one is starting`);
    const timer = setTimeout(() => {
      this.ended ??= timeout();
      this.disposeIsolate();
    }, this.limits.executeTimeoutMs);
    let outcome: Outcome<T>;
    try {
      outcome = await call();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // A limit ends every call running in the isolate (executes waiting on ctx.infer beside the one that hit it), for that reason.
      const failure = this.ended ?? (/Script execution timed out/.test(message)
        ? timeout()
        : /memory limit/i.test(message) || this.outOfMemory(message)
          ? new SandboxFailure('memory', `${this.what} ran past its memory limit of ${this.limits.memoryLimitMb} MB in ${stage}() ` +
            `(parameters.memory_limit_mb); its isolate was disposed and a new one is starting`)
          : new SandboxFailure('crashed', `${this.what} stopped in ${stage}(): ${message}; a new isolate is starting`));
      this.ended ??= failure;
      this.disposeIsolate();
      throw failure;
    } finally {
      clearTimeout(timer);
    }
    if (outcome.ok) return outcome.value;
    // V8 refused a typed array past the heap limit; the isolate lives on, but say which limit.
    const message = /Array buffer allocation failed/.test(outcome.message)
      ? `${outcome.message}: the script asked for more memory than its isolate may hold (parameters.memory_limit_mb is ${this.limits.memoryLimitMb})`
      : outcome.message;
    throw Object.assign(new Error(message), outcome.code === undefined ? {} : { code: outcome.code });
  }
}

/** Runs `work` once the current slice has returned: in a microtask while the event loop's inline budget has room, else after setImmediate. */
function afterSlice(work: () => void): void {
  if (eventLoopBudget.hasRoom) queueMicrotask(work);
  else setImmediate(work);
}

/**
 * From this many bytes, an answer is only handed into the isolate after a
 * look at the room left under its memory limit, so that one that does not
 * fit is refused with a message the script can catch. Smaller answers skip
 * the look (it costs a trip to the isolate's thread): one that does not fit
 * ends the isolate as it is copied in, as any allocation past the limit
 * does (answers go in as a call's argument; see answerCall).
 */
const CHECK_ROOM_FROM_BYTES = 1024 * 1024;

/** Bytes an answer brings into the isolate: its tensors' buffers, and its strings at two bytes a character. */
function answerBytes(answer: ScriptInferAnswer | ScriptStreamAnswer): number {
  if (!('outputs' in answer)) return 0;
  let bytes = 0;
  for (const tensor of Object.values(answer.outputs)) {
    if (ArrayBuffer.isView(tensor.data)) bytes += tensor.data.byteLength;
    else for (const element of tensor.data as readonly (string | Uint8Array)[]) bytes += typeof element === 'string' ? element.length * 2 : element.byteLength;
  }
  return bytes;
}

/** The refusal of an answer of `bytes` that does not fit the isolate's memory limit, or undefined when it fits. */
function refusalIfNoRoom(stats: ivm.HeapStatistics, bytes: number, limitMb: number, call: string): ScriptInferAnswer | undefined {
  const inUse = stats.used_heap_size + stats.externally_allocated_size;
  if (inUse + bytes <= limitMb * 1024 * 1024) return undefined;
  const mb = (n: number): string => (n / (1024 * 1024)).toFixed(1);
  return {
    error: `${call}'s answer of ${mb(bytes)} MB does not fit in the script's isolate, which already holds ${mb(inUse)} MB of its ` +
      `${limitMb} MB (parameters.memory_limit_mb): keep less of what earlier calls answered, ask for fewer outputs, or raise the limit`,
  };
}

/**
 * `answer`, or its refusal when it is large and the isolate has no room for
 * it even after a garbage collection (answers the script let go of count
 * until one runs).
 */
async function fittingAnswer<A extends ScriptInferAnswer | ScriptStreamAnswer>(
  isolate: ivm.Isolate, sandbox: IsolatedVmSandbox | undefined, answer: A, limitMb: number, call: string,
): Promise<A> {
  const bytes = answerBytes(answer);
  if (bytes < CHECK_ROOM_FROM_BYTES) return answer;
  const noRoom = async (): Promise<ScriptInferAnswer | undefined> => {
    const stats = await isolate.getHeapStatistics().catch(() => undefined);
    return stats && refusalIfNoRoom(stats, bytes, limitMb, call);
  };
  if (!(await noRoom())) return answer;
  await sandbox?.collectGarbage();
  return ((await noRoom()) as A | undefined) ?? answer;
}

/** How long the host's garbage collection in an isolate may take. */
const COLLECT_TIMEOUT_MS = 1000;

/**
 * Below this many bytes of buffers, a value going into the isolate is copied rather than its buffers moved: isolated-vm
 * moves a buffer at a higher fixed cost than it copies a small one (two 64-byte tensors: 19 µs moved, 14.5 µs copied).
 * Either way the host gives the buffers up: they are its own copies, or pooled buffers the pool has forgotten.
 */
const COPY_BELOW_BYTES = 64 * 1024;

/** `value` as an argument for the isolate, its `buffers` (each the host's own, and given up) copied when small, else moved. */
function intoIsolate(value: unknown, buffers: readonly ArrayBuffer[]): ivm.Copy<never> {
  let bytes = 0;
  for (const buffer of buffers) bytes += buffer.byteLength;
  return (bytes < COPY_BELOW_BYTES
    ? new isolatedVm.ExternalCopy(value).copyInto({ release: true })
    : new isolatedVm.ExternalCopy(value, { transferList: [...buffers] }).copyInto({ release: true, transferIn: true })) as ivm.Copy<never>;
}

/** The buffers of our own under an answer's output tensors: they move into the isolate rather than being copied. */
function transferableBuffers(answer: ScriptInferAnswer | ScriptStreamAnswer): ArrayBuffer[] {
  if (!('outputs' in answer)) return [];
  return transferList(Object.values(answer.outputs).flatMap((tensor) => (ArrayBuffer.isView(tensor.data) ? [tensor.data.buffer] : [])));
}
