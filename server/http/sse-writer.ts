/**
 * Server-sent events on a raw HTTP response, as Triton's generate_stream
 * writes them: `data: <json>` and a blank line per event. The head goes out
 * with the first event, so its status can be that event's (Triton answers
 * an error status when the very first response is an error).
 *
 * event() resolves once the socket can take more (at once, or on 'drain'),
 * so a caller that awaits it reads the next response from its stream only
 * when the client keeps up: the response stream's bounded buffer, not the
 * socket, is where a slow client's backlog waits (and its producer with it).
 */
import type { ServerResponse } from 'node:http';

export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';

export class SseWriter {
  constructor(private readonly raw: ServerResponse) {}

  /** Whether the client is still there to write to. */
  get open(): boolean {
    return !this.raw.destroyed && !this.raw.writableEnded;
  }

  /** One event holding `json` (one line: JSON.stringify never writes a raw newline); resolves when the socket takes more. */
  async event(json: string, status = 200): Promise<void> {
    if (!this.open) return;
    this.head(status);
    if (this.raw.write(`data: ${json}\n\n`)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.raw.off('drain', done);
        this.raw.off('close', done);
        resolve();
      };
      this.raw.on('drain', done);
      this.raw.on('close', done);
    });
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
