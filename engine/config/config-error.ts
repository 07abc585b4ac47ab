/**
 * A configuration problem, located in its file. The message reads
 * `<file>:<line>: <field>: <problem>. Fix: <fix>` so editors and humans can
 * jump straight to it.
 */
export interface ConfigProblem {
  readonly file: string;
  readonly line?: number;
  /** Dotted path of the field, e.g. `input[1].dims`. */
  readonly field: string;
  readonly problem: string;
  readonly fix: string;
}

export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
  readonly code = 'MODEL_CONFIG_INVALID';

  constructor(readonly problem: ConfigProblem) {
    super(formatProblem(problem));
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  return `${where}: ${p.field}: ${p.problem}. Fix: ${p.fix}`;
}
