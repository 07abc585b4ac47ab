/** The seam between InferenceClient and its HTTP and gRPC implementations. */
import type { InferOptions } from './client-options.ts';
import type { InferResult } from './infer-result.ts';
import type { InferStream } from './infer-stream.ts';
import type { ModelMetadata, RepositoryModel, ServerMetadata } from './metadata.ts';
import type { ModelStatisticsResponse } from './statistics.ts';
import type { Tensor } from './tensor.ts';

/** One way of reaching the server. Every method maps failures to InferenceServerError. */
export interface Transport {
  isServerLive(): Promise<boolean>;
  isServerReady(): Promise<boolean>;
  isModelReady(model: string, version?: string): Promise<boolean>;
  serverMetadata(): Promise<ServerMetadata>;
  modelMetadata(model: string, version?: string): Promise<ModelMetadata>;
  modelConfig(model: string, version?: string): Promise<Record<string, unknown>>;
  modelStatistics(model?: string, version?: string): Promise<ModelStatisticsResponse>;
  repositoryIndex(ready: boolean): Promise<RepositoryModel[]>;
  loadModel(model: string): Promise<void>;
  unloadModel(model: string): Promise<void>;
  infer(model: string, inputs: readonly Tensor[], options: InferOptions): Promise<InferResult>;
  streamInfer(): InferStream;
  close(): void;
}
