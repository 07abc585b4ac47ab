/**
 * Reading the plain config object field by field: each compile step takes
 * values through these, so a field of the wrong kind reads as absent, and
 * fails through failAt(), which names the file, line and field with a fix.
 */
import type { ConfigSourceMap } from './config-source-map.ts';
import { ModelConfigError } from './config-error.ts';

/** The file a config came from and where its fields sit, for error messages. */
export interface ConfigContext {
  readonly file: string;
  readonly sourceMap: ConfigSourceMap;
}

export type Obj = Record<string, unknown>;

export const asObj = (v: unknown): Obj | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);
export const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const asNumber = (v: unknown, fallback = 0): number => (typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : fallback);
export const asString = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Throws the config error for `field`, at its line in the file. */
export function failAt(ctx: ConfigContext, field: string, problem: string, fix: string): never {
  throw new ModelConfigError({ file: ctx.file, line: ctx.sourceMap.lineOf(field), field, problem, fix });
}

/**
 * Throws the config error for the model config parameter `key`, at the line
 * of its value: text-format configs list parameters as entries
 * (parameters[i].key), which lineOf cannot find by key.
 */
export function failAtParameter(ctx: ConfigContext, key: string, problem: string, fix: string): never {
  const field = `parameters.${key}`;
  let line = ctx.sourceMap.lineOf(field);
  const entries = ctx.sourceMap.scalars();
  const entry = entries.find(([path, value]) => /^parameters\[\d+\]\.key$/.test(path) && value === key);
  if (entry) {
    const prefix = entry[0].slice(0, -'key'.length);
    line = entries.find(([path]) => path.startsWith(`${prefix}value`))?.[2] ?? entry[2];
  }
  throw new ModelConfigError({ file: ctx.file, line, field, problem, fix });
}
