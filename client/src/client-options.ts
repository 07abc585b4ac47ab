/**
 * What the caller configures, for the client as a whole and per inference
 * call; and the one function that turns client options into the resolved,
 * read-only form the transports use.
 */
import type { ParameterValue } from './infer-result.ts';

/** Options for one inference call. All optional. */
export interface InferOptions {
  /** Model version to use (default: the server's choice, normally the latest ready version). */
  readonly modelVersion?: string;
  /** Request id, echoed in the result. */
  readonly id?: string;
  /** Outputs wanted (default: all). */
  readonly outputs?: readonly string[];
  /** Request parameters, passed to the server as they are. */
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
  /** Aborting it stops the call with InferenceServerError code 'CANCELLED'. */
  readonly signal?: AbortSignal;
  /** Deadline in ms (gRPC deadline / HTTP request timeout); overrides the client's timeoutMs. */
  readonly timeoutMs?: number;
}

/** Options for an InferenceClient. Only `url` is required. */
export interface ClientOptions {
  /** 'localhost:8000', 'http://host:8000', 'https://host', 'grpc://host:8001'. A bare host:port is HTTP unless protocol says otherwise. */
  readonly url: string;
  /** Transport for a bare host:port (default 'http'); must agree with the URL's scheme when it has one. */
  readonly protocol?: 'http' | 'grpc';
  /** HTTP only: send inputs and ask for outputs with the binary tensor extension (default true). false = pure JSON. */
  readonly binary?: boolean;
  /**
   * gRPC only: send inputs as raw_input_contents (default true) or as typed `contents`.
   * FP16 and BF16 have no typed field, so a request holding one goes raw either way.
   */
  readonly rawContents?: boolean;
  /** Extra headers (HTTP) or metadata (gRPC) sent with every call. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Deadline in ms for every call (default: none). */
  readonly timeoutMs?: number;
}

/** Client options after defaults and URL parsing. */
export interface ResolvedClientOptions {
  readonly protocol: 'http' | 'grpc';
  /** TLS for HTTP (an https:// URL). */
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly binary: boolean;
  readonly rawContents: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number | undefined;
}

const SCHEMES: Readonly<Record<string, { protocol: 'http' | 'grpc'; secure: boolean; port: number }>> = {
  'http:': { protocol: 'http', secure: false, port: 80 },
  'https:': { protocol: 'http', secure: true, port: 443 },
  'grpc:': { protocol: 'grpc', secure: false, port: 8001 },
};

/** Checks client options and fills in defaults. Throws TypeError on a URL or option that does not make sense. */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  if (typeof options?.url !== 'string' || options.url === '') throw new TypeError("ClientOptions.url is required, e.g. 'localhost:8000' or 'grpc://localhost:8001'");
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(options.url);
  const bareProtocol = options.protocol ?? 'http';
  let parsed: URL;
  try {
    parsed = new URL(hasScheme ? options.url : `${bareProtocol}://${options.url}`);
  } catch {
    throw new TypeError(`ClientOptions.url '${options.url}' is not a host:port or URL`);
  }
  const scheme = SCHEMES[parsed.protocol];
  if (!scheme) throw new TypeError(`ClientOptions.url '${options.url}': unsupported scheme ${parsed.protocol} (use http://, https:// or grpc://)`);
  if (options.protocol && options.protocol !== scheme.protocol) {
    throw new TypeError(`ClientOptions.url '${options.url}' is ${scheme.protocol} but protocol is '${options.protocol}'`);
  }
  if (parsed.pathname !== '/' && parsed.pathname !== '') {
    throw new TypeError(`ClientOptions.url '${options.url}': a path is not supported, give only the host and port`);
  }
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new TypeError(`ClientOptions.timeoutMs must be a positive number of ms, got ${timeoutMs}`);
  return Object.freeze({
    protocol: scheme.protocol,
    secure: scheme.secure,
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port ? Number(parsed.port) : scheme.port,
    binary: options.binary ?? true,
    rawContents: options.rawContents ?? true,
    headers: Object.freeze({ ...options.headers }),
    timeoutMs,
  });
}
