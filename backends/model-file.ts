/**
 * Where a version's model file is: default_model_filename inside the
 * version folder, symbolic links followed and kept inside it, so a config
 * can never make a backend open a file elsewhere on the host.
 */
import { confinePath } from '../engine/repository/confined-path.ts';
import type { ModelLoadContext } from '../engine/backend.ts';

export async function modelFileOf(context: ModelLoadContext): Promise<string> {
  const given = context.settings.defaultModelFilename;
  const confined = await confinePath(context.versionDir, given);
  if (confined.problem !== undefined) {
    throw new Error(`default_model_filename '${given}' ${confined.problem}: name a file inside the version folder ${context.versionDir}`);
  }
  return confined.path;
}
