/**
 * Triton's logging extension over HTTP:
 *   GET  /v2/logging   the settings, {"log_file":"","log_info":true,...}
 *   POST /v2/logging   a JSON object with any subset of them; answers the settings after the change
 * A bad value or an unknown setting is a 400 naming it, and changes nothing.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { serverError } from '../../engine/errors.ts';
import type { LogSettingValue, ServerLogger } from '../../engine/logger.ts';
import { sendError } from './v2-routes.ts';
import { jsonObjectBody } from './json-body.ts';

export interface LoggingRoutesOptions {
  /** The logger whose settings these routes read and change; undefined when the server runs with a fixed one. */
  readonly logger: ServerLogger | undefined;
}

function fixedLogger(): Error {
  return serverError('NOT_IMPLEMENTED', {
    feature: 'changing log settings', detail: 'this server was started with a fixed logger that has no run-time settings',
  });
}

function settingsBody(body: unknown): Record<string, LogSettingValue> {
  return jsonObjectBody(body, 'the log settings') as Record<string, LogSettingValue>;
}

export const loggingRoutes: FastifyPluginAsync<LoggingRoutesOptions> = async (app: FastifyInstance, { logger }) => {
  app.get('/v2/logging', async (_req, reply) => {
    if (!logger) return sendError(reply, fixedLogger());
    return reply.type('application/json').send(JSON.stringify(logger.settings()));
  });
  app.post('/v2/logging', async (req, reply) => {
    try {
      if (!logger) throw fixedLogger();
      return reply.type('application/json').send(JSON.stringify(logger.update(settingsBody(req.body))));
    } catch (err) {
      return sendError(reply, err);
    }
  });
};
