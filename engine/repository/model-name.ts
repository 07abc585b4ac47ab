/**
 * The one check on a model name that arrives from outside (a URL path, an
 * RPC field, a load request). A model name picks a folder inside the model
 * repository, so a name that could point anywhere else is refused before it
 * reaches a lookup or the file system.
 */
import { serverError } from '../errors.ts';

/** Why the name is unsafe, or undefined when it is fine. The empty name is left to the lookup (it is "not found"). */
function unsafeBecause(name: string): string | undefined {
  if (name.includes('\0')) return 'it contains a NUL character';
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) return 'it is an absolute path';
  if (name.includes('/')) return "it contains '/', a path separator";
  if (name.includes('\\')) return "it contains '\\', a path separator";
  if (name.includes('..')) return "it contains '..', which could name a folder outside the repository";
  if (name === '.') return "'.' is the repository folder itself";
  return undefined;
}

/**
 * Throws INVALID_MODEL_NAME (400 / INVALID_ARGUMENT) when `name` is not a
 * plain folder name. `source` says where the name came from, for the
 * message: "field 'model_name'", "the URL path"; a function is asked only
 * when the name is refused (a name already found safe costs one lookup).
 */
export function checkModelName(name: string, source: string | (() => string) = 'the request'): void {
  if (checkedSafe.has(name)) return;
  const reason = unsafeBecause(name);
  if (reason) throw serverError('INVALID_MODEL_NAME', { name, source: typeof source === 'string' ? source : source(), reason });
  // Bounded: a flood of distinct names only costs the check again.
  if (checkedSafe.size >= CHECKED_SAFE_MAX) checkedSafe.clear();
  checkedSafe.add(name);
}

/**
 * Names found safe, so that the names of served models (checked by the
 * frontend, then by every entry point a request passes) cost one lookup.
 */
const checkedSafe = new Set<string>();
const CHECKED_SAFE_MAX = 1024;
