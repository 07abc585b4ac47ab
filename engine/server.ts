/**
 * InferenceServer: the single facade every frontend, ensemble step and
 * script calls. It owns the model repository and knows nothing of HTTP or
 * gRPC.
 */
import type { Backend, BackendInstance } from '../backends/backend.ts';
import { OnnxBackend } from '../backends/onnxruntime/onnx-backend.ts';
import { TypeScriptBackend } from '../backends/typescript/typescript-backend.ts';
import type { ModelConfigObject } from './config/model-config-schema.ts';
import { asSwitchyardError, serverError, SwitchyardError } from './errors.ts';
import { callFrameModel, type InferenceRequest } from './inference-request.ts';
import type { InferenceResponse } from './inference-response.ts';
import { createLogger, type Logger } from './logger.ts';
import { BufferPool, type BufferPoolStats } from './memory/buffer-pool.ts';
import type { ModelVersionState } from './repository/model-lifecycle.ts';
import { ModelRepository, type ModelEntry } from './repository/model-repository.ts';
import type { ModelVersion } from './repository/model-version.ts';
import type { ModelStatisticsJson } from './observability/model-stats.ts';
import { normalizeRequest } from './request-normalizer.ts';
import { ResponseStream } from './response-stream.ts';
import type { Tensor } from './tensor.ts';

export interface InferenceServerOptions {
  /** Repository folders to serve. Required. */
  readonly modelRepositories: readonly string[];
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
   * unload requests, as tritonserver does; 'explicit' lets them through.
   */
  readonly modelControlMode?: 'none' | 'explicit';
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
export const EXTENSIONS: readonly string[] = ['sequence', 'schedule_policy', 'model_configuration', 'binary_tensor_data', 'statistics'];

/** The statistics extension's answer: one entry per model version, in Triton's JSON shape. */
export interface ModelStatisticsResponse {
  readonly model_stats: ModelStatisticsJson[];
}

/** The tensor without the pooled flag: the memory stays where it is and nobody may recycle it. */
function withoutOwnership(tensor: Tensor): Tensor {
  if (tensor.datatype === 'BYTES' || tensor.pooled !== true) return tensor;
  return { name: tensor.name, datatype: tensor.datatype, shape: tensor.shape, raw: tensor.raw };
}

/** Deeper than this, a chain of calls between models is taken for runaway recursion. */
export const MAX_CALL_DEPTH = 32;

/**
 * A call back into a model already up the call stack waits for one of its
 * instances; when every one is held by a batch waiting on this very chain
 * of calls, it would wait forever. Refuse it instead, naming the cycle.
 * Instances that are merely busy with other work free up, so the call waits.
 */
function assertNoDeadlock(version: ModelVersion, chain: readonly string[]): void {
  const model = version.config!.name;
  if (chain.length >= MAX_CALL_DEPTH) throw serverError('CALL_DEPTH', { model, depth: chain.length, max: MAX_CALL_DEPTH });
  const models = chain.map(callFrameModel);
  if (!models.includes(model)) return;
  const instances = version.instances;
  if (instances.length > 0 && instances.every((i) => i.heldBy?.(chain) === true)) {
    throw serverError('CALL_CYCLE', { model, chain: [...models.slice(models.indexOf(model)), model], instances: instances.length });
  }
}

export class InferenceServer {
  private closed = false;

  private constructor(
    private readonly repository: ModelRepository,
    private readonly options: InferenceServerOptions,
    readonly logger: Logger,
    private readonly bufferPool: BufferPool,
  ) {}

  static async create(options: InferenceServerOptions): Promise<InferenceServer> {
    const logger = options.logger ?? createLogger();
    const backends = new Map<string, Backend>([['onnxruntime', new OnnxBackend()], ['typescript', new TypeScriptBackend()]]);
    const bufferPool = new BufferPool({ enabled: options.bufferPooling !== false });
    // Ensemble steps and scripts call back into the server, even while the repository
    // loads: a script's initialize() may call a model that is already loaded.
    let server: InferenceServer | undefined;
    const infer = (request: InferenceRequest): Promise<InferenceResponse> => server!.infer(request);
    const repository = ModelRepository.open({
      paths: options.modelRepositories, backends, logger, startupModels: options.startupModels, infer, bufferPool,
    });
    server = new InferenceServer(repository, options, logger, bufferPool);
    await repository.load();
    return server;
  }

  /** The single entry point for inference. */
  async infer(request: InferenceRequest): Promise<InferenceResponse> {
    if (this.closed) throw serverError('SERVER_EXITING', {});
    if (!this.repository.get(request.modelName)) await this.repository.loaded(request.modelName);
    const version = this.readyVersion(request.modelName, request.modelVersion);
    const config = version.config!;
    if (request.callChain) assertNoDeadlock(version, request.callChain);
    if (config.decoupled) throw serverError('DECOUPLED_UNARY', { model: config.name });
    const normalized = normalizeRequest(config, request);
    const answered = await version.scheduler!.enqueue(request, normalized);
    const outputs = request.ownsPooledOutputs ? answered : answered.map(withoutOwnership);
    return {
      modelName: config.name,
      modelVersion: String(version.version),
      ...(request.id ? { id: request.id } : {}),
      outputs,
    };
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
    if (this.closed) throw serverError('SERVER_EXITING', {});
    if (!this.repository.get(request.modelName)) await this.repository.loaded(request.modelName);
    const version = this.readyVersion(request.modelName, request.modelVersion);
    const config = version.config!;
    if (!config.decoupled) return ResponseStream.answered(await this.infer(request));
    if (request.callChain) assertNoDeadlock(version, request.callChain);
    const normalized = normalizeRequest(config, request);
    const stream = new ResponseStream({
      modelName: config.name, modelVersion: String(version.version), ...(request.id ? { id: request.id } : {}), decoupled: true, stats: version.stats,
    });
    version.scheduler!.enqueue({ ...request, onResponse: (response) => stream.accept(response) }, normalized).then(
      () => stream.close(),
      (err: unknown) => stream.fail(asSwitchyardError(err, config.name)),
    );
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
    if (this.closed) return false;
    if (this.options.strictReadiness === false) return true;
    return this.repository.list().every((entry) => !entry.failure && entry.versions.size > 0
      && [...entry.versions.values()].every((v) => v.state === 'READY'));
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

  /** Every model version the repository knows, with its state and reason. */
  repositoryIndex(): ModelIndexEntry[] {
    return this.repository.list().flatMap((entry) => entry.versions.size === 0
      ? [{ name: entry.name, version: '', state: 'UNAVAILABLE' as const, reason: entry.failure ?? 'no versions' }]
      : [...entry.versions.values()].map((v) => ({ name: entry.name, version: String(v.version), state: v.state, reason: v.reason })));
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
    const chosen = this.readyVersion(name, version);
    if (version) return { model_stats: [snapshot(name, chosen)] };
    const ready = [...this.repository.get(name)!.versions.values()].filter((v) => v.state === 'READY').sort(byVersion);
    return { model_stats: ready.map((v) => snapshot(name, v)) };
  }

  /** Loads or reloads a model (explicit model control). Refused clearly until model control lands. */
  async loadModel(name: string): Promise<void> {
    this.assertModelControl();
    throw serverError('NOT_IMPLEMENTED', {
      feature: 'the model repository extension (load)',
      detail: `model '${name}' cannot be loaded at run time by this build yet; list it with --load-model at start`,
    });
  }

  /**
   * Unloads a model (explicit model control): its running requests finish,
   * new ones are refused, and the ensembles that call it become unavailable
   * with it named as the reason.
   */
  async unloadModel(name: string): Promise<void> {
    this.assertModelControl();
    if (!this.repository.get(name)) throw serverError('MODEL_NOT_FOUND', { model: name });
    await this.repository.unload(name);
  }

  /**
   * Gives the pooled memory of outputs back, once a caller that asked for
   * ownership (ownsPooledOutputs) is done with them, e.g. after encoding a
   * response into its own body. Other tensors are left alone.
   */
  releaseOutputs(outputs: readonly Tensor[]): void {
    for (const tensor of outputs) {
      if (tensor.datatype !== 'BYTES' && tensor.pooled === true) this.bufferPool.release(tensor.raw.buffer as ArrayBuffer);
    }
  }

  /** Tensor memory handed out and reused since the server started. */
  bufferPoolStats(): BufferPoolStats {
    return this.bufferPool.stats();
  }

  private assertModelControl(): void {
    if (this.options.modelControlMode !== 'explicit') throw serverError('MODEL_CONTROL_DISABLED', {});
  }

  /** Requests queued or executing for a ready model version (Triton's pending request count). */
  pendingRequestCount(name: string, version?: string): number {
    return this.readyVersion(name, version).scheduler!.inflightCount();
  }

  /** A ready version's execution instances, for diagnostics and fault tests (for example, killing a worker). */
  instancesOf(name: string, version?: string): readonly BackendInstance[] {
    return this.readyVersion(name, version).instances;
  }

  /** Models or versions that failed to load, with why. */
  loadFailures(): ModelIndexEntry[] {
    return this.repositoryIndex().filter((e) => e.state === 'UNAVAILABLE');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.repository.close();
  }

  private readyVersion(name: string, version: string | undefined): ModelVersion {
    const entry: ModelEntry | undefined = this.repository.get(name);
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
    const reason = entry.failure ?? [...entry.versions.values()].map((v) => `version ${v.version}: ${v.reason || v.state}`).join('; ');
    throw serverError('MODEL_NO_VERSIONS', { model: name, reason: reason || undefined });
  }
}
