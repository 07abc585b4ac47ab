/**
 * The sandbox contract: one loaded model script, isolated from the host,
 * that executes a batch of requests and can call back into the server only
 * through the bridge it was given. isolated-vm-sandbox.ts implements it.
 * Values crossing the boundary are plain data: tensors as
 * { datatype, shape, data } with typed arrays (string[] for BYTES).
 */
import type { ParameterValue } from '../engine/inference-request.ts';
import type { ScriptStreamAnswer } from './script-streams.ts';

export interface ScriptTensor {
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly data: ArrayBufferView | readonly string[] | readonly Uint8Array[];
}

export interface ScriptRequest {
  readonly inputs: Readonly<Record<string, ScriptTensor>>;
  readonly parameters: Readonly<Record<string, ParameterValue>>;
}

/** What an author's execute() returns for one request, before the host checks it. */
export type ScriptResponse = unknown;

/** A ctx.infer call as the script made it, before the host checks it. */
export type ScriptInferCall = unknown;

/** The bridge's answer to ctx.infer; an error answer becomes a rejected promise in the script. */
export type ScriptInferAnswer =
  | { readonly outputs: Readonly<Record<string, ScriptTensor>>; readonly parameters?: Readonly<Record<string, ParameterValue>> }
  | { readonly error: string; readonly code?: string };

/**
 * One step of a ctx.inferStream call, as the bootstrap hands it over: start
 * the call, read the stream's next response, or close it early.
 */
export type ScriptStreamOperation =
  | { readonly kind: 'open'; readonly call: ScriptInferCall }
  | { readonly kind: 'next'; readonly stream: number }
  | { readonly kind: 'close'; readonly stream: number };

/** The only host functions a script can reach. */
export interface HostBridge {
  /** A ctx.infer call by the execute() numbered `batch` (0: initialize(), or the ctx it was given). */
  infer(call: ScriptInferCall, batch: number): Promise<ScriptInferAnswer>;
  /** A step of a ctx.inferStream call by the execute() numbered `batch` (see ScriptStreams). Never rejects. */
  stream(operation: ScriptStreamOperation, batch: number): Promise<ScriptStreamAnswer>;
  /** A ctx.log line of the execute() numbered `batch` (0: initialize()), when the line came from one. */
  log(level: 'info' | 'warn' | 'error', text: string, batch?: number): void;
  /**
   * Decoupled models: request `index` of batch `batch` sent a response
   * (null with `final` only closes the request), unchecked as yet. Answers
   * whether it was wanted; a promise while the request's stream has no room,
   * which the script's send() waits for. Never throws.
   */
  respond?(batch: number, index: number, response: ScriptResponse, final: boolean): boolean | Promise<boolean>;
}

export interface SandboxIdentity {
  readonly name: string;
  readonly version: string;
  readonly instance: string;
  /** The model's completed config in Triton's JSON form. */
  readonly config: unknown;
  /** The requests of a decoupled model get send() and isCancelled(), and execute() returns nothing. */
  readonly decoupled?: boolean;
  /**
   * ctx.infer calls one execute() may have in flight (parameters.max_infer_calls_in_flight); the isolate refuses
   * the next one itself, with this code and message, so a flood of calls never reaches the host.
   */
  readonly inferLimit: { readonly max: number; readonly code: string; readonly message: string };
}

export interface SandboxLimits {
  readonly memoryLimitMb: number;
  /** Wall time one execute() may take, awaits included (and a decoupled send() waiting for room). */
  readonly executeTimeoutMs: number;
  /** The most one value leaving the isolate may hold: execute()'s answer, a ctx.infer request, one send(). */
  readonly maxTransferMb: number;
  /** ctx.log lines longer than this are cut. */
  readonly logLineMaxChars: number;
  /** ctx.log lines one execute() may write; later ones are dropped and counted. */
  readonly logLinesPerExecute: number;
  /** WebAssembly's memory lives outside the isolate's heap limit, so it is there only when a model asks. */
  readonly allowWebAssembly: boolean;
  /**
   * 0: execute() runs on the isolate's own thread. Above 0: it runs on the host's thread, in synchronous slices
   * (up to each ctx.infer, and on from each answer) of at most this many ms each; a longer slice ends the sandbox.
   */
  readonly inlineSliceMs: number;
}

/**
 * Why a sandbox stopped: the time or memory limit, or a crash. The sandbox
 * is unusable afterwards; its owner makes a new one.
 */
export class SandboxFailure extends Error {
  override readonly name = 'SandboxFailure';
  constructor(readonly kind: 'timeout' | 'memory' | 'crashed', message: string) {
    super(message);
  }
}

export interface ScriptSandbox {
  /**
   * Runs the script's execute() on a batch, numbered `batch` (its ctx.infer
   * calls come to the bridge with that number). `transfer` lists buffers inside
   * `requests` that move into the sandbox instead of being copied. Rejects
   * with a SandboxFailure when a limit stopped the script, or with the
   * script's own error. Several may run at once: one starts while others
   * wait on ctx.infer.
   */
  execute(requests: readonly ScriptRequest[], transfer: readonly ArrayBuffer[], batch: number): Promise<readonly ScriptResponse[]>;
  /**
   * The same for a decoupled model: responses go out through the bridge's
   * respond() as the script sends them, tagged with `batch` (each has
   * arrived before send() returns), and the promise resolves once execute()
   * has.
   */
  executeDecoupled(requests: readonly ScriptRequest[], transfer: readonly ArrayBuffer[], batch: number): Promise<void>;
  /** Tells request `index` of a running decoupled batch that nobody wants its responses any more. */
  cancel(batch: number, index: number): void;
  /** False once a limit or a crash ended it. */
  readonly alive: boolean;
  /** Runs the script's finalize() (within the time limit) and frees the sandbox. */
  dispose(): Promise<void>;
}
