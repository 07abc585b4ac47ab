/**
 * A file of an npm package installed with the server, named
 * `<package>/<path inside it>`: a trained model, a dictionary, a label
 * list. The package is looked up as Node looks up a bare import from the
 * server's own folder (its node_modules, then each parent's), never from
 * a model repository, so a repository copied elsewhere finds the same
 * files. The package's `exports` map does not apply (it says what code
 * may import; these files are data), but the file must lie inside the
 * package's folder once links are followed.
 */
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { confinePath, relativePathProblem } from './confined-path.ts';

/** The server's own folder: packages are looked up from here. */
export const SERVER_ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

/** Longest name taken; a longer one is refused rather than echoed. */
const MAX_SPEC_LENGTH = 512;

/** A name as a message shows it: long ones cut, so that a message stays short whatever was asked for. */
const shown = (text: string): string => (text.length > 64 ? `${text.slice(0, 64)}...` : text);

/** Why a package file was not found; the message says what to do, never what a file holds. */
export class PackageFileError extends Error {
  override readonly name = 'PackageFileError';
  /** The message reads `is '<spec>': <problem>`, to follow whatever names the setting. */
  constructor(spec: string, readonly problem: string) {
    super(`is '${shown(spec)}': ${problem}`);
  }
}

/** The real path of the file `spec` names, or a PackageFileError saying why there is none. */
export async function packageFile(spec: string, root: string = SERVER_ROOT): Promise<string> {
  const refuse = (problem: string): Error => new PackageFileError(spec, problem);
  if (spec.length > MAX_SPEC_LENGTH) throw refuse(`${spec.length} characters long: at most ${MAX_SPEC_LENGTH}`);
  const parts = spec.split('/');
  const nameParts = spec.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameParts).join('/');
  const inside = parts.slice(nameParts).join('/');
  const validName = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(name);
  if (!validName || inside === '') {
    throw refuse(`name a package and a file inside it, e.g. '@scope/package/models/model.onnx'`);
  }
  const problem = relativePathProblem(inside) ?? (inside.split('/').includes('.') ? "contains '.' parts" : undefined);
  if (problem !== undefined) throw refuse(`the path inside the package ${problem}`);
  const folders = createRequire(join(root, 'package.json')).resolve.paths(name) ?? [];
  for (const folder of folders) {
    const packageDir = join(folder, name);
    if (!(await stat(join(packageDir, 'package.json')).catch(() => undefined))?.isFile()) continue;
    const confined = await confinePath(packageDir, inside);
    if (confined.problem !== undefined) throw refuse(`${confined.problem.replace('model folder', 'package folder')}`);
    if (!(await stat(confined.path).catch(() => undefined))?.isFile()) {
      throw refuse(`package '${shown(name)}' (${packageDir}) has no file '${shown(inside)}'`);
    }
    return confined.path;
  }
  throw refuse(`package '${shown(name)}' is not installed with the server (looked in node_modules from ${root} up); add it with npm install ${shown(name)}`);
}
