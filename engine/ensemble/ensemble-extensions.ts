/**
 * Switchyard's ensemble extensions, written as ensemble `parameters` so a
 * config.pbtxt stays loadable by Triton (which ignores parameters it does
 * not use). Every key starts with `switchyard.`:
 *
 *   switchyard.step.<step>.when          a condition: the step runs only when it holds
 *   switchyard.switch.<name>.on          what a switch routes by: parameters.NAME or a tensor
 *   switchyard.switch.<name>.case.<value>  the steps of that case, comma-separated
 *   switchyard.switch.<name>.default     the steps run when no case matches
 *   switchyard.output.<NAME>.default     the value of an output whose writers all skipped
 *
 * <step> is the step's position in ensemble_scheduling.step, counted from 0
 * as in the field `ensemble_scheduling.step[<i>]`, or the model it runs when
 * only one step runs that model. A case <value> is true, false, a number,
 * or text (quoted with '' when it would read as a number or boolean).
 * pipeline.yaml writes its `when`, `switches` and output `default` as these
 * same parameters.
 */
import { didYouMean } from '../config/did-you-mean.ts';
import type { EnsembleLayout, FieldAt } from './ensemble-layout.ts';
import {
  describeLiteral, parseConditionExpression, parseLiteral, type ConditionExpression, type ConditionLiteral,
} from './step-condition.ts';

export const EXTENSION_PREFIX = 'switchyard.';
const SWITCH_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export interface WhenSource {
  readonly expression: ConditionExpression;
  readonly text: string;
  readonly at: FieldAt;
}

export interface SwitchCaseSource {
  readonly value: ConditionLiteral;
  readonly steps: readonly number[];
  readonly at: FieldAt;
}

export interface SwitchSource {
  readonly name: string;
  readonly on: string;
  readonly at: FieldAt;
  readonly cases: readonly SwitchCaseSource[];
  readonly defaultSteps: { readonly steps: readonly number[]; readonly at: FieldAt } | undefined;
}

export interface EnsembleExtensions {
  /** Step index -> its `when`. */
  readonly when: ReadonlyMap<number, WhenSource>;
  readonly switches: readonly SwitchSource[];
  /** Ensemble output -> the value sent when no step wrote it. */
  readonly defaults: ReadonlyMap<string, { readonly value: ConditionLiteral; readonly at: FieldAt }>;
}

export const NO_EXTENSIONS: EnsembleExtensions = { when: new Map(), switches: [], defaults: new Map() };

export function hasExtensions(e: EnsembleExtensions): boolean {
  return e.when.size > 0 || e.switches.length > 0 || e.defaults.size > 0;
}

type Fail = (at: FieldAt, problem: string, fix: string) => never;

/** Reads the `switchyard.*` parameters of an ensemble; every mistake fails with the key's line. */
export function readEnsembleExtensions(
  ensemble: string,
  parameters: Readonly<Record<string, string>>,
  stepModels: readonly string[],
  layout: EnsembleLayout,
  fail: Fail,
): EnsembleExtensions {
  const when = new Map<number, WhenSource>();
  const switches = new Map<string, { on?: string; at?: FieldAt; cases: SwitchCaseSource[]; defaultSteps?: { steps: number[]; at: FieldAt }; first: FieldAt }>();
  const defaults = new Map<string, { value: ConditionLiteral; at: FieldAt }>();
  const keys = Object.keys(parameters).filter((k) => k.startsWith(EXTENSION_PREFIX));
  if (keys.length === 0) return NO_EXTENSIONS;

  const stepOf = (ref: string, at: FieldAt): number => {
    const text = ref.trim();
    if (/^\d+$/.test(text)) {
      const index = Number(text);
      if (index < stepModels.length) return index;
      fail(at, `names step ${text}, but ensemble '${ensemble}' has ${stepModels.length} steps (counted from 0, as in ensemble_scheduling.step[${text}])`,
        `use 0 to ${stepModels.length - 1}, or the model name of a step`);
    }
    const matches = stepModels.flatMap((m, i) => (m === text ? [i] : []));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      fail(at, `names model '${text}', which steps ${matches.join(' and ')} both run`, `name the step by its position instead (${matches.join(' or ')})`);
    }
    const guess = didYouMean(text, stepModels);
    fail(at, `names step '${text}', which is neither a step position nor the model of a step of ensemble '${ensemble}'`,
      guess ? `did you mean '${guess}'?` : `use a position from 0 to ${stepModels.length - 1}, or one of the models: ${[...new Set(stepModels)].join(', ')}`);
  };
  const stepList = (text: string, at: FieldAt): number[] => {
    const refs = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const steps = refs.map((r) => stepOf(r, at));
    const twice = steps.find((s, i) => steps.indexOf(s) !== i);
    if (twice !== undefined) fail(at, `lists ${layout.stepLabel(twice, stepModels[twice]!)} twice`, 'list each step once');
    return steps;
  };

  for (const key of keys) {
    const at = layout.extension(key);
    const value = parameters[key]!;
    const rest = key.slice(EXTENSION_PREFIX.length);
    if (rest.startsWith('step.') && rest.endsWith('.when')) {
      const step = stepOf(rest.slice('step.'.length, -'.when'.length), at);
      if (when.has(step)) fail(at, `is a second condition for ${layout.stepLabel(step, stepModels[step]!)}`, 'give each step one when (combine them with a switch)');
      let expression: ConditionExpression;
      try {
        expression = parseConditionExpression(value);
      } catch (err) {
        fail(at, `condition ${(err as Error).message}`, 'write e.g. parameters.route == "fast", IS_LONG, or SCORE > 0.5');
      }
      when.set(step, { expression, text: value.trim(), at });
      continue;
    }
    if (rest.startsWith('switch.')) {
      const body = rest.slice('switch.'.length);
      const dot = body.indexOf('.');
      const name = dot < 0 ? body : body.slice(0, dot);
      const part = dot < 0 ? '' : body.slice(dot + 1);
      if (!SWITCH_NAME.test(name)) fail(at, `'${name}' is not a usable switch name`, 'use letters, digits, _ and -, starting with a letter');
      const entry = switches.get(name) ?? { cases: [], first: at };
      switches.set(name, entry);
      if (part === 'on') {
        if (value.trim() === '' || /\s/.test(value.trim())) fail(at, `'${value}' is not something to switch on`, 'write parameters.NAME or a tensor name');
        entry.on = value.trim();
        entry.at = at;
      } else if (part === 'default') {
        entry.defaultSteps = { steps: stepList(value, at), at };
      } else if (part.startsWith('case.') && part.length > 'case.'.length) {
        const caseValue = parseLiteral(part.slice('case.'.length));
        const same = entry.cases.find((c) => c.value === caseValue);
        if (same) {
          fail(at, `switch '${name}' has case ${describeLiteral(caseValue)} twice (line ${same.at.line ?? '?'} has it too)`, 'merge the two cases, listing their steps together');
        }
        entry.cases.push({ value: caseValue, steps: stepList(value, at), at });
      } else {
        fail(at, `is not a part of a switch`, `use switchyard.switch.${name}.on, .case.<value> or .default`);
      }
      continue;
    }
    if (rest.startsWith('output.') && rest.endsWith('.default') && rest.length > 'output..default'.length) {
      defaults.set(rest.slice('output.'.length, -'.default'.length), { value: parseLiteral(value), at });
      continue;
    }
    fail(at, 'is not a Switchyard ensemble extension',
      'use switchyard.step.<step>.when, switchyard.switch.<name>.on|case.<value>|default, or switchyard.output.<NAME>.default (see docs/ensembles.md)');
  }

  const built: SwitchSource[] = [];
  for (const [name, s] of switches) {
    if (s.on === undefined) fail(s.first, `switch '${name}' has no switchyard.switch.${name}.on`, 'say what it routes by: parameters.NAME or a tensor');
    if (s.cases.length === 0) fail(s.at!, `switch '${name}' has no cases`, `add switchyard.switch.${name}.case.<value> with the steps of that case`);
    const kinds = new Set(s.cases.map((c) => typeof c.value));
    if (kinds.size > 1) {
      const odd = s.cases.find((c) => typeof c.value !== typeof s.cases[0]!.value)!;
      fail(odd.at, `switch '${name}' compares with ${describeLiteral(s.cases[0]!.value)} and with ${describeLiteral(odd.value)}, values of different types`,
        'give every case a value of the same type (quote text that looks like a number)');
    }
    built.push({ name, on: s.on, at: s.at!, cases: s.cases, defaultSteps: s.defaultSteps });
  }
  return { when, switches: built, defaults };
}
