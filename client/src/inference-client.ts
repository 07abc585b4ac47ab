/**
 * InferenceClient: one API over HTTP or gRPC, picked from the URL.
 */
import { resolveClientOptions, type ClientOptions, type InferOptions } from './client-options.ts';
import { GrpcTransport } from './grpc/grpc-transport.ts';
import { HttpTransport } from './http/http-transport.ts';
import type { InferResult } from './infer-result.ts';
import type { InferStream } from './infer-stream.ts';
import type { ModelMetadata, RepositoryModel, ServerMetadata } from './metadata.ts';
import type { ModelStatisticsResponse } from './statistics.ts';
import type { Tensor } from './tensor.ts';
import type { Transport } from './transport.ts';

/**
 * A client for a Switchyard (or Triton) server. Creating one does no I/O;
 * connections open on the first call and are reused until `close()`.
 * Every failed call rejects with an InferenceServerError.
 *
 * ```ts
 * const client = new InferenceClient({ url: 'localhost:8000' });
 * const result = await client.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 4], [1, 2, 3, 4]), ...]);
 * result.output('OUTPUT0').numbers();
 * ```
 */
export class InferenceClient {
  /** The transport in use. */
  readonly protocol: 'http' | 'grpc';
  private readonly transport: Transport;

  constructor(options: ClientOptions) {
    const resolved = resolveClientOptions(options);
    this.protocol = resolved.protocol;
    this.transport = resolved.protocol === 'grpc' ? new GrpcTransport(resolved) : new HttpTransport(resolved);
  }

  /** Whether the server is live. */
  isServerLive(): Promise<boolean> {
    return this.transport.isServerLive();
  }

  /** Whether the server is ready for inference. */
  isServerReady(): Promise<boolean> {
    return this.transport.isServerReady();
  }

  /** Whether a model (or one version of it) is ready; false for a model the server does not know. */
  isModelReady(model: string, version?: string): Promise<boolean> {
    return this.transport.isModelReady(model, version);
  }

  /** The server's name, version and protocol extensions. */
  serverMetadata(): Promise<ServerMetadata> {
    return this.transport.serverMetadata();
  }

  /** A model's versions, platform, inputs and outputs. */
  modelMetadata(model: string, version?: string): Promise<ModelMetadata> {
    return this.transport.modelMetadata(model, version);
  }

  /** Triton's JSON form of the config (snake_case keys, enums by name), identical over both transports. */
  modelConfig(model: string, version?: string): Promise<Record<string, unknown>> {
    return this.transport.modelConfig(model, version);
  }

  /**
   * Per model version statistics in Triton's JSON shape ({ model_stats: [...] }), equal over both
   * transports: every ready version of every model with no `model`, else that model's ready versions,
   * or only `version`. Switchyard adds `batch_close_reasons`; a Triton server leaves it empty.
   */
  modelStatistics(model?: string, version?: string): Promise<ModelStatisticsResponse> {
    return this.transport.modelStatistics(model, version);
  }

  /** Every model version in the repository with its state, or only ready ones with `{ ready: true }`. */
  repositoryIndex(options: { ready?: boolean } = {}): Promise<RepositoryModel[]> {
    return this.transport.repositoryIndex(options.ready ?? false);
  }

  /** Loads (or reloads) a model; needs a server in explicit model control mode. */
  loadModel(model: string): Promise<void> {
    return this.transport.loadModel(model);
  }

  /** Unloads a model; needs a server in explicit model control mode. */
  unloadModel(model: string): Promise<void> {
    return this.transport.unloadModel(model);
  }

  /** Runs one inference. Inputs are checked as `tensor()` checks them before anything is sent. */
  async infer(model: string, inputs: readonly Tensor[], options: InferOptions = {}): Promise<InferResult> {
    return this.transport.infer(model, inputs, options);
  }

  /** gRPC only; HTTP throws InferenceServerError code 'UNIMPLEMENTED' with a message saying to use grpc://. */
  streamInfer(): InferStream {
    return this.transport.streamInfer();
  }

  /** Closes connections. Calls in flight may fail; the client is not usable afterwards. */
  close(): void {
    this.transport.close();
  }
}
