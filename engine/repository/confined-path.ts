/**
 * Every path a config or a load request names (a model file, an initial
 * state's data file, a warmup file, a label file, a version folder, an
 * uploaded file) goes through here: it must be a relative path with no
 * '..', and what it resolves to on disk, symbolic links followed, must stay
 * inside the model's folder. The problem text names the path as given and
 * never what the file holds.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

/** The resolved path (it may not exist yet), or why the given one is refused. */
export type ConfinedPath = { readonly path: string; readonly problem?: undefined } | { readonly path?: undefined; readonly problem: string };

/** Why `given` cannot name a path inside a folder, judged from the text alone; undefined when it can. */
export function relativePathProblem(given: string): string | undefined {
  if (given === '') return 'is empty';
  if (given.includes('\0')) return 'contains a NUL character';
  if (isAbsolute(given) || /^[A-Za-z]:/.test(given)) return 'is an absolute path';
  if (given.includes('\\')) return "contains '\\'; separate folders with '/'";
  if (given.split('/').includes('..')) return "contains '..', which leaves the folder";
  return undefined;
}

/**
 * Resolves `given` (relative to `root`, under its `within` subfolder) and
 * checks that it stays inside `root` once symbolic links are followed. A
 * path that does not exist resolves through its nearest existing folder,
 * so the caller's read reports it missing.
 */
export function confinePathSync(root: string, given: string, within = ''): ConfinedPath {
  return confine(resolve(root), given, within, realpathSync);
}

/** confinePathSync, without blocking the event loop. */
export async function confinePath(root: string, given: string, within = ''): Promise<ConfinedPath> {
  const base = resolve(root);
  const known = new Map<string, string | undefined>();
  // Resolve the candidates ahead, then run the same check over the answers.
  const candidates = relativePathProblem(given) === undefined ? [base, ...ancestors(join(base, within, given), base)] : [];
  await Promise.all(candidates.map(async (p) => known.set(p, await realpath(p).catch(() => undefined))));
  return confine(base, given, within, (p) => {
    const real = known.get(p);
    if (real === undefined) throw new Error(`${p} does not exist`);
    return real;
  });
}

function confine(root: string, given: string, within: string, resolveReal: (path: string) => string): ConfinedPath {
  const problem = relativePathProblem(given);
  if (problem !== undefined) return { problem };
  const target = join(root, within, given);
  let realRoot: string;
  try {
    realRoot = resolveReal(root);
  } catch {
    return { path: target };
  }
  // The nearest part of the path that exists decides where the rest lands.
  for (const existing of [...ancestors(target, root), root]) {
    let real: string;
    try {
      real = resolveReal(existing);
    } catch {
      continue;
    }
    const resolved = join(real, relative(existing, target));
    if (resolved !== realRoot && !resolved.startsWith(realRoot + sep)) {
      return { problem: 'leads out of the model folder through a symbolic link' };
    }
    return { path: resolved };
  }
  return { path: target };
}

/** `path` and each folder above it, up to (not including) `root`, nearest first. */
function ancestors(path: string, root: string): string[] {
  const out: string[] = [];
  for (let p = path; p !== root && p.startsWith(root + sep); p = dirname(p)) out.push(p);
  return out;
}

/** A file's bytes, or why it cannot be read: the problem names the path as given, never the contents. */
export type ConfinedRead = { readonly bytes: Uint8Array; readonly problem?: undefined } | { readonly bytes?: undefined; readonly problem: string };

/** Reads `within/given` under `root` after confinePathSync has passed it (config compiling is synchronous). */
export function readConfinedFileSync(root: string, given: string, within = ''): ConfinedRead {
  const confined = confinePathSync(root, given, within);
  if (confined.problem !== undefined) return { problem: `'${given}' ${confined.problem}` };
  try {
    return { bytes: readFileSync(confined.path) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { problem: `${join(within, given)} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? 'error'})`} in ${root}` };
  }
}
