/**
 * Loads one model whose folder has been read: picks its versions by the
 * version policy, loads each (trying a failed one again up to
 * --model-load-retry-count times), and gives the entry the repository keeps.
 */
import { join } from 'node:path';
import type { BackendRegistry } from '../backend-registry.ts';
import { ENSEMBLE_BACKEND, type ConfigCompletion, type ModelSettings } from '../config/compile-model-config.ts';
import type { CompiledModelConfig } from '../config/compiled-model-config.ts';
import type { ParsedModelConfig } from '../config/parse-model-config.ts';
import type { InferFunction } from '../infer-function.ts';
import type { Logger } from '../logger.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import type { InferStreamFunction } from '../response-stream.ts';
import type { RateLimiter } from '../scheduling/rate-limiter.ts';
import { confinePath } from './confined-path.ts';
import type { ModelEntry } from './model-entry.ts';
import { versionFolders } from './model-folder.ts';
import { ModelVersion } from './model-version.ts';
import { selectVersions } from './version-policy.ts';

export interface ModelLoadOptions {
  /** The backends models may name; a config naming another is refused. */
  readonly backends: BackendRegistry;
  readonly logger: Logger;
  /** The server's infer(), which ensemble steps call. */
  readonly infer?: InferFunction;
  /** The server's inferStream(), which the steps of decoupled ensembles call. */
  readonly inferStream?: InferStreamFunction;
  /** The server's tensor memory, shared by every model. */
  readonly bufferPool?: BufferPool;
  /** How far configs are completed from their models; default DEFAULT_CONFIG_COMPLETION. */
  readonly completion?: ConfigCompletion;
  /** The server's rate limiter, which every instance joins (--rate-limit=execution_count); absent: nothing is limited. */
  readonly rateLimiter?: RateLimiter;
  /** --model-load-retry-count: how many more times a version whose load failed is tried; default 0. */
  readonly loadRetryCount?: number;
  /** --model-namespacing: each repository folder is a namespace, and a name may appear in several. */
  readonly namespacing?: boolean;
}

/** A model folder whose config has been read, ready to load. */
export interface PreparedModel {
  /** Where the repository keeps it: the name, or with namespacing the repository and the name. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly dir: string;
  readonly parsed: ParsedModelConfig | undefined;
  readonly settings: ModelSettings;
  /** The keys of the models an ensemble's steps call; empty for other models. */
  readonly members: readonly string[];
  readonly fingerprint: string | undefined;
  readonly overrideDir: string | undefined;
}

/** What the load asks of the repository while it runs. */
export interface LoadHooks {
  /** The compiled config of the member version an ensemble step calls (-1: the latest ready), or why it cannot. */
  readonly member: (model: string, version: number) => { config: CompiledModelConfig } | { problem: string };
  /** Whether the repository is closing: a failed version is not tried again then. */
  readonly closed: () => boolean;
}

/** The entry of a prepared model: 'loaded' with its versions (some may be UNAVAILABLE), or 'failed' when it has no version folder. */
export async function loadPreparedModel(item: PreparedModel, options: ModelLoadOptions, hooks: LoadHooks): Promise<ModelEntry> {
  const { name, dir, parsed, settings } = item;
  const extra = { ...(options.namespacing ? { namespace: item.namespace } : {}), ...(item.fingerprint ? { fingerprint: item.fingerprint } : {}), ...(item.overrideDir ? { overrideDir: item.overrideDir } : {}) };
  const failed = (failure: string): ModelEntry => {
    options.logger.error(`failed to load '${name}': ${failure}`);
    return { name, dir, versions: new Map(), state: { kind: 'failed', reason: failure }, ...extra };
  };
  const ensemble = settings.backend === ENSEMBLE_BACKEND;
  // readModelSettings refused backends the registry lacks: only an ensemble has none.
  const backend = options.backends.get(settings.backend);

  let onDisk = await versionFolders(dir);
  // An ensemble has no model file, so a pipeline (or config) without version folders serves as version 1.
  if (onDisk.length === 0 && ensemble) onDisk = [1];
  if (onDisk.length === 0) {
    return failed(`no version folders in ${dir}: put the model in a numbered folder, e.g. ${join(dir, '1', settings.defaultModelFilename)}`);
  }
  const selected = selectVersions(settings.versionPolicy, onDisk);
  const versions = new Map<number, ModelVersion>();
  if (settings.versionPolicy.kind === 'specific') {
    for (const v of settings.versionPolicy.versions) {
      if (!onDisk.includes(v)) versions.set(v, ModelVersion.unavailable(v, `version_policy asks for version ${v} but ${join(dir, String(v))} does not exist`));
    }
  }
  // With namespacing, the models this one calls (ensemble steps, script calls) are looked up in its own repository first.
  const outer = options.infer;
  const infer: InferFunction | undefined = outer && options.namespacing
    ? (request) => outer({ ...request, modelNamespace: item.namespace })
    : outer;
  const outerStream = options.inferStream;
  const inferStream: InferStreamFunction | undefined = outerStream && options.namespacing
    ? (request) => outerStream({ ...request, modelNamespace: item.namespace })
    : outerStream;
  const loaded = await Promise.all(selected.map(async (version) => {
    // A version folder may be a symbolic link, but only to somewhere inside the model's folder.
    const versionDir = await confinePath(dir, String(version));
    if (versionDir.problem !== undefined) return ModelVersion.unavailable(version, `version folder '${version}' ${versionDir.problem}`);
    const source = {
      modelName: name, modelDir: dir, version, versionDir: versionDir.path, parsed, settings, backend,
      members: hooks.member,
      ...(infer ? { infer } : {}),
      ...(inferStream ? { inferStream } : {}),
      ...(options.bufferPool ? { bufferPool: options.bufferPool } : {}),
      ...(options.completion ? { completion: options.completion } : {}),
      ...(options.rateLimiter ? { rateLimiter: options.rateLimiter } : {}),
    };
    // As Triton: a failed load is tried again at once, up to --model-load-retry-count more times.
    const retries = options.loadRetryCount ?? 0;
    let loadedVersion = await ModelVersion.load(source, options.logger);
    for (let retry = 1; retry <= retries && loadedVersion.state !== 'READY' && !hooks.closed(); retry++) {
      options.logger.warn(`retrying the load of '${name}' version ${version} (retry ${retry} of ${retries})`);
      loadedVersion = await ModelVersion.load(source, options.logger);
    }
    return loadedVersion;
  }));
  for (const v of loaded) versions.set(v.version, v);
  return { name, dir, versions: new Map([...versions].sort(([a], [b]) => b - a)), state: { kind: 'loaded' }, ...extra };
}
