/**
 * The KServe v2 / Triton gRPC frontend on grpc-js: `inference.GRPCInferenceService`
 * and `grpc.health.v1.Health`. Each handler decodes, calls the engine facade
 * and encodes; no inference logic lives here. Requests are deserialised in the
 * handler rather than by grpc-js, so a malformed message gets
 * INVALID_ARGUMENT with a reason instead of grpc-js's generic INTERNAL.
 */
import { setMaxListeners } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { DEFAULT_MAX_BYTES_ELEMENTS } from '../../engine/bytes-tensor.ts';
import { asSwitchyardError, boundedMessage, serverError, type SwitchyardError } from '../../engine/errors.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { InferenceRequest } from '../../engine/inference-request.ts';
import { ServerLogger, type LogSettings, type LogSettingValue } from '../../engine/logger.ts';
import { checkModelName } from '../../engine/repository/model-name.ts';
import type { TraceSettingChange, TraceSettings, TraceSettingsView } from '../../engine/observability/trace/trace-settings.ts';
import { GRPC_METHOD_CATEGORIES, restrictionFailure, type RestrictedApis } from '../restricted-apis.ts';
import { checkTraceModel, traceSettingChanges } from '../trace-setting-request.ts';
import { modelConfigType } from '../../engine/config/model-config-schema.ts';
import { HeaderForwardPattern, headerText } from '../header-forwarding.ts';
import { inputContents, peekRequestId, plainInferRequest } from './infer-request-wire.ts';
import { checkFieldBudget, DEFAULT_GRPC_MAX_REQUEST_FIELDS } from './message-field-budget.ts';
import { grpcRequestType, grpcService, grpcType, HEALTH_SERVICE, INFERENCE_SERVICE } from './grpc-schema.ts';
import type { ResponseStream } from '../../engine/response-stream.ts';
import { loadOptionsFromParameters, parametersFromGrpc, unloadOptionsFromParameters } from '../repository-parameters.ts';
import {
  decodeModelInferRequest, enablesEmptyFinalResponse, encodeStreamResponse, type DecodedModelInfer, type ModelInferRequestMessage,
} from './infer-codec.ts';
import { modelInferResponseBytes, streamInferResponseBytes } from './infer-response-wire.ts';
import type { StreamedResponse } from '../../engine/inference-response.ts';
import type { SharedMemoryLease } from '../../engine/memory/shared-memory-lease.ts';
import { traceNow, type RequestTrace } from '../../engine/observability/trace/request-trace.ts';

/** Triton's limit (INT32_MAX) rather than grpc-js's 4 MiB, so Triton clients' large requests fit. */
export const DEFAULT_GRPC_MAX_MESSAGE_SIZE = 2147483647;

/** --grpc-max-connection-idle: a connection with no call for this long is closed (GOAWAY); clients reconnect when they need to. */
export const DEFAULT_GRPC_MAX_CONNECTION_IDLE_MS = 300_000;
/** --grpc-max-concurrent-streams: calls open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
export const DEFAULT_GRPC_MAX_CONCURRENT_STREAMS = 1024;
/** --grpc-keepalive-time: Triton's default, a ping every two hours on a connection. */
export const DEFAULT_GRPC_KEEPALIVE_TIME_MS = 7_200_000;
/** --grpc-keepalive-timeout: Triton's default wait for a ping's answer. */
export const DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS = 20_000;

export interface GrpcServerOptions {
  /** Largest request message accepted, in bytes. Larger ones get RESOURCE_EXHAUSTED. */
  readonly maxMessageSize?: number;
  /** Default DEFAULT_GRPC_MAX_CONNECTION_IDLE_MS. */
  readonly maxConnectionIdleMs?: number;
  /** Default DEFAULT_GRPC_MAX_CONCURRENT_STREAMS. */
  readonly maxConcurrentStreams?: number;
  /** tritonserver's --grpc-max-connection-age: a connection older than this is closed gracefully. Default: no limit. */
  readonly maxConnectionAgeMs?: number;
  /** tritonserver's --grpc-max-connection-age-grace: how long calls on an aged connection may finish. Default: no limit. */
  readonly maxConnectionAgeGraceMs?: number;
  /** API categories that need a metadata key (--grpc-restricted-protocol, --grpc-restricted-api). Default: none. */
  readonly restrictedApis?: RestrictedApis;
  /** Elements one BYTES input may hold (--max-bytes-elements). Default DEFAULT_MAX_BYTES_ELEMENTS (1,048,576). */
  readonly maxBytesElements?: number;
  /** Values one request message may hold, at any depth (--grpc-max-request-fields). Default DEFAULT_GRPC_MAX_REQUEST_FIELDS (65,536). */
  readonly maxRequestFields?: number;
  /** --grpc-header-forward-pattern: metadata of ModelInfer and ModelStreamInfer calls whose key matches becomes request parameters. Default: none. */
  readonly headerForwardPattern?: string;
  /** --grpc-keepalive-time: how long a connection goes without a ping from the server. Default DEFAULT_GRPC_KEEPALIVE_TIME_MS (Triton's). */
  readonly keepaliveTimeMs?: number;
  /** --grpc-keepalive-timeout: how long the server waits for a ping's answer before it closes the connection. Default DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS. */
  readonly keepaliveTimeoutMs?: number;
}

/** How a request message is decoded: its limits, and which metadata becomes parameters. */
interface DecodeLimits {
  readonly maxBytesElements: number;
  readonly maxRequestFields: number;
  readonly headerForward: HeaderForwardPattern | undefined;
}

type Message = Record<string, unknown>;
type UnaryHandler = (request: Message, call: grpc.ServerUnaryCall<Buffer, Message>) => Message | Promise<Message>;

/** A reply as grpc-js writes it: a message, or one encoded already. */
type Reply = Message | Buffer;

/** A request's place in a stream's reply order: its reply once known, null when it has none to wait for (decoupled). */
interface StreamSlot {
  reply?: Reply | null;
}

/** A catalogue error as a gRPC status; details travel in HTTP/2 trailers, so they are bounded once more here. */
function grpcError(error: SwitchyardError): Partial<grpc.ServiceError> {
  return { code: error.grpcCode, details: boundedMessage(error.message) };
}

/**
 * An AbortSignal for one call: fires when the client cancels or the call's
 * deadline passes. `dispose` clears the deadline timer once the call is done.
 */
function callSignal(call: grpc.ServerUnaryCall<Buffer, Message> | grpc.ServerDuplexStream<Buffer, Message>): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  let done = false;
  // grpc-js may also report 'cancelled' as the stream closes after a normal reply; only a live call aborts.
  call.once('cancelled', () => {
    if (!done) controller.abort(new Error('the client cancelled the call'));
  });
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(at)) {
    timer = setTimeout(() => controller.abort(new Error('the call deadline passed')), Math.max(0, at - Date.now()));
    timer.unref();
  }
  return {
    signal: controller.signal,
    dispose: () => {
      done = true;
      clearTimeout(timer);
    },
  };
}

/** The message decoded by protobufjs, once its values are counted within the limit (checkFieldBudget). */
function decodeMessage(type: protobuf.Type, bytes: Buffer, maxFields: number): Message {
  checkFieldBudget(type, bytes, maxFields);
  try {
    return type.decode(bytes) as unknown as Message;
  } catch (err) {
    throw serverError('BAD_REQUEST', { detail: `malformed ${type.name} message: ${(err as Error).message}` });
  }
}

function serializer(type: protobuf.Type): (value: Message | Buffer) => Buffer {
  // A reply encoded already (an inference response, whose pooled memory went back once encoded) goes out as it is.
  return (value) => (Buffer.isBuffer(value) ? value : encoded(type, value));
}

function encoded(type: protobuf.Type, value: Message): Buffer {
  const bytes = type.encode(value).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** grpc-js method definitions straight from the reflected service, with deserialisation left to the handler. */
function serviceDefinition(service: protobuf.Service): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Buffer, Message>> = {};
  for (const method of Object.values(service.methods)) {
    method.resolve();
    const responseType = method.resolvedResponseType!;
    definition[method.name] = {
      path: `/${service.fullName.replace(/^\./, '')}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (value: Buffer) => value,
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize: serializer(responseType),
      responseDeserialize: (bytes: Buffer) => responseType.decode(bytes) as unknown as Message,
    };
  }
  return definition as grpc.ServiceDefinition;
}

function unary(service: protobuf.Service, method: string, handler: UnaryHandler, maxFields: number): grpc.handleUnaryCall<Buffer, Message> {
  const requestType = service.methods[method]!.resolvedRequestType!;
  return (call, callback) => {
    void (async () => {
      try {
        callback(null, await handler(decodeMessage(requestType, call.request, maxFields), call));
      } catch (err) {
        callback(grpcError(asSwitchyardError(err)), null);
      }
    })();
  };
}

const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/** A uint64 field (a number, or a Long from protobufjs) as a number; past 2^53 it cannot name a place in a file. */
function uint64(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  const big = typeof value === 'number' ? BigInt(value)
    : (BigInt((value as { high: number }).high >>> 0) << 32n) | BigInt((value as { low: number }).low >>> 0);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw serverError('UNPARSABLE_FIELD', { field, detail: `${big} is past the largest byte count taken, ${Number.MAX_SAFE_INTEGER}` });
  }
  return Number(big);
}

/**
 * A call's metadata as (key, text) pairs, every value in order. A `-bin`
 * value is its decoded bytes read as UTF-8, up to the first NUL byte, which
 * is where Triton's C string of it ends.
 */
function* metadataEntries(metadata: grpc.Metadata): Generator<[string, string]> {
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) {
      if (typeof value === 'string') yield [key, headerText(value)];
      else {
        const end = value.indexOf(0);
        yield [key, value.toString('utf8', 0, end < 0 ? value.length : end)];
      }
    }
  }
}

/** A model name field of a request, refused when it could name a path outside the repository. */
function modelName(req: Message, field: 'name' | 'model_name'): string {
  const name = str(req[field]);
  checkModelName(name, `field '${field}'`);
  return name;
}

/** A LogSettings request's map as plain values: whichever SettingValue member was set (null for none). */
function logSettingValues(settings: unknown): Record<string, LogSettingValue> {
  const values: Record<string, LogSettingValue> = {};
  for (const [name, setting] of Object.entries((settings ?? {}) as Record<string, Message>)) {
    const choice = setting['parameter_choice'];
    values[name] = typeof choice === 'string' ? setting[choice] as LogSettingValue : null;
  }
  return values;
}

/** Settings in LogSettingsResponse form, each in the SettingValue member Triton uses for it. */
function logSettingsMessage(settings: LogSettings): Message {
  const message: Record<string, Message> = {};
  for (const [name, value] of Object.entries(settings)) {
    message[name] = typeof value === 'boolean' ? { bool_param: value } : typeof value === 'number' ? { uint32_param: value } : { string_param: value };
  }
  return { settings: message };
}

/**
 * A TraceSetting request's changes: an empty value list hands the key back
 * to the level above; rate, count and log_frequency take one value each.
 */
function traceSettingValues(settings: TraceSettings, requested: Readonly<Record<string, Message>>): Map<string, TraceSettingChange> {
  return traceSettingChanges(settings, 'grpc', (key) => {
    if (!Object.hasOwn(requested, key)) return undefined;
    const values = (requested[key]!['value'] ?? []) as string[];
    // trace_file is refused whatever its values; the settings say so.
    if (key === 'trace_file' || values.length === 0) return null;
    if (key !== 'trace_level' && values.length > 1) throw serverError('TRACE_VALUE_COUNT', { key });
    return values;
  });
}

/** Settings in TraceSettingResponse form: every value a list. */
function traceSettingsMessage(view: TraceSettingsView): Message {
  const message: Record<string, Message> = {};
  for (const [name, value] of Object.entries(view)) message[name] = { value: typeof value === 'string' ? [value] : [...value] };
  return { settings: message };
}

function inferenceHandlers(engine: InferenceEngine, service: protobuf.Service, limits: DecodeLimits): grpc.UntypedServiceImplementation {
  const { maxBytesElements, maxRequestFields, headerForward } = limits;
  const handle = (method: string, handler: UnaryHandler): grpc.handleUnaryCall<Buffer, Message> => unary(service, method, handler, maxRequestFields);
  const compactRequestType = grpcRequestType();
  const streamResponseType = service.methods['ModelStreamInfer']!.resolvedResponseType!;

  /**
   * A ModelInferRequest decoded by protobufjs without its inputs' contents,
   * which are attached as where they lie on the wire, for the codec to read.
   * The common plain request is read in one pass instead (plainInferRequest).
   */
  function decodeInferMessage(bytes: Buffer): ModelInferRequestMessage {
    const plain = plainInferRequest(bytes, maxRequestFields);
    if (plain) return plain;
    const message = decodeMessage(compactRequestType, bytes, maxRequestFields) as ModelInferRequestMessage;
    for (const [index, contents] of inputContents(bytes)) {
      const input = message.inputs?.[index] as { contents?: unknown } | undefined;
      if (input) input.contents = contents;
    }
    return message;
  }
  // The engine's statistics are Triton's JSON shape, so they convert field by field (uint64 counts, the close-reason map).
  const statisticsResponseType = grpcType('inference.ModelStatisticsResponse');

  /**
   * The call's metadata that --grpc-header-forward-pattern makes request
   * parameters, added over the message's own (as Triton adds them after).
   */
  function withForwardedMetadata(request: InferenceRequest, metadata: grpc.Metadata): InferenceRequest {
    if (!headerForward) return request;
    const forwarded = headerForward.parameters(metadataEntries(metadata));
    return Object.keys(forwarded).length === 0 ? request : { ...request, parameters: { ...request.parameters, ...forwarded } };
  }

  /**
   * One ModelInferRequest through the engine. When the trace extension
   * samples it, its trace goes in `traced`, stamped up to GRPC_SEND_START;
   * the caller stamps GRPC_SEND_END once the reply is handed over, and
   * releases it.
   */
  async function infer(bytes: Buffer, signal: AbortSignal, metadata: grpc.Metadata, traced: { trace?: RequestTrace }): Promise<Buffer> {
    const arrived = traceNow();
    const message = decodeInferMessage(bytes);
    // The model is looked up before its tensors are decoded, as over HTTP (and in Triton).
    checkModelName(message.model_name ?? '', "field 'model_name'");
    const trace = sampleGrpc(message.model_name ?? '', metadata, arrived);
    if (trace) traced.trace = trace;
    engine.assertModelReady(message.model_name ?? '', message.model_version || undefined);
    const decoded = await decodeModelInferRequest(message, { signal, maxBytesElements });
    const lease = decoded.sharedMemory ? engine.sharedMemory.lease(decoded.sharedMemory) : undefined;
    try {
      const decodedRequest = withForwardedMetadata(await withSharedMemoryInputs(decoded, lease), metadata);
      const request = trace ? { ...decodedRequest, trace } : decodedRequest;
      const response = await engine.infer(request);
      try {
        await lease?.writeOutputs(response.outputs);
        // Encoded here, not when grpc-js writes it: the wire bytes are a copy, so the outputs' pooled memory goes back now.
        const reply = modelInferResponseBytes(response, lease?.outputNames);
        trace?.mark('GRPC_SEND_START');
        return reply;
      } finally {
        response.lease?.release();
      }
    } catch (err) {
      throw asSwitchyardError(err, decoded.request.modelName);
    } finally {
      await lease?.release();
    }
  }

  /** The trace of a gRPC request to `model`, when the trace extension samples it, with its read stamps. */
  function sampleGrpc(model: string, metadata: grpc.Metadata, arrived: number): RequestTrace | undefined {
    const traceparent = engine.tracer.readsTraceContext ? metadata.get('traceparent')[0] : undefined;
    const tracestate = traceparent === undefined ? undefined : metadata.get('tracestate')[0];
    const trace = engine.tracer.sample(model, traceparent === undefined ? undefined : {
      traceparent: String(traceparent), ...(tracestate !== undefined ? { tracestate: String(tracestate) } : {}),
    });
    trace?.mark('GRPC_WAITREAD_START', arrived);
    trace?.mark('GRPC_WAITREAD_END', arrived);
    return trace;
  }

  /** The request with its inputs in shared memory read in through the lease. */
  async function withSharedMemoryInputs({ request }: DecodedModelInfer, lease: SharedMemoryLease | undefined): Promise<InferenceRequest> {
    return lease ? { ...request, inputs: await lease.readInputs(request.modelName, request.inputs, maxBytesElements) } : request;
  }

  const modelInfer: grpc.handleUnaryCall<Buffer, Reply> = (call, callback) => {
    const { signal, dispose } = callSignal(call);
    const traced: { trace?: RequestTrace } = {};
    infer(call.request, signal, call.metadata, traced).then(
      (response) => {
        dispose();
        callback(null, response);
        endGrpcTrace(traced.trace);
      },
      (err: unknown) => {
        dispose();
        traced.trace?.mark('GRPC_SEND_START');
        callback(grpcError(asSwitchyardError(err)), null);
        endGrpcTrace(traced.trace);
      },
    );
  };

  /** One streamed item as a ModelStreamInferResponse's bytes, or undefined when there is nothing to write. */
  function streamReply(item: StreamedResponse, message: ModelInferRequestMessage, emptyFinal: boolean, shared: ReadonlySet<string> | undefined): Buffer | undefined {
    if (item.response) return streamInferResponseBytes(item.response, item.final, shared);
    const reply = encodeStreamResponse(item, message, emptyFinal);
    return reply && encoded(streamResponseType, reply);
  }

  /**
   * Every response read from the stream is encoded to bytes, and its pooled
   * memory given back, whether or not it goes out. With shared memory, its
   * outputs there are written before it is sent; a failed write fails that
   * response only.
   */
  async function streamReplyOf(
    item: StreamedResponse, message: ModelInferRequestMessage, emptyFinal: boolean, lease: SharedMemoryLease | undefined,
  ): Promise<Buffer | undefined> {
    try {
      if (lease && item.response) {
        try {
          await lease.writeOutputs(item.response.outputs);
        } catch (err) {
          const failed = encodeStreamResponse({ ...item, response: undefined, error: asSwitchyardError(err) }, message, emptyFinal);
          return failed && encoded(streamResponseType, failed);
        }
      }
      return streamReply(item, message, emptyFinal, lease?.outputNames);
    } finally {
      item.response?.lease?.release();
    }
  }

  /** The part of a ModelStreamInfer call its requests share: where replies go, in what order, and when the call ends. */
  interface StreamCall {
    readonly signal: AbortSignal;
    readonly metadata: grpc.Metadata;
    /** Writes a reply at once; resolves once the call's buffer has room again (or the call is gone). */
    write(reply: Reply): Promise<void>;
    /** Writes every reply whose turn has come, and ends the call once the client half-closed and all have answered. */
    flush(): void;
    /** A request finished: its reply (or its giving up of its slot) is final. */
    settled(): void;
  }

  /**
   * One request of a stream: decoded, started through inferStream, and
   * answered in ModelStreamInferResponse messages. A model that answers once
   * per request fills its slot, so that those replies go out in request
   * order, as Triton writes them. A decoupled model's responses go out as it
   * sends them (out of request order, as in Triton), after its slot is given
   * up; each carries triton_final_response. A failed request is reported in
   * `error_message`, with its id. Never rejects.
   */
  async function streamRequest(bytes: Buffer, stream: StreamCall, slot: StreamSlot): Promise<void> {
    const arrived = traceNow();
    let trace: RequestTrace | undefined;
    try {
      const message = decodeInferMessage(bytes);
      checkModelName(message.model_name ?? '', "field 'model_name'");
      trace = sampleGrpc(message.model_name ?? '', stream.metadata, arrived);
      engine.assertModelReady(message.model_name ?? '', message.model_version || undefined);
      const emptyFinal = enablesEmptyFinalResponse(message);
      const decoded = await decodeModelInferRequest(message, { signal: stream.signal, maxBytesElements });
      const lease = decoded.sharedMemory ? engine.sharedMemory.lease(decoded.sharedMemory) : undefined;
      try {
        let responses: ResponseStream;
        try {
          const request = lease ? await withSharedMemoryInputs(decoded, lease) : decoded.request;
          const forwarded = withForwardedMetadata(request, stream.metadata);
          responses = await engine.inferStream(trace ? { ...forwarded, trace } : forwarded);
        } catch (err) {
          throw asSwitchyardError(err, decoded.request.modelName);
        }
        if (!responses.decoupled) {
          // Its one answer is there already: encoded now, without iterating.
          const item = responses.takeAnswer();
          if (lease) slot.reply = (await streamReplyOf(item, message, false, lease)) ?? null;
          else {
            try {
              slot.reply = streamReply(item, message, false, undefined) ?? null;
            } finally {
              item.response?.lease?.release();
            }
          }
          return;
        }
        slot.reply = null;
        stream.flush();
        // The next response is read only once the call can take more: a client that does not read holds the model back.
        for await (const item of responses) {
          const reply = await streamReplyOf(item, message, emptyFinal, lease);
          if (reply) await stream.write(reply);
        }
      } finally {
        if (lease) await lease.release();
      }
    } catch (err) {
      const reply = { error_message: boundedMessage(asSwitchyardError(err).message), infer_response: { id: peekRequestId(bytes) } };
      // A decoupled request gave up its slot when it started; its failure goes out at once.
      if (slot.reply === null) void stream.write(reply);
      else slot.reply = reply;
    } finally {
      stream.settled();
      if (trace) {
        trace.mark('INFER_RESPONSE_COMPLETE');
        trace.mark('GRPC_SEND_END');
        trace.release();
      }
    }
  }

  /**
   * Every request on the stream starts as soon as it arrives. A failed
   * request is reported in `error_message` (with its id) and the stream stays
   * open. When the client half-closes, the call ends once every request has
   * answered.
   */
  const modelStreamInfer: grpc.handleBidiStreamingCall<Buffer, Reply> = (call) => {
    const { signal, dispose } = callSignal(call);
    // Every request on the stream shares this signal, and each queued one listens to it.
    setMaxListeners(0, signal);
    const ordered: StreamSlot[] = [];
    let running = 0;
    let ended = false;
    // One wait for room shared by every request writing on this call.
    const WRITABLE_EVENTS = ['drain', 'close', 'cancelled', 'error'];
    let room: Promise<void> | undefined;
    const writable = (): Promise<void> => room ??= new Promise<void>((resolve) => {
      const done = (): void => {
        for (const event of WRITABLE_EVENTS) call.off(event, done);
        room = undefined;
        resolve();
      };
      for (const event of WRITABLE_EVENTS) call.on(event, done);
    });
    const stream: StreamCall = {
      signal,
      metadata: call.metadata,
      write: async (reply) => {
        if (call.cancelled || call.write(reply)) return;
        await writable();
      },
      flush: () => {
        // Ordered replies are not held back for room: they are written as their turn comes.
        while (ordered.length > 0 && ordered[0]!.reply !== undefined) {
          const reply = ordered.shift()!.reply;
          if (reply && !call.cancelled) call.write(reply);
        }
        if (ended && ordered.length === 0 && running === 0) {
          dispose();
          call.end();
        }
      },
      settled: () => {
        running--;
        stream.flush();
      },
    };
    call.on('data', (bytes: Buffer) => {
      const slot: StreamSlot = {};
      ordered.push(slot);
      running++;
      void streamRequest(bytes, stream, slot);
    });
    call.on('end', () => {
      ended = true;
      stream.flush();
    });
    call.on('error', () => dispose());
  };

  return {
    ServerLive: handle('ServerLive', () => ({ live: engine.isLive() })),
    ServerReady: handle('ServerReady', () => ({ ready: engine.isReady() })),
    ModelReady: handle('ModelReady', (req) => ({ ready: engine.isModelReady(modelName(req, 'name'), str(req['version']) || undefined) })),
    ServerMetadata: handle('ServerMetadata', () => ({ ...engine.serverMetadata() })),
    ModelMetadata: handle('ModelMetadata', (req) => ({ ...engine.modelMetadata(modelName(req, 'name'), str(req['version']) || undefined) })),
    ModelInfer: modelInfer,
    ModelStreamInfer: modelStreamInfer,
    ModelConfig: handle('ModelConfig', (req) => {
      const json = engine.modelConfig(modelName(req, 'name'), str(req['version']) || undefined);
      return { config: modelConfigType().fromObject(json) };
    }),
    ModelStatistics: handle('ModelStatistics', (req) => {
      const json = engine.modelStatistics(modelName(req, 'name') || undefined, str(req['version']) || undefined);
      return statisticsResponseType.fromObject(json) as unknown as Message;
    }),
    RepositoryIndex: handle('RepositoryIndex', (req) => {
      refuseRepositoryName(req);
      const readyOnly = req['ready'] === true;
      return { models: engine.repositoryIndex().filter((e) => !readyOnly || e.state === 'READY') };
    }),
    RepositoryModelLoad: handle('RepositoryModelLoad', async (req) => {
      refuseRepositoryName(req);
      await engine.loadModel(modelName(req, 'model_name'), loadOptionsFromParameters(parametersFromGrpc(req['parameters'])));
      return {};
    }),
    RepositoryModelUnload: handle('RepositoryModelUnload', async (req) => {
      refuseRepositoryName(req);
      await engine.unloadModel(modelName(req, 'model_name'), unloadOptionsFromParameters(parametersFromGrpc(req['parameters'])));
      return {};
    }),
    SystemSharedMemoryStatus: handle('SystemSharedMemoryStatus', (req) => ({
      regions: Object.fromEntries(engine.sharedMemory.status(str(req['name']) || undefined).map((region) => [region.name, region])),
    })),
    SystemSharedMemoryRegister: handle('SystemSharedMemoryRegister', async (req) => {
      // Triton refuses a disabled extension before it looks at the request.
      if (!engine.sharedMemory.allowClient) throw serverError('CLIENT_SHM_DISABLED', {});
      await engine.sharedMemory.register(str(req['name']), str(req['key']), uint64(req['offset'], 'offset'), uint64(req['byte_size'], 'byte_size'));
      return {};
    }),
    SystemSharedMemoryUnregister: handle('SystemSharedMemoryUnregister', async (req) => {
      await engine.sharedMemory.unregister(str(req['name']) || undefined);
      return {};
    }),
    CudaSharedMemoryStatus: handle('CudaSharedMemoryStatus', (req) => ({
      regions: Object.fromEntries(engine.sharedMemory.cudaStatus(str(req['name']) || undefined).map((region) => [region.name, region])),
    })),
    CudaSharedMemoryRegister: handle('CudaSharedMemoryRegister', (req) => engine.sharedMemory.cudaRegister(str(req['name']))),
    CudaSharedMemoryUnregister: handle('CudaSharedMemoryUnregister', () => {
      engine.sharedMemory.cudaUnregister();
      return {};
    }),
    TraceSetting: handle('TraceSetting', (req) => {
      const model = modelName(req, 'model_name') || undefined;
      // As Triton, the model is checked first; an empty settings map only reads.
      if (model !== undefined) checkTraceModel(engine, model);
      const settings = engine.tracer.settings;
      const requested = (req['settings'] ?? {}) as Record<string, Message>;
      return traceSettingsMessage(Object.keys(requested).length === 0
        ? settings.view(model)
        : settings.update(model, traceSettingValues(settings, requested), 'grpc'));
    }),
    LogSettings: handle('LogSettings', (req) => {
      const logger = engine.logger instanceof ServerLogger ? engine.logger : undefined;
      if (!logger) throw serverError('NOT_IMPLEMENTED', { feature: 'changing log settings', detail: 'this server was started with a fixed logger that has no run-time settings' });
      return logSettingsMessage(logger.update(logSettingValues(req['settings'])));
    }),
  };
}

/** As Triton: the repository RPCs take no repository name (one index covers every --model-repository folder). */
function refuseRepositoryName(req: Message): void {
  if (str(req['repository_name']) !== '') throw serverError('REPOSITORY_NAME_UNSUPPORTED', {});
}

/** grpc.health.v1 HealthCheckResponse.ServingStatus values. */
const SERVING = 1;
const NOT_SERVING = 2;

function healthHandlers(engine: InferenceEngine, service: protobuf.Service, maxFields: number): grpc.UntypedServiceImplementation {
  return {
    // Like Triton, the answer is the server's readiness whatever service is named; Watch is not served.
    Check: unary(service, 'Check', () => ({ status: engine.isReady() ? SERVING : NOT_SERVING }), maxFields),
  };
}

/**
 * The service's handlers behind the restricted-API check: a call to a
 * restricted category without the metadata key and value that unlock it
 * gets PERMISSION_DENIED before its handler runs (a stream, before it reads
 * a message).
 */
function restrict(
  service: protobuf.Service, handlers: grpc.UntypedServiceImplementation, restrictions: RestrictedApis | undefined,
): grpc.UntypedServiceImplementation {
  if (!restrictions || Object.keys(restrictions).length === 0) return handlers;
  const guarded: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    const denied = (metadata: grpc.Metadata): Partial<grpc.ServiceError> | undefined => {
      const header = restrictionFailure(restrictions, GRPC_METHOD_CATEGORIES[name],
        (key) => metadata.get(key).map((v) => (typeof v === 'string' ? v : v.toString('utf8'))));
      return header === undefined ? undefined : grpcError(serverError('API_RESTRICTED', { header, kind: 'protocol' }));
    };
    const method = service.methods[name]!;
    if (method.requestStream || method.responseStream) {
      const streaming = handler as (call: grpc.ServerDuplexStream<Buffer, Message>) => void;
      guarded[name] = ((call: grpc.ServerDuplexStream<Buffer, Message>) => {
        const error = denied(call.metadata);
        if (error) call.emit('error', error);
        else streaming(call);
      }) as grpc.UntypedHandleCall;
    } else {
      const unaryHandler = handler as grpc.handleUnaryCall<Buffer, Message>;
      guarded[name] = ((call: grpc.ServerUnaryCall<Buffer, Message>, callback: grpc.sendUnaryData<Message>) => {
        const error = denied(call.metadata);
        if (error) callback(error, null);
        else unaryHandler(call, callback);
      }) as grpc.UntypedHandleCall;
    }
  }
  return guarded;
}

/** A grpc-js server with both services, not yet bound to a port. */
export function createGrpcServer(engine: InferenceEngine, options: GrpcServerOptions = {}): grpc.Server {
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageSize ?? DEFAULT_GRPC_MAX_MESSAGE_SIZE,
    'grpc.max_send_message_length': -1,
    'grpc.max_connection_idle_ms': options.maxConnectionIdleMs ?? DEFAULT_GRPC_MAX_CONNECTION_IDLE_MS,
    'grpc.max_concurrent_streams': options.maxConcurrentStreams ?? DEFAULT_GRPC_MAX_CONCURRENT_STREAMS,
    'grpc.keepalive_time_ms': options.keepaliveTimeMs ?? DEFAULT_GRPC_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs ?? DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS,
    ...(options.maxConnectionAgeMs !== undefined ? { 'grpc.max_connection_age_ms': options.maxConnectionAgeMs } : {}),
    ...(options.maxConnectionAgeGraceMs !== undefined ? { 'grpc.max_connection_age_grace_ms': options.maxConnectionAgeGraceMs } : {}),
  });
  const inference = grpcService(INFERENCE_SERVICE);
  const limits: DecodeLimits = {
    maxBytesElements: options.maxBytesElements ?? DEFAULT_MAX_BYTES_ELEMENTS,
    maxRequestFields: options.maxRequestFields ?? DEFAULT_GRPC_MAX_REQUEST_FIELDS,
    headerForward: options.headerForwardPattern !== undefined ? HeaderForwardPattern.compile(options.headerForwardPattern) : undefined,
  };
  grpcServer.addService(serviceDefinition(inference), restrict(inference, inferenceHandlers(engine, inference, limits), options.restrictedApis));
  const health = grpcService(HEALTH_SERVICE);
  grpcServer.addService(serviceDefinition(health), restrict(health, healthHandlers(engine, health, limits.maxRequestFields), options.restrictedApis));
  return grpcServer;
}

/** Binds to address:port (port 0 picks a free one) and resolves with the port bound. */
export function listenGrpc(grpcServer: grpc.Server, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    grpcServer.bindAsync(`${address}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve(bound);
    });
  });
}

/** Stops taking calls, lets running ones finish for up to `graceMs`, then cancels the rest. */
export function closeGrpc(grpcServer: grpc.Server, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      grpcServer.forceShutdown();
      resolve();
    }, graceMs);
    grpcServer.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A traced unary call's reply was handed to grpc-js: GRPC_SEND_END, and the trace is done. */
function endGrpcTrace(trace: RequestTrace | undefined): void {
  if (!trace) return;
  trace.mark('GRPC_SEND_END');
  trace.release();
}
