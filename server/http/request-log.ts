/**
 * Fastify's per-request log lines, moved to the verbose level: one line per
 * completed request, and only while verbose logging is on. Fastify's
 * default would write two info lines for every request.
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../engine/logger.ts';

export class VerboseRequestLog extends LogController {
  constructor(private readonly logger: Logger) {
    super();
  }

  override incomingRequest(): void {}

  override routeNotFound(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (!this.logger.verboseEnabled) return;
    const line = `HTTP ${request.method} ${request.url} ${reply.statusCode} in ${reply.elapsedTime.toFixed(3)} ms`;
    if (error) request.log.debug({ err: error }, `${line}: ${error.message}`);
    else request.log.debug(line);
  }
}
