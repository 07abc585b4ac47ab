/**
 * InferenceEngine: the single facade every frontend, ensemble step and
 * script calls. It owns the model repository and knows nothing of HTTP or
 * gRPC.
 */
import type { BackendInstance } from './backend.ts';
import type { BackendRegistry } from './backend-registry.ts';
import type { ModelConfigObject } from './config/model-config-schema.ts';
import type { ConfigCompletion } from './config/compile-model-config.ts';
import { asSwitchyardError, isSwitchyardError, serverError, SwitchyardError } from './errors.ts';
import { callFrameModel, type InferenceRequest, type Mutable } from './inference-request.ts';
import type { InferenceResponse, ModelResponse, ResponseTaken } from './inference-response.ts';
import { createLogger, type Logger } from './logger.ts';
import { BufferPool, type BufferPoolStats } from './memory/buffer-pool.ts';
import { BufferLease, unmarked } from './memory/buffer-lease.ts';
import { SharedMemoryManager, type SharedMemoryOptions } from './memory/shared-memory-manager.ts';
import { ResponseCache } from './cache/response-cache.ts';
import type { ModelVersionState } from './repository/model-lifecycle.ts';
import { checkModelName } from './repository/model-name.ts';
import { ModelRepository, type LoadOutcome } from './repository/model-repository.ts';
import { modelFailure, type ModelEntry } from './repository/model-entry.ts';
import type { ModelOverride } from './repository/model-upload.ts';
import type { ModelVersion } from './repository/model-version.ts';
import type { ModelStatisticsJson } from './observability/model-stats.ts';
import { classifyOutput } from './output-classification.ts';
import { inputsForModel, outputsForClient } from './tensor-reshape.ts';
import type { CompiledModelConfig } from './config/compiled-model-config.ts';
import { normalizeRequest, type NormalizedRequest } from './request-normalizer.ts';
import { ResponseStream, type StreamBufferLimits } from './response-stream.ts';
import { Tracer } from './observability/trace/tracer.ts';
import type { RequestTrace } from './observability/trace/request-trace.ts';
import { DEFAULT_TRACE_VALUES, type TraceStartup } from './observability/trace/trace-settings.ts';
import { idleWithin, InflightCounter } from './scheduling/inflight-counter.ts';
import { RateLimiter, type RateLimiterOptions } from './scheduling/rate-limiter.ts';
import type { Tensor } from './tensor.ts';

/** The lookup errors that statistics answer with Triton's STATS_NOT_AVAILABLE instead. */
const STATS_UNAVAILABLE: ReadonlySet<string> = new Set(['MODEL_NOT_FOUND', 'MODEL_VERSION_UNAVAILABLE', 'MODEL_NO_VERSIONS']);

export interface InferenceEngineOptions {
  /** Repository folders to serve. Required. */
  readonly modelRepositories: readonly string[];
  /**
   * The backends models may name (by `backend` or `platform`). Required: the
   * engine builds none itself (see server/composition-root.ts, and
   * backends/default-backends.ts for the ones this build ships).
   */
  readonly backends: BackendRegistry;
  /** Models to load at start (explicit model control). Default: every model found. */
  readonly startupModels?: readonly string[];
  /** Ready only when every model is ready. Default true, as tritonserver. */
  readonly strictReadiness?: boolean;
  readonly logger?: Logger;
  /** Server name in GET /v2. Default 'switchyard'. */
  readonly id?: string;
  /**
   * Reuse tensor memory across requests: batch inputs, preallocated outputs,
   * intermediate tensors of ensembles. Default true; false allocates fresh
   * buffers every time (the baseline the ensemble benchmark compares against).
   */
  readonly bufferPooling?: boolean;
  /**
   * 'none' (default) serves what was loaded at start and refuses load and
   * unload requests, as tritonserver does; 'explicit' lets them through;
   * 'poll' follows the repository folders (see repositoryPollSecs) and
   * refuses them too.
   */
  readonly modelControlMode?: ModelControlMode;
  /** In 'poll' mode, seconds between two looks at the repository; 0 polls only when pollRepository() is called. Default 15. */
  readonly repositoryPollSecs?: number;
  /**
   * The response cache (tritonserver's --cache-config local,size=N), shared
   * by the models whose config sets response_cache { enable: true }.
   * Default: none, and no model caches.
   */
  readonly responseCache?: { readonly sizeBytes: number };
  /**
   * How many responses, and bytes of tensor data, of one decoupled request
   * may wait unread in its stream before the model's send() waits for the
   * reader (--stream-buffer-responses, --stream-buffer-bytes). Default
   * DEFAULT_STREAM_BUFFER: 16 responses, 16 MiB.
   */
  readonly streamBuffer?: StreamBufferLimits;
  /**
   * Auto-complete of model configs from the model itself, and the
   * max_batch_size it gives models that batch (--disable-auto-complete-config,
   * --backend-config=default-max-batch-size=N). Default on, 4.
   */
  readonly configCompletion?: ConfigCompletion;
  /**
   * Triton's rate limiter (--rate-limit, --rate-limit-resource): with mode
   * 'execution_count' instances execute only when the resources their
   * instance_group.rate_limiter declares are free, taking turns by priority,
   * across all models. Default: off, nothing is limited.
   */
  readonly rateLimiter?: RateLimiterOptions;
  /**
   * The system shared memory extension (--allow-client-shm, --max-shm-regions).
   * Default: regions may not be registered, as in Triton since 2.69.
   */
  readonly sharedMemory?: SharedMemoryOptions;
  /** --model-config-name: each model's configs/<name>.pbtxt (or .yaml, .yml, .json) when it has one, else its usual config. */
  readonly modelConfigName?: string;
  /** --model-load-retry-count: how many more times a failed version load is tried; default 0. */
  readonly modelLoadRetryCount?: number;
  /** --model-load-thread-count: how many models load at once; default 4. */
  readonly modelLoadThreadCount?: number;
  /** --model-namespacing: each repository folder is a namespace; a model name may appear in several. */
  readonly modelNamespacing?: boolean;
  /**
   * Triton's trace extension (--trace-config): the mode, the global settings
   * and the mode's own settings. Default: triton mode, level OFF, rate 1000,
   * count -1, no file; the settings can then be changed at run time, as in
   * Triton, but nothing is traced without a file.
   */
  readonly trace?: TraceStartup;
}

export type ModelControlMode = 'none' | 'explicit' | 'poll';

/** What a load request may carry (Triton's load parameters). */
export type LoadModelOptions = ModelOverride;

export interface UnloadModelOptions {
  /** Also unload the ensembles that call the model (Triton's unload_dependents). */
  readonly unloadDependents?: boolean;
}

export interface TensorMetadata {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

export interface ModelMetadata {
  readonly name: string;
  readonly versions: readonly string[];
  readonly platform: string;
  readonly inputs: readonly TensorMetadata[];
  readonly outputs: readonly TensorMetadata[];
}

export interface ServerMetadata {
  readonly name: string;
  readonly version: string;
  readonly extensions: readonly string[];
}

export interface ModelIndexEntry {
  readonly name: string;
  readonly version: string;
  readonly state: ModelVersionState;
  readonly reason: string;
}

export const SERVER_VERSION = '0.1.0';

/** Protocol extensions this build implements, in Triton's order; frontends list exactly these. */
export const EXTENSIONS: readonly string[] = [
  'classification', 'sequence', 'model_repository', 'model_repository(unload_dependents)', 'schedule_policy', 'model_configuration',
  'system_shared_memory', 'binary_tensor_data', 'parameters', 'statistics', 'trace', 'logging',
];

/** The statistics extension's answer: one entry per model version, in Triton's JSON shape. */
export interface ModelStatisticsResponse {
  readonly model_stats: ModelStatisticsJson[];
}

/** The request with its inputs in the shapes the model takes (see tensor-reshape.ts); itself when no input is reshaped. */
function withModelShapes(config: CompiledModelConfig, request: InferenceRequest): InferenceRequest {
  const inputs = inputsForModel(config, request.inputs);
  return inputs === request.inputs ? request : { ...request, inputs };
}


/** Triton's default --repository-poll-secs. */
const DEFAULT_POLL_SECS = 15;

/** Deeper than this, a chain of calls between models is taken for runaway recursion. */
export const MAX_CALL_DEPTH = 32;

/**
 * A chain of calls deeper than MAX_CALL_DEPTH is refused: runaway recursion
 * fails fast instead of filling the server. (A call that could wait on the
 * calls above it is the scheduler's to see: see DynamicBatcher.)
 */
function assertCallDepth(model: string, chain: readonly string[]): void {
  if (chain.length >= MAX_CALL_DEPTH) throw serverError('CALL_DEPTH', { model, depth: chain.length, max: MAX_CALL_DEPTH });
}

/** Where a request's model name came from, for INVALID_MODEL_NAME: a call from a script or ensemble names its caller. */
function requestSource(request: InferenceRequest): string {
  const caller = request.callChain?.at(-1);
  return caller === undefined ? 'the request' : `a call from '${callFrameModel(caller)}'`;
}

export class InferenceEngine {
  private closed = false;
  /** Set once shutdown began: readiness is false and new requests from clients are refused. */
  private draining = false;
  /** Calls into infer() and inferStream() not yet answered, nested ones included. */
  private readonly active = new InflightCounter();
  private pollTimer: NodeJS.Timeout | undefined;
  /** Told of the version each request goes to (see watchVersions). */
  private readonly versionWatchers = new Set<(version: ModelVersion) => void>();

  /** A number per loaded version, in response cache keys: a reload with the same version number never sees older answers. */
  private readonly cacheGenerations = new WeakMap<ModelVersion, number>();
  private nextCacheGeneration = 1;

  private constructor(
    private readonly repository: ModelRepository,
    private readonly options: InferenceEngineOptions,
    readonly logger: Logger,
    private readonly bufferPool: BufferPool,
    /** The response cache, when the server runs with one (options.responseCache); its stats() feed the nv_cache_* metrics. */
    readonly cache: ResponseCache | undefined,
    /** Registered system shared memory regions, one namespace for every frontend; closed with the server. */
    readonly sharedMemory: SharedMemoryManager,
    /** The trace extension: its settings, and which requests frontends trace (sample()). */
    readonly tracer: Tracer,
  ) {}

  static async create(options: InferenceEngineOptions): Promise<InferenceEngine> {
    const logger = options.logger ?? createLogger();
    const bufferPool = new BufferPool({ enabled: options.bufferPooling !== false });
    const rateLimiter = options.rateLimiter ? RateLimiter.create(options.rateLimiter) : undefined;
    // Ensemble steps and scripts call back into the server, even while the repository
    // loads: a script's initialize() may call a model that is already loaded.
    let engine: InferenceEngine | undefined;
    const infer = (request: InferenceRequest): Promise<InferenceResponse> => engine!.infer(request);
    const inferStream = (request: InferenceRequest): Promise<ResponseStream> => engine!.inferStream(request);
    const repository = ModelRepository.open({
      paths: options.modelRepositories, backends: options.backends, logger, startupModels: options.startupModels, infer, inferStream, bufferPool,
      ...(options.configCompletion ? { completion: options.configCompletion } : {}),
      ...(rateLimiter ? { rateLimiter } : {}),
      ...(options.modelConfigName !== undefined ? { configName: options.modelConfigName } : {}),
      ...(options.modelLoadRetryCount !== undefined ? { loadRetryCount: options.modelLoadRetryCount } : {}),
      ...(options.modelLoadThreadCount !== undefined ? { loadThreadCount: options.modelLoadThreadCount } : {}),
      ...(options.modelNamespacing ? { namespacing: true } : {}),
    });
    const cache = options.responseCache ? new ResponseCache(options.responseCache) : undefined;
    const tracer = new Tracer(options.trace ?? { mode: 'triton', values: DEFAULT_TRACE_VALUES, modeSettings: [] }, logger);
    engine = new InferenceEngine(repository, options, logger, bufferPool, cache, new SharedMemoryManager(options.sharedMemory), tracer);
    await repository.load();
    engine.warnUncached(repository.list().map((entry) => entry.name));
    const pollSecs = options.repositoryPollSecs ?? DEFAULT_POLL_SECS;
    if (options.modelControlMode === 'poll' && pollSecs > 0) engine.startPolling(pollSecs * 1000);
    return engine;
  }

  private startPolling(intervalMs: number): void {
    let running = false;
    this.pollTimer = setInterval(() => {
      if (running || this.closed) return;
      running = true;
      this.pollRepository().catch((err: unknown) => this.logger.error(`repository poll failed: ${(err as Error).message}`))
        .finally(() => { running = false; });
    }, intervalMs);
    this.pollTimer.unref();
  }

  /**
   * One look at the repository (what poll mode does every
   * --repository-poll-secs): changed models reload, new ones load, removed
   * ones unload. A model whose new files fail to load keeps serving the
   * version it had, and its index entry says why.
   */
  async pollRepository(): Promise<LoadOutcome> {
    const outcome = await this.repository.poll();
    for (const [name, failure] of outcome) if (failure === undefined) this.evictCached(name);
    this.warnUncached([...outcome.keys()]);
    return outcome;
  }

  /** The single entry point for inference. */
  async infer(request: InferenceRequest): Promise<InferenceResponse> {
    const trace = request.trace;
    try {
      this.assertTakingRequests(request);
    } catch (err) {
      if (trace) endTrace(trace, false);
      throw err;
    }
    this.active.enter();
    let traced = false;
    // One async frame per request: the lookup, checks, scheduling and answer are all here.
    try {
      checkModelName(request.modelName, () => requestSource(request));
      let entry = this.repository.get(request.modelName, request.modelNamespace);
      if (!entry) {
        await this.repository.loaded(request.modelName);
        entry = this.repository.get(request.modelName, request.modelNamespace);
      }
      const version = readyVersionOf(entry, request.modelName, request.modelVersion);
      const config = version.config!;
      if (trace) {
        trace.begin(config.name, String(version.version), request.id, undefined, sequenceIdOf(request));
        traced = true;
      }
      const cache = this.cache && config.responseCache ? this.cache : undefined;
      // Read only for the cache's statistics: most requests skip the clock here.
      const received = cache ? performance.now() : 0;
      if (this.versionWatchers.size > 0) for (const watch of this.versionWatchers) watch(version);
      if (request.callChain) assertCallDepth(config.name, request.callChain);
      if (config.decoupled) throw serverError('DECOUPLED_UNARY', { model: config.name });
      const normalized = normalizeRequest(config, request);
      const parameters = version.scheduler!.responseParameters?.(request);
      const forModel = withModelShapes(config, request);
      const answered = outputsForClient(config, cache
        ? await this.inferCached(cache, version, forModel, normalized, received)
        : await version.scheduler!.enqueue(forModel, normalized));
      // An ensemble step or a script's ctx.infer (ownOutputs) owns what the marks say: no lease, the tensors as answered.
      // Anyone else gets plain tensors, and the response's lease, not the marks, answers for the pooled memory.
      const owning = request.ownOutputs === true && !request.classification;
      const lease = owning ? undefined : BufferLease.ofTensors(this.bufferPool, answered);
      let outputs: readonly Tensor[];
      try {
        outputs = owning ? answered : (request.classification ? this.classified(answered, request.classification, config) : answered).map(unmarked);
      } catch (err) {
        lease?.release();
        throw err;
      }
      // Built field by field, in the order the codecs have always seen: no spread of a temporary object per request.
      const response: Mutable<InferenceResponse> = request.id
        ? { modelName: config.name, modelVersion: String(version.version), id: request.id, outputs }
        : { modelName: config.name, modelVersion: String(version.version), outputs };
      if (parameters) response.parameters = parameters;
      if (lease && !lease.ended) response.lease = lease;
      if (trace) for (const tensor of outputs) trace.tensor('TENSOR_BACKEND_OUTPUT', tensor);
      return response;
    } catch (err) {
      trace?.fail(err instanceof Error ? err.message : String(err));
      throw err;
    } finally {
      if (trace) endTrace(trace, traced);
      this.active.leave();
    }
  }

  /** Refuses a new request once shutdown began; calls made by requests already running (ensemble steps, scripts) go on. */
  private assertTakingRequests(request: InferenceRequest): void {
    if (this.closed || (this.draining && (request.callChain?.length ?? 0) === 0)) throw serverError('SERVER_EXITING', {});
  }

  /** Outputs asked for with a class count, replaced by their top classes. */
  private classified(outputs: readonly Tensor[], counts: ReadonlyMap<string, number>, config: CompiledModelConfig): Tensor[] {
    return outputs.map((tensor) => {
      const count = counts.get(tensor.name);
      if (count === undefined) return tensor;
      const labels = config.outputByName.get(tensor.name)?.labels;
      return classifyOutput(tensor, { model: config.name, count, batched: config.maxBatchSize > 0, ...(labels ? { labels } : {}) });
    });
  }

  /**
   * A request to a model that caches its answers: from the cache when it
   * holds them (the scheduler never sees the request), else from the model,
   * whose answer the cache then keeps a copy of. A failed request is not
   * kept. Statistics as Triton counts them (ModelStats.recordCacheHit/Miss).
   */
  private async inferCached(
    cache: ResponseCache, version: ModelVersion, request: InferenceRequest, normalized: NormalizedRequest, received: number,
  ): Promise<readonly Tensor[]> {
    const config = version.config!;
    let generation = this.cacheGenerations.get(version);
    if (generation === undefined) {
      generation = this.nextCacheGeneration++;
      this.cacheGenerations.set(version, generation);
    }
    const lookupStart = performance.now();
    // The key is taken before the request is queued: a backend may move pooled input memory away.
    const key = cache.keyOf(config.name, version.version, generation, request, normalized.outputs);
    const cached = cache.lookup(key);
    const lookupEnd = performance.now();
    if (cached) {
      // Pooled inputs were handed over with the request (an ensemble step's); with no backend to take them, they go back here.
      BufferLease.ofTensors(this.bufferPool, request.inputs).release();
      version.stats.recordCacheHit((lookupEnd - received) * 1e6, (lookupStart - received) * 1e6, (lookupEnd - lookupStart) * 1e6);
      return cached;
    }
    const answered = await version.scheduler!.enqueue(request, normalized);
    const insertStart = performance.now();
    // A version retired while this request ran (unloaded, replaced) keeps no new answers.
    if (version.state === 'READY') cache.insert(key, config.name, answered);
    version.stats.recordCacheMiss((lookupEnd - lookupStart + performance.now() - insertStart) * 1e6);
    return answered;
  }

  /** Models that ask for the response cache on a server without one load and answer uncached, as in Triton; each is told of once per load. */
  private warnUncached(names: readonly string[]): void {
    if (this.cache) return;
    const wanted = new Set(names);
    // Every entry of each name: with --model-namespacing, a name may be in several repositories.
    for (const entry of this.repository.list()) {
      if (!wanted.has(entry.name)) continue;
      const asking = [...entry.versions.values()].filter((v) => v.state === 'READY' && v.config!.responseCache);
      if (asking.length === 0) continue;
      this.logger.warn(`model '${entry.name}' sets response_cache { enable: true }, but the server runs without a response cache, ` +
        'so its responses are not cached; start the server with --cache-config local,size=<bytes> to cache them');
    }
  }

  /** Drops the cached answers of models unloaded or reloaded, and of the ensembles that call them. */
  private evictCached(name: string): void {
    if (!this.cache) return;
    for (const model of [name, ...this.repository.dependentsOf(name)]) this.cache.evictModel(model);
  }

  /**
   * The entry for callers that can take several responses per request
   * (gRPC ModelStreamInfer, HTTP generate_stream): any model. A model that
   * is not decoupled goes through infer(), and its stream holds that one
   * answer; infer()'s errors reject. A decoupled model's request is checked
   * as infer() checks one (rejecting with the same errors), then its stream
   * takes each response as the model sends it, and any later failure
   * (cancelled, execute() threw) as a final error item.
   */
  async inferStream(request: InferenceRequest): Promise<ResponseStream> {
    const startedAt = performance.now();
    let version: ModelVersion;
    let normalized: NormalizedRequest;
    let handedToInfer = false;
    try {
      this.assertTakingRequests(request);
      checkModelName(request.modelName, () => requestSource(request));
      if (!this.repository.get(request.modelName, request.modelNamespace)) await this.repository.loaded(request.modelName);
      version = this.readyVersion(request.modelName, request.modelVersion, request.modelNamespace);
      // infer() takes it from here, the trace included.
      if (!version.config!.decoupled) {
        handedToInfer = true;
        return ResponseStream.answered(await this.infer(request));
      }
      if (request.callChain) assertCallDepth(version.config!.name, request.callChain);
      normalized = normalizeRequest(version.config!, request);
    } catch (err) {
      // Refused before it started: a step's or a call's trace is done too.
      if (request.trace && !handedToInfer) {
        request.trace.fail(err instanceof Error ? err.message : String(err));
        endTrace(request.trace, false);
      }
      throw err;
    }
    const config = version.config!;
    for (const watch of this.versionWatchers) watch(version);
    const stream = new ResponseStream({
      modelName: config.name, modelVersion: String(version.version), ...(request.id ? { id: request.id } : {}), decoupled: true, stats: version.stats, startedAt,
      ...(this.options.streamBuffer ? { buffer: this.options.streamBuffer } : {}),
    });
    this.active.enter();
    const counts = request.classification;
    const forClient = (outputs: readonly Tensor[]): readonly Tensor[] => {
      const shaped = outputsForClient(config, outputs);
      return counts ? this.classified(shaped, counts, config) : shaped;
    };
    const accept = (response: ModelResponse): ResponseTaken => stream.accept(response.outputs ? { ...response, outputs: forClient(response.outputs) } : response);
    const trace = request.trace;
    trace?.begin(config.name, String(version.version), request.id, undefined, sequenceIdOf(request));
    // The stream's reader may release the trace as soon as it has read the final response: held until REQUEST_END.
    const unhold = trace?.hold();
    version.scheduler!.enqueue({ ...withModelShapes(config, request), onResponse: accept }, normalized).then(
      () => stream.close(),
      (err: unknown) => {
        const error = asSwitchyardError(err, config.name);
        trace?.fail(error.message);
        stream.fail(error);
      },
    ).finally(() => {
      if (trace) endTrace(trace, true);
      unhold?.();
      this.active.leave();
    });
    return stream;
  }

  /** Throws the catalogue error infer() would give for this model and version, before any decoding work. */
  assertModelReady(name: string, version?: string): void {
    this.readyVersion(name, version);
  }

  isLive(): boolean {
    return !this.closed;
  }

  isReady(): boolean {
    if (this.closed || this.draining) return false;
    if (this.options.strictReadiness === false) return true;
    // A model unloaded on request no longer counts; one that a reload replaces counts through its successor.
    return this.repository.list().every((entry) => entry.state.kind === 'unloaded' || (entry.state.kind !== 'failed' && entry.versions.size > 0
      && [...entry.versions.values()].every((v) => v.state === 'READY')));
  }

  isModelReady(name: string, version?: string): boolean {
    try {
      this.readyVersion(name, version);
      return true;
    } catch (err) {
      if (err instanceof SwitchyardError) return false;
      throw err;
    }
  }

  serverMetadata(): ServerMetadata {
    return { name: this.options.id ?? 'switchyard', version: SERVER_VERSION, extensions: EXTENSIONS };
  }

  modelMetadata(name: string, version?: string): ModelMetadata {
    const chosen = this.readyVersion(name, version);
    const config = chosen.config!;
    const entry = this.repository.get(name)!;
    const versions = version ? [String(chosen.version)]
      : [...entry.versions.values()].filter((v) => v.state === 'READY').map((v) => String(v.version));
    const batch = config.maxBatchSize > 0 ? [-1] : [];
    const describe = (t: { name: string; datatype: string; dims: readonly number[] }): TensorMetadata =>
      ({ name: t.name, datatype: t.datatype, shape: [...batch, ...t.dims] });
    return {
      name, versions, platform: config.platform || config.backend,
      inputs: config.inputs.map(describe), outputs: config.outputs.map(describe),
    };
  }

  /** The completed config in Triton's JSON form. */
  modelConfig(name: string, version?: string): ModelConfigObject {
    return this.readyVersion(name, version).config!.json;
  }

  /**
   * Every model version the repository knows, with its state and reason,
   * by name: loaded ones, ones that failed, and (explicit model control)
   * folders not loaded yet. A version still serving after a failed reload
   * is READY with the failure as its reason.
   */
  repositoryIndex(): ModelIndexEntry[] {
    const loaded = this.repository.list().flatMap((entry) => entry.versions.size === 0
      ? [{ name: entry.name, version: '', state: 'UNAVAILABLE' as const, reason: modelFailure(entry) ?? 'no versions' }]
      : [...entry.versions.values()].map((v) => ({
        name: entry.name, version: String(v.version), state: v.state, reason: v.state === 'READY' && entry.state.kind === 'reload-failed' ? entry.state.reason : v.reason,
      })));
    const available = this.repository.notLoaded().map((name) => ({ name, version: '', state: 'UNAVAILABLE' as const, reason: 'not loaded' }));
    return [...loaded, ...available].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Statistics in Triton's JSON shape. No name: every READY version of every
   * model, by name then version. A name: that model's READY versions, or
   * only `version`; an unknown model or version, a bad version string, or a
   * model with no READY version gets the catalogue error the other per-model
   * calls give.
   */
  modelStatistics(name?: string, version?: string): ModelStatisticsResponse {
    const byVersion = (a: ModelVersion, b: ModelVersion): number => a.version - b.version;
    const snapshot = (model: string, v: ModelVersion): ModelStatisticsJson => v.stats.snapshot(model, String(v.version));
    if (name === undefined || name === '') {
      const entries = [...this.repository.list()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return {
        model_stats: entries.flatMap((entry) => [...entry.versions.values()]
          .filter((v) => v.state === 'READY').sort(byVersion).map((v) => snapshot(entry.name, v))),
      };
    }
    // As in Triton: a model with no ready version, or a version that is not ready, is an invalid argument here, not a missing model.
    let chosen: ModelVersion;
    try {
      chosen = this.readyVersion(name, version);
    } catch (err) {
      if (!isSwitchyardError(err) || !STATS_UNAVAILABLE.has(err.code)) throw err;
      const ready = [...(this.repository.get(name)?.versions.values() ?? [])].filter((v) => v.state === 'READY').sort(byVersion).map((v) => String(v.version));
      throw serverError('STATS_NOT_AVAILABLE', { model: name, ...(version && ready.length > 0 ? { version } : {}), ready });
    }
    if (version) return { model_stats: [snapshot(name, chosen)] };
    const ready = [...this.repository.get(name)!.versions.values()].filter((v) => v.state === 'READY').sort(byVersion);
    return { model_stats: ready.map((v) => snapshot(name, v)) };
  }

  /**
   * Loads a model, or reloads it (explicit model control), from the
   * repository or from the config and files the request carries. A reload
   * loses no request: the new version becomes READY first, then the old
   * one finishes what it took. A failed reload leaves the old one serving.
   */
  async loadModel(name: string, options: LoadModelOptions = {}): Promise<void> {
    this.assertModelControl();
    checkModelName(name, 'the load or unload request');
    if (options.files && options.files.size > 0 && options.config === undefined) {
      throw serverError('MODEL_LOAD_FAILED', {
        model: name, detail: "file overrides need the model config too: send it as parameters.config (JSON) with the 'file:' parameters",
      });
    }
    const overrides = options.config !== undefined || options.files ? new Map([[name, options]]) : new Map<string, ModelOverride>();
    const outcome = await this.repository.loadModels([name], overrides);
    const failure = outcome.get(name);
    if (failure !== undefined) throw serverError('MODEL_LOAD_FAILED', { model: name, detail: failure });
    this.evictCached(name);
    this.warnUncached([...outcome.keys()]);
  }

  /**
   * Unloads a model (explicit model control): new requests are refused, the
   * ones it took finish, then it is released. With unloadDependents, the
   * ensembles that call it go too, naming it as the reason; without, they
   * stay, and a request reaching the missing step fails naming it.
   */
  async unloadModel(name: string, options: UnloadModelOptions = {}): Promise<void> {
    this.assertModelControl();
    checkModelName(name, 'the load or unload request');
    if (!this.repository.has(name)) {
      if (this.repository.notLoaded().includes(name)) return;
      throw serverError('MODEL_NOT_FOUND', { model: name });
    }
    await this.repository.unload(name, { dependents: options.unloadDependents === true });
    this.evictCached(name);
  }

  /**
   * Graceful shutdown, first half: readiness turns false and new requests
   * are refused (calls from requests already running go on), then this
   * waits until every request taken has answered, or `timeoutMs` passed.
   * Resolves with how many were still running. close() then releases
   * everything.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.draining = true;
    await idleWithin(this.idle(), timeoutMs);
    return this.active.count;
  }

  /** Resolves once every request taken, in all models, has answered: at once if none is running. */
  idle(): Promise<void> {
    return this.active.idle();
  }

  /** Tensor memory handed out and reused since the server started. */
  bufferPoolStats(): BufferPoolStats {
    return this.bufferPool.stats();
  }

  private assertModelControl(): void {
    const mode = this.options.modelControlMode ?? 'none';
    if (mode !== 'explicit') throw serverError('MODEL_CONTROL_DISABLED', { mode });
  }

  /** Every READY model version, by model name then version number: what the metrics endpoint reads when scraped. */
  readyVersions(): ModelVersion[] {
    return this.repository.list().flatMap((entry) => [...entry.versions.values()]
      .filter((v) => v.state === 'READY').sort((a, b) => a.version - b.version));
  }

  /**
   * Calls `watch` with every READY version now, then with the version each
   * request goes to, before the request is scheduled: a listener that
   * `watch` puts on the version's stats hears all of its traffic, including
   * that of versions loaded later. Returns the function that stops it.
   */
  watchVersions(watch: (version: ModelVersion) => void): () => void {
    for (const version of this.readyVersions()) watch(version);
    this.versionWatchers.add(watch);
    return () => {
      this.versionWatchers.delete(watch);
    };
  }

  /** Requests queued or executing for a ready model version (Triton's pending request count). */
  pendingRequestCount(name: string, version?: string): number {
    return this.readyVersion(name, version).scheduler!.inflightCount();
  }

  /** A ready version's execution instances, for diagnostics and fault tests (for example, killing a worker). */
  instancesOf(name: string, version?: string): readonly BackendInstance[] {
    return this.readyVersion(name, version).instances;
  }

  /**
   * Models or versions that failed to load, with why. A folder that was
   * never asked for (explicit model control loads only --load-model) is
   * listed by the index as not loaded, and is not a failure.
   */
  loadFailures(): ModelIndexEntry[] {
    const notAskedFor = new Set(this.repository.notLoaded());
    return this.repositoryIndex().filter((e) => e.state === 'UNAVAILABLE' && !notAskedFor.has(e.name));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    await Promise.all([this.repository.close(), this.sharedMemory.close()]);
    await this.tracer.close();
  }

  private readyVersion(name: string, version: string | undefined, namespace?: string): ModelVersion {
    checkModelName(name);
    return readyVersionOf(this.repository.get(name, namespace), name, version);
  }
}

/** A request's sequence id (the `sequence_id` parameter) as a trace shows it, or undefined. */
function sequenceIdOf(request: InferenceRequest): string | undefined {
  const id = request.parameters?.['sequence_id'];
  return id === undefined ? undefined : String(id);
}

/** A request's end, on its trace: REQUEST_END once it began; a step's trace (made by the engine's caller, not a frontend) is released. */
function endTrace(trace: RequestTrace, begun: boolean): void {
  if (begun) trace.mark('REQUEST_END');
  if (trace.nested) trace.release();
}

/** The version of `entry` a request for `version` (or, with none, for the model) goes to, or the catalogue error why none can take it. */
function readyVersionOf(entry: ModelEntry | undefined, name: string, version: string | undefined): ModelVersion {
  if (!entry) throw serverError('MODEL_NOT_FOUND', { model: name });
  if (version) {
    if (!/^[0-9]+$/.test(version) || Number(version) < 1) throw serverError('BAD_VERSION', { model: name, version });
    const found = entry.versions.get(Number(version));
    if (!found) throw serverError('MODEL_NOT_FOUND', { model: name, version });
    if (found.state !== 'READY') {
      throw serverError('MODEL_VERSION_UNAVAILABLE', { model: name, version, state: found.state, reason: found.reason || undefined });
    }
    return found;
  }
  for (const candidate of entry.versions.values()) if (candidate.state === 'READY') return candidate;
  const reason = modelFailure(entry) ?? [...entry.versions.values()].map((v) => `version ${v.version}: ${v.reason || v.state}`).join('; ');
  throw serverError('MODEL_NO_VERSIONS', { model: name, reason: reason || undefined });
}
