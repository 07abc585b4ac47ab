/**
 * The KServe v2 / Triton gRPC transport (`inference.GRPCInferenceService`).
 */
import type protobuf from 'protobufjs';
import type { InferOptions, ResolvedClientOptions } from '../client-options.ts';
import type { InferResult } from '../infer-result.ts';
import type { InferStream } from '../infer-stream.ts';
import type { InferenceServerError } from '../inference-server-error.ts';
import { repositoryModel, type ModelMetadata, type RepositoryModel, type ServerMetadata, type TensorMetadata } from '../metadata.ts';
import { modelStatisticsResponse, type ModelStatisticsResponse } from '../statistics.ts';
import type { Tensor } from '../tensor.ts';
import type { Transport } from '../transport.ts';
import { GrpcConnection, type DecodedMessage, type GrpcCallOptions } from './grpc-connection.ts';
import { GrpcInferStream } from './grpc-infer-stream.ts';
import { inferenceType } from './grpc-protos.ts';
import { inferResultFromMessage, modelInferRequest, type ModelInferResponseMessage } from './infer-message.ts';
import { int64ToNumber, type Int64 } from './int64.ts';
import { messageJson } from './message-json.ts';

const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const texts = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

function tensorMetadata(value: unknown): TensorMetadata[] {
  return (Array.isArray(value) ? value : []).map((t: DecodedMessage) => ({
    name: text(t['name']), datatype: text(t['datatype']), shape: ((t['shape'] ?? []) as Int64[]).map((d) => int64ToNumber(d)),
  }));
}

/** Talks to a Switchyard or Triton server over gRPC. */
export class GrpcTransport implements Transport {
  private readonly connection: GrpcConnection;
  private readonly rawContents: boolean;
  private readonly types = new Map<string, protobuf.Type>();

  constructor(options: ResolvedClientOptions) {
    this.connection = new GrpcConnection(options);
    this.rawContents = options.rawContents;
  }

  private type(name: string): protobuf.Type {
    let type = this.types.get(name);
    if (!type) {
      type = inferenceType(name);
      this.types.set(name, type);
    }
    return type;
  }

  /** Calls `method`, whose messages are named `<method>Request` / `<method>Response`. */
  private call(method: string, request: object, options?: GrpcCallOptions): Promise<DecodedMessage> {
    return this.connection.unary(method, this.type(`${method}Request`), this.type(`${method}Response`), request, options);
  }

  async isServerLive(): Promise<boolean> {
    return (await this.call('ServerLive', {}))['live'] === true;
  }

  async isServerReady(): Promise<boolean> {
    return (await this.call('ServerReady', {}))['ready'] === true;
  }

  /** Whether the model (version) is ready; a model the server does not know is not ready. */
  async isModelReady(model: string, version?: string): Promise<boolean> {
    try {
      return (await this.call('ModelReady', { name: model, version: version ?? '' }))['ready'] === true;
    } catch (err) {
      if ((err as InferenceServerError).code === 'NOT_FOUND' || (err as InferenceServerError).code === 'INVALID_ARGUMENT') return false;
      throw err;
    }
  }

  async serverMetadata(): Promise<ServerMetadata> {
    const m = await this.call('ServerMetadata', {});
    return { name: text(m['name']), version: text(m['version']), extensions: texts(m['extensions']) };
  }

  async modelMetadata(model: string, version?: string): Promise<ModelMetadata> {
    const m = await this.call('ModelMetadata', { name: model, version: version ?? '' });
    return {
      name: text(m['name']),
      versions: texts(m['versions']),
      platform: text(m['platform']),
      inputs: tensorMetadata(m['inputs']),
      outputs: tensorMetadata(m['outputs']),
    };
  }

  async modelConfig(model: string, version?: string): Promise<Record<string, unknown>> {
    const m = await this.call('ModelConfig', { name: model, version: version ?? '' });
    return messageJson(this.type('ModelConfig'), (m['config'] ?? {}) as object);
  }

  async modelStatistics(model?: string, version?: string): Promise<ModelStatisticsResponse> {
    const m = await this.call('ModelStatistics', { name: model ?? '', version: version ?? '' });
    return modelStatisticsResponse(messageJson(this.type('ModelStatisticsResponse'), m));
  }

  async repositoryIndex(ready: boolean): Promise<RepositoryModel[]> {
    const m = await this.call('RepositoryIndex', { ready });
    return ((m['models'] ?? []) as DecodedMessage[]).map((e) => repositoryModel({ ...e, name: text(e['name']) }));
  }

  async loadModel(model: string): Promise<void> {
    await this.call('RepositoryModelLoad', { model_name: model });
  }

  async unloadModel(model: string): Promise<void> {
    await this.call('RepositoryModelUnload', { model_name: model });
  }

  async infer(model: string, inputs: readonly Tensor[], options: InferOptions): Promise<InferResult> {
    const request = modelInferRequest(model, inputs, options, this.rawContents);
    const response = await this.call('ModelInfer', request, { signal: options.signal, timeoutMs: options.timeoutMs });
    return inferResultFromMessage(response as ModelInferResponseMessage);
  }

  streamInfer(): InferStream {
    const call = this.connection.bidi('ModelStreamInfer', this.type('ModelInferRequest'), this.type('ModelStreamInferResponse'));
    return new GrpcInferStream(call, (model, inputs, options) => modelInferRequest(model, inputs, options, this.rawContents));
  }

  close(): void {
    this.connection.close();
  }
}
