/**
 * perf_analyzer's command line, parsed once into a readonly PerfOptions.
 * Names, defaults and range rules follow perf_analyzer's; flags it has that
 * this tool does not implement are refused by name rather than ignored.
 */
// The perf tool is not part of the published client package (client/tsconfig.json builds index.ts and src/ only),
// so it may share the engine's pure did-you-mean helper instead of keeping a copy.
import { didYouMean } from '../../engine/config/did-you-mean.ts';

export type Protocol = 'http' | 'grpc';
export type RequestDistribution = 'constant' | 'poisson';

export interface ConcurrencyLoad {
  readonly kind: 'concurrency';
  readonly start: number;
  /** 0: keep stepping until the latency threshold is passed. */
  readonly end: number;
  readonly step: number;
}

export interface RequestRateLoad {
  readonly kind: 'request-rate';
  readonly start: number;
  /** 0: keep stepping until the latency threshold is passed. */
  readonly end: number;
  readonly step: number;
  readonly distribution: RequestDistribution;
}

export type LoadOptions = ConcurrencyLoad | RequestRateLoad;

export type InputDataOption =
  | { readonly kind: 'random' }
  | { readonly kind: 'zero' }
  | { readonly kind: 'files'; readonly paths: readonly string[] };

export interface SequenceOptions {
  /** Base length; undefined when not given (JSON streams then set the length, else 20). */
  readonly length: number | undefined;
  /** Percent by which a sequence's length may differ from the base length. */
  readonly lengthVariation: number;
  readonly idStart: number;
  /** Exclusive; undefined means unbounded. */
  readonly idEnd: number | undefined;
  /** Concurrent sequences in request-rate mode. */
  readonly numSequences: number;
}

export interface PerfOptions {
  readonly model: string;
  readonly modelVersion: string | undefined;
  readonly url: string;
  readonly protocol: Protocol;
  readonly batchSize: number;
  /** --shape, per input name, without the batch dimension. */
  readonly shapes: ReadonlyMap<string, readonly number[]>;
  readonly inputData: InputDataOption;
  readonly stringLength: number;
  readonly stringData: string | undefined;
  readonly load: LoadOptions;
  readonly measurementIntervalMs: number;
  readonly stabilityPercentage: number;
  readonly maxTrials: number;
  /** Stabilise on and headline this percentile; undefined means the average latency. */
  readonly percentile: number | undefined;
  /** 0 means no threshold. */
  readonly latencyThresholdMs: number;
  readonly sequence: SequenceOptions;
  /** Forces sequence mode even when the model's config has no sequence_batching. */
  readonly sequenceLengthGiven: boolean;
  readonly streaming: boolean;
  readonly csvFile: string | undefined;
  readonly json: boolean;
  readonly warmupRequests: number;
  readonly headers: Readonly<Record<string, string>>;
  /** HTTP: binary tensor extension (true) or JSON tensors (false). */
  readonly binaryTensors: boolean;
  readonly verbose: boolean;
}

export type ParsedCommand = { readonly kind: 'help' } | { readonly kind: 'run'; readonly options: PerfOptions };

/** A bad command line; the message is one line, without the "error: " prefix. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const DEFAULTS = {
  batchSize: 1,
  measurementIntervalMs: 5000,
  stabilityPercentage: 10,
  maxTrials: 10,
  sequenceLength: 20,
  sequenceLengthVariation: 20,
  sequenceIdStart: 1,
  numSequences: 4,
  stringLength: 128,
  httpUrl: 'localhost:8000',
  grpcUrl: 'localhost:8001',
} as const;

interface FlagSpec {
  readonly long: string;
  readonly short?: string;
  readonly takesValue: boolean;
  readonly repeatable?: boolean;
  readonly valueName?: string;
  readonly help: string;
}

/** Every flag this tool implements, in --help order. */
const FLAGS: readonly FlagSpec[] = [
  { long: 'model-name', short: 'm', takesValue: true, valueName: 'model', help: 'model to profile (required)' },
  { long: 'model-version', short: 'x', takesValue: true, valueName: 'version', help: 'model version (default: the server picks)' },
  { long: 'url', short: 'u', takesValue: true, valueName: 'url', help: 'server URL (default localhost:8000 for http, localhost:8001 for grpc)' },
  { long: 'protocol', short: 'i', takesValue: true, valueName: 'http|grpc', help: 'protocol (default http)' },
  { long: 'batch-size', short: 'b', takesValue: true, valueName: 'n', help: 'batch size of each request (default 1)' },
  { long: 'shape', takesValue: true, repeatable: true, valueName: 'NAME:d1,d2,...', help: 'shape of an input, without the batch dimension; needed for -1 dims' },
  { long: 'input-data', takesValue: true, repeatable: true, valueName: 'random|zero|<file.json>', help: 'input data (default random); JSON files may be repeated' },
  { long: 'string-length', takesValue: true, valueName: 'n', help: 'length of random BYTES elements (default 128)' },
  { long: 'string-data', takesValue: true, valueName: 'text', help: 'use this string for every BYTES element' },
  { long: 'concurrency-range', takesValue: true, valueName: 'start:end:step', help: 'closed loop: requests in flight (default 1)' },
  { long: 'request-rate-range', takesValue: true, valueName: 'start:end:step', help: 'open loop: requests per second' },
  { long: 'request-distribution', takesValue: true, valueName: 'constant|poisson', help: 'request spacing at a fixed rate (default constant)' },
  { long: 'measurement-interval', short: 'p', takesValue: true, valueName: 'ms', help: 'length of a measurement window (default 5000)' },
  { long: 'stability-percentage', short: 's', takesValue: true, valueName: 'pct', help: 'allowed spread over 3 windows (default 10)' },
  { long: 'max-trials', short: 'r', takesValue: true, valueName: 'n', help: 'windows before giving up on stability (default 10)' },
  { long: 'percentile', takesValue: true, valueName: 'p', help: 'stabilise on and report this latency percentile (default: average)' },
  { long: 'latency-threshold', short: 'l', takesValue: true, valueName: 'ms', help: 'stop the search once latency passes this (default 0: none)' },
  { long: 'sequence-length', takesValue: true, valueName: 'n', help: 'requests per sequence (default 20)' },
  { long: 'sequence-length-variation', takesValue: true, valueName: 'pct', help: 'spread of sequence lengths (default 20)' },
  { long: 'sequence-id-range', takesValue: true, valueName: 'start:end', help: 'sequence ids to use (default 1, unbounded)' },
  { long: 'num-of-sequences', takesValue: true, valueName: 'n', help: 'concurrent sequences in request-rate mode (default 4)' },
  { long: 'serial-sequences', takesValue: false, help: 'one request in flight per sequence (always the case here)' },
  { long: 'streaming', takesValue: false, help: 'use gRPC ModelStreamInfer' },
  { long: 'input-tensor-format', takesValue: true, valueName: 'binary|json', help: 'HTTP tensor format (default binary)' },
  { long: 'output-tensor-format', takesValue: true, valueName: 'binary|json', help: 'HTTP tensor format (default binary)' },
  { long: 'header', short: 'H', takesValue: true, repeatable: true, valueName: 'Name:Value', help: 'extra request header' },
  { long: 'warmup-request-count', takesValue: true, valueName: 'n', help: 'requests sent before measuring (default 0)' },
  { long: 'filename', short: 'f', takesValue: true, valueName: 'out.csv', help: "write perf_analyzer's CSV report" },
  { long: 'json', takesValue: false, help: 'print a JSON report to stdout instead of the text report' },
  { long: 'async', short: 'a', takesValue: false, help: 'accepted for compatibility: requests are always asynchronous' },
  { long: 'sync', takesValue: false, help: 'accepted for compatibility: requests are always asynchronous' },
  { long: 'max-threads', takesValue: true, valueName: 'n', help: 'accepted for compatibility: load runs on one event loop' },
  { long: 'verbose', short: 'v', takesValue: false, repeatable: true, help: 'print every measurement window' },
  { long: 'help', short: 'h', takesValue: false, help: 'print this help' },
];

/** perf_analyzer's spelling for the long names above where it has only a short flag. */
const SHORT_ONLY = new Set(['model-name', 'model-version', 'url', 'protocol', 'batch-size', 'filename', 'header']);

/** perf_analyzer flags this tool does not implement, with what to do instead. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  'service-kind': 'only Triton-protocol servers are supported',
  'bls-composing-models': 'BLS composing-model statistics are not reported',
  'model-signature-name': 'only for tfserving',
  'measurement-mode': 'only time windows (--measurement-interval) are supported',
  'measurement-request-count': 'only time windows (--measurement-interval) are supported',
  'periodic-concurrency-range': 'use --concurrency-range',
  'request-period': 'use --concurrency-range',
  'request-parameter': 'custom request parameters are not supported',
  'binary-search': 'only linear search over the range is supported',
  'request-intervals': 'use --request-rate-range with --request-distribution',
  'shared-memory': 'shared-memory tensors are not supported',
  'output-shared-memory-size': 'shared-memory tensors are not supported',
  'ssl-grpc-use-ssl': 'TLS options are not supported',
  'ssl-grpc-root-certifications-file': 'TLS options are not supported',
  'ssl-grpc-private-key-file': 'TLS options are not supported',
  'ssl-grpc-certificate-chain-file': 'TLS options are not supported',
  'ssl-https-verify-peer': 'TLS options are not supported',
  'ssl-https-verify-host': 'TLS options are not supported',
  'ssl-https-ca-certificates-file': 'TLS options are not supported',
  'ssl-https-client-certificate-file': 'TLS options are not supported',
  'ssl-https-client-certificate-type': 'TLS options are not supported',
  'ssl-https-private-key-file': 'TLS options are not supported',
  'ssl-https-private-key-type': 'TLS options are not supported',
  'triton-server-directory': 'the in-process C API is not supported; point -u at a running server',
  'model-repository': 'the in-process C API is not supported; point -u at a running server',
  'collect-metrics': 'Prometheus metrics collection is not supported',
  'metrics-url': 'Prometheus metrics collection is not supported',
  'metrics-interval': 'Prometheus metrics collection is not supported',
  'profile-export-file': 'use --json for a machine-readable report',
  'verbose-csv': 'the CSV has the standard columns only',
  'trace-file': 'tracing is not supported',
  'trace-level': 'tracing is not supported',
  'trace-rate': 'tracing is not supported',
  'trace-count': 'tracing is not supported',
  'log-frequency': 'tracing is not supported',
  'data-directory': 'use --input-data with a JSON file',
  'grpc-compression-algorithm': 'gRPC compression is not supported',
  c: 'deprecated in perf_analyzer; use --concurrency-range',
  d: 'deprecated in perf_analyzer; use --concurrency-range',
  t: 'deprecated in perf_analyzer; use --concurrency-range',
  z: 'deprecated in perf_analyzer; use --input-data=zero',
};

const BY_LONG = new Map(FLAGS.map((f) => [f.long, f]));
const BY_SHORT = new Map(FLAGS.filter((f) => f.short !== undefined).map((f) => [f.short as string, f]));

export function usage(): string {
  const lines = ['Usage: switchyard perf -m <model> [options]', '', 'Options (perf_analyzer names and defaults):'];
  for (const flag of FLAGS) {
    const names = [flag.short ? `-${flag.short}` : undefined, SHORT_ONLY.has(flag.long) ? undefined : `--${flag.long}`]
      .filter((n): n is string => n !== undefined)
      .join(', ');
    const value = flag.takesValue ? ` <${flag.valueName ?? 'value'}>` : '';
    lines.push(`  ${(names + value).padEnd(44)} ${flag.help}`);
  }
  return `${lines.join('\n')}\n`;
}

function displayName(flag: FlagSpec): string {
  return SHORT_ONLY.has(flag.long) && flag.short ? `-${flag.short}` : `--${flag.long}`;
}

function unknownFlag(token: string): UsageError {
  const bare = token.replace(/^-+/, '').split('=')[0] ?? '';
  const reason = UNSUPPORTED[bare];
  if (reason !== undefined) return new UsageError(`${token.split('=')[0]} is not supported by switchyard perf: ${reason}`);
  const longNames = FLAGS.filter((f) => !SHORT_ONLY.has(f.long)).map((f) => `--${f.long}`);
  const suggestion = token.startsWith('--') ? didYouMean(`--${bare}`, longNames) : undefined;
  return new UsageError(`unknown option '${token.split('=')[0]}'${suggestion ? `; did you mean '${suggestion}'?` : ''}`);
}

/** Splits argv into (flag, value) pairs. */
function tokenize(argv: readonly string[]): { flag: FlagSpec; value: string | undefined }[] {
  const out: { flag: FlagSpec; value: string | undefined }[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    let flag: FlagSpec | undefined;
    let inline: string | undefined;
    if (token.startsWith('--') && token.length > 2) {
      const eq = token.indexOf('=');
      const name = eq === -1 ? token.slice(2) : token.slice(2, eq);
      inline = eq === -1 ? undefined : token.slice(eq + 1);
      flag = SHORT_ONLY.has(name) ? undefined : BY_LONG.get(name);
      if (!flag) throw unknownFlag(token);
    } else if (token === '-?') {
      flag = BY_LONG.get('help');
    } else if (token.startsWith('-') && token.length > 1 && !/^-\d/.test(token)) {
      flag = BY_SHORT.get(token[1] as string);
      if (!flag) throw unknownFlag(token.slice(0, 2));
      if (token.length > 2) {
        if (!flag.takesValue) throw new UsageError(`${displayName(flag)} takes no value, got '${token}'`);
        inline = token.slice(2);
      }
    } else {
      throw new UsageError(`unexpected argument '${token}'; options start with '-' (e.g. -m <model>)`);
    }
    if (!flag) throw unknownFlag(token);
    if (flag.takesValue && inline === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`${displayName(flag)} needs a value <${flag.valueName ?? 'value'}>`);
      inline = next;
      i++;
    }
    if (!flag.takesValue && inline !== undefined) throw new UsageError(`${displayName(flag)} takes no value`);
    out.push({ flag, value: inline });
  }
  return out;
}

function integer(name: string, text: string, min: number): number {
  const value = /^[+-]?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`${name}: expected an integer >= ${min}, got '${text}'`);
  }
  return value;
}

function decimal(name: string, text: string, min: number, exclusiveMin = false): number {
  const value = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(value) || value < min || (exclusiveMin && value === min)) {
    throw new UsageError(`${name}: expected a number ${exclusiveMin ? '>' : '>='} ${min}, got '${text}'`);
  }
  return value;
}

/** 'start[:end[:step]]' as perf_analyzer reads it: end defaults to start, step to 1. */
export function parseRange(name: string, text: string, parse: (part: string) => number): { start: number; end: number; step: number } {
  const parts = text.split(':');
  if (parts.length > 3 || parts.some((p) => p.trim() === '')) {
    throw new UsageError(`${name}: expected start[:end[:step]], got '${text}'`);
  }
  const start = parse(parts[0] as string);
  const end = parts[1] === undefined ? start : parse(parts[1]);
  const step = parts[2] === undefined ? 1 : parse(parts[2]);
  if (start <= 0) throw new UsageError(`${name}: start must be > 0, got '${text}'`);
  if (step <= 0) throw new UsageError(`${name}: step must be > 0, got '${text}'`);
  if (end !== 0 && end < start) throw new UsageError(`${name}: end must be >= start (or 0 for no end), got '${text}'`);
  return { start, end, step };
}

/** 'NAME:d1,d2,...'; the name may itself contain ':' (the last one separates). */
export function parseShape(text: string): [string, number[]] {
  const colon = text.lastIndexOf(':');
  const name = colon > 0 ? text.slice(0, colon) : '';
  const dims = colon > 0 ? text.slice(colon + 1).split(',') : [];
  if (!name || dims.length === 0 || dims.some((d) => !/^\d+$/.test(d.trim()))) {
    throw new UsageError(`--shape: expected NAME:d1,d2,... with non-negative integer dims, got '${text}'`);
  }
  return [name, dims.map((d) => Number(d))];
}

function oneOf<T extends string>(name: string, text: string, choices: readonly T[]): T {
  const lower = text.toLowerCase();
  const found = choices.find((c) => c === lower);
  if (!found) throw new UsageError(`${name}: expected one of ${choices.join('|')}, got '${text}'`);
  return found;
}

/** Parses perf_analyzer-style argv. Throws UsageError with a one-line reason. */
export function parseArgs(argv: readonly string[]): ParsedCommand {
  const values = new Map<string, string[]>();
  let verbose = false;
  for (const { flag, value } of tokenize(argv)) {
    if (flag.long === 'help') return { kind: 'help' };
    if (flag.long === 'verbose') verbose = true;
    const seen = values.get(flag.long);
    if (seen && !flag.repeatable) throw new UsageError(`${displayName(flag)} given more than once`);
    values.set(flag.long, [...(seen ?? []), value ?? '']);
  }
  const one = (long: string): string | undefined => values.get(long)?.[0];
  const has = (long: string): boolean => values.has(long);

  const model = one('model-name');
  if (model === undefined || model === '') throw new UsageError('-m <model> is required');

  const urlText = one('url');
  const schemeProtocol: Protocol | undefined = urlText?.startsWith('grpc://')
    ? 'grpc'
    : urlText && /^https?:\/\//.test(urlText) ? 'http' : undefined;
  const protocolText = one('protocol');
  const protocol: Protocol = protocolText !== undefined ? oneOf('-i', protocolText, ['http', 'grpc'] as const) : schemeProtocol ?? 'http';
  if (schemeProtocol && schemeProtocol !== protocol) {
    throw new UsageError(`-u ${urlText} is a ${schemeProtocol} URL but -i says ${protocol}`);
  }
  const url = urlText ?? (protocol === 'grpc' ? DEFAULTS.grpcUrl : DEFAULTS.httpUrl);

  const batchSize = has('batch-size') ? integer('-b', one('batch-size') as string, 1) : DEFAULTS.batchSize;

  const shapes = new Map<string, number[]>();
  for (const text of values.get('shape') ?? []) {
    const [name, dims] = parseShape(text);
    if (shapes.has(name)) throw new UsageError(`--shape: input '${name}' given more than once`);
    shapes.set(name, dims);
  }

  const inputDataTexts = values.get('input-data') ?? [];
  let inputData: InputDataOption = { kind: 'random' };
  if (inputDataTexts.length > 0) {
    const keywords = inputDataTexts.filter((t) => t === 'random' || t === 'zero');
    if (keywords.length > 0 && inputDataTexts.length > 1) {
      throw new UsageError(`--input-data: '${keywords[0]}' cannot be combined with other --input-data values`);
    }
    const first = inputDataTexts[0] as string;
    if (first === 'random') inputData = { kind: 'random' };
    else if (first === 'zero') inputData = { kind: 'zero' };
    else if (inputDataTexts.some((t) => t === '')) throw new UsageError('--input-data: expected random, zero or a JSON file path');
    else inputData = { kind: 'files', paths: inputDataTexts };
  }

  if (has('concurrency-range') && has('request-rate-range')) {
    throw new UsageError('--concurrency-range and --request-rate-range cannot be used together');
  }
  const latencyThresholdMs = has('latency-threshold') ? integer('-l', one('latency-threshold') as string, 0) : 0;
  let load: LoadOptions;
  if (has('request-rate-range')) {
    const range = parseRange('--request-rate-range', one('request-rate-range') as string, (p) => decimal('--request-rate-range', p, 0));
    const distribution = has('request-distribution')
      ? oneOf('--request-distribution', one('request-distribution') as string, ['constant', 'poisson'] as const)
      : 'constant';
    load = { kind: 'request-rate', ...range, distribution };
  } else {
    const range = has('concurrency-range')
      ? parseRange('--concurrency-range', one('concurrency-range') as string, (p) => integer('--concurrency-range', p, 0))
      : { start: 1, end: 1, step: 1 };
    load = { kind: 'concurrency', ...range };
  }
  if (load.end === 0 && latencyThresholdMs === 0) {
    throw new UsageError(`an open-ended ${load.kind === 'concurrency' ? '--concurrency-range' : '--request-rate-range'} (end 0) needs --latency-threshold`);
  }

  const measurementIntervalMs = has('measurement-interval')
    ? integer('--measurement-interval', one('measurement-interval') as string, 1)
    : DEFAULTS.measurementIntervalMs;
  const stabilityPercentage = has('stability-percentage')
    ? decimal('--stability-percentage', one('stability-percentage') as string, 0)
    : DEFAULTS.stabilityPercentage;
  const maxTrials = has('max-trials') ? integer('--max-trials', one('max-trials') as string, 1) : DEFAULTS.maxTrials;
  let percentile: number | undefined;
  if (has('percentile')) {
    const value = integer('--percentile', one('percentile') as string, -1);
    if (value !== -1 && (value < 1 || value > 99)) throw new UsageError(`--percentile: expected 1..99 (or -1 for the average), got '${value}'`);
    percentile = value === -1 ? undefined : value;
  }

  const sequenceLengthGiven = has('sequence-length');
  let idStart: number = DEFAULTS.sequenceIdStart;
  let idEnd: number | undefined;
  if (has('sequence-id-range')) {
    const text = one('sequence-id-range') as string;
    const parts = text.split(':');
    if (parts.length > 2) throw new UsageError(`--sequence-id-range: expected start[:end], got '${text}'`);
    idStart = integer('--sequence-id-range', parts[0] as string, 1);
    if (parts[1] !== undefined) {
      idEnd = integer('--sequence-id-range', parts[1], 1);
      if (idEnd <= idStart) throw new UsageError(`--sequence-id-range: end (exclusive) must be > start, got '${text}'`);
    }
  }
  const sequence: SequenceOptions = {
    length: sequenceLengthGiven ? integer('--sequence-length', one('sequence-length') as string, 1) : undefined,
    lengthVariation: has('sequence-length-variation')
      ? decimal('--sequence-length-variation', one('sequence-length-variation') as string, 0)
      : DEFAULTS.sequenceLengthVariation,
    idStart,
    idEnd,
    numSequences: has('num-of-sequences') ? integer('--num-of-sequences', one('num-of-sequences') as string, 1) : DEFAULTS.numSequences,
  };

  const streaming = has('streaming');
  if (streaming && protocol !== 'grpc') throw new UsageError('--streaming needs the gRPC protocol (-i grpc)');

  const formats = ['input-tensor-format', 'output-tensor-format']
    .filter(has)
    .map((f) => oneOf(`--${f}`, one(f) as string, ['binary', 'json'] as const));
  if (formats.length === 2 && formats[0] !== formats[1]) {
    throw new UsageError('--input-tensor-format and --output-tensor-format must match: the client sends and asks for one format');
  }
  if (formats.length > 0 && protocol !== 'http') throw new UsageError('--input-tensor-format/--output-tensor-format apply to HTTP only');

  const headers: Record<string, string> = {};
  for (const text of values.get('header') ?? []) {
    const colon = text.indexOf(':');
    if (colon <= 0) throw new UsageError(`-H: expected Name:Value, got '${text}'`);
    headers[text.slice(0, colon).trim()] = text.slice(colon + 1).trim();
  }

  if (has('max-threads')) integer('--max-threads', one('max-threads') as string, 1);

  const csvFile = one('filename');
  if (csvFile === '') throw new UsageError('-f: expected a file path');

  return {
    kind: 'run',
    options: {
      model,
      modelVersion: one('model-version'),
      url,
      protocol,
      batchSize,
      shapes,
      inputData,
      stringLength: has('string-length') ? integer('--string-length', one('string-length') as string, 0) : DEFAULTS.stringLength,
      stringData: one('string-data'),
      load,
      measurementIntervalMs,
      stabilityPercentage,
      maxTrials,
      percentile,
      latencyThresholdMs,
      sequence,
      sequenceLengthGiven,
      streaming,
      csvFile,
      json: has('json'),
      warmupRequests: has('warmup-request-count') ? integer('--warmup-request-count', one('warmup-request-count') as string, 0) : 0,
      headers,
      binaryTensors: formats[0] !== 'json',
      verbose,
    },
  };
}

/** The load levels a range walks through; an open range (end 0) is cut off by the caller. */
export function* loadLevels(load: LoadOptions): Generator<number> {
  // Rates step by decimals; count steps instead of accumulating to avoid drift.
  for (let i = 0; ; i++) {
    const level = load.start + i * load.step;
    if (load.end !== 0 && level > load.end + 1e-9) return;
    yield load.kind === 'request-rate' ? Number(level.toFixed(6)) : level;
  }
}
