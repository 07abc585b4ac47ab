/**
 * TypeScript model scripts to JavaScript for an isolate, with esbuild.
 * Types are stripped and the module becomes a function of (module,
 * exports). Scripts run in a sandbox with nothing to import, so any import
 * that survives type erasure is refused at compile time, with its location.
 * Results are cached by a hash of the source: instances and versions with
 * the same code compile once.
 */
import { createHash } from 'node:crypto';
import { build, type Message, type Plugin } from 'esbuild';

export interface CompiledScript {
  /** The file, for messages and stack traces. */
  readonly file: string;
  /** A function body taking (module, exports); `module.exports.default` is the model class. */
  readonly code: string;
  readonly sha256: string;
}

/** A script that does not compile: the message reads `<file>:<line>:<column>: <problem>`. */
export class ScriptCompileError extends Error {
  override readonly name = 'ScriptCompileError';
}

const cache = new Map<string, Promise<string>>();
/** Distinct sources kept compiled; more than this many and the oldest is dropped. */
const CACHE_LIMIT = 256;

const noImports: Plugin = {
  name: 'switchyard-no-imports',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => (args.kind === 'entry-point' ? undefined : {
      errors: [{ text: `scripts cannot import '${args.path}': they run in a sandbox without modules. Keep imports type-only (import type ...), and reach other models through ctx.infer` }],
    }));
  },
};

export async function compileScript(file: string, source: string): Promise<CompiledScript> {
  const sha256 = createHash('sha256').update(source).digest('hex');
  let code = cache.get(sha256);
  if (!code) {
    code = transpile(file, source);
    cache.set(sha256, code);
    code.catch(() => cache.delete(sha256));
    if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  }
  return { file, code: await code, sha256 };
}

/** How many distinct sources are compiled and kept (for tests of the cache). */
export function compiledScriptCount(): number {
  return cache.size;
}

async function transpile(file: string, source: string): Promise<string> {
  try {
    const result = await build({
      stdin: { contents: source, loader: 'ts', sourcefile: file },
      bundle: true,
      write: false,
      format: 'cjs',
      platform: 'neutral',
      target: 'es2022',
      logLevel: 'silent',
      plugins: [noImports],
    });
    return result.outputFiles[0]!.text;
  } catch (err) {
    const errors = (err as { errors?: Message[] }).errors;
    if (!errors || errors.length === 0) throw err;
    throw new ScriptCompileError(errors.map((e) => describe(file, e)).join('\n'));
  }
}

/** Where and what, never the line itself: a message must not carry a file's contents to whoever asked for the load. */
function describe(file: string, message: Message): string {
  const at = message.location;
  const where = at ? `${file}:${at.line}:${at.column + 1}` : file;
  return `${where}: ${message.text}`;
}
