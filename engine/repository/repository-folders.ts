/**
 * The repository folders given at start, and the model names in them.
 * Without namespacing a model's key is its name, and a name must be unique
 * across the folders. With namespacing (--model-namespacing) each folder is
 * a namespace: the key is the folder and the name, a name may appear in
 * several, and a name that several hold is ambiguous unless the caller's own
 * folder has it.
 */
import { readdir } from 'node:fs/promises';
import { serverError } from '../errors.ts';

/** A model folder a scan found: `<path>/<name>`. */
export interface FoundModel {
  /** The repository folder it is in. */
  readonly path: string;
  readonly name: string;
}

/** What a scan found, by key, and the names refused as duplicates, by key, with why. */
export interface RepositoryScan {
  readonly found: Map<string, FoundModel>;
  readonly duplicates: ReadonlyMap<string, string>;
}

export class RepositoryFolders {
  constructor(readonly paths: readonly string[], readonly namespacing: boolean) {}

  /** The key of a model: its name, or with namespacing its repository folder and name. */
  keyOf(namespace: string, name: string): string {
    return this.namespacing ? `${namespace}\0${name}` : name;
  }

  /** The name part of a key. */
  nameOfKey(key: string): string {
    return key.slice(key.indexOf('\0') + 1);
  }

  /** Keys in `map` whose model is called `name`. */
  keysNamed(name: string, map: ReadonlyMap<string, { readonly name: string }>): string[] {
    if (!this.namespacing) return map.has(name) ? [name] : [];
    return [...map].filter(([, value]) => value.name === name).map(([key]) => key);
  }

  /**
   * The key `name` means in `map`, undefined if none. With namespacing, the
   * one in `namespace` (the caller's repository) if it has one, else the
   * only one of that name; several and none in `namespace` is ambiguous, and refused.
   */
  resolve(name: string, namespace: string | undefined, map: ReadonlyMap<string, { readonly name: string }>): string | undefined {
    if (!this.namespacing) return map.has(name) ? name : undefined;
    if (namespace !== undefined && map.has(this.keyOf(namespace, name))) return this.keyOf(namespace, name);
    const keys = this.keysNamed(name, map);
    if (keys.length > 1) throw serverError('MODEL_AMBIGUOUS', { model: name, count: keys.length });
    return keys[0];
  }

  /**
   * Lists the model folders of every repository. Without namespacing, a
   * name in two repositories is a failure of its own, as in Triton.
   */
  async scan(): Promise<RepositoryScan> {
    const found = new Map<string, FoundModel>();
    const duplicates = new Map<string, string>();
    for (const path of this.paths) {
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
    for (const key of duplicates.keys()) found.delete(key);
    return { found, duplicates };
  }
}
