/**
 * The KServe v2 HTTP/REST transport, with Triton's binary tensor data and
 * repository extensions.
 */
import type { InferOptions, ResolvedClientOptions } from '../client-options.ts';
import type { InferResult } from '../infer-result.ts';
import type { InferStream } from '../infer-stream.ts';
import { InferenceServerError } from '../inference-server-error.ts';
import type { ModelMetadata, RepositoryModel, ServerMetadata, TensorMetadata } from '../metadata.ts';
import { repositoryModel } from '../metadata.ts';
import { modelStatisticsResponse, type ModelStatisticsResponse } from '../statistics.ts';
import type { Tensor } from '../tensor.ts';
import type { Transport } from '../transport.ts';
import { HttpConnection, type HttpResponse } from './http-connection.ts';
import { encodeInferRequest } from './infer-request-body.ts';
import { decodeInferResponse } from './infer-response-body.ts';

const JSON_HEADERS = { 'content-type': 'application/json' };

/** `/v2/models/<m>[/versions/<v>]` with both parts URL-encoded. */
function modelPath(model: string, version?: string): string {
  const base = `/v2/models/${encodeURIComponent(model)}`;
  return version ? `${base}/versions/${encodeURIComponent(version)}` : base;
}

function parseJson(response: HttpResponse, what: string): unknown {
  try {
    return JSON.parse(response.body.toString('utf8'));
  } catch {
    throw new InferenceServerError(`malformed ${what} response: not JSON`, 'INTERNAL', { httpStatus: response.status });
  }
}

const textList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

function tensorMetadata(value: unknown): TensorMetadata[] {
  if (!Array.isArray(value)) return [];
  return value.map((t: Record<string, unknown>) => ({
    name: String(t['name']), datatype: String(t['datatype']), shape: Array.isArray(t['shape']) ? t['shape'].map(Number) : [],
  }));
}

/** Talks to a Switchyard or Triton server over HTTP. */
export class HttpTransport implements Transport {
  private readonly connection: HttpConnection;
  private readonly binary: boolean;

  constructor(options: ResolvedClientOptions) {
    this.connection = new HttpConnection(options);
    this.binary = options.binary;
  }

  /** GETs a path and reports whether it answered 200, as Triton's clients do; an unreachable server throws. */
  private async check(path: string): Promise<boolean> {
    return (await this.connection.send('GET', path, undefined)).status === 200;
  }

  private async getJson(path: string, what: string): Promise<unknown> {
    return parseJson(await this.connection.call('GET', path, undefined), what);
  }

  isServerLive(): Promise<boolean> {
    return this.check('/v2/health/live');
  }

  isServerReady(): Promise<boolean> {
    return this.check('/v2/health/ready');
  }

  isModelReady(model: string, version?: string): Promise<boolean> {
    return this.check(`${modelPath(model, version)}/ready`);
  }

  async serverMetadata(): Promise<ServerMetadata> {
    const json = (await this.getJson('/v2', 'server metadata')) as Record<string, unknown>;
    return { name: String(json['name'] ?? ''), version: String(json['version'] ?? ''), extensions: textList(json['extensions']) };
  }

  async modelMetadata(model: string, version?: string): Promise<ModelMetadata> {
    const json = (await this.getJson(modelPath(model, version), 'model metadata')) as Record<string, unknown>;
    return {
      name: String(json['name'] ?? ''),
      versions: textList(json['versions']),
      platform: String(json['platform'] ?? ''),
      inputs: tensorMetadata(json['inputs']),
      outputs: tensorMetadata(json['outputs']),
    };
  }

  async modelConfig(model: string, version?: string): Promise<Record<string, unknown>> {
    return (await this.getJson(`${modelPath(model, version)}/config`, 'model config')) as Record<string, unknown>;
  }

  async modelStatistics(model?: string, version?: string): Promise<ModelStatisticsResponse> {
    const path = model === undefined ? '/v2/models/stats' : `${modelPath(model, version)}/stats`;
    return modelStatisticsResponse(await this.getJson(path, 'model statistics'));
  }

  async repositoryIndex(ready: boolean): Promise<RepositoryModel[]> {
    const body = Buffer.from(JSON.stringify({ ready }));
    const response = await this.connection.call('POST', '/v2/repository/index', [body], { headers: JSON_HEADERS });
    const json = parseJson(response, 'repository index');
    if (!Array.isArray(json)) throw new InferenceServerError('malformed repository index response: expected an array', 'INTERNAL');
    return json.map((entry: Record<string, unknown>) => repositoryModel({ ...entry, name: String(entry['name']) }));
  }

  async loadModel(model: string): Promise<void> {
    await this.connection.call('POST', `/v2/repository/models/${encodeURIComponent(model)}/load`, [Buffer.from('{}')], { headers: JSON_HEADERS });
  }

  async unloadModel(model: string): Promise<void> {
    await this.connection.call('POST', `/v2/repository/models/${encodeURIComponent(model)}/unload`, [Buffer.from('{}')], { headers: JSON_HEADERS });
  }

  async infer(model: string, inputs: readonly Tensor[], options: InferOptions): Promise<InferResult> {
    const encoded = encodeInferRequest(inputs, options, this.binary);
    const headers = encoded.headerLength === undefined ? JSON_HEADERS
      : { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(encoded.headerLength) };
    const response = await this.connection.call('POST', `${modelPath(model, options.modelVersion)}/infer`, encoded.chunks, {
      headers, signal: options.signal, timeoutMs: options.timeoutMs,
    });
    return decodeInferResponse(response.body, response.headers['inference-header-content-length']);
  }

  streamInfer(): InferStream {
    throw new InferenceServerError(
      "streamInfer needs the gRPC transport: HTTP has no streaming inference; create the client with url 'grpc://host:port'",
      'UNIMPLEMENTED',
    );
  }

  close(): void {
    this.connection.close();
  }
}
