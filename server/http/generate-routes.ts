/**
 * Triton's generate extension as a fastify plugin:
 *   POST /v2/models/{m}[/versions/{v}]/generate         one JSON object
 *   POST /v2/models/{m}[/versions/{v}]/generate_stream  server-sent events
 * Both run the request through InferenceEngine.inferStream, so they serve
 * decoupled models and all others alike. A request refused before it runs
 * gets a JSON error with its status; once it runs, generate_stream reports
 * an error response as an event {"error": "..."} (with the error's status
 * when it is the first event, as Triton does). A client that goes away
 * cancels the request, and the model hears of it. A body with a
 * Content-Encoding other than identity is refused with 400, as in Triton.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULT_MAX_BYTES_ELEMENTS } from '../../engine/bytes-tensor.ts';
import { asSwitchyardError, serverError } from '../../engine/errors.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import type { ResponseStream } from '../../engine/response-stream.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { explainMissingInputs } from './generate-codec.ts';
import { requestCompression } from './request-decompression.ts';
import type { JsonCodecPool } from './json-codec-pool.ts';
import { jsonOutputBytes, plainResponse } from './json-codec-task.ts';
import { SseWriter } from './sse-writer.ts';
import { disconnectSignal, sendError } from './v2-routes.ts';
import type { RequestTrace } from '../../engine/observability/trace/request-trace.ts';
import { traceHttpRequest } from './http-trace.ts';

export interface GenerateRoutesOptions {
  readonly engine: InferenceEngine;
  /** Where JSON bodies and responses are decoded and encoded (see json-codec-pool.ts). */
  readonly codec: JsonCodecPool;
  /** Elements one BYTES input may hold; default DEFAULT_MAX_BYTES_ELEMENTS. */
  readonly maxBytesElements?: number;
}

interface ModelParams {
  model: string;
  version?: string;
}

type ModelRequest = FastifyRequest<{ Params: ModelParams }>;

export const generateRoutes: FastifyPluginAsync<GenerateRoutesOptions> = async (app: FastifyInstance, { engine, codec, maxBytesElements = DEFAULT_MAX_BYTES_ELEMENTS }) => {
  /** Decodes the body and starts the request; throws what the client should get as a JSON error. */
  const start = async (req: ModelRequest, signal: AbortSignal, trace: RequestTrace | undefined): Promise<ResponseStream> => {
    const { model, version } = req.params;
    engine.assertModelReady(model, version);
    const inputs = engine.modelMetadata(model, version).inputs;
    // Triton reads generate bodies as sent: any encoding but identity is refused once the model is known.
    if (requestCompression(req.headers['content-encoding']) !== 'none') {
      throw serverError('BAD_REQUEST', { detail: "Unsupported content-encoding, only 'identity' is supported." });
    }
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const target = { model, ...(version ? { version } : {}) };
    const decoded = await codec.run({ kind: 'generate-request', body, inputs, target, maxBytesElements }, body.byteLength);
    try {
      return await engine.inferStream(trace ? { ...decoded.request, signal, trace } : { ...decoded.request, signal });
    } catch (err) {
      throw explainMissingInputs(asSwitchyardError(err, model), decoded, inputs);
    }
  };

  /** The body of one response; its pooled memory goes back once copied into the text. */
  const encode = async (response: InferenceResponse): Promise<string> => {
    try {
      return await codec.run({ kind: 'generate-response', response: plainResponse(response) }, jsonOutputBytes(response.outputs));
    } finally {
      response.lease?.release();
    }
  };

  const generate = async (req: ModelRequest, reply: FastifyReply) => {
    const { model } = req.params;
    // A second response is one too many: it stops the request, as the client would get an error anyway.
    const stop = new AbortController();
    const gone = disconnectSignal(reply);
    gone.addEventListener('abort', () => stop.abort(gone.reason), { once: true });
    const trace = traceHttpRequest(engine.tracer, model, req, reply);
    try {
      const responses = await start(req, stop.signal, trace);
      let answer: string | undefined;
      let count = 0;
      for await (const item of responses) {
        if (item.error) throw item.error;
        if (!item.response) continue;
        if (++count > 1) {
          stop.abort(new Error('generate takes exactly one response'));
          throw serverError('GENERATE_RESPONSE_COUNT', { model, got: 'more than one' });
        }
        answer = await encode(item.response);
      }
      if (answer === undefined) throw serverError('GENERATE_RESPONSE_COUNT', { model, got: 'none' });
      trace?.mark('HTTP_SEND_START');
      return reply.type('application/json').send(answer);
    } catch (err) {
      trace?.mark('HTTP_SEND_START');
      return sendError(reply, err, model);
    }
  };

  const generateStream = async (req: ModelRequest, reply: FastifyReply) => {
    let responses: ResponseStream;
    const trace = traceHttpRequest(engine.tracer, req.params.model, req, reply);
    try {
      responses = await start(req, disconnectSignal(reply), trace);
    } catch (err) {
      trace?.mark('HTTP_SEND_START');
      return sendError(reply, err, req.params.model);
    }
    trace?.mark('HTTP_SEND_START');
    reply.hijack();
    const events = new SseWriter(reply.raw);
    // The next response is read only once the socket has taken this one: a client that does not read holds the model back.
    for await (const item of responses) {
      if (item.response) {
        const text = await encode(item.response).catch((err: unknown) => asSwitchyardError(err, req.params.model));
        if (typeof text === 'string') await events.event(text);
        else await events.event(JSON.stringify({ error: text.message }), text.httpStatus);
      }
      else if (item.error) await events.event(JSON.stringify({ error: item.error.message }), item.error.httpStatus);
    }
    events.end();
  };

  for (const prefix of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.post(`${prefix}/generate`, generate);
    app.post(`${prefix}/generate_stream`, generateStream);
  }
};
