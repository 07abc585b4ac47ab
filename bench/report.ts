/** Number formats, markdown tables and environment settings shared by the benchmark scripts. */

export const fmtRate = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');
export const fmtMs = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '-');

/** A markdown table: the first two columns left-aligned, the rest right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < 2 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** A positive number from the environment, or the fallback when unset. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got '${raw}'`);
  return value;
}

/** Comma-separated positive integers from the environment, or the fallback when unset; 'none' gives an empty list. */
export function envIntegers(name: string, fallback: string): number[] {
  const raw = process.env[name] ?? fallback;
  if (raw.trim() === 'none') return [];
  const values = raw.split(',').map((s) => Number(s.trim()))
    .filter((n) => Number.isSafeInteger(n) && n > 0);
  if (values.length === 0) throw new Error(`${name} must list positive integers (e.g. '${fallback}') or be 'none'`);
  return values;
}

/** Whitespace-separated node flags from the environment (e.g. "--cpu-prof --cpu-prof-dir=.bench-out"). */
export function envNodeArgs(name: string): string[] {
  return (process.env[name] ?? '').split(/\s+/).filter(Boolean);
}
