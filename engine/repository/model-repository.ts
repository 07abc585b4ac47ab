/**
 * The model repository on disk, in Triton's layout:
 *   <repository>/<model>/config.pbtxt (or .yaml / .json, or none)
 *   <repository>/<model>/<version>/model.onnx
 * or, for a declarative pipeline (an ensemble), <repository>/<model>/pipeline.yaml.
 * Ensembles load after the models their steps call.
 * Several repository folders may be given; a model name must be unique
 * across them, unless namespacing is on (--model-namespacing): then each
 * repository is a namespace, a name may appear in several, an ensemble's
 * steps (and a script's calls) find the model of their own repository
 * first, and a request naming a model that several repositories hold is
 * refused as ambiguous. A model that fails to load stays listed with its
 * reason and never stops the others.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import graphlib from 'graphlib';
import type { BackendRegistry } from '../backend-registry.ts';
import { ENSEMBLE_BACKEND, readModelSettings, type ConfigCompletion, type ModelSettings } from '../config/compile-model-config.ts';
import type { CompiledModelConfig } from '../config/compiled-model-config.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import type { RateLimiter } from '../scheduling/rate-limiter.ts';
import type { InferFunction } from '../infer-function.ts';
import type { InferStreamFunction } from '../response-stream.ts';
import { PIPELINE_FILE_NAME } from '../config/pipeline-file.ts';
import { CONFIG_FILE_EXTENSIONS, CONFIG_FILE_NAMES, parseModelConfig, type ParsedModelConfig } from '../config/parse-model-config.ts';
import type { Logger } from '../logger.ts';
import { serverError } from '../errors.ts';
import { confinePath, relativePathProblem } from './confined-path.ts';
import { LoadSlots } from './load-slots.ts';
import { ModelVersion } from './model-version.ts';
import { selectVersions } from './version-policy.ts';

export interface ModelEntry {
  readonly name: string;
  /** With namespacing, the repository folder the model came from ('' for a load request's own files). */
  readonly namespace?: string;
  readonly dir: string;
  /** Versions selected by the policy, highest first. */
  readonly versions: ReadonlyMap<number, ModelVersion>;
  /** Why the model as a whole could not load (bad config, no versions), if so. */
  readonly failure: string | undefined;
  /** Unloaded on request: listed, but no longer counted for the server's readiness. */
  readonly unloaded?: boolean;
  /**
   * A later load of this model (a reload, or an edit found by polling) failed,
   * and this entry still serves: why the new one was refused.
   */
  readonly notice?: string;
  /** What the model folder held when it was read; polling compares it. */
  readonly fingerprint?: string;
  /** A temporary folder holding the files a load request sent; removed when the entry is replaced. */
  readonly overrideDir?: string;
}

export interface ModelRepositoryOptions {
  readonly paths: readonly string[];
  /** The backends models may name; a config naming another is refused. */
  readonly backends: BackendRegistry;
  readonly logger: Logger;
  /** Models to load at start; undefined loads every model found (model control mode 'none'). Ensembles bring their members. */
  readonly startupModels?: readonly string[];
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
  /**
   * --model-config-name: a model folder's config is configs/<name>.pbtxt
   * (or .yaml, .yml, .json) when it has one, and its usual config otherwise.
   */
  readonly configName?: string;
  /** --model-load-retry-count: how many more times a version whose load failed is tried; default 0. */
  readonly loadRetryCount?: number;
  /** --model-load-thread-count: how many models load at once; default DEFAULT_MODEL_LOAD_THREAD_COUNT. */
  readonly loadThreadCount?: number;
  /** --model-namespacing: each repository folder is a namespace, and a name may appear in several. */
  readonly namespacing?: boolean;
}

/** tritonserver's default --model-load-thread-count. */
export const DEFAULT_MODEL_LOAD_THREAD_COUNT = 4;
/** The folder of a model that holds its named configs (--model-config-name), as in Triton. */
export const CUSTOM_CONFIG_FOLDER = 'configs';

/** What a load request brings instead of the repository's files (Triton's load parameters). */
export interface ModelOverride {
  /** The model config as JSON text (parameters.config). */
  readonly config?: string;
  /**
   * Files by path relative to the model folder, e.g. '1/model.onnx'
   * (parameters 'file:1/model.onnx'). With files, the repository's folder
   * for the model is not read at all.
   */
  readonly files?: ReadonlyMap<string, Uint8Array>;
}

/** A model folder whose config has been read, ready to load. */
interface Prepared {
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

/** The outcome of loading a set of models: each one asked for, with why it failed if it did. */
export type LoadOutcome = ReadonlyMap<string, string | undefined>;

/** A model folder a scan found. */
interface Found {
  readonly path: string;
  readonly name: string;
}

export class ModelRepository {
  /** By key: the model name, or with namespacing its repository and name (see keyOf). */
  private readonly entries = new Map<string, ModelEntry>();
  /** Models loading for the first time: calls to them wait instead of finding them missing. */
  private readonly loading = new Map<string, Promise<void>>();
  /** Edges from each member model to the ensembles that call it, by key: load order and unload dependents come from it. */
  private readonly dependencies = new graphlib.Graph({ directed: true });
  /** Model folders found by the last scan, by key, with the repository each is in. */
  private found = new Map<string, Found>();
  /** Versions replaced by a reload, still finishing their requests. */
  private readonly retiring = new Set<Promise<void>>();
  /** Model control operations run one at a time, in the order asked. */
  private control: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly slots: LoadSlots;

  private constructor(private readonly options: ModelRepositoryOptions) {
    this.slots = new LoadSlots(options.loadThreadCount ?? DEFAULT_MODEL_LOAD_THREAD_COUNT);
  }

  /** A repository that has read nothing yet; load() reads and loads the models. */
  static open(options: ModelRepositoryOptions): ModelRepository {
    return new ModelRepository(options);
  }

  /** Every model known, sorted by name. */
  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The model a name means. With namespacing, the one in `namespace` (the
   * caller's repository) if it has one, else the only one of that name;
   * several and none in `namespace` is ambiguous, and refused.
   */
  get(name: string, namespace?: string): ModelEntry | undefined {
    const key = this.resolve(name, namespace, this.entries);
    return key === undefined ? undefined : this.entries.get(key);
  }

  /** Whether any model of this name is known (with namespacing, in any repository). */
  has(name: string): boolean {
    return this.keysNamed(name, this.entries).length > 0;
  }

  /** Model folders seen by the last scan that are not loaded, sorted (the index lists them as loadable). */
  notLoaded(): string[] {
    return [...new Set([...this.found].filter(([key]) => !this.entries.has(key)).map(([, f]) => f.name))].sort();
  }

  /** Ensembles that call `name` (any model of that name), directly or through other ensembles. */
  dependentsOf(name: string): string[] {
    const keys = this.keysNamed(name, this.entries);
    const dependents = keys.flatMap((key) => this.dependentsOfKey(key));
    return [...new Set(dependents.map((key) => this.entries.get(key)?.name ?? key))];
  }

  private dependentsOfKey(key: string): string[] {
    if (!this.dependencies.hasNode(key)) return [];
    return graphlib.alg.preorder(this.dependencies, [key]).filter((n) => n !== key);
  }

  /** The namespace field of an entry: only with namespacing. */
  private namespaceOf(namespace: string): { namespace?: string } {
    return this.options.namespacing ? { namespace } : {};
  }

  /** The key of a model: its name, or with namespacing its repository folder and name. */
  private keyOf(namespace: string, name: string): string {
    return this.options.namespacing ? `${namespace}\0${name}` : name;
  }

  /** Keys in `map` whose model is called `name`. */
  private keysNamed(name: string, map: ReadonlyMap<string, ModelEntry | Found>): string[] {
    if (!this.options.namespacing) return map.has(name) ? [name] : [];
    return [...map].filter(([, value]) => value.name === name).map(([key]) => key);
  }

  /** See get(): the key `name` means in `map`, undefined if none; throws if ambiguous. */
  private resolve(name: string, namespace: string | undefined, map: ReadonlyMap<string, ModelEntry | Found>): string | undefined {
    if (!this.options.namespacing) return map.has(name) ? name : undefined;
    if (namespace !== undefined && map.has(this.keyOf(namespace, name))) return this.keyOf(namespace, name);
    const keys = this.keysNamed(name, map);
    if (keys.length > 1) throw serverError('MODEL_AMBIGUOUS', { model: name, count: keys.length });
    return keys[0];
  }

  /**
   * Unloads every version of a model, letting the requests it already took
   * finish. With `dependents`, the ensembles that call it go too, naming it
   * as the reason; without, they stay loaded (as in Triton) and a request
   * reaching the missing step fails naming it.
   */
  unload(name: string, options: { dependents?: boolean } = {}): Promise<void> {
    return this.serialized(async () => {
      // With namespacing, an unload reaches every model of that name, as a load does.
      const keys = this.keysNamed(name, this.entries);
      if (keys.length === 0) return;
      const dependents = options.dependents ? [...new Set(keys.flatMap((key) => this.dependentsOfKey(key)))].filter((d) => !keys.includes(d)) : [];
      await Promise.all([
        ...keys.map((key) => this.retireEntry(key, this.entries.get(key)!, 'unloaded', true)),
        ...dependents.filter((d) => this.entries.has(d))
          .map((d) => this.retireEntry(d, this.entries.get(d)!, `member model '${name}' was unloaded`, true)),
      ]);
    });
  }

  /** Refuses queued requests, lets running ones finish, and releases every model. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.list().flatMap((entry) => [...entry.versions.values()].map((v) => v.unload())));
    await Promise.all(this.retiring);
    for (const entry of this.entries.values()) if (entry.overrideDir) await rm(entry.overrideDir, { recursive: true, force: true });
  }

  /**
   * Reads the repository folders and loads the startup models (every model
   * found, or `startupModels`), ensembles after their members. Models
   * already loaded are callable while others still load (a script may call
   * them from initialize()).
   */
  async load(): Promise<void> {
    await this.serialized(async () => {
      await this.scan();
      const wanted = this.options.startupModels ?? [...new Set([...this.found.values()].map((f) => f.name))];
      await this.loadSet(wanted, new Map(), true);
    });
  }

  /**
   * Loads models, or reloads them if they are loaded: each new version
   * becomes READY before it replaces the old one, which then finishes the
   * requests it took and unloads, so no request is lost. If the new load
   * fails and an old one still serves, the old one stays (with the failure
   * as its notice). Loaded ensembles that call a reloaded model are
   * reloaded after it, so they compile against its new config.
   */
  loadModels(names: readonly string[], overrides: ReadonlyMap<string, ModelOverride> = new Map()): Promise<LoadOutcome> {
    return this.serialized(async () => {
      await this.scan();
      return this.loadSet(names, overrides);
    });
  }

  /**
   * One pass of repository polling: models whose folder changed are
   * reloaded, new folders are loaded, and models whose folder is gone are
   * unloaded. Returns the models it reloaded or loaded, with each outcome.
   */
  poll(): Promise<LoadOutcome> {
    return this.serialized(async () => {
      await this.scan();
      const changed: string[] = [];
      for (const [key, found] of this.found) {
        const entry = this.entries.get(key);
        if (!entry) {
          changed.push(key);
          continue;
        }
        if (entry.unloaded) {
          changed.push(key);
          continue;
        }
        if (entry.overrideDir) continue;
        const now = await fingerprintOf(join(found.path, found.name)).catch(() => undefined);
        if (now !== entry.fingerprint) changed.push(key);
      }
      for (const [key, entry] of [...this.entries]) {
        if (this.found.has(key) || entry.overrideDir || entry.unloaded) continue;
        this.options.logger.info(`model '${entry.name}' is no longer in the repository: unloading it`);
        await this.retireEntry(key, entry, 'removed from the model repository', true);
      }
      if (changed.length === 0) return new Map();
      for (const key of changed) this.options.logger.info(`model '${this.found.get(key)!.name}' changed in the repository: loading it`);
      return this.loadSet(changed.map((key) => this.found.get(key)!.name), new Map(), false, changed);
    });
  }

  /**
   * Resolves once the named model, if it is loading for the first time right
   * now, has finished (loaded or failed); at once otherwise. Lets a call made
   * while the repository loads (a script's initialize() calling another
   * model) wait for its target instead of finding it missing.
   */
  async loaded(name: string): Promise<void> {
    const keys = this.options.namespacing ? [...this.loading.keys()].filter((key) => key.endsWith(`\0${name}`)) : [name];
    // The caller may be another model's load holding a slot: the awaited model must not queue behind it.
    for (const key of keys) this.slots.promote(key);
    await Promise.all(keys.map((key) => this.loading.get(key)));
  }

  private serialized<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.control.then(operation, operation);
    this.control = run.catch(() => {});
    return run;
  }

  /**
   * Lists the model folders of every repository. Without namespacing, a
   * name in two repositories is a failure of its own, as in Triton.
   */
  private async scan(): Promise<void> {
    const found = new Map<string, Found>();
    const duplicates = new Map<string, string>();
    for (const path of this.options.paths) {
      const dirents = await readdir(path, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`model repository '${path}' cannot be read: ${err.code === 'ENOENT' ? 'no such folder' : err.message}`);
      });
      for (const dirent of dirents) {
        if (!dirent.isDirectory() || dirent.name.startsWith('.')) continue;
        const key = this.keyOf(path, dirent.name);
        const previous = found.get(key);
        if (previous) {
          duplicates.set(key, `model '${dirent.name}' is not unique across all model repositories: it appears in ${previous.path} and ${path} ` +
            '(model appears in two or more repositories; start with --model-namespacing=true to serve each)');
          continue;
        }
        found.set(key, { path, name: dirent.name });
      }
    }
    for (const [key, failure] of duplicates) {
      found.delete(key);
      const entry = this.entries.get(key);
      if (!entry?.versions.size && entry?.failure !== failure) await this.fail(key, key, '', '', failure, undefined);
    }
    this.found = found;
  }

  /**
   * Loads `names` (and the members they need that are not loaded), then the
   * loaded ensembles that call them. With namespacing a name means every
   * model of that name, as in Triton; `keys` narrows it to those models
   * (polling). The outcome is by name: a name fails if any of its models did.
   */
  private async loadSet(
    names: readonly string[], overrides: ReadonlyMap<string, ModelOverride>, listMissing = false, keys?: readonly string[],
  ): Promise<LoadOutcome> {
    const results = new Map<string, string | undefined>();
    const prepared = new Map<string, Prepared>();
    const serving = (key: string): boolean => {
      const entry = this.entries.get(key);
      return entry !== undefined && !entry.unloaded && [...entry.versions.values()].some((v) => v.state === 'READY');
    };
    // The model an ensemble step names: the one in the ensemble's own repository, else the only one of that name.
    const memberKey = (member: string, namespace: string): string | undefined => {
      if (!this.options.namespacing) return member;
      const preferred = this.keyOf(namespace, member);
      if (this.found.has(preferred) || this.entries.has(preferred)) return preferred;
      const candidates = new Set([...this.keysNamed(member, this.found), ...this.keysNamed(member, this.entries)]);
      return candidates.size === 1 ? [...candidates][0] : undefined;
    };
    const prepare = async (key: string, name: string, forced: boolean): Promise<void> => {
      if (prepared.has(key) || results.has(key)) return;
      if (!forced && serving(key)) return;
      const override = overrides.get(name);
      const found = this.found.get(key);
      if (!override?.files && found === undefined) {
        // A missing member is the ensemble's failure to report, when it compiles.
        if (!forced) return;
        let failure = `no folder named '${name}' in ${this.options.paths.join(', ')}`;
        // A config sent with the request is checked all the same: its errors say more.
        if (override?.config !== undefined) {
          try {
            parseOverrideConfig(name, override.config);
          } catch (err) {
            failure = (err as Error).message;
          }
        }
        results.set(key, failure);
        // At start a --load-model name with no folder stays listed; a load request's failure is its answer.
        if (listMissing && !serving(key)) await this.fail(key, name, '', '', failure, undefined);
        return;
      }
      const namespace = override?.files || found === undefined ? '' : found.path;
      let dir = found === undefined || override?.files ? '' : join(found.path, name);
      let overrideDir: string | undefined;
      try {
        if (override?.files) {
          overrideDir = await writeOverrideFiles(name, override.files);
          dir = overrideDir;
        }
        const fingerprint = overrideDir ? undefined : await fingerprintOf(dir);
        const parsed = override?.config !== undefined ? parseOverrideConfig(name, override.config) : await readConfig(dir, this.options.configName);
        const settings = readModelSettings(name, dir, parsed, this.options.backends);
        const memberNames = settings.backend === ENSEMBLE_BACKEND ? stepModels(parsed) : [];
        const members = memberNames.map((m) => [m, memberKey(m, namespace)] as const);
        const item: Prepared = {
          key, name, namespace, dir, parsed, settings, fingerprint, overrideDir,
          members: members.flatMap(([, k]) => (k === undefined ? [] : [k])),
        };
        prepared.set(key, item);
        await Promise.all(members.map(([m, k]) => (k === undefined ? undefined : prepare(k, m, false))));
      } catch (err) {
        if (overrideDir) await rm(overrideDir, { recursive: true, force: true });
        const failure = err instanceof Error ? err.message : String(err);
        results.set(key, failure);
        const fingerprint = overrideDir ? undefined : await fingerprintOf(dir).catch(() => undefined);
        if (serving(key)) this.keepServing(key, failure, fingerprint);
        else await this.fail(key, name, namespace, dir, failure, fingerprint);
      }
    };
    const asked = keys ?? names.flatMap((name) => {
      if (overrides.get(name)?.files) return [this.keyOf('', name)];
      const named = this.keysNamed(name, this.found);
      return named.length > 0 ? named : [this.keyOf('', name)];
    });
    const nameOf = (key: string): string => this.found.get(key)?.name ?? this.entries.get(key)?.name ?? key.slice(key.indexOf('\0') + 1);
    await Promise.all(asked.map((key) => prepare(key, nameOf(key), true)));
    // Loaded ensembles that call a model loaded now compile again against its new config.
    for (const key of [...prepared.keys()]) {
      for (const dependent of this.dependentsOfKey(key)) {
        if (serving(dependent) && !prepared.has(dependent)) await prepare(dependent, nameOf(dependent), true);
      }
    }

    for (const item of prepared.values()) {
      if (this.dependencies.hasNode(item.key)) {
        for (const edge of this.dependencies.inEdges(item.key) ?? []) this.dependencies.removeEdge(edge.v, edge.w);
      }
      this.dependencies.setNode(item.key);
      for (const member of item.members) this.dependencies.setEdge(member, item.key);
    }
    for (const cycle of graphlib.alg.findCycles(this.dependencies)) {
      for (const key of cycle) {
        const item = prepared.get(key);
        if (!item) continue;
        prepared.delete(key);
        const failure = `ensembles call each other in a cycle (${cycle.map(nameOf).sort().join(' -> ')}); an ensemble cannot depend on itself`;
        results.set(key, failure);
        if (item.overrideDir) await rm(item.overrideDir, { recursive: true, force: true });
        if (serving(key)) this.keepServing(key, failure, item.fingerprint);
        else await this.fail(key, item.name, item.namespace, item.dir, failure, item.fingerprint);
      }
    }

    // Each model starts loading once the models it depends on are done, whatever their outcome.
    const started = new Map<string, Promise<void>>();
    const load = (item: Prepared): Promise<void> => {
      let run = started.get(item.key);
      if (!run) {
        const before = item.members.map((m) => prepared.get(m)).filter((m): m is Prepared => m !== undefined).map(load);
        run = Promise.all(before).then(async () => {
          results.set(item.key, await this.slots.run(item.key, () => this.install(item)));
        });
        started.set(item.key, run);
        if (!this.entries.has(item.key)) this.loading.set(item.key, run);
      }
      return run;
    };
    await Promise.all([...prepared.values()].map(load));
    for (const key of started.keys()) this.loading.delete(key);
    const outcome = new Map<string, string | undefined>();
    for (const [key, failure] of results) {
      const name = nameOf(key);
      const before = outcome.get(name);
      outcome.set(name, before === undefined ? failure : failure === undefined ? before : `${before}; ${failure}`);
    }
    return outcome;
  }

  /**
   * Loads one prepared model and puts it in service: a first load, or the
   * successor of the entry serving now, which then retires. A failed reload
   * leaves the serving entry in place. Resolves with why it failed, if so.
   */
  private async install(item: Prepared): Promise<string | undefined> {
    const fresh = await this.loadModel(item);
    const failure = fresh.failure
      ?? ([...fresh.versions.values()].some((v) => v.state === 'READY')
        ? undefined
        : [...fresh.versions.values()].map((v) => `version ${v.version}: ${v.reason || v.state}`).join('; '));
    const previous = this.entries.get(item.key);
    const previousServes = previous !== undefined && !previous.unloaded && [...previous.versions.values()].some((v) => v.state === 'READY');
    if (failure !== undefined && previousServes) {
      await Promise.all([...fresh.versions.values()].map((v) => v.unload()));
      if (item.overrideDir) await rm(item.overrideDir, { recursive: true, force: true });
      this.keepServing(item.key, failure, item.fingerprint);
      return failure;
    }
    if (this.closed) {
      await Promise.all([...fresh.versions.values()].map((v) => v.unload()));
      return 'the server is shutting down';
    }
    this.entries.set(item.key, fresh);
    if (previous) {
      const retiring = this.retireEntry(item.key, previous, 'replaced by a new load', false);
      this.retiring.add(retiring);
      void retiring.finally(() => this.retiring.delete(retiring));
    }
    return failure;
  }

  /**
   * Takes an entry's versions out of service and waits until each has
   * finished its requests and unloaded. `keepListed` leaves the entry in
   * the index as unloaded (an unload); otherwise it was replaced.
   */
  private async retireEntry(key: string, entry: ModelEntry, reason: string, keepListed: boolean): Promise<void> {
    if (keepListed) this.entries.set(key, { ...entry, unloaded: true, notice: undefined });
    await Promise.all([...entry.versions.values()].map((v) => v.retire(reason)));
    if (entry.overrideDir && this.entries.get(key)?.overrideDir !== entry.overrideDir) {
      await rm(entry.overrideDir, { recursive: true, force: true });
    }
  }

  /**
   * A reload failed: the entry serving now stays, carrying why. It takes the
   * fingerprint of the files that failed, so polling waits for the next edit
   * instead of retrying the same broken files.
   */
  private keepServing(key: string, failure: string, fingerprint: string | undefined): void {
    const entry = this.entries.get(key)!;
    this.options.logger.error(`failed to reload '${entry.name}', the loaded version keeps serving: ${failure}`);
    this.entries.set(key, { ...entry, notice: `a new load failed and the previous one keeps serving: ${failure}`, ...(fingerprint ? { fingerprint } : {}) });
  }

  /** Lists the model as failed, in place of any entry that serves nothing; that entry's uploaded files go with it. */
  private async fail(key: string, name: string, namespace: string, dir: string, failure: string, fingerprint: string | undefined): Promise<void> {
    this.options.logger.error(`failed to load '${name}': ${failure}`);
    const replaced = this.entries.get(key);
    this.entries.set(key, { name, ...this.namespaceOf(namespace), dir, versions: new Map(), failure, ...(fingerprint ? { fingerprint } : {}) });
    if (replaced?.overrideDir) await rm(replaced.overrideDir, { recursive: true, force: true });
  }

  private async loadModel(item: Prepared): Promise<ModelEntry> {
    const { name, dir, parsed, settings } = item;
    const extra = { ...this.namespaceOf(item.namespace), ...(item.fingerprint ? { fingerprint: item.fingerprint } : {}), ...(item.overrideDir ? { overrideDir: item.overrideDir } : {}) };
    const failed = (failure: string): ModelEntry => {
      this.options.logger.error(`failed to load '${name}': ${failure}`);
      return { name, dir, versions: new Map(), failure, ...extra };
    };
    const ensemble = settings.backend === ENSEMBLE_BACKEND;
    // readModelSettings refused backends the registry lacks: only an ensemble has none.
    const backend = this.options.backends.get(settings.backend);

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
    const outer = this.options.infer;
    const infer: InferFunction | undefined = outer && this.options.namespacing
      ? (request) => outer({ ...request, modelNamespace: item.namespace })
      : outer;
    const outerStream = this.options.inferStream;
    const inferStream: InferStreamFunction | undefined = outerStream && this.options.namespacing
      ? (request) => outerStream({ ...request, modelNamespace: item.namespace })
      : outerStream;
    const loaded = await Promise.all(selected.map(async (version) => {
      // A version folder may be a symbolic link, but only to somewhere inside the model's folder.
      const versionDir = await confinePath(dir, String(version));
      if (versionDir.problem !== undefined) return ModelVersion.unavailable(version, `version folder '${version}' ${versionDir.problem}`);
      const source = {
        modelName: name, modelDir: dir, version, versionDir: versionDir.path, parsed, settings, backend,
        members: (model: string, v: number) => this.member(model, v, item.namespace),
        ...(infer ? { infer } : {}),
        ...(inferStream ? { inferStream } : {}),
        ...(this.options.bufferPool ? { bufferPool: this.options.bufferPool } : {}),
        ...(this.options.completion ? { completion: this.options.completion } : {}),
        ...(this.options.rateLimiter ? { rateLimiter: this.options.rateLimiter } : {}),
      };
      // As Triton: a failed load is tried again at once, up to --model-load-retry-count more times.
      const retries = this.options.loadRetryCount ?? 0;
      let loadedVersion = await ModelVersion.load(source, this.options.logger);
      for (let retry = 1; retry <= retries && loadedVersion.state !== 'READY' && !this.closed; retry++) {
        this.options.logger.warn(`retrying the load of '${name}' version ${version} (retry ${retry} of ${retries})`);
        loadedVersion = await ModelVersion.load(source, this.options.logger);
      }
      return loadedVersion;
    }));
    for (const v of loaded) versions.set(v.version, v);
    return { name, dir, versions: new Map([...versions].sort(([a], [b]) => b - a)), failure: undefined, ...extra };
  }

  /** The compiled config of the member version an ensemble step calls (-1: the latest ready), or why it cannot. */
  private member(model: string, version: number, namespace: string): { config: CompiledModelConfig } | { problem: string } {
    let entry: ModelEntry | undefined;
    try {
      entry = this.get(model, namespace);
    } catch (err) {
      return { problem: `it is ambiguous: ${(err as Error).message}` };
    }
    if (!entry) return { problem: `there is no model '${model}' in ${this.options.paths.join(', ')}` };
    if (entry.failure) return { problem: `it failed to load: ${entry.failure}` };
    if (entry.unloaded) return { problem: 'it is unloaded' };
    if (version === -1) {
      for (const v of entry.versions.values()) if (v.state === 'READY') return { config: v.config! };
      const reasons = [...entry.versions.values()].map((v) => `version ${v.version}: ${v.reason || v.state}`).join('; ');
      return { problem: `it has no ready version (${reasons})` };
    }
    const chosen = entry.versions.get(version);
    if (!chosen) return { problem: `it has no version ${version} (versions: ${[...entry.versions.keys()].join(', ') || 'none'})` };
    if (chosen.state !== 'READY') return { problem: `version ${version} is ${chosen.state}${chosen.reason ? ` (${chosen.reason})` : ''}` };
    return { config: chosen.config! };
  }
}

/** The label config errors of a load request's parameters.config carry, in place of a file name. */
function overrideConfigLabel(name: string): string {
  return `parameters.config of the load request for '${name}'`;
}

/** A load request's config: JSON text in Triton's ModelConfig form. */
function parseOverrideConfig(name: string, text: string): ParsedModelConfig {
  const label = overrideConfigLabel(name);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${label}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${label}: must be a JSON object holding the model config`);
  return parseModelConfig(label, text);
}

/**
 * Writes a load request's files into a fresh temporary model folder. Each
 * path stays inside it: no absolute paths, no '..', no empty parts.
 */
async function writeOverrideFiles(name: string, files: ReadonlyMap<string, Uint8Array>): Promise<string> {
  for (const path of files.keys()) {
    const problem = relativePathProblem(path) ?? (path.split('/').some((p) => p === '' || p === '.') ? "has an empty or '.' part" : undefined);
    if (problem !== undefined) {
      throw new Error(`file override 'file:${path}' ${problem}: a path relative to the model folder is expected, such as 'file:1/model.onnx'`);
    }
  }
  const dir = await mkdtemp(join(tmpdir(), `switchyard-${name}-`));
  for (const [path, bytes] of files) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  return dir;
}

/**
 * A digest of a model folder: every file's path, size and modification
 * time. Polling reloads a model when it changes; reading contents would
 * cost too much for large models.
 */
async function fingerprintOf(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (relative: string): Promise<void> => {
    const dirents = await readdir(join(dir, relative), { withFileTypes: true });
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const dirent of dirents) {
      const path = relative ? `${relative}/${dirent.name}` : dirent.name;
      const info = await stat(join(dir, path)).catch(() => undefined);
      if (!info) continue;
      // A linked folder is walked only if it stays inside the model folder: a link to '/' must not walk the host.
      const inside = !dirent.isSymbolicLink() || (await confinePath(dir, path)).problem === undefined;
      if (info.isDirectory() && inside) {
        hash.update(`d ${path}\n`);
        await walk(path);
      } else {
        hash.update(`f ${path} ${info.size} ${info.mtimeMs}\n`);
      }
    }
  };
  await walk('');
  return hash.digest('hex');
}

/** The models an ensemble config's steps name, read before anything is compiled. */
function stepModels(parsed: ParsedModelConfig | undefined): string[] {
  const scheduling = parsed?.config['ensemble_scheduling'] as { step?: Array<{ model_name?: string }> } | undefined;
  return [...new Set((scheduling?.step ?? []).map((s) => s.model_name ?? '').filter((n) => n !== ''))];
}

/**
 * The model's named config, configs/<configName>.<pbtxt|yaml|yml|json>,
 * when --model-config-name is given and the folder has one.
 */
async function readNamedConfig(dir: string, configName: string): Promise<ParsedModelConfig | undefined> {
  const found: Array<[string, string]> = [];
  for (const extension of CONFIG_FILE_EXTENSIONS) {
    const relative = `${CUSTOM_CONFIG_FOLDER}/${configName}${extension}`;
    const confined = await confinePath(dir, relative);
    if (confined.problem !== undefined) throw new Error(`${join(dir, relative)} ${confined.problem}; a model's config must be a file in its folder`);
    const text = await readFile(confined.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    });
    if (text !== undefined) found.push([join(dir, relative), text]);
  }
  if (found.length > 1) {
    throw new Error(`${dir} has ${found.map(([file]) => basename(file)).join(' and ')} in ${CUSTOM_CONFIG_FOLDER}/ for --model-config-name=${configName}; keep one`);
  }
  const [file, text] = found[0] ?? [];
  return file === undefined ? undefined : parseModelConfig(file, text!);
}

async function readConfig(dir: string, configName: string | undefined): Promise<ParsedModelConfig | undefined> {
  if (configName !== undefined) {
    const named = await readNamedConfig(dir, configName);
    if (named) return named;
  }
  const texts: Array<[string, string]> = [];
  for (const fileName of CONFIG_FILE_NAMES) {
    const file = join(dir, fileName);
    const confined = await confinePath(dir, fileName);
    if (confined.problem !== undefined) throw new Error(`${file} ${confined.problem}; a model's config must be a file in its folder`);
    const text = await readFile(confined.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (text !== undefined) texts.push([file, text]);
  }
  const pipeline = texts.find(([file]) => basename(file) === PIPELINE_FILE_NAME);
  if (pipeline && texts.length > 1) {
    const other = texts.find((t) => t !== pipeline)![0];
    throw new Error(`${dir} has both ${basename(other)} and ${PIPELINE_FILE_NAME}; a model folder holds one config: ` +
      `keep the pipeline (it compiles to an ensemble config) or the ${basename(other)}`);
  }
  const [file, text] = texts[0] ?? [];
  return file === undefined ? undefined : parseModelConfig(file, text!);
}

/** Numbered subfolders, as numbers. Other names are ignored, as Triton does. */
async function versionFolders(dir: string): Promise<number[]> {
  const dirents = await readdir(dir, { withFileTypes: true });
  const versions: number[] = [];
  for (const dirent of dirents) {
    if (!/^[0-9]+$/.test(dirent.name)) continue;
    const isDir = dirent.isDirectory() || (dirent.isSymbolicLink() && (await stat(join(dir, dirent.name))).isDirectory());
    const version = Number(dirent.name);
    if (isDir && version > 0) versions.push(version);
  }
  return versions;
}
