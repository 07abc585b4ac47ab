/**
 * The model repository on disk, in Triton's layout:
 *   <repository>/<model>/config.pbtxt (or .yaml / .json, or none)
 *   <repository>/<model>/<version>/model.onnx
 * or, for a declarative pipeline (an ensemble), <repository>/<model>/pipeline.yaml.
 * Ensembles load after the models their steps call.
 * Several repository folders may be given; a model name must be unique
 * across them. A model that fails to load stays listed with its reason and
 * never stops the others.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import graphlib from 'graphlib';
import type { Backend } from '../../backends/backend.ts';
import { ENSEMBLE_BACKEND, readModelSettings, type ModelSettings } from '../config/compile-model-config.ts';
import type { CompiledModelConfig } from '../config/compiled-model-config.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import type { InferFunction } from '../scheduling/scheduler.ts';
import { PIPELINE_FILE_NAME } from '../config/pipeline-file.ts';
import { CONFIG_FILE_NAMES, parseModelConfig, type ParsedModelConfig } from '../config/parse-model-config.ts';
import type { Logger } from '../logger.ts';
import { ModelVersion } from './model-version.ts';
import { selectVersions } from './version-policy.ts';

export interface ModelEntry {
  readonly name: string;
  readonly dir: string;
  /** Versions selected by the policy, highest first. */
  readonly versions: ReadonlyMap<number, ModelVersion>;
  /** Why the model as a whole could not load (bad config, no versions), if so. */
  readonly failure: string | undefined;
}

export interface ModelRepositoryOptions {
  readonly paths: readonly string[];
  readonly backends: ReadonlyMap<string, Backend>;
  readonly logger: Logger;
  /** Models to load at start; undefined loads every model found (model control mode 'none'). Ensembles bring their members. */
  readonly startupModels?: readonly string[];
  /** The server's infer(), which ensemble steps call. */
  readonly infer?: InferFunction;
  /** The server's tensor memory, shared by every model. */
  readonly bufferPool?: BufferPool;
}

/** A model folder whose config has been read, ready to load. */
interface Prepared {
  readonly name: string;
  readonly dir: string;
  readonly parsed: ParsedModelConfig | undefined;
  readonly settings: ModelSettings;
  /** Models an ensemble's steps call; empty for other models. */
  readonly members: readonly string[];
}

export class ModelRepository {
  private readonly entries = new Map<string, ModelEntry>();
  /** Models whose load has started and not finished, while load() runs. */
  private readonly loading = new Map<string, Promise<void>>();
  /** Edges from each member model to the ensembles that call it: load order and unload dependents come from it. */
  private readonly dependencies = new graphlib.Graph({ directed: true });

  private constructor(private readonly options: ModelRepositoryOptions) {}

  static async create(options: ModelRepositoryOptions): Promise<ModelRepository> {
    const repository = ModelRepository.open(options);
    await repository.load();
    return repository;
  }

  /** A repository that has read nothing yet; load() reads and loads the models. */
  static open(options: ModelRepositoryOptions): ModelRepository {
    return new ModelRepository(options);
  }

  /** Every model known, sorted by name. */
  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ModelEntry | undefined {
    return this.entries.get(name);
  }

  /** Ensembles that call `name`, directly or through other ensembles. */
  dependentsOf(name: string): string[] {
    if (!this.dependencies.hasNode(name)) return [];
    return graphlib.alg.preorder(this.dependencies, [name]).filter((n) => n !== name);
  }

  /**
   * Unloads every version of a model, and the ensembles that depend on it,
   * which become UNAVAILABLE naming it. Requests already running finish
   * (an ensemble's later steps then fail, naming the missing member); new
   * ones are refused.
   */
  async unload(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) return;
    const dependents = this.dependentsOf(name).map((d) => this.entries.get(d)).filter((e): e is ModelEntry => e !== undefined);
    await Promise.all([
      ...[...entry.versions.values()].map((v) => v.unload()),
      ...dependents.flatMap((d) => [...d.versions.values()].map((v) => v.unload(`member model '${name}' was unloaded`))),
    ]);
  }

  async close(): Promise<void> {
    await Promise.all(this.list().flatMap((entry) => [...entry.versions.values()].map((v) => v.unload())));
  }

  /**
   * Reads the repository folders and loads the models, ensembles after their
   * members. Models already loaded are callable while others still load (a
   * script may call them from initialize()).
   */
  async load(): Promise<void> {
    const found = new Map<string, string>();
    for (const path of this.options.paths) {
      const dirents = await readdir(path, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`model repository '${path}' cannot be read: ${err.code === 'ENOENT' ? 'no such folder' : err.message}`);
      });
      for (const dirent of dirents) {
        if (!dirent.isDirectory() || dirent.name.startsWith('.')) continue;
        const previous = found.get(dirent.name);
        if (previous) {
          this.entries.set(dirent.name, {
            name: dirent.name, dir: join(path, dirent.name), versions: new Map(),
            failure: `model '${dirent.name}' appears in two repositories (${previous} and ${path}); names must be unique`,
          });
          continue;
        }
        found.set(dirent.name, path);
      }
    }
    const wanted = this.options.startupModels;
    for (const name of wanted ?? []) {
      if (!found.has(name)) {
        this.entries.set(name, { name, dir: '', versions: new Map(), failure: `no folder named '${name}' in ${this.options.paths.join(', ')}` });
      }
    }

    // Read the configs first: an ensemble's members are known only from its config, and load before it.
    const prepared = new Map<string, Prepared>();
    const prepare = async (name: string): Promise<void> => {
      if (prepared.has(name) || this.entries.has(name) || !found.has(name)) return;
      const dir = join(found.get(name)!, name);
      try {
        const parsed = await readConfig(dir);
        const settings = readModelSettings(name, dir, parsed);
        const item = { name, dir, parsed, settings, members: settings.backend === ENSEMBLE_BACKEND ? stepModels(parsed) : [] };
        prepared.set(name, item);
        await Promise.all(item.members.map(prepare));
      } catch (err) {
        this.fail(name, dir, err instanceof Error ? err.message : String(err));
      }
    };
    const names = [...found.keys()].filter((name) => !this.entries.has(name) && (!wanted || wanted.includes(name)));
    await Promise.all(names.map(prepare));

    for (const item of prepared.values()) {
      this.dependencies.setNode(item.name);
      for (const member of item.members) this.dependencies.setEdge(member, item.name);
    }
    for (const cycle of graphlib.alg.findCycles(this.dependencies)) {
      for (const name of cycle) {
        const item = prepared.get(name);
        if (!item) continue;
        prepared.delete(name);
        this.fail(name, item.dir, `ensembles call each other in a cycle (${[...cycle].sort().join(' -> ')}); an ensemble cannot depend on itself`);
      }
    }

    // Each model starts loading once the models it depends on are done, whatever their outcome.
    const loading = this.loading;
    const load = (item: Prepared): Promise<void> => {
      let started = loading.get(item.name);
      if (!started) {
        const before = item.members.map((m) => prepared.get(m)).filter((m): m is Prepared => m !== undefined).map(load);
        started = Promise.all(before).then(async () => {
          this.entries.set(item.name, await this.loadModel(item));
        });
        loading.set(item.name, started);
      }
      return started;
    };
    await Promise.all([...prepared.values()].map(load));
    loading.clear();
  }

  /**
   * Resolves once the named model, if it is loading right now, has finished
   * (loaded or failed); at once otherwise. Lets a call made while the
   * repository loads (a script's initialize() calling another model) wait for
   * its target instead of finding it missing.
   */
  async loaded(name: string): Promise<void> {
    await this.loading.get(name);
  }

  private fail(name: string, dir: string, failure: string): void {
    this.options.logger.error(`failed to load '${name}': ${failure}`);
    this.entries.set(name, { name, dir, versions: new Map(), failure });
  }

  private async loadModel(item: Prepared): Promise<ModelEntry> {
    const { name, dir, parsed, settings } = item;
    const failed = (failure: string): ModelEntry => {
      this.options.logger.error(`failed to load '${name}': ${failure}`);
      return { name, dir, versions: new Map(), failure };
    };
    const ensemble = settings.backend === ENSEMBLE_BACKEND;
    const backend = this.options.backends.get(settings.backend);
    if (!backend && !ensemble) return failed(`backend '${settings.backend}' is not available`);

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
    const loaded = await Promise.all(selected.map((version) => ModelVersion.load({
      modelName: name, modelDir: dir, version, versionDir: join(dir, String(version)), parsed, settings, backend,
      members: (model, v) => this.member(model, v),
      ...(this.options.infer ? { infer: this.options.infer } : {}),
      ...(this.options.bufferPool ? { bufferPool: this.options.bufferPool } : {}),
    }, this.options.logger)));
    for (const v of loaded) versions.set(v.version, v);
    return { name, dir, versions: new Map([...versions].sort(([a], [b]) => b - a)), failure: undefined };
  }

  /** The compiled config of the member version an ensemble step calls (-1: the latest ready), or why it cannot. */
  private member(model: string, version: number): { config: CompiledModelConfig } | { problem: string } {
    const entry = this.entries.get(model);
    if (!entry) return { problem: `there is no model '${model}' in ${this.options.paths.join(', ')}` };
    if (entry.failure) return { problem: `it failed to load: ${entry.failure}` };
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

async function readConfig(dir: string): Promise<ParsedModelConfig | undefined> {
  const texts: Array<[string, string]> = [];
  for (const fileName of CONFIG_FILE_NAMES) {
    const file = join(dir, fileName);
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
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
