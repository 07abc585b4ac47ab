/**
 * The model repository on disk, in Triton's layout:
 *   <repository>/<model>/config.pbtxt (or .yaml / .json, or none)
 *   <repository>/<model>/<version>/model.onnx
 * Several repository folders may be given; a model name must be unique
 * across them. A model that fails to load stays listed with its reason and
 * never stops the others.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../../backends/backend.ts';
import { readModelSettings, type ModelSettings } from '../config/compile-model-config.ts';
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
  /** Models to load at start; undefined loads every model found (model control mode 'none'). */
  readonly startupModels?: readonly string[];
}

export class ModelRepository {
  private readonly entries = new Map<string, ModelEntry>();

  private constructor(private readonly options: ModelRepositoryOptions) {}

  static async create(options: ModelRepositoryOptions): Promise<ModelRepository> {
    const repository = new ModelRepository(options);
    await repository.loadAll();
    return repository;
  }

  /** Every model known, sorted by name. */
  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ModelEntry | undefined {
    return this.entries.get(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.list().flatMap((entry) => [...entry.versions.values()].map((v) => v.unload())));
  }

  private async loadAll(): Promise<void> {
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
    const names = [...found.keys()].filter((name) => !this.entries.has(name) && (!wanted || wanted.includes(name)));
    for (const name of wanted ?? []) {
      if (!found.has(name)) {
        this.entries.set(name, { name, dir: '', versions: new Map(), failure: `no folder named '${name}' in ${this.options.paths.join(', ')}` });
      }
    }
    await Promise.all(names.map(async (name) => {
      this.entries.set(name, await this.loadModel(name, join(found.get(name)!, name)));
    }));
  }

  private async loadModel(name: string, dir: string): Promise<ModelEntry> {
    const failed = (failure: string): ModelEntry => {
      this.options.logger.error(`failed to load '${name}': ${failure}`);
      return { name, dir, versions: new Map(), failure };
    };
    let parsed: ParsedModelConfig | undefined;
    let settings: ModelSettings;
    try {
      parsed = await readConfig(dir);
      settings = readModelSettings(name, dir, parsed);
    } catch (err) {
      return failed(err instanceof Error ? err.message : String(err));
    }
    const backend = this.options.backends.get(settings.backend);
    if (!backend) return failed(`backend '${settings.backend}' is not available`);

    const onDisk = await versionFolders(dir);
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
    }, this.options.logger)));
    for (const v of loaded) versions.set(v.version, v);
    return { name, dir, versions: new Map([...versions].sort(([a], [b]) => b - a)), failure: undefined };
  }
}

async function readConfig(dir: string): Promise<ParsedModelConfig | undefined> {
  for (const fileName of CONFIG_FILE_NAMES) {
    const file = join(dir, fileName);
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (text !== undefined) return parseModelConfig(file, text);
  }
  return undefined;
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
