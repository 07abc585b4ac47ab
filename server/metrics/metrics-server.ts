/**
 * The metrics endpoint: `GET /metrics` on its own port (tritonserver's 8002)
 * answers every series of ServerMetrics in Prometheus' text format. It is a
 * plain node:http server: one route, nothing to decode, and nothing shared
 * with the inference frontends, so a slow scrape never queues behind
 * inference traffic there. Anything else gets a short plain-text error: 405
 * (with Allow) for another method on /metrics, 404 for another path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { MetricsOptions } from '../../engine/observability/metrics-options.ts';
import { ServerMetrics } from '../../engine/observability/server-metrics.ts';

/** tritonserver's default --metrics-port. */
export const DEFAULT_METRICS_PORT = 8002;

export interface MetricsServerOptions extends MetricsOptions {
  /** Port to listen on; 0 picks a free one. Default 8002. */
  readonly port?: number;
  /** Address to listen on. Default 0.0.0.0. */
  readonly address?: string;
}

export interface MetricsServer {
  readonly metrics: ServerMetrics;
  readonly http: Server;
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  /** e.g. http://127.0.0.1:8002/metrics */
  readonly url: string;
  /** Stops listening and stops the metrics. */
  close(): Promise<void>;
}

const PATH = '/metrics';

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(`${text}\n`);
}

async function answer(metrics: ServerMetrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== PATH) {
    plain(res, 404, `Not found: ${path}. Metrics are served at GET ${PATH}`);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(res, 405, `Method ${req.method} is not allowed on ${PATH}; use GET`, { allow: 'GET, HEAD' });
    return;
  }
  let body: string;
  try {
    body = await metrics.scrape();
  } catch (err) {
    plain(res, 500, `collecting metrics failed: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Serves metrics for `engine` over HTTP. Tests call it with `port: 0`;
 * the CLI with --metrics-port and --metrics-address.
 */
export async function startMetricsServer(engine: InferenceEngine, options: MetricsServerOptions = {}): Promise<MetricsServer> {
  const { port = DEFAULT_METRICS_PORT, address = '0.0.0.0', ...metricsOptions } = options;
  const metrics = ServerMetrics.create(engine, metricsOptions);
  const http = createServer((req, res) => {
    void answer(metrics, req, res);
  });
  // Scrapers keep connections open between scrapes; they must not hold up close().
  http.keepAliveTimeout = 5000;
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, address, () => {
        http.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    metrics.close();
    throw err;
  }
  const bound = (http.address() as AddressInfo).port;
  const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
  return {
    metrics, http, port: bound, url: `http://${host}:${bound}${PATH}`,
    async close() {
      metrics.close();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}
