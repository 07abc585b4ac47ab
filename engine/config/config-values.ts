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
