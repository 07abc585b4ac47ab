/**
 * Server-sent events on a raw HTTP response, as Triton's generate_stream
 * writes them: `data: <json>` and a blank line per event. The head goes out
 * with the first event, so its status can be that event's (Triton answers
 * an error status when the very first response is an error).
 */
import type { ServerResponse } from 'node:http';

export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';

export class SseWriter {
  constructor(private readonly raw: ServerResponse) {}

  /** Whether the client is still there to write to. */
  get open(): boolean {
    return !this.raw.destroyed && !this.raw.writableEnded;
  }

  /** One event holding `json` (one line: JSON.stringify never writes a raw newline). */
  event(json: string, status = 200): void {
    if (!this.open) return;
    this.head(status);
    this.raw.write(`data: ${json}\n\n`);
  }

  end(): void {
    if (!this.open) return;
    this.head(200);
    this.raw.end();
  }

  private head(status: number): void {
    if (this.raw.headersSent) return;
    this.raw.writeHead(status, { 'content-type': SSE_CONTENT_TYPE, 'cache-control': 'no-cache' });
  }
}
