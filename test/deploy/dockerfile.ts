/**
 * A Dockerfile read into its stages and instructions: enough to check what
 * the image is built from, what it copies, exposes and runs. Follows
 * Docker's rules for comments, line continuations, exec (JSON) form and
 * ARG substitution in FROM.
 */

export interface Instruction {
  readonly keyword: string;
  /** The text after the keyword, continuations joined. */
  readonly text: string;
  /** Exec form (`["a", "b"]`) parsed; otherwise the text split on whitespace. */
  readonly words: readonly string[];
  readonly execForm: boolean;
  readonly line: number;
}

export interface Stage {
  /** The base image with global ARG defaults substituted. */
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  readonly globalArgs: ReadonlyMap<string, string>;
  readonly stages: readonly Stage[];
}

function parseInstruction(keyword: string, text: string, line: number): Instruction {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    try {
      const words = JSON.parse(trimmed) as unknown;
      if (Array.isArray(words) && words.every((w) => typeof w === 'string')) {
        return { keyword, text: trimmed, words, execForm: true, line };
      }
    } catch {
      // Not JSON: Docker runs it in shell form.
    }
  }
  return { keyword, text: trimmed, words: trimmed.split(/\s+/).filter(Boolean), execForm: false, line };
}

export function parseDockerfile(source: string): Dockerfile {
  const instructions: Instruction[] = [];
  const lines = source.split('\n');
  let pending = '';
  let startLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (pending === '' && /^\s*#/.test(raw)) continue;
    if (pending !== '' && /^\s*#/.test(raw)) continue;
    if (pending === '') startLine = i + 1;
    if (/\\\s*$/.test(raw)) {
      pending += `${raw.replace(/\\\s*$/, '')} `;
      continue;
    }
    const full = (pending + raw).trim();
    pending = '';
    if (full === '') continue;
    const match = /^(\w+)\s*(.*)$/s.exec(full);
    if (!match) throw new Error(`Dockerfile line ${startLine}: cannot parse '${full}'`);
    instructions.push(parseInstruction(match[1]!.toUpperCase(), match[2]!, startLine));
  }

  const globalArgs = new Map<string, string>();
  const stages: { from: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.words.filter((w) => !w.startsWith('--'));
      const from = words[0]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => globalArgs.get((a ?? b)!) ?? '');
      const name = words[1]?.toUpperCase() === 'AS' ? words[2] : undefined;
      stages.push({ from, name, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [key, value] = instruction.text.split('=', 2);
        globalArgs.set(key!.trim(), (value ?? '').trim());
      }
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

/** The last instruction of `keyword` in a stage (Docker uses the last CMD, ENTRYPOINT, USER...). */
export function lastOf(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1);
}
