/**
 * One version of one model: its lifecycle, its compiled config, its backend
 * model and instances, and the scheduler in front of them.
 */
import type { Backend, BackendInstance, BackendModel } from '../backend.ts';
import { compileModelConfig, ENSEMBLE_BACKEND, type ConfigCompletion, type ModelSettings } from '../config/compile-model-config.ts';
import type { CompiledModelConfig } from '../config/compiled-model-config.ts';
import type { ParsedModelConfig } from '../config/parse-model-config.ts';
import type { Logger } from '../logger.ts';
import { ModelStats } from '../observability/model-stats.ts';
import { compileEnsembleConfig } from '../ensemble/compile-ensemble-config.ts';
import type { MemberLookup } from '../ensemble/ensemble-graph.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import { createScheduler } from '../scheduling/create-scheduler.ts';
import type { RateLimiter, RegisteredInstance } from '../scheduling/rate-limiter.ts';
import type { InferFunction } from '../infer-function.ts';
import type { InferStreamFunction } from '../response-stream.ts';
import { idleWithin } from '../scheduling/inflight-counter.ts';
import type { Scheduler } from '../scheduling/scheduler.ts';
import { ModelLifecycle, type ModelVersionState } from './model-lifecycle.ts';
import { warmUp } from './model-warmup.ts';

export interface ModelVersionSource {
  readonly modelName: string;
  readonly modelDir: string;
  readonly version: number;
  readonly versionDir: string;
  readonly parsed: ParsedModelConfig | undefined;
  readonly settings: ModelSettings;
  /** The backend that runs the model; undefined for an ensemble, which runs its members instead. */
  readonly backend: Backend | undefined;
  /** The server's infer(), for ensemble steps. */
  readonly infer?: InferFunction;
  /** The server's inferStream(), for the steps of decoupled ensembles. */
  readonly inferStream?: InferStreamFunction;
  /** Finds the member versions an ensemble's steps call. */
  readonly members?: MemberLookup;
  readonly bufferPool?: BufferPool;
  /** How far the config is completed from the model; default DEFAULT_CONFIG_COMPLETION. */
  readonly completion?: ConfigCompletion;
  /** The server's rate limiter (--rate-limit=execution_count); absent: nothing is limited. */
  readonly rateLimiter?: RateLimiter;
}

export class ModelVersion {
  readonly lifecycle = new ModelLifecycle();
  /** Statistics since this version loaded (Triton's statistics extension). */
  readonly stats = new ModelStats();
  /** How long load() took, backend and instances included, in milliseconds; set once READY. */
  loadDurationMs: number | undefined;
  private loaded: {
    config: CompiledModelConfig; scheduler: Scheduler; model: BackendModel | undefined; instances: readonly BackendInstance[];
    gates: readonly RegisteredInstance[];
  } | undefined;

  private constructor(readonly version: number) {}

  get state(): ModelVersionState {
    return this.lifecycle.state;
  }

  get reason(): string {
    return this.lifecycle.reason;
  }

  /** The compiled config, once READY. */
  get config(): CompiledModelConfig | undefined {
    return this.loaded?.config;
  }

  get scheduler(): Scheduler | undefined {
    return this.state === 'READY' ? this.loaded?.scheduler : undefined;
  }

  /** The execution instances, for diagnostics and fault tests. */
  get instances(): readonly BackendInstance[] {
    return this.loaded?.instances ?? [];
  }

  /** A version that could not even start loading, e.g. a specific version with no folder. */
  static unavailable(version: number, reason: string): ModelVersion {
    const v = new ModelVersion(version);
    v.lifecycle.moveTo('UNAVAILABLE', reason);
    return v;
  }

  /** Loads the version; never throws: a failure leaves it UNAVAILABLE with the reason. */
  static async load(source: ModelVersionSource, logger: Logger): Promise<ModelVersion> {
    const v = new ModelVersion(source.version);
    const started = performance.now();
    let model: BackendModel | undefined;
    const instances: BackendInstance[] = [];
    const gates: RegisteredInstance[] = [];
    try {
      let config: CompiledModelConfig;
      if (source.settings.backend === ENSEMBLE_BACKEND || !source.backend) {
        const members = source.members ?? (() => ({ problem: 'no model repository to look it up in' }));
        const compiled = compileEnsembleConfig(source.modelName, source.modelDir, source.parsed, source.settings, members);
        for (const warning of compiled.warnings) logger.warn(warning);
        config = compiled.config;
      } else {
        model = await source.backend.loadModel({
          modelName: source.modelName, version: source.version, modelDir: source.modelDir, versionDir: source.versionDir, settings: source.settings, logger,
          ...(source.bufferPool ? { bufferPool: source.bufferPool } : {}),
          ...(source.parsed ? { config: source.parsed.config } : {}),
          ...(source.infer ? { infer: source.infer } : {}),
          ...(source.inferStream ? { inferStream: source.inferStream } : {}),
        });
        config = compileModelConfig(source.modelName, source.modelDir, source.parsed, source.settings, model.signature, source.completion);
        for (const group of config.instanceGroups) {
          for (let i = 0; i < group.count; i++) instances.push(await model.createInstance(config, group, i));
        }
      }
      // Warmup runs before the scheduler exists: the version is not READY and takes no requests until it is done.
      await warmUp(config, instances, logger, source.bufferPool);
      if (source.rateLimiter && config.scheduling.kind !== 'ensemble') {
        registerWithLimiter(source.rateLimiter, `${source.modelName}/${source.version}`, config, gates);
      }
      const scheduler = createScheduler({
        config, instances, logger, stats: v.stats,
        ...(source.rateLimiter && config.scheduling.kind !== 'ensemble' ? { gates } : {}),
        ...(source.infer ? { infer: source.infer } : {}),
        ...(source.inferStream ? { inferStream: source.inferStream } : {}),
        ...(source.bufferPool ? { bufferPool: source.bufferPool } : {}),
      });
      v.loaded = { config, scheduler, model, instances, gates };
      v.loadDurationMs = performance.now() - started;
      v.lifecycle.moveTo('READY');
      const detail = config.scheduling.kind === 'ensemble'
        ? `ensemble of ${config.scheduling.plan.steps.length} step${config.scheduling.plan.steps.length === 1 ? '' : 's'}`
        : `${instances.length} instance${instances.length === 1 ? '' : 's'}`;
      logger.info(`successfully loaded '${source.modelName}' version ${source.version} (${detail})`);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      for (const gate of gates) gate.unregister();
      await model?.finalize().catch(() => {});
      v.lifecycle.moveTo('UNAVAILABLE', reason);
      logger.error(`failed to load '${source.modelName}' version ${source.version}: ${reason}`);
    }
    return v;
  }

  /**
   * Retires the version without losing a request: it stops taking new ones
   * at once (callers find it UNLOADING and go to its successor, or get an
   * error), every request already queued or running finishes, then it
   * unloads. `timeoutMs` bounds the wait; what is still queued after it is
   * refused as unload() refuses it.
   */
  async retire(reason = 'unloaded', timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.state !== 'READY' || !this.loaded) return;
    this.lifecycle.moveTo('UNLOADING', reason);
    await idleWithin(this.idle(), timeoutMs);
    await this.finishUnload(reason);
  }

  /** Resolves once the version has no request queued or running: at once if it is not loaded. */
  idle(): Promise<void> {
    return this.loaded?.scheduler.idle() ?? Promise.resolve();
  }

  /** Stops the scheduler, lets running work finish, and releases the instances. */
  async unload(reason = 'unloaded'): Promise<void> {
    if (this.state !== 'READY' || !this.loaded) return;
    this.lifecycle.moveTo('UNLOADING', reason);
    await this.finishUnload(reason);
  }

  private async finishUnload(reason: string): Promise<void> {
    await this.loaded!.scheduler.stop(reason);
    for (const gate of this.loaded!.gates) gate.unregister();
    await this.loaded!.model?.finalize();
    this.lifecycle.moveTo('UNAVAILABLE', reason);
  }
}

/**
 * Every instance of the version joins the rate limiter, in the order the
 * scheduler gets them; `gates` is filled as they do, so a failure part way
 * (a resource both global and per device, a pool given too small) can undo it.
 * An instance counts as on the device its group runs on: CPU instances on
 * device 0, as in Triton.
 */
function registerWithLimiter(limiter: RateLimiter, owner: string, config: CompiledModelConfig, gates: RegisteredInstance[]): void {
  for (const group of config.instanceGroups) {
    const device = group.kind === 'GPU' ? group.gpus[0] ?? 0 : 0;
    for (let i = 0; i < group.count; i++) gates.push(limiter.register(`${owner}/${group.name}_${i}`, device, group.rateLimiter));
  }
}
