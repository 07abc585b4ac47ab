/**
 * tritonserver's command-line flags, parsed into readonly options. Flags
 * whose feature this build does not have yet are refused with a message,
 * never silently ignored. Pure: no I/O, so every rule is unit-tested.
 */
import { didYouMean } from '../engine/config/did-you-mean.ts';
import { DEFAULT_GRPC_MAX_MESSAGE_SIZE } from './grpc/grpc-server.ts';
import { DEFAULT_MAX_INPUT_SIZE } from './http/http-server.ts';

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
  readonly modelControlMode: 'none' | 'explicit';
  readonly loadModels: readonly string[];
  readonly exitOnError: boolean;
  readonly strictReadiness: boolean;
  readonly logVerbose: number;
  readonly httpMaxInputSize: number;
  readonly id: string;
}

export class CliError extends Error {
  override readonly name = 'CliError';
}

type Kind = 'string' | 'int' | 'bool';

interface FlagSpec {
  readonly kind: Kind;
  readonly repeatable?: boolean;
  /** Set when this build cannot honour the flag yet: the reason it is refused. */
  readonly notYet?: string;
  /** Values that are fine even though the feature is missing (e.g. --allow-grpc=false). */
  readonly acceptWhen?: (value: string) => boolean;
}

const METRICS = 'the Prometheus metrics endpoint is not part of this build yet';

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
  'metrics-port': { kind: 'int', notYet: METRICS },
  'allow-metrics': { kind: 'bool', notYet: METRICS, acceptWhen: (v) => !parseBool(v) },
  'model-control-mode': { kind: 'string' },
  'load-model': { kind: 'string', repeatable: true },
  'repository-poll-secs': { kind: 'int', notYet: 'repository polling (--model-control-mode=poll) is not part of this build yet' },
  'exit-on-error': { kind: 'bool' },
  'strict-readiness': { kind: 'bool' },
  'log-verbose': { kind: 'int' },
  'http-max-input-size': { kind: 'int' },
  'id': { kind: 'string' },
  'disable-auto-complete-config': { kind: 'bool', notYet: 'turning auto-complete off is not part of this build yet', acceptWhen: (v) => !parseBool(v) },
  'strict-model-config': { kind: 'bool', notYet: 'strict model config (auto-complete off) is not part of this build yet', acceptWhen: (v) => !parseBool(v) },
};

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
  const modelRepositories = given.length > 0 || !defaultRepository ? given : [defaultRepository];
  if (modelRepositories.length === 0) throw new CliError('--model-repository is required: the folder holding <model>/config.pbtxt and <model>/<version>/');
  const mode = one('model-control-mode') ?? 'none';
  if (mode === 'poll') throw new CliError('--model-control-mode=poll is not supported yet: repository polling is not part of this build; use none or explicit');
  if (mode !== 'none' && mode !== 'explicit') throw new CliError(`--model-control-mode=${mode}: expected none, poll or explicit`);
  const loadModels = values.get('load-model') ?? [];
  if (loadModels.length > 0 && mode !== 'explicit') {
    throw new CliError('--load-model only applies with --model-control-mode=explicit');
  }
  if (loadModels.includes('*') && loadModels.length > 1) {
    throw new CliError('--load-model=* loads every model and must be the only --load-model');
  }
  return {
    modelRepositories,
    httpPort: int('http-port', 8000, 0, 65535),
    httpAddress: one('http-address') ?? '0.0.0.0',
    allowHttp: bool('allow-http', true),
    grpcPort: int('grpc-port', 8001, 0, 65535),
    grpcAddress: one('grpc-address') ?? '0.0.0.0',
    allowGrpc: bool('allow-grpc', true),
    grpcMaxMessageSize: int('grpc-max-message-size', DEFAULT_GRPC_MAX_MESSAGE_SIZE, 1, 2147483647),
    modelControlMode: mode,
    loadModels,
    exitOnError: bool('exit-on-error', true),
    strictReadiness: bool('strict-readiness', true),
    logVerbose: int('log-verbose', 0, 0, 10),
    httpMaxInputSize: int('http-max-input-size', DEFAULT_MAX_INPUT_SIZE, 1, Number.MAX_SAFE_INTEGER),
    id: one('id') ?? 'switchyard',
  };
}
