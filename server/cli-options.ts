/**
 * tritonserver's command-line flags, parsed into readonly options. Every
 * flag of tritonserver's command_line_parser.cc is known: a flag with no
 * meaning on this build (GPU pools, thread counts, backend folders) is
 * accepted, its value checked, and listed in acceptedWithoutEffect so the
 * server can say so once at start. A value that would promise a missing
 * feature (--grpc-use-ssl=true) is refused. Pure: no I/O, so every rule is unit-tested.
 */
import { DEFAULT_MAX_BYTES_ELEMENTS } from '../engine/bytes-tensor.ts';
import { DEFAULT_MAX_BATCH_SIZE, type ConfigCompletion } from '../engine/config/compile-model-config.ts';
import { didYouMean } from '../engine/config/did-you-mean.ts';
import { DEFAULT_MAX_SHARED_MEMORY_REGIONS } from '../engine/memory/shared-memory-manager.ts';
import { DEFAULT_MODEL_LOAD_THREAD_COUNT } from '../engine/repository/model-repository.ts';
import { readOnnxBackendSettings, type OnnxBackendSettings } from '../backends/onnxruntime/onnx-backend-settings.ts';
import {
  DEFAULT_GRPC_KEEPALIVE_TIME_MS, DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS, DEFAULT_GRPC_MAX_CONCURRENT_STREAMS, DEFAULT_GRPC_MAX_CONNECTION_IDLE_MS,
  DEFAULT_GRPC_MAX_MESSAGE_SIZE, type GrpcServerOptions,
} from './grpc/grpc-server.ts';
import { DEFAULT_GRPC_MAX_REQUEST_FIELDS } from './grpc/message-field-budget.ts';
import {
  DEFAULT_HTTP_HEADER_TIMEOUT_MS, DEFAULT_HTTP_KEEPALIVE_TIMEOUT_MS, DEFAULT_HTTP_MAX_CONNECTIONS, DEFAULT_HTTP_REQUEST_TIMEOUT_MS,
  DEFAULT_MAX_INPUT_SIZE, type HttpServerOptions,
} from './http/http-server.ts';
import {
  DEFAULT_JSON_CODEC_HEAP_MB, DEFAULT_JSON_CODEC_MIN_BYTES, DEFAULT_JSON_CODEC_PROCESSES, DEFAULT_JSON_CODEC_QUEUE, type JsonCodecPoolOptions,
} from './http/json-codec-pool.ts';
import { DEFAULT_METRICS_PORT } from './metrics/metrics-server.ts';
import { LOG_FORMATS, type LogFormat } from '../engine/logger.ts';
import { DEFAULT_STREAM_BUFFER, type StreamBufferLimits } from '../engine/response-stream.ts';
import { DEFAULT_METRICS_INTERVAL_MS, parseMetricsSetting, type MetricsOptions } from '../engine/observability/metrics-options.ts';
import type { RateLimiterOptions, RateLimitResourceSetting } from '../engine/scheduling/rate-limiter.ts';
import type { TraceStartup } from '../engine/observability/trace/trace-settings.ts';
import { HeaderForwardPattern } from './header-forwarding.ts';
import { readTraceOptions, TraceOptionError, type TraceFlags, type TraceOptions } from './trace-options.ts';
import { API_CATEGORIES, isApiCategory, type ApiCategory, type ApiRestriction, type RestrictedApis } from './restricted-apis.ts';

export interface CliOptions {
  readonly modelRepositories: readonly string[];
  readonly httpPort: number;
  readonly httpAddress: string;
  readonly allowHttp: boolean;
  readonly grpcPort: number;
  readonly grpcAddress: string;
  readonly allowGrpc: boolean;
  /** Largest gRPC request message, in bytes. */
  readonly grpcMaxMessageSize: number;
  /** Values one gRPC request message may hold: fields, repeated elements and map entries, at any depth. */
  readonly grpcMaxRequestFields: number;
  readonly modelControlMode: 'none' | 'explicit' | 'poll';
  readonly loadModels: readonly string[];
  /** Poll mode: seconds between two looks at the repository. */
  readonly repositoryPollSecs: number;
  /** On SIGTERM or SIGINT, how long in-flight requests may take to finish before the process exits. */
  readonly exitTimeoutSecs: number;
  readonly exitOnError: boolean;
  readonly strictReadiness: boolean;
  readonly logVerbose: number;
  readonly logInfo: boolean;
  readonly logWarning: boolean;
  readonly logError: boolean;
  /** '' logs to stderr. */
  readonly logFile: string;
  readonly logFormat: LogFormat;
  /** --http-restricted-api groups: category -> the header that unlocks it. */
  readonly httpRestrictedApis: RestrictedApis;
  /** --grpc-restricted-protocol and --grpc-restricted-api groups: category -> the metadata key that unlocks it. */
  readonly grpcRestrictedApis: RestrictedApis;
  readonly httpMaxInputSize: number;
  /** Elements one BYTES input may hold, over HTTP and gRPC. */
  readonly maxBytesElements: number;
  readonly id: string;
  /** Serve Prometheus metrics at GET /metrics on metricsAddress:metricsPort. */
  readonly allowMetrics: boolean;
  readonly metricsPort: number;
  readonly metricsAddress: string;
  /** --metrics-config settings, --metrics-interval-ms and --allow-cpu-metrics, merged. */
  readonly metrics: MetricsOptions;
  /** --cache-config local,size=<bytes> (or the older --response-cache-byte-size); undefined runs without a response cache. */
  readonly responseCache: { readonly sizeBytes: number } | undefined;
  /** --http-json-codec-processes, -queue, -heap-mb and -min-bytes: where large JSON bodies and responses are decoded and encoded. */
  readonly httpJsonCodec: Required<JsonCodecPoolOptions>;
  /** Connection limits of the HTTP frontend: the --http-*-timeout-secs flags and --http-max-connections. */
  readonly httpConnectionLimits: Pick<HttpServerOptions, 'headerTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections'>;
  /** Connection limits of the gRPC frontend: --grpc-max-connection-idle, --grpc-max-concurrent-streams, --grpc-max-connection-age[-grace], --grpc-keepalive-time and -timeout. */
  readonly grpcConnectionLimits: Pick<GrpcServerOptions,
    'maxConnectionIdleMs' | 'maxConcurrentStreams' | 'maxConnectionAgeMs' | 'maxConnectionAgeGraceMs' | 'keepaliveTimeMs' | 'keepaliveTimeoutMs'>;
  /** --http-header-forward-pattern; undefined forwards no header. */
  readonly httpHeaderForwardPattern: string | undefined;
  /** --grpc-header-forward-pattern; undefined forwards no metadata. */
  readonly grpcHeaderForwardPattern: string | undefined;
  /** --stream-buffer-responses and --stream-buffer-bytes: what one decoupled request's stream holds unread before send() waits. */
  readonly streamBuffer: StreamBufferLimits;
  /** --disable-auto-complete-config / --strict-model-config and --backend-config=[onnxruntime,]default-max-batch-size=N. */
  readonly configCompletion: ConfigCompletion;
  /** --rate-limit (default off) and every --rate-limit-resource. */
  readonly rateLimiter: RateLimiterOptions;
  /** --allow-client-shm (default false, as tritonserver since 2.69) and --max-shm-regions: the system shared memory extension. */
  readonly sharedMemory: { readonly allowClient: boolean; readonly maxRegions: number };
  /** --backend-config=onnxruntime,intra_op_thread_count=N and inter_op_thread_count=N: session defaults for ONNX models. */
  readonly onnxBackendSettings: OnnxBackendSettings;
  /** --model-config-name: read configs/<name>.pbtxt of each model folder that has one; undefined reads config.pbtxt. */
  readonly modelConfigName: string | undefined;
  /** --model-load-retry-count: how many more times a failed model load is tried. */
  readonly modelLoadRetryCount: number;
  /** --model-load-thread-count: how many models load at once. */
  readonly modelLoadThreadCount: number;
  /** --model-namespacing: a model name may appear in several repositories. */
  readonly modelNamespacing: boolean;
  /** --help: print the flags and exit. */
  readonly help: boolean;
  /** --trace-config and the deprecated --trace-* flags: the trace extension's mode and startup settings. */
  readonly trace: TraceStartup;
  /** Warnings to log once each at start, in tritonserver's words where it has them (deprecated trace flags, overrides). */
  readonly warnings: readonly string[];
  /** Flags given that have no meaning on this build, as written (e.g. --backend-directory). */
  readonly acceptedWithoutEffect: readonly string[];
}

/** Most retries of a failed model load (--model-load-retry-count): each may take as long as a load. */
export const MAX_MODEL_LOAD_RETRY_COUNT = 100;
/** Most models loading at once (--model-load-thread-count). */
export const MAX_MODEL_LOAD_THREAD_COUNT = 256;

export class CliError extends Error {
  override readonly name = 'CliError';
}

type Kind = 'string' | 'int' | 'bool';

interface FlagSpec {
  readonly kind: Kind | 'float';
  readonly repeatable?: boolean;
  /** 'none': means nothing on this build; accepted and listed at start. */
  readonly effect?: 'none';
  /** Values this build cannot honour though the flag works otherwise: accepted, and listed at start as without effect. */
  readonly noEffectWhen?: (value: string) => boolean;
  /** Checks a value's form; returns the problem, or undefined when fine. */
  readonly check?: (value: string) => string | undefined;
  /** Set when this build cannot honour the flag yet: the reason it is refused. */
  readonly notYet?: string;
  /** Values that are fine even though the feature is missing (e.g. --allow-grpc=false). */
  readonly acceptWhen?: (value: string) => boolean;
}

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  'model-repository': { kind: 'string', repeatable: true },
  'model-store': { kind: 'string', repeatable: true },
  'http-port': { kind: 'int' },
  'http-address': { kind: 'string' },
  'allow-http': { kind: 'bool' },
  'grpc-port': { kind: 'int' },
  'grpc-address': { kind: 'string' },
  'allow-grpc': { kind: 'bool' },
  'grpc-max-message-size': { kind: 'int' },
  'grpc-max-request-fields': { kind: 'int' },
  'allow-metrics': { kind: 'bool' },
  'metrics-port': { kind: 'int' },
  'metrics-address': { kind: 'string' },
  'metrics-config': { kind: 'string', repeatable: true },
  'metrics-interval-ms': { kind: 'int' },
  'allow-cpu-metrics': { kind: 'bool' },
  'model-control-mode': { kind: 'string' },
  'load-model': { kind: 'string', repeatable: true },
  'repository-poll-secs': { kind: 'int' },
  'exit-timeout-secs': { kind: 'int' },
  'exit-on-error': { kind: 'bool' },
  'strict-readiness': { kind: 'bool' },
  'log-verbose': { kind: 'int' },
  'log-info': { kind: 'bool' },
  'log-warning': { kind: 'bool' },
  'log-error': { kind: 'bool' },
  'log-file': { kind: 'string' },
  'log-format': { kind: 'string' },
  'http-restricted-api': { kind: 'string', repeatable: true },
  'grpc-restricted-protocol': { kind: 'string', repeatable: true },
  'grpc-restricted-api': { kind: 'string', repeatable: true },
  'http-max-input-size': { kind: 'int' },
  'max-bytes-elements': { kind: 'int' },
  'http-json-codec-processes': { kind: 'int' },
  'http-json-codec-queue': { kind: 'int' },
  'http-json-codec-heap-mb': { kind: 'int' },
  'http-json-codec-min-bytes': { kind: 'int' },
  'id': { kind: 'string' },
  'cache-config': { kind: 'string', repeatable: true },
  'response-cache-byte-size': { kind: 'int' },
  // Connection limits (slow and idle clients): Switchyard's own, except tritonserver's --grpc-max-connection-age[-grace].
  'http-header-timeout-secs': { kind: 'int' },
  'http-request-timeout-secs': { kind: 'int' },
  'http-keepalive-timeout-secs': { kind: 'int' },
  'http-max-connections': { kind: 'int' },
  'grpc-max-connection-idle': { kind: 'int' },
  'grpc-max-concurrent-streams': { kind: 'int' },
  'grpc-max-connection-age': { kind: 'int' },
  'grpc-max-connection-age-grace': { kind: 'int' },
  'allow-client-shm': { kind: 'bool' },
  'max-shm-regions': { kind: 'int' },
  'http-header-forward-pattern': { kind: 'string', check: regexProblem },
  'grpc-header-forward-pattern': { kind: 'string', check: regexProblem },
  'grpc-keepalive-time': { kind: 'int' },
  'grpc-keepalive-timeout': { kind: 'int' },
  // grpc-js's server sends no compressed message (its framing always writes the uncompressed flag); 'none' is what it does.
  'grpc-infer-response-compression-level': {
    kind: 'string', check: (v) => oneOf(v.toLowerCase(), ['none', 'low', 'medium', 'high']), noEffectWhen: (v) => v.toLowerCase() !== 'none',
  },
  // grpc-js's server pings on its own timer whether calls are open or not, and answers every client ping without counting strikes.
  'grpc-keepalive-permit-without-calls': { kind: 'bool', effect: 'none' },
  'grpc-http2-max-pings-without-data': { kind: 'int', effect: 'none', check: nonNegative },
  'grpc-http2-min-recv-ping-interval-without-data': { kind: 'int', effect: 'none', check: nonNegative },
  'grpc-http2-max-ping-strikes': { kind: 'int', effect: 'none', check: nonNegative },
  // Node 20's net.Server cannot set SO_REUSEPORT, so a second server cannot share the port; false, the default, is what it does.
  'reuse-http-port': { kind: 'bool', noEffectWhen: (v) => parseBool(v) },
  'reuse-grpc-port': { kind: 'bool', noEffectWhen: (v) => parseBool(v) },
  'stream-buffer-responses': { kind: 'int' },
  'stream-buffer-bytes': { kind: 'int' },
  'disable-auto-complete-config': { kind: 'bool' },
  'strict-model-config': { kind: 'bool' },
  'backend-config': { kind: 'string', repeatable: true, check: (v) => backendConfigProblem(v) },
  // tritonserver takes the mode in any case.
  'rate-limit': { kind: 'string', check: (v) => oneOf(v.toLowerCase(), ['execution_count', 'off']) },
  'rate-limit-resource': { kind: 'string', repeatable: true, check: (v) => (parseRateLimitResource(v) ? undefined : RATE_LIMIT_RESOURCE_FORMAT) },
  'help': { kind: 'bool' },
  'model-config-name': { kind: 'string', check: configNameProblem },
  'model-load-retry-count': { kind: 'int' },
  'model-load-thread-count': { kind: 'int' },
  'model-namespacing': { kind: 'bool' },
  // Triton looks for response cache libraries (libtritoncache.so) there; this build's one cache is built in.
  'cache-directory': { kind: 'string', effect: 'none' },
  // tritonserver flags with no meaning on this build: no GPU, no C++ thread pools, no shared-library folders.
  'backend-directory': { kind: 'string', effect: 'none' },
  'repoagent-directory': { kind: 'string', effect: 'none' },
  'enable-peer-access': { kind: 'bool', effect: 'none' },
  'http-thread-count': { kind: 'int', effect: 'none' },
  'grpc-infer-thread-count': { kind: 'int', effect: 'none' },
  'grpc-infer-allocation-pool-size': { kind: 'int', effect: 'none' },
  'grpc-max-response-pool-size': { kind: 'int', effect: 'none' },
  'sagemaker-port': { kind: 'int', effect: 'none' },
  'sagemaker-safe-port-range': { kind: 'string', effect: 'none', check: (v) => (/^\d+-\d+$/.test(v) ? undefined : 'expected <integer>-<integer>') },
  'sagemaker-thread-count': { kind: 'int', effect: 'none' },
  'vertex-ai-port': { kind: 'int', effect: 'none' },
  'vertex-ai-thread-count': { kind: 'int', effect: 'none' },
  'vertex-ai-default-model': { kind: 'string', effect: 'none' },
  'allow-gpu-metrics': { kind: 'bool', effect: 'none' },
  'pinned-memory-pool-byte-size': { kind: 'int', effect: 'none' },
  'cuda-memory-pool-byte-size': { kind: 'string', repeatable: true, effect: 'none', check: (v) => pairProblem(v, /^\d+$/, '<integer>:<integer>') },
  'cuda-virtual-address-size': { kind: 'string', repeatable: true, effect: 'none', check: (v) => pairProblem(v, /^\d+$/, '<integer>:<integer>') },
  'min-supported-compute-capability': { kind: 'float', effect: 'none' },
  'buffer-manager-thread-count': { kind: 'int', effect: 'none' },
  'host-policy': { kind: 'string', repeatable: true, effect: 'none', check: (v) => settingProblem(v, 'policy name') },
  'model-load-gpu-limit': { kind: 'string', repeatable: true, effect: 'none', check: (v) => pairProblem(v, /^\d*\.?\d+$/, '<device_id>:<fraction>') },
  // Certificates only matter with --grpc-use-ssl, which this build refuses when true.
  'grpc-server-cert': { kind: 'string', effect: 'none' },
  'grpc-server-key': { kind: 'string', effect: 'none' },
  'grpc-root-cert': { kind: 'string', effect: 'none' },
  // The trace flags, values read in trace-options.ts with tritonserver's texts; all but --trace-config are deprecated there.
  'trace-config': { kind: 'string', repeatable: true },
  'trace-file': { kind: 'string' },
  'trace-level': { kind: 'string', repeatable: true },
  'trace-rate': { kind: 'string' },
  'trace-count': { kind: 'string' },
  'trace-log-frequency': { kind: 'string' },
  // Frontends and transports this build does not have: off is fine, on is refused rather than silently missing.
  'grpc-use-ssl': { kind: 'bool', notYet: 'gRPC over TLS is not part of this build yet; put a TLS-terminating proxy in front', acceptWhen: (v) => !parseBool(v) },
  'grpc-use-ssl-mutual': { kind: 'bool', notYet: 'gRPC over mutual TLS is not part of this build yet; put a TLS-terminating proxy in front', acceptWhen: (v) => !parseBool(v) },
  'allow-sagemaker': { kind: 'bool', notYet: 'the SageMaker frontend is not part of this build', acceptWhen: (v) => !parseBool(v) },
  'allow-vertex-ai': { kind: 'bool', notYet: 'the Vertex AI frontend is not part of this build', acceptWhen: (v) => !parseBool(v) },
};

function oneOf(value: string, allowed: readonly string[]): string | undefined {
  return allowed.includes(value) ? undefined : `expected ${allowed.join(', ')}`;
}

/** `<a>:<b>` as the CUDA pool and GPU-limit flags take it: a device id, then a value of the given form. */
function pairProblem(value: string, second: RegExp, format: string): string | undefined {
  const [device, amount, extra] = value.split(':');
  return extra === undefined && /^\d+$/.test(device ?? '') && second.test(amount ?? '') ? undefined : `expected ${format}`;
}

/** tritonserver's generic `<name>,<setting>=<value>`: all three non-empty. */
function settingProblem(value: string, name: string): string | undefined {
  const comma = value.indexOf(',');
  const eq = value.indexOf('=', comma + 1);
  return comma > 0 && eq > comma + 1 && eq < value.length - 1 ? undefined : `expected <${name}>,<setting>=<value>`;
}

const RATE_LIMIT_RESOURCE_FORMAT = "expected '<resource_name>:<count>:<device>' or '<resource_name>:<count>', " +
  'a count and device from 0 to 2147483647';

/** `<resource>:<count>[:<device>]`, as tritonserver splits it; undefined when malformed or out of range. */
function parseRateLimitResource(value: string): RateLimitResourceSetting | undefined {
  const match = /^([^:]+):(\d{1,10})(?::(\d{1,10}))?$/.exec(value);
  if (!match) return undefined;
  const count = Number(match[2]);
  const device = match[3] === undefined ? undefined : Number(match[3]);
  if (count > INT32_MAX || (device !== undefined && device > INT32_MAX)) return undefined;
  return { name: match[1]!, count, ...(device !== undefined ? { device } : {}) };
}

const INT32_MAX = 2_147_483_647;

function nonNegative(value: string): string | undefined {
  return Number(value) >= 0 ? undefined : 'expected 0 or more';
}

/** A header forward pattern as the frontends compile it (header-forwarding.ts). */
function regexProblem(value: string): string | undefined {
  try {
    HeaderForwardPattern.compile(value);
    return undefined;
  } catch (err) {
    return `not a regular expression: ${(err as Error).message} (JavaScript syntax; a leading (?-i) makes it case-sensitive)`;
  }
}

/** --backend-config: `<backend>,<setting>=<value>`, or `<setting>=<value>` for every backend, as tritonserver parses it. */
function backendConfigProblem(value: string): string | undefined {
  const comma = value.indexOf(',');
  if (comma === 0) return 'no backend named; expected <backend name>,<setting>=<value> or <setting>=<value>';
  const eq = value.indexOf('=', comma + 1);
  if (eq < 0 || eq === comma + 1 || eq === value.length - 1) return 'expected <backend name>,<setting>=<value> or <setting>=<value>';
  return undefined;
}

/** Backends whose settings reach this build (config completion, the onnxruntime backend): '' is tritonserver's every-backend form. */
const COMPLETING_BACKENDS = ['', 'onnxruntime'];
const MAX_DEFAULT_MAX_BATCH_SIZE = 2_147_483_647;

/**
 * The completion settings, the onnxruntime backend's settings, and the
 * --backend-config entries that have no effect here (other backends, other
 * settings).
 */
function configCompletion(
  disable: boolean, strict: boolean | undefined, backendConfig: readonly string[],
): { completion: ConfigCompletion; onnx: OnnxBackendSettings; withoutEffect: string[] } {
  let defaultMaxBatchSize = DEFAULT_MAX_BATCH_SIZE;
  const withoutEffect: string[] = [];
  const onnxEntries: Array<[setting: string, value: string, entry: string]> = [];
  for (const entry of backendConfig) {
    const comma = entry.indexOf(',');
    const eq = entry.indexOf('=', comma + 1);
    const backend = comma < 0 ? '' : entry.slice(0, comma);
    const setting = entry.slice(comma + 1, eq);
    const value = entry.slice(eq + 1);
    if (!COMPLETING_BACKENDS.includes(backend)) {
      withoutEffect.push(`--backend-config=${entry}`);
      continue;
    }
    if (setting !== 'default-max-batch-size') {
      onnxEntries.push([setting, value, entry]);
      continue;
    }
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n <= MAX_DEFAULT_MAX_BATCH_SIZE)) {
      throw new CliError(`--backend-config=${entry}: expected default-max-batch-size from 0 to ${MAX_DEFAULT_MAX_BATCH_SIZE}`);
    }
    defaultMaxBatchSize = n;
  }
  let onnx: ReturnType<typeof readOnnxBackendSettings>;
  try {
    onnx = readOnnxBackendSettings(onnxEntries.map(([setting, value]) => [setting, value]));
  } catch (err) {
    throw new CliError(`--backend-config=${(err as Error).message}`);
  }
  const unread = new Set([...onnx.withoutEffect, ...onnx.unknown]);
  for (const [setting, value, entry] of onnxEntries) if (unread.has(`${setting}=${value}`)) withoutEffect.push(`--backend-config=${entry}`);
  // tritonserver: --disable-auto-complete-config wins over --strict-model-config=false.
  const enabled = !(disable || strict === true);
  return { completion: { enabled, defaultMaxBatchSize }, onnx: onnx.settings, withoutEffect };
}

/** Longest --model-config-name taken: a file name, which file systems bound at 255 bytes with its extension. */
export const MAX_MODEL_CONFIG_NAME_LENGTH = 200;

/** --model-config-name names a file in each model's configs/ folder: no spaces (as Triton), no path. */
function configNameProblem(value: string): string | undefined {
  if (value === '') return 'empty argument; name a config file in configs/ without its extension, e.g. --model-config-name=h100';
  if (value.length > MAX_MODEL_CONFIG_NAME_LENGTH) return `longer than ${MAX_MODEL_CONFIG_NAME_LENGTH} characters`;
  if (/\s/.test(value)) return 'the name should not contain a space character';
  if (/[/\\\0]/.test(value) || value === '.' || value === '..') return "a file name is expected, with no '/', '\\' or '..'";
  return undefined;
}

/** The remote repository forms tritonserver reads (Amazon S3, Google Cloud Storage, Azure Storage). */
const CLOUD_REPOSITORY = /^(s3|gs|as):\/\//i;

/** Every flag this build knows: tritonserver's, and Switchyard's own limits. */
export const CLI_FLAG_NAMES: readonly string[] = Object.keys(FLAGS);

function parseBool(value: string): boolean {
  return ['true', '1', 'yes', 'on', ''].includes(value.toLowerCase());
}

function checkBool(flag: string, value: string): void {
  if (!['true', 'false', '1', '0', 'yes', 'no', 'on', 'off', ''].includes(value.toLowerCase())) {
    throw new CliError(`--${flag}=${value}: expected true or false`);
  }
}

/**
 * @param defaultRepository used when no --model-repository is given (npm start
 *   passes ./pipelines through SWITCHYARD_DEFAULT_MODEL_REPOSITORY).
 */
export function parseCliOptions(argv: readonly string[], defaultRepository?: string): CliOptions {
  const values = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new CliError(`unexpected argument '${arg}': flags look like --model-repository=<path>`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = FLAGS[name];
    if (!spec) {
      const guess = didYouMean(name, Object.keys(FLAGS));
      throw new CliError(`unknown flag --${name}${guess ? `; did you mean --${guess}?` : ''}`);
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) value = 'true';
    else if (argv[i + 1] !== undefined) value = argv[++i]!;
    else throw new CliError(`--${name} needs a value`);
    if (spec.kind === 'bool') checkBool(name, value);
    if (spec.kind === 'int' && !/^-?\d+$/.test(value)) throw new CliError(`--${name}=${value}: expected an integer`);
    if (spec.kind === 'float' && !/^-?(\d+\.?\d*|\.\d+)$/.test(value)) throw new CliError(`--${name}=${value}: expected a number`);
    const problem = spec.check?.(value);
    if (problem !== undefined) throw new CliError(`--${name}=${value}: ${problem}`);
    if (spec.notYet && !(spec.acceptWhen?.(value) ?? false)) {
      throw new CliError(`--${name} is not supported yet: ${spec.notYet}`);
    }
    const list = values.get(name) ?? [];
    if (list.length > 0 && !spec.repeatable) throw new CliError(`--${name} is given more than once`);
    list.push(value);
    values.set(name, list);
  }

  const one = (name: string): string | undefined => values.get(name)?.[0];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const text = one(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (n < min || n > max) throw new CliError(`--${name}=${text}: expected a value from ${min} to ${max}`);
    return n;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const text = one(name);
    return text === undefined ? fallback : parseBool(text);
  };

  const given = [...(values.get('model-repository') ?? []), ...(values.get('model-store') ?? [])];
  const remote = given.find((path) => CLOUD_REPOSITORY.test(path));
  if (remote !== undefined) {
    throw new CliError(`--model-repository=${remote}: cloud storage repositories (s3://, gs://, as://) are not supported by this build; ` +
      'copy or mount the repository into a local folder and give that path');
  }
  const modelRepositories = given.length > 0 || !defaultRepository ? given : [defaultRepository];
  if (modelRepositories.length === 0 && !values.has('help')) throw new CliError('--model-repository is required: the folder holding <model>/config.pbtxt and <model>/<version>/');
  const mode = one('model-control-mode') ?? 'none';
  if (mode !== 'none' && mode !== 'explicit' && mode !== 'poll') throw new CliError(`--model-control-mode=${mode}: expected none, poll or explicit`);
  const loadModels = values.get('load-model') ?? [];
  if (loadModels.length > 0 && mode !== 'explicit') {
    throw new CliError("Use of '--load-model' requires setting '--model-control-mode=explicit' as well.");
  }
  // --repository-poll-secs outside poll mode is checked and then unused, as tritonserver does (it sets it to 0).
  if (loadModels.includes('*') && loadModels.length > 1) {
    throw new CliError('--load-model=* loads every model and must be the only --load-model');
  }
  const completion = configCompletion(
    bool('disable-auto-complete-config', false),
    values.has('strict-model-config') ? bool('strict-model-config', false) : undefined,
    values.get('backend-config') ?? [],
  );
  const withoutEffect = [...values.entries()]
    .filter(([n, given]) => FLAGS[n]!.effect === 'none' || given.some((v) => FLAGS[n]!.noEffectWhen?.(v)))
    .map(([n]) => `--${n}`);
  const trace = traceOptions({
    config: values.get('trace-config') ?? [], level: values.get('trace-level') ?? [],
    file: one('trace-file'), rate: one('trace-rate'), count: one('trace-count'), logFrequency: one('trace-log-frequency'),
  });
  return {
    modelRepositories,
    httpPort: int('http-port', 8000, 0, 65535),
    httpAddress: one('http-address') ?? '0.0.0.0',
    allowHttp: bool('allow-http', true),
    grpcPort: int('grpc-port', 8001, 0, 65535),
    grpcAddress: one('grpc-address') ?? '0.0.0.0',
    allowGrpc: bool('allow-grpc', true),
    grpcMaxMessageSize: int('grpc-max-message-size', DEFAULT_GRPC_MAX_MESSAGE_SIZE, 1, 2147483647),
    grpcMaxRequestFields: int('grpc-max-request-fields', DEFAULT_GRPC_MAX_REQUEST_FIELDS, 16, 2147483647),
    modelControlMode: mode,
    loadModels,
    repositoryPollSecs: int('repository-poll-secs', 15, 0, 86400),
    exitTimeoutSecs: int('exit-timeout-secs', 30, 0, 86400),
    exitOnError: bool('exit-on-error', true),
    strictReadiness: bool('strict-readiness', true),
    logVerbose: int('log-verbose', 0, 0, 10),
    logInfo: bool('log-info', true),
    logWarning: bool('log-warning', true),
    logError: bool('log-error', true),
    logFile: one('log-file') ?? '',
    logFormat: logFormat(one('log-format')),
    httpRestrictedApis: restrictedApis([['http-restricted-api', values.get('http-restricted-api') ?? [], '', 'api']]),
    grpcRestrictedApis: restrictedApis([
      ['grpc-restricted-protocol', values.get('grpc-restricted-protocol') ?? [], GRPC_RESTRICTED_PROTOCOL_PREFIX, 'protocol'],
      ['grpc-restricted-api', values.get('grpc-restricted-api') ?? [], '', 'api'],
    ]),
    httpMaxInputSize: int('http-max-input-size', DEFAULT_MAX_INPUT_SIZE, 1, Number.MAX_SAFE_INTEGER),
    maxBytesElements: int('max-bytes-elements', DEFAULT_MAX_BYTES_ELEMENTS, 1, 0xffff_ffff / 4),
    httpJsonCodec: {
      processes: int('http-json-codec-processes', DEFAULT_JSON_CODEC_PROCESSES, 1, 64),
      queue: int('http-json-codec-queue', DEFAULT_JSON_CODEC_QUEUE, 0, 1_000_000),
      heapMb: int('http-json-codec-heap-mb', DEFAULT_JSON_CODEC_HEAP_MB, 64, 1_048_576),
      minBytes: int('http-json-codec-min-bytes', DEFAULT_JSON_CODEC_MIN_BYTES, 0, Number.MAX_SAFE_INTEGER),
    },
    id: one('id') ?? 'switchyard',
    allowMetrics: bool('allow-metrics', true),
    metricsPort: int('metrics-port', DEFAULT_METRICS_PORT, 0, 65535),
    metricsAddress: one('metrics-address') ?? '0.0.0.0',
    metrics: {
      ...metricsConfig(values.get('metrics-config') ?? []),
      intervalMs: int('metrics-interval-ms', DEFAULT_METRICS_INTERVAL_MS, 1, 86_400_000),
      cpuMetrics: bool('allow-cpu-metrics', true),
    },
    responseCache: responseCache(values.get('cache-config') ?? [], one('response-cache-byte-size')),
    httpConnectionLimits: {
      headerTimeoutMs: int('http-header-timeout-secs', DEFAULT_HTTP_HEADER_TIMEOUT_MS / 1000, 1, 86_400) * 1000,
      requestTimeoutMs: int('http-request-timeout-secs', DEFAULT_HTTP_REQUEST_TIMEOUT_MS / 1000, 1, 86_400) * 1000,
      keepAliveTimeoutMs: int('http-keepalive-timeout-secs', DEFAULT_HTTP_KEEPALIVE_TIMEOUT_MS / 1000, 1, 86_400) * 1000,
      maxConnections: int('http-max-connections', DEFAULT_HTTP_MAX_CONNECTIONS, 1, 1_000_000),
    },
    grpcConnectionLimits: {
      maxConnectionIdleMs: int('grpc-max-connection-idle', DEFAULT_GRPC_MAX_CONNECTION_IDLE_MS, 1, 2147483647),
      maxConcurrentStreams: int('grpc-max-concurrent-streams', DEFAULT_GRPC_MAX_CONCURRENT_STREAMS, 1, 2147483647),
      ...(values.has('grpc-max-connection-age') ? { maxConnectionAgeMs: int('grpc-max-connection-age', 0, 1, 2147483647) } : {}),
      ...(values.has('grpc-max-connection-age-grace') ? { maxConnectionAgeGraceMs: int('grpc-max-connection-age-grace', 0, 0, 2147483647) } : {}),
      keepaliveTimeMs: int('grpc-keepalive-time', DEFAULT_GRPC_KEEPALIVE_TIME_MS, 1, 2147483647),
      keepaliveTimeoutMs: int('grpc-keepalive-timeout', DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS, 1, 2147483647),
    },
    httpHeaderForwardPattern: one('http-header-forward-pattern'),
    grpcHeaderForwardPattern: one('grpc-header-forward-pattern'),
    streamBuffer: {
      maxResponses: int('stream-buffer-responses', DEFAULT_STREAM_BUFFER.maxResponses, 1, 1_000_000),
      maxBytes: int('stream-buffer-bytes', DEFAULT_STREAM_BUFFER.maxBytes, 1, Number.MAX_SAFE_INTEGER),
    },
    configCompletion: completion.completion,
    rateLimiter: {
      mode: (one('rate-limit') ?? 'off').toLowerCase() as RateLimiterOptions['mode'],
      resources: (values.get('rate-limit-resource') ?? []).map((v) => parseRateLimitResource(v)!),
    },
    sharedMemory: {
      allowClient: bool('allow-client-shm', false),
      maxRegions: int('max-shm-regions', DEFAULT_MAX_SHARED_MEMORY_REGIONS, 1, 65_536),
    },
    onnxBackendSettings: completion.onnx,
    modelConfigName: one('model-config-name'),
    modelLoadRetryCount: int('model-load-retry-count', 0, 0, MAX_MODEL_LOAD_RETRY_COUNT),
    modelLoadThreadCount: int('model-load-thread-count', DEFAULT_MODEL_LOAD_THREAD_COUNT, 1, MAX_MODEL_LOAD_THREAD_COUNT),
    modelNamespacing: bool('model-namespacing', false),
    help: bool('help', false),
    trace: trace.startup,
    warnings: trace.warnings,
    acceptedWithoutEffect: [
      ...withoutEffect, ...completion.withoutEffect,
      // tritonserver ignores pool sizes when nothing is limited.
      ...((one('rate-limit') ?? 'off').toLowerCase() === 'off' && values.has('rate-limit-resource') ? ['--rate-limit-resource (with --rate-limit=off)'] : []),
    ],
  };
}

/** The trace flags read together (their precedence spans flags); a bad one becomes a CliError. */
function traceOptions(flags: TraceFlags): TraceOptions {
  try {
    return readTraceOptions(flags);
  } catch (err) {
    if (err instanceof TraceOptionError) throw new CliError(err.message);
    throw err;
  }
}

/**
 * `--cache-config <cache>,<key>=<value>`, repeatable, as tritonserver takes
 * it. This build has Triton's `local` cache, whose one setting is `size`
 * in bytes; other caches (redis, custom libraries) are refused. The older
 * `--response-cache-byte-size N` means `--cache-config local,size=N`.
 */
function responseCache(settings: readonly string[], byteSize: string | undefined): { sizeBytes: number } | undefined {
  if (byteSize !== undefined && settings.length > 0) {
    throw new CliError('--response-cache-byte-size and --cache-config both set the response cache; keep --cache-config local,size=<bytes>');
  }
  const sizes: Array<readonly [flag: string, text: string]> = [];
  // 0, the old flag's default, means no cache.
  if (byteSize !== undefined && byteSize !== '0') sizes.push([`--response-cache-byte-size=${byteSize}`, byteSize]);
  for (const setting of settings) {
    const flag = `--cache-config=${setting}`;
    const comma = setting.indexOf(',');
    const eq = setting.indexOf('=', comma + 1);
    if (comma < 0 || eq < 0) throw new CliError(`${flag}: expected <cache>,<key>=<value>, e.g. --cache-config local,size=1048576`);
    const cache = setting.slice(0, comma).trim();
    const key = setting.slice(comma + 1, eq).trim();
    if (cache !== 'local') {
      throw new CliError(`${flag}: cache '${cache}' is not available; this build has only the local cache (--cache-config local,size=<bytes>)`);
    }
    if (key !== 'size') throw new CliError(`${flag}: the local cache has no setting '${key}'; its only setting is size=<bytes>`);
    sizes.push([flag, setting.slice(eq + 1).trim()]);
  }
  if (sizes.length === 0) return undefined;
  if (sizes.length > 1) throw new CliError(`${sizes[1]![0]}: the cache size is already set by ${sizes[0]![0]}`);
  const [flag, text] = sizes[0]!;
  const sizeBytes = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1) throw new CliError(`${flag}: expected the cache size as a positive whole number of bytes, got '${text}'`);
  return { sizeBytes };
}

/** Every --metrics-config <key>=<value>, later ones winning; a bad one names itself. */
function metricsConfig(settings: readonly string[]): MetricsOptions {
  let options: MetricsOptions = {};
  for (const setting of settings) {
    try {
      options = { ...options, ...parseMetricsSetting(setting) };
    } catch (err) {
      throw new CliError(`--metrics-config=${setting}: ${(err as Error).message}`);
    }
  }
  return options;
}

function logFormat(text: string | undefined): LogFormat {
  if (text === undefined) return 'default';
  if (!(LOG_FORMATS as readonly string[]).includes(text)) {
    throw new CliError(`--log-format=${text}: expected ${LOG_FORMATS.join(', ')}`);
  }
  return text as LogFormat;
}

/** tritonserver puts this before the key of --grpc-restricted-protocol (gRPC metadata keys are lower case). */
export const GRPC_RESTRICTED_PROTOCOL_PREFIX = 'triton-grpc-protocol-';

/** An HTTP header name (RFC 9110 token) or, lower-cased, a gRPC metadata key. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METADATA_KEY = /^[0-9a-z_.-]+$/;

/**
 * `<category>[,<category>...]:<header>=<value>` groups, as tritonserver
 * parses them: the first ':' ends the categories and the first '=' after it
 * ends the header, so a value may hold either. A category may sit in one
 * group only, across every flag feeding the same frontend.
 */
function restrictedApis(groups: ReadonlyArray<readonly [flag: string, values: readonly string[], prefix: string, noun: 'api' | 'protocol']>): RestrictedApis {
  const restrictions: Partial<Record<ApiCategory, ApiRestriction>> = {};
  for (const [flag, values, prefix, noun] of groups) {
    const grpc = flag.startsWith('grpc-');
    for (const arg of values) {
      const format = `--${flag} option format is '<${noun}>[,<${noun}>...]:<key>=<value>'. Got ${arg}`;
      const colon = arg.indexOf(':');
      const eq = colon < 0 ? -1 : arg.indexOf('=', colon + 1);
      if (colon < 0 || eq < 0) throw new CliError(format);
      const categories = arg.slice(0, colon).split(',').map((c) => c.trim());
      const key = arg.slice(colon + 1, eq).trim();
      const value = arg.slice(eq + 1);
      if (categories.some((c) => c === '') || key === '' || value === '') throw new CliError(format);
      const header = (prefix + key).toLowerCase();
      if (!HEADER_NAME.test(key) || (grpc && (!METADATA_KEY.test(header) || header.startsWith('grpc-') || header.endsWith('-bin')))) {
        throw new CliError(`--${flag}=${arg}: '${key}' cannot be a ${grpc ? 'gRPC metadata key (letters, digits, \'-\', \'_\' and \'.\'; not grpc-*, not *-bin)' : 'header name'}`);
      }
      for (const category of categories) {
        if (!isApiCategory(category)) {
          const guess = didYouMean(category, API_CATEGORIES);
          throw new CliError(`--${flag}: unknown restricted ${noun} '${category}'${guess ? `; did you mean '${guess}'?` : ''} (one of ${API_CATEGORIES.join(', ')})`);
        }
        if (restrictions[category]) throw new CliError(`--${flag}: restricted ${noun} '${category}' can not be specified in multiple config groups`);
        restrictions[category] = { header, value };
      }
    }
  }
  return restrictions;
}
