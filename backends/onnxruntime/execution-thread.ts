/**
 * Where an ONNX instance runs its session: on its worker thread, or inline on
 * the event loop. A worker hand-off costs two cross-thread wake-ups (about
 * 35-40 µs each on a small VM) while a light model computes in a few
 * microseconds, so light models are cheaper inline; a heavy one would hold
 * the event loop, and every other request with it, so it stays on the worker.
 *
 * The model config's `parameters` choose (a Switchyard extension):
 * - `execution_thread`: `auto` (default) measures runs on the worker and goes
 *   inline while the median of recent runs computes under `inline_max_run_us`; `inline`
 *   always runs inline; `worker` never does. GPU instances always use the worker.
 * - `inline_max_run_us`: auto's threshold, 1 to 10000 µs (default 150).
 */
import type { InstanceGroupSpec } from '../../engine/config/compiled-model-config.ts';

export const EXECUTION_THREAD_MODES = ['auto', 'inline', 'worker'] as const;
export type ExecutionThreadMode = (typeof EXECUTION_THREAD_MODES)[number];

export const DEFAULT_INLINE_MAX_RUN_US = 150;
export const MAX_INLINE_MAX_RUN_US = 10_000;
/** Runs measured (on the worker) before auto mode first goes inline. */
export const INLINE_SAMPLE_RUNS = 16;
/** After each return to the worker, auto measures twice as many runs before going inline again, up to this many. */
export const MAX_INLINE_SAMPLE_RUNS = 4096;
/** An inline run over this many times the threshold (and at least 1 ms) is long; MAX_LONG_RUNS of them send the model back to the worker. */
const HARD_FACTOR = 4;
const MIN_HARD_LIMIT_NS = 1_000_000;

export interface ExecutionThreadSettings {
  readonly mode: ExecutionThreadMode;
  /** Auto mode runs inline while the median compute of recent runs stays at or under this. */
  readonly inlineMaxRunNs: number;
}

/** Reads `execution_thread` and `inline_max_run_us`; throws naming the parameter when a value is not one it takes. */
export function readExecutionThread(parameters: ReadonlyMap<string, string>, group: InstanceGroupSpec): ExecutionThreadSettings {
  const mode = parameters.get('execution_thread') || 'auto';
  if (!(EXECUTION_THREAD_MODES as readonly string[]).includes(mode)) {
    throw new Error(`parameters 'execution_thread' is '${mode}': use one of ${EXECUTION_THREAD_MODES.join(', ')}`);
  }
  if (mode === 'inline' && group.kind === 'GPU') {
    throw new Error(`parameters 'execution_thread' is 'inline' but instance_group '${group.name}' has kind KIND_GPU: ` +
      `CUDA sessions run on their worker only; use auto or worker`);
  }
  const limit = parameters.get('inline_max_run_us') || String(DEFAULT_INLINE_MAX_RUN_US);
  const us = /^\d+$/.test(limit) ? Number(limit) : NaN;
  if (!(us >= 1 && us <= MAX_INLINE_MAX_RUN_US)) {
    throw new Error(`parameters 'inline_max_run_us' is '${limit}': use a whole number of microseconds from 1 to ${MAX_INLINE_MAX_RUN_US}`);
  }
  return { mode: group.kind === 'GPU' ? 'worker' : mode as ExecutionThreadMode, inlineMaxRunNs: us * 1000 };
}

/**
 * Auto mode's choice, from measured compute per run (session.run alone, as
 * the statistics' compute_infer counts it). A pure state machine: the
 * instance records each run's time and asks where the next one goes. Run
 * times are wall clock, so on a busy machine a run the OS preempted reads
 * long; the median of the last runs and a count of long runs, not one
 * reading, decide.
 */
export class ExecutionThreadPolicy {
  private inline: boolean;
  /**
   * The last WINDOW run times since the last switch, as a ring (`size` of
   * them, the oldest at `oldest`), with running counts of the light ones
   * (at or under the threshold) and the long ones (over the hard limit).
   * The median is judged from the counts, so a run costs no sort and no
   * allocation: median <= threshold exactly when more than half the
   * window (floor(n / 2) + 1 of n) is light.
   */
  private readonly recent = new Float64Array(WINDOW);
  private size = 0;
  private oldest = 0;
  private lightRuns = 0;
  private longRuns = 0;
  private samples = 0;
  private required = INLINE_SAMPLE_RUNS;
  private switches = 0;
  private readonly hardLimitNs: number;

  constructor(private readonly settings: ExecutionThreadSettings) {
    this.inline = settings.mode === 'inline';
    this.hardLimitNs = Math.max(HARD_FACTOR * settings.inlineMaxRunNs, MIN_HARD_LIMIT_NS);
  }

  /** Where the next run should go. */
  get thread(): 'inline' | 'worker' {
    return this.inline ? 'inline' : 'worker';
  }

  /** Times the model moved between the worker and inline. */
  get switchCount(): number {
    return this.switches;
  }

  /** Records one run's compute, where it ran; in auto mode this may move the next runs. */
  record(where: 'inline' | 'worker', inferNs: number): void {
    if (this.settings.mode !== 'auto' || where !== this.thread) return;
    this.samples += 1;
    this.push(inferNs);
    const light = this.lightRuns >= Math.floor(this.size / 2) + 1;
    if (!this.inline) {
      if (this.samples >= this.required && light && this.longRuns === 0) this.move(true);
    } else if (this.longRuns >= MAX_LONG_RUNS || (this.size >= WINDOW / 2 && !light)) {
      this.required = Math.min(this.required * 2, MAX_INLINE_SAMPLE_RUNS);
      this.move(false);
    }
  }

  /** Inline turned out unusable (its session would not open): stay on the worker. */
  giveUpInline(): void {
    this.inline = false;
    this.required = Infinity;
  }

  private push(ns: number): void {
    if (this.size === WINDOW) {
      this.count(this.recent[this.oldest]!, -1);
      this.recent[this.oldest] = ns;
      this.oldest = (this.oldest + 1) % WINDOW;
    } else {
      this.recent[(this.oldest + this.size) % WINDOW] = ns;
      this.size += 1;
    }
    this.count(ns, 1);
  }

  private count(ns: number, by: 1 | -1): void {
    if (ns <= this.settings.inlineMaxRunNs) this.lightRuns += by;
    if (ns > this.hardLimitNs) this.longRuns += by;
  }

  private move(inline: boolean): void {
    this.inline = inline;
    this.samples = 0;
    this.size = 0;
    this.oldest = 0;
    this.lightRuns = 0;
    this.longRuns = 0;
    this.switches += 1;
  }
}

/** Run times the policy looks at: the last this many since the last switch. */
const WINDOW = 16;
/** Inline runs over the hard limit among the last WINDOW that send the model back to the worker. */
export const MAX_LONG_RUNS = 4;
