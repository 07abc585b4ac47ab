/**
 * Large JSON work off the event loop. JSON.parse builds one JS value per
 * element before any limit can look at them: a 64 MiB body of `0,` is 32M
 * values, about a second of blocked event loop and hundreds of MiB of heap,
 * and a handful at once exhausted the server's heap. So tasks over
 * `minBytes` run in a small pool of child processes, each with its heap
 * capped (--max-old-space-size). A task that needs more heap ends its
 * process, not the server: the request gets 413 naming the limit and the
 * process is replaced. Results come back compact (tensors as typed arrays,
 * responses as text), so the event loop never holds per-element values.
 *
 * Processes, not worker threads: a worker's resourceLimits are best-effort,
 * and one large allocation (JSON.parse's array of millions of elements is
 * one) aborts the whole process instead of the worker (nodejs/node#47224).
 *
 * Smaller tasks run in the calling thread through the same function
 * (runJsonCodecTask), so results and errors are the same either way. At most
 * `processes` tasks run at once and `queue` wait; one more is refused with
 * 503. Processes start on the first large task and stay until close().
 */
import { fork, type ChildProcess } from 'node:child_process';
import { serverError } from '../../engine/errors.ts';
import { silentLogger, type Logger } from '../../engine/logger.ts';
import { inPieces, PieceJoiner, type PieceMessage } from './json-codec-pieces.ts';
import {
  codecError, runJsonCodecTask, type JsonCodecFailure, type JsonCodecResult, type JsonCodecTask,
} from './json-codec-task.ts';

/** --http-json-codec-processes: JSON codec processes at most. */
export const DEFAULT_JSON_CODEC_PROCESSES = 1;
/** --http-json-codec-queue: large tasks that may wait for a process; one more is refused with 503. */
export const DEFAULT_JSON_CODEC_QUEUE = 8;
/** --http-json-codec-heap-mb: each process's V8 heap (old space), enough for a 64 MiB body of numbers. */
export const DEFAULT_JSON_CODEC_HEAP_MB = 1024;
/** --http-json-codec-min-bytes: JSON this large or larger goes to a process; smaller runs in the event loop's thread (about 20 ms per MiB). */
export const DEFAULT_JSON_CODEC_MIN_BYTES = 1024 * 1024;

const PROCESS_URL = new URL('./json-codec-process.mjs', import.meta.url);
const STDERR_TAIL = 4096;

export interface JsonCodecPoolOptions {
  readonly processes?: number;
  readonly queue?: number;
  readonly heapMb?: number;
  readonly minBytes?: number;
}

interface Job {
  readonly task: JsonCodecTask;
  /** The JSON bytes the task reads or writes, for the error message. */
  readonly bytes: number;
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: unknown) => void;
}

type Reply = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly failure: JsonCodecFailure };

/** What each kind of task is called in the out-of-memory message. */
const WORK: Readonly<Record<JsonCodecTask['kind'], string>> = {
  'infer-request': 'decoding the JSON request',
  'generate-request': 'decoding the JSON generate request',
  'json-object': 'decoding the JSON request body',
  'infer-response': 'encoding the response as JSON',
  'generate-response': 'encoding the generate response as JSON',
};

/** An idle process does not keep the server's event loop alive; a busy one does. */
function hold(child: ChildProcess, busy: boolean): void {
  const handles = [child, child.channel as { ref(): void; unref(): void } | null | undefined];
  for (const handle of handles) {
    if (busy) handle?.ref();
    else handle?.unref();
  }
}

class CodecProcess {
  job: Job | undefined;
  stderr = '';
  readonly joiner = new PieceJoiner();
  /** Settles on the child's 'close' (its stdio drained), once the pool has let it go. */
  readonly gone: Promise<void>;
  constructor(readonly child: ChildProcess) {
    this.gone = new Promise((resolve) => child.once('close', () => resolve()));
  }
}

export class JsonCodecPool {
  readonly processes: number;
  readonly queue: number;
  readonly heapMb: number;
  readonly minBytes: number;
  private readonly running = new Set<CodecProcess>();
  private readonly idle: CodecProcess[] = [];
  private readonly waiting: Job[] = [];
  private closed = false;

  /** `logger` hears of processes that end while working (out of heap, killed). */
  constructor(options: JsonCodecPoolOptions = {}, private readonly logger: Logger = silentLogger) {
    this.processes = options.processes ?? DEFAULT_JSON_CODEC_PROCESSES;
    this.queue = options.queue ?? DEFAULT_JSON_CODEC_QUEUE;
    this.heapMb = options.heapMb ?? DEFAULT_JSON_CODEC_HEAP_MB;
    this.minBytes = options.minBytes ?? DEFAULT_JSON_CODEC_MIN_BYTES;
  }

  /** Processes alive now (busy or idle); for tests and statistics. */
  get size(): number {
    return this.running.size;
  }

  /**
   * Whether a task whose JSON is `bytes` long runs in the calling thread.
   * A caller that checks first may call runJsonCodecTask itself and skip the
   * promise (and the microtask) run() wraps every answer in.
   */
  inThread(bytes: number): boolean {
    return bytes < this.minBytes;
  }

  /**
   * Runs `task`, whose JSON is `bytes` long: in this thread below
   * `minBytes`, else in a codec process. Rejects with what the client
   * should get: the task's own error, 413 when it needed more heap than a
   * process has, 503 when the queue is full.
   */
  run<T extends JsonCodecTask>(task: T, bytes: number): Promise<JsonCodecResult<T>> {
    if (this.inThread(bytes)) {
      try {
        return Promise.resolve(runJsonCodecTask(task));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.closed) return Promise.reject(serverError('SERVER_EXITING', {}));
    const busy = this.idle.length === 0 && this.running.size >= this.processes;
    if (busy && this.waiting.length >= this.queue) {
      return Promise.reject(serverError('JSON_CODEC_BUSY', { waiting: this.waiting.length, limit: this.queue }));
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ task, bytes, resolve: resolve as (result: unknown) => void, reject });
      this.dispatch();
    });
  }

  /** Ends every process; waiting and running tasks fail with SERVER_EXITING. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.reject(serverError('SERVER_EXITING', {}));
    const exits = [...this.running].map((proc) => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
      return proc.gone;
    });
    await Promise.all(exits);
  }

  private dispatch(): void {
    while (this.waiting.length > 0 && !this.closed) {
      const proc = this.idle.pop() ?? (this.running.size < this.processes ? this.start() : undefined);
      if (!proc) return;
      const job = this.waiting.shift()!;
      proc.job = job;
      hold(proc.child, true);
      this.send(proc, job).catch((err: unknown) => {
        // The process is gone (its 'close' fails the job) or the task could not be cloned.
        if (proc.job !== job) return;
        proc.job = undefined;
        job.reject(err);
        this.answer(proc, undefined);
      });
    }
  }

  /**
   * Sends a task, its large arrays first in pieces, each once the last is
   * written: a 64 MiB body costs the event loop a millisecond at a time.
   * The structured clone copies each view, so client memory is never moved.
   */
  private async send(proc: CodecProcess, job: Job): Promise<void> {
    const split = job.task.kind === 'json-object' ? { message: job.task, pieces: [] } : inPieces(job.task);
    const write = (message: unknown) => new Promise<void>((resolve, reject) => {
      proc.child.send(message as Parameters<ChildProcess['send']>[0], (err) => (err ? reject(err) : resolve()));
    });
    for (const piece of split.pieces) {
      if (proc.job !== job) return;
      await write(piece);
    }
    await write({ task: split.message });
  }

  private start(): CodecProcess {
    const child = fork(PROCESS_URL, [], {
      execArgv: [`--max-old-space-size=${this.heapMb}`],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const proc = new CodecProcess(child);
    this.running.add(proc);
    child.stderr!.on('data', (chunk: Buffer) => {
      proc.stderr = (proc.stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.on('message', (message: Reply | PieceMessage) => this.answer(proc, message));
    // 'close', not 'exit': the last of stderr (the out-of-memory report) has been read by then.
    child.once('close', (code, signal) => this.lost(proc, signal ?? `code ${code}`));
    child.once('error', () => child.kill('SIGKILL'));
    return proc;
  }

  /** A message from a process: a piece of its result, or the result (undefined: the job already failed here). */
  private answer(proc: CodecProcess, message: Reply | PieceMessage | undefined): void {
    if (proc.joiner.take(message)) return;
    const job = proc.job;
    proc.job = undefined;
    hold(proc.child, false);
    if (this.running.has(proc)) this.idle.push(proc);
    if (job && message) {
      const reply = job.task.kind === 'json-object' ? message as Reply : proc.joiner.join(message as Reply);
      if (reply.ok) job.resolve(reply.result);
      else job.reject(codecError(reply.failure));
    }
    this.dispatch();
  }

  /** A process ended: its task fails (413 when it ran out of heap), and a replacement starts when work waits. */
  private lost(proc: CodecProcess, how: string): void {
    this.running.delete(proc);
    const at = this.idle.indexOf(proc);
    if (at >= 0) this.idle.splice(at, 1);
    const job = proc.job;
    proc.job = undefined;
    if (job) {
      const outOfMemory = /heap out of memory|Reached heap limit|Allocation failed/.test(proc.stderr);
      this.logger.warn(`a JSON codec process ended (${how}${outOfMemory ? `, out of its ${this.heapMb} MiB heap` : ''}) while ${WORK[job.task.kind]} of ${job.bytes} bytes; the next large task starts a new one`);
      job.reject(outOfMemory
        ? serverError('JSON_CODEC_MEMORY', { work: WORK[job.task.kind], bytes: job.bytes, heapMb: this.heapMb })
        : new Error(`the JSON codec process ended (${how}) while ${WORK[job.task.kind]}`));
    }
    this.dispatch();
  }
}
