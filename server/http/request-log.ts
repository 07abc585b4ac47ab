/**
 * Fastify's per-request log lines, moved to the verbose level: one line per
 * completed request, and only while verbose logging is on. Fastify's
 * default would write two info lines for every request. An inference
 * request's line also names its request id and its trace, when it has them.
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { quoted } from '../../engine/errors.ts';
import type { Logger } from '../../engine/logger.ts';

/** What an infer route learned of a request for its log line: its id and its trace, while verbose logging is on. */
const identities = new WeakMap<object, string>();

/** Notes a request's id and trace id for its completion line (call it only while verbose logging is on). */
export function noteRequestIdentity(request: FastifyRequest, id: string | undefined, trace: string | undefined): void {
  if (id === undefined && trace === undefined) return;
  identities.set(request, `${id !== undefined ? ` request id '${quoted(id, 64)}'` : ''}${trace !== undefined ? ` trace ${trace}` : ''}`);
}

export class VerboseRequestLog extends LogController {
  constructor(private readonly logger: Logger) {
    super();
  }

  override incomingRequest(): void {}

  override routeNotFound(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (!this.logger.verboseEnabled) return;
    const identity = identities.get(request);
    const line = `HTTP ${request.method} ${request.url} ${reply.statusCode} in ${reply.elapsedTime.toFixed(3)} ms${identity !== undefined ? `,${identity}` : ''}`;
    if (error) request.log.debug({ err: error }, `${line}: ${error.message}`);
    else request.log.debug(line);
  }
}
