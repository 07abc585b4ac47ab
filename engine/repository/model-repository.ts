/**
 * The model repository's manager: which models are loaded, in what order,
 * and how one replaces another. The files are read elsewhere: the
 * repository folders and their names (repository-folders.ts), one model's
 * folder (model-folder.ts), a load request's own files (model-upload.ts)
 * and what polling compares (poll-fingerprint.ts).
 * Ensembles load after the models their steps call: a graph of which
 * ensembles call which models gives the load order, the ensembles to reload
 * after a member, and the dependents an unload takes along.
 * Several repository folders may be given; a model name must be unique
 * across them, unless namespacing is on (--model-namespacing): then each
 * repository is a namespace, a name may appear in several, an ensemble's
 * steps (and a script's calls) find the model of their own repository
 * first, and a request naming a model that several repositories hold is
 * refused as ambiguous. A model that fails to load stays listed with its
 * reason and never stops the others.
 */
import { join } from 'node:path';
import graphlib from 'graphlib';
import { ENSEMBLE_BACKEND, readModelSettings } from '../config/compile-model-config.ts';
import type { CompiledModelConfig } from '../config/compiled-model-config.ts';
import type { ParsedModelConfig } from '../config/parse-model-config.ts';
import { LoadSlots } from './load-slots.ts';
import { isServing, modelFailure, unloadedEntry, type ModelEntry } from './model-entry.ts';
import { readModelFolderConfig } from './model-folder.ts';
import { loadPreparedModel, type ModelLoadOptions, type PreparedModel } from './model-loader.ts';
import { parseOverrideConfig, removeOverrideFiles, writeOverrideFiles, type ModelOverride } from './model-upload.ts';
import { pollFingerprint } from './poll-fingerprint.ts';
import { RepositoryFolders, type FoundModel } from './repository-folders.ts';

export interface ModelRepositoryOptions extends ModelLoadOptions {
  readonly paths: readonly string[];
  /** Models to load at start; undefined loads every model found (model control mode 'none'). Ensembles bring their members. */
  readonly startupModels?: readonly string[];
  /**
   * --model-config-name: a model folder's config is configs/<name>.pbtxt
   * (or .yaml, .yml, .json) when it has one, and its usual config otherwise.
   */
  readonly configName?: string;
  /** --model-load-thread-count: how many models load at once; default DEFAULT_MODEL_LOAD_THREAD_COUNT. */
  readonly loadThreadCount?: number;
}

/** tritonserver's default --model-load-thread-count. */
export const DEFAULT_MODEL_LOAD_THREAD_COUNT = 4;

/** The outcome of loading a set of models: each one asked for, with why it failed if it did. */
export type LoadOutcome = ReadonlyMap<string, string | undefined>;

export class ModelRepository {
  /** By key: the model name, or with namespacing its repository and name (see keyOf). */
  private readonly entries = new Map<string, ModelEntry>();
  /** Models loading for the first time: calls to them wait instead of finding them missing. */
  private readonly loading = new Map<string, Promise<void>>();
  /** Edges from each member model to the ensembles that call it, by key: load order and unload dependents come from it. */
  private readonly dependencies = new graphlib.Graph({ directed: true });
  /** Model folders found by the last scan, by key, with the repository each is in. */
  private found = new Map<string, FoundModel>();
  /** Versions replaced by a reload, still finishing their requests. */
  private readonly retiring = new Set<Promise<void>>();
  /** Model control operations run one at a time, in the order asked. */
  private control: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly slots: LoadSlots;
  private readonly folders: RepositoryFolders;

  private constructor(private readonly options: ModelRepositoryOptions) {
    this.slots = new LoadSlots(options.loadThreadCount ?? DEFAULT_MODEL_LOAD_THREAD_COUNT);
    this.folders = new RepositoryFolders(options.paths, options.namespacing === true);
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
    const key = this.folders.resolve(name, namespace, this.entries);
    return key === undefined ? undefined : this.entries.get(key);
  }

  /** Whether any model of this name is known (with namespacing, in any repository). */
  has(name: string): boolean {
    return this.folders.keysNamed(name, this.entries).length > 0;
  }

  /** Model folders seen by the last scan that are not loaded, sorted (the index lists them as loadable). */
  notLoaded(): string[] {
    return [...new Set([...this.found].filter(([key]) => !this.entries.has(key)).map(([, f]) => f.name))].sort();
  }

  /** Ensembles that call `name` (any model of that name), directly or through other ensembles. */
  dependentsOf(name: string): string[] {
    const keys = this.folders.keysNamed(name, this.entries);
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

  /**
   * Unloads every version of a model, letting the requests it already took
   * finish. With `dependents`, the ensembles that call it go too, naming it
   * as the reason; without, they stay loaded (as in Triton) and a request
   * reaching the missing step fails naming it.
   */
  unload(name: string, options: { dependents?: boolean } = {}): Promise<void> {
    return this.serialized(async () => {
      // With namespacing, an unload reaches every model of that name, as a load does.
      const keys = this.folders.keysNamed(name, this.entries);
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
    for (const entry of this.entries.values()) await removeOverrideFiles(entry.overrideDir);
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
        if (entry.state.kind === 'unloaded') {
          changed.push(key);
          continue;
        }
        if (entry.overrideDir) continue;
        const now = await pollFingerprint(join(found.path, found.name)).catch(() => undefined);
        if (now !== entry.fingerprint) changed.push(key);
      }
      for (const [key, entry] of [...this.entries]) {
        if (this.found.has(key) || entry.overrideDir || entry.state.kind === 'unloaded') continue;
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

  /** Lists the model folders of every repository; a name refused as a duplicate is listed as failed. */
  private async scan(): Promise<void> {
    const { found, duplicates } = await this.folders.scan();
    for (const [key, failure] of duplicates) {
      const entry = this.entries.get(key);
      if (!entry?.versions.size && (entry === undefined || modelFailure(entry) !== failure)) await this.fail(key, key, '', '', failure, undefined);
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
    const prepared = new Map<string, PreparedModel>();
    const serving = (key: string): boolean => isServing(this.entries.get(key));
    // The model an ensemble step names: the one in the ensemble's own repository, else the only one of that name.
    const memberKey = (member: string, namespace: string): string | undefined => {
      if (!this.options.namespacing) return member;
      const preferred = this.folders.keyOf(namespace, member);
      if (this.found.has(preferred) || this.entries.has(preferred)) return preferred;
      const candidates = new Set([...this.folders.keysNamed(member, this.found), ...this.folders.keysNamed(member, this.entries)]);
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
        const fingerprint = overrideDir ? undefined : await pollFingerprint(dir);
        const parsed = override?.config !== undefined ? parseOverrideConfig(name, override.config) : await readModelFolderConfig(dir, this.options.configName);
        const settings = readModelSettings(name, dir, parsed, this.options.backends);
        const memberNames = settings.backend === ENSEMBLE_BACKEND ? stepModels(parsed) : [];
        const members = memberNames.map((m) => [m, memberKey(m, namespace)] as const);
        const item: PreparedModel = {
          key, name, namespace, dir, parsed, settings, fingerprint, overrideDir,
          members: members.flatMap(([, k]) => (k === undefined ? [] : [k])),
        };
        prepared.set(key, item);
        await Promise.all(members.map(([m, k]) => (k === undefined ? undefined : prepare(k, m, false))));
      } catch (err) {
        await removeOverrideFiles(overrideDir);
        const failure = err instanceof Error ? err.message : String(err);
        results.set(key, failure);
        // A load request's files have no folder in the repository to watch (and dir is '' when writing them failed).
        const fingerprint = override?.files ? undefined : await pollFingerprint(dir).catch(() => undefined);
        if (serving(key)) this.keepServing(key, failure, fingerprint);
        else await this.fail(key, name, namespace, dir, failure, fingerprint);
      }
    };
    const asked = keys ?? names.flatMap((name) => {
      if (overrides.get(name)?.files) return [this.folders.keyOf('', name)];
      const named = this.folders.keysNamed(name, this.found);
      return named.length > 0 ? named : [this.folders.keyOf('', name)];
    });
    const nameOf = (key: string): string => this.found.get(key)?.name ?? this.entries.get(key)?.name ?? this.folders.nameOfKey(key);
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
        await removeOverrideFiles(item.overrideDir);
        if (serving(key)) this.keepServing(key, failure, item.fingerprint);
        else await this.fail(key, item.name, item.namespace, item.dir, failure, item.fingerprint);
      }
    }

    // Each model starts loading once the models it depends on are done, whatever their outcome.
    const started = new Map<string, Promise<void>>();
    const load = (item: PreparedModel): Promise<void> => {
      let run = started.get(item.key);
      if (!run) {
        const before = item.members.map((m) => prepared.get(m)).filter((m): m is PreparedModel => m !== undefined).map(load);
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
  private async install(item: PreparedModel): Promise<string | undefined> {
    const fresh = await loadPreparedModel(item, this.options, {
      member: (model, version) => this.member(model, version, item.namespace),
      closed: () => this.closed,
    });
    const failure = modelFailure(fresh)
      ?? ([...fresh.versions.values()].some((v) => v.state === 'READY')
        ? undefined
        : [...fresh.versions.values()].map((v) => `version ${v.version}: ${v.reason || v.state}`).join('; '));
    const previous = this.entries.get(item.key);
    if (failure !== undefined && isServing(previous)) {
      await Promise.all([...fresh.versions.values()].map((v) => v.unload()));
      await removeOverrideFiles(item.overrideDir);
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
    if (keepListed) this.entries.set(key, unloadedEntry(entry));
    await Promise.all([...entry.versions.values()].map((v) => v.retire(reason)));
    if (this.entries.get(key)?.overrideDir !== entry.overrideDir) await removeOverrideFiles(entry.overrideDir);
  }

  /**
   * A reload failed: the entry serving now stays, carrying why. It takes the
   * fingerprint of the files that failed, so polling waits for the next edit
   * instead of retrying the same broken files.
   */
  private keepServing(key: string, failure: string, fingerprint: string | undefined): void {
    const entry = this.entries.get(key)!;
    this.options.logger.error(`failed to reload '${entry.name}', the loaded version keeps serving: ${failure}`);
    const reason = `a new load failed and the previous one keeps serving: ${failure}`;
    this.entries.set(key, { ...entry, state: { kind: 'reload-failed', reason }, ...(fingerprint ? { fingerprint } : {}) });
  }

  /** Lists the model as failed, in place of any entry that serves nothing; that entry's uploaded files go with it. */
  private async fail(key: string, name: string, namespace: string, dir: string, failure: string, fingerprint: string | undefined): Promise<void> {
    this.options.logger.error(`failed to load '${name}': ${failure}`);
    const replaced = this.entries.get(key);
    this.entries.set(key, { name, ...this.namespaceOf(namespace), dir, versions: new Map(), state: { kind: 'failed', reason: failure }, ...(fingerprint ? { fingerprint } : {}) });
    await removeOverrideFiles(replaced?.overrideDir);
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
    const failure = modelFailure(entry);
    if (failure) return { problem: `it failed to load: ${failure}` };
    if (entry.state.kind === 'unloaded') return { problem: 'it is unloaded' };
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

/** The models an ensemble config's steps name, read before anything is compiled. */
function stepModels(parsed: ParsedModelConfig | undefined): string[] {
  const scheduling = parsed?.config['ensemble_scheduling'] as { step?: Array<{ model_name?: string }> } | undefined;
  return [...new Set((scheduling?.step ?? []).map((s) => s.model_name ?? '').filter((n) => n !== ''))];
}
