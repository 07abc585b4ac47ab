/**
 * Triton's trace extension settings over HTTP:
 *   GET  /v2/trace/setting                the global settings
 *   POST /v2/trace/setting                a JSON object with any of trace_level, trace_rate,
 *                                         trace_count, log_frequency; answers the settings after it
 *   GET|POST /v2/models/<m>/trace/setting  the same for one model, which mirrors the global
 *                                         settings in every field it has not set itself
 * Values are Triton's: trace_level a list of strings, the others strings,
 * null hands a field back to the level above. Errors are Triton's texts.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { serverError } from '../../engine/errors.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { TraceSettingChange, TraceSettings, TraceSettingsView } from '../../engine/observability/trace/trace-settings.ts';
import { checkTraceModel, traceSettingChanges } from '../trace-setting-request.ts';
import { jsonObjectBody } from './json-body.ts';
import { sendError } from './v2-routes.ts';

export interface TraceRoutesOptions {
  /** The engine whose tracer's settings these routes read and change, and whose models they check. */
  readonly engine: InferenceEngine;
}

type ModelRequest = FastifyRequest<{ Params: { model: string } }>;

/** A POST body's changes: the JSON types Triton reads, checked key by key in its order. */
function bodyChanges(settings: TraceSettings, body: unknown): Map<string, TraceSettingChange> {
  const json = jsonObjectBody(body, 'the trace settings');
  return traceSettingChanges(settings, 'http', (key) => {
    if (!Object.hasOwn(json, key)) return undefined;
    const value = json[key];
    // trace_file is refused whatever its value; the settings say so.
    if (key === 'trace_file' || value === null) return null;
    if (key === 'trace_level') {
      if (!Array.isArray(value)) throw serverError('TRACE_SETTING_TYPE', { expected: 'array' });
      if (!value.every((level) => typeof level === 'string')) throw serverError('TRACE_SETTING_TYPE', { expected: 'string' });
      return value as string[];
    }
    if (typeof value !== 'string') throw serverError('TRACE_SETTING_TYPE', { expected: 'string' });
    return [value];
  });
}

export const traceRoutes: FastifyPluginAsync<TraceRoutesOptions> = async (app: FastifyInstance, { engine }) => {
  const settings = engine.tracer.settings;
  const answer = (reply: FastifyReply, view: TraceSettingsView) => reply.type('application/json').send(JSON.stringify(view));

  app.get('/v2/trace/setting', async (_req, reply) => answer(reply, settings.view()));
  app.post('/v2/trace/setting', async (req, reply) => {
    try {
      return answer(reply, settings.update(undefined, bodyChanges(settings, req.body), 'http'));
    } catch (err) {
      return sendError(reply, err);
    }
  });
  // As Triton, the model is checked before the body is read.
  app.get('/v2/models/:model/trace/setting', async (req: ModelRequest, reply) => {
    const { model } = req.params;
    try {
      checkTraceModel(engine, model);
      return answer(reply, settings.view(model));
    } catch (err) {
      return sendError(reply, err, model);
    }
  });
  app.post('/v2/models/:model/trace/setting', async (req: ModelRequest, reply) => {
    const { model } = req.params;
    try {
      checkTraceModel(engine, model);
      return answer(reply, settings.update(model, bodyChanges(settings, req.body), 'http'));
    } catch (err) {
      return sendError(reply, err, model);
    }
  });
};
