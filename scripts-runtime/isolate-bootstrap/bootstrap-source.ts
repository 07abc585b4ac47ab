/**
 * The text of the isolate bootstrap, made from bootstrap.ts: the file is read and its types stripped by esbuild
 * (a transform of this one file: no bundling, no helpers, no renaming, no minification, nothing lowered), then
 * wrapped into the closure body that isolated-vm's evalClosure runs with the host's handles as `$0` to `$8`.
 * Made once per process, on the first isolate, and kept.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

export type { BootstrapSettings } from './bootstrap.ts';

/** The module the bootstrap is made from. */
export const BOOTSTRAP_MODULE = fileURLToPath(new URL('./bootstrap.ts', import.meta.url));
/** The function bootstrap.ts declares; the closure body calls it with the handles in evalClosure's order. */
export const BOOTSTRAP_FUNCTION = 'isolateBootstrap';

let source: Promise<string> | undefined;

/** The closure body for evalClosure: `$0` infer, `$1` log, `$2` the model's factory, `$3` respond, `$4` the settings,
 * `$5` inferInline, `$6` settled (inline executes), `$7` stream and `$8` streamInline (ctx.inferStream). */
export function isolateBootstrapSource(): Promise<string> {
  if (!source) {
    source = readFile(BOOTSTRAP_MODULE, 'utf8').then(bootstrapFromModule);
    // A failure is not kept: the next isolate tries again.
    source.catch(() => { source = undefined; });
  }
  return source;
}

/** The closure body made from the text of bootstrap.ts. */
export async function bootstrapFromModule(text: string): Promise<string> {
  const result = await transform(text, {
    loader: 'ts',
    target: 'esnext',
    sourcefile: BOOTSTRAP_MODULE,
    minify: false,
    keepNames: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  return `'use strict';\n${result.code}\nreturn ${BOOTSTRAP_FUNCTION}($0, $1, $2, $3, $4, $5, $6, $7, $8);\n`;
}
