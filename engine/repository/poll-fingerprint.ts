/**
 * A digest of a model folder: every file's path, size and modification
 * time. Polling reloads a model when it changes; reading contents would
 * cost too much for large models.
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { confinePath } from './confined-path.ts';

export async function pollFingerprint(dir: string): Promise<string> {
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
