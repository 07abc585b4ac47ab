/**
 * @switchyard/client: a TypeScript client for Switchyard and NVIDIA Triton
 * servers, over KServe v2 HTTP (JSON or binary tensors) or gRPC.
 */
export { InferenceClient } from './src/inference-client.ts';
export type { ClientOptions, InferOptions } from './src/client-options.ts';
export { DATA_TYPES, type DataType } from './src/data-type.ts';
export { tensor, type Tensor, type TensorData } from './src/tensor.ts';
export type { OutputTensor } from './src/output-tensor.ts';
export type { InferResult, ParameterValue } from './src/infer-result.ts';
export type { InferStream, StreamResult } from './src/infer-stream.ts';
export type { ModelMetadata, RepositoryModel, ServerMetadata, TensorMetadata } from './src/metadata.ts';
export type {
  EnsembleStepStatistics, InferBatchStatistics, InferResponseStatistics, InferStatistics, MemoryUsage, ModelStatistics, ModelStatisticsResponse,
  StatisticDuration,
} from './src/statistics.ts';
export { InferenceServerError } from './src/inference-server-error.ts';
export { fromBfloat16Bits, fromFloat16Bits, toBfloat16Bits, toFloat16Bits } from './src/float16.ts';
