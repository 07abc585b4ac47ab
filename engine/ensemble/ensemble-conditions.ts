/**
 * Load-time compilation of an ensemble's conditional steps (the `when` and
 * `switch` extensions): each condition's operand is resolved to a request
 * parameter or a tensor, checked for type (a BOOL or a number, one value
 * per request, compared with a value of its own kind), and then the graph
 * is checked as a whole:
 *   - two steps that write one tensor (a join) must exclude each other:
 *     at most one of them can run for any request;
 *   - a step whose conditions, with those of the steps it needs tensors
 *     from, can never all hold is refused (its outputs would never be set).
 * Only equality tests (==, !=, switch cases) take part in these proofs;
 * an ordering (<, >) is assumed satisfiable and never proves exclusion.
 */
import { didYouMean } from '../config/did-you-mean.ts';
import type { DataType } from '../tensor.ts';
import type { EnsembleExtensions } from './ensemble-extensions.ts';
import type { EnsembleLayout, FieldAt } from './ensemble-layout.ts';
import {
  conditionKindOf, describeLiteral, literalKind, PARAMETER_PREFIX, testValues, type ConditionLiteral, type ConditionOperand, type StepCondition,
} from './step-condition.ts';

type Fail = (at: FieldAt, problem: string, fix: string) => never;

/** A tensor as conditions see it: datatype and dims per request (without the batch dimension). */
export interface ConditionTensor {
  readonly datatype: DataType;
  readonly dims: readonly number[];
  readonly what: string;
}

export interface ConditionGraph {
  /** "ensemble 'e'" */
  readonly ensemble: string;
  readonly labels: readonly string[];
  readonly layout: EnsembleLayout;
  readonly fail: Fail;
  /** Tensor -> the steps that write it. */
  readonly writers: ReadonlyMap<string, readonly number[]>;
  readonly inputs: ReadonlySet<string>;
}

interface Located {
  readonly condition: StepCondition;
  readonly at: FieldAt;
}

/** Each step's conditions, with where they are written; operands resolved, not yet type-checked. */
export function resolveConditions(graph: ConditionGraph, extensions: EnsembleExtensions, stepCount: number): Located[][] {
  const perStep: Located[][] = Array.from({ length: stepCount }, () => []);
  const operand = (text: string, at: FieldAt): ConditionOperand => {
    if (text.startsWith(PARAMETER_PREFIX)) {
      const name = text.slice(PARAMETER_PREFIX.length);
      if (name === '') graph.fail(at, `'${text}' names no parameter`, 'write parameters.NAME');
      return { kind: 'parameter', name };
    }
    if (!graph.inputs.has(text) && !graph.writers.has(text)) {
      const guess = didYouMean(text, [...graph.inputs, ...graph.writers.keys()]);
      graph.fail(at, `${graph.ensemble} has a condition on tensor '${text}', but no step writes it and it is not an ensemble input`,
        guess ? `did you mean '${guess}'? A request parameter is written parameters.NAME` : 'name an ensemble input or a tensor a step writes, or parameters.NAME for a request parameter');
    }
    return { kind: 'tensor', tensor: text };
  };
  for (const [step, when] of extensions.when) {
    const { expression } = when;
    perStep[step]!.push({
      at: when.at,
      condition: {
        operand: operand(expression.operand, when.at),
        test: expression.op ? { op: expression.op, value: expression.value! } : { op: '==', value: true },
        origin: `when ${when.text}`,
      },
    });
  }
  for (const s of extensions.switches) {
    const on = operand(s.on, s.at);
    const all = s.cases.map((c) => c.value);
    const listed = new Set([...s.cases.flatMap((c) => c.steps), ...(s.defaultSteps?.steps ?? [])]);
    for (const step of listed) {
      const cases = s.cases.filter((c) => c.steps.includes(step)).map((c) => c.value);
      const inDefault = s.defaultSteps?.steps.includes(step) === true;
      const shown = cases.map(describeLiteral).join(', ');
      const origin = `switch '${s.name}' on ${s.on}: ${[...(cases.length > 0 ? [`case${cases.length > 1 ? 's' : ''} ${shown}`] : []), ...(inDefault ? ['default'] : [])].join(' and ')}`;
      perStep[step]!.push({
        at: s.at,
        condition: {
          operand: on,
          test: inDefault ? { op: 'not in', values: all.filter((v) => !cases.includes(v)) } : { op: 'in', values: cases },
          origin,
        },
      });
    }
  }
  return perStep;
}

/** Checks each condition against the kind of what it reads. */
export function checkConditionTypes(graph: ConditionGraph, located: readonly Located[][], tensorOf: (name: string) => ConditionTensor): void {
  located.forEach((conditions, step) => {
    for (const { condition, at } of conditions) {
      const { operand, test } = condition;
      const values = testValues(test);
      const ordering = test.op !== '==' && test.op !== '!=' && test.op !== 'in' && test.op !== 'not in';
      const where = `${graph.ensemble} ${graph.labels[step]} runs on ${condition.origin}`;
      if (operand.kind === 'parameter') {
        const kinds = new Set(values.map(literalKind));
        if (ordering && !kinds.has('number')) {
          graph.fail(at, `${where}, which orders ${[...kinds].join('/')} values with '${test.op}'`, 'compare text and booleans with == or !=; order only numbers');
        }
        continue;
      }
      const tensor = tensorOf(operand.tensor);
      const kind = conditionKindOf(tensor.datatype);
      if (!kind) {
        graph.fail(at, `${where}, but tensor '${operand.tensor}' is ${tensor.datatype} (${tensor.what}): a condition reads a BOOL or a number`,
          'route on a BOOL or numeric tensor, or on a request parameter (parameters.NAME)');
      }
      if (tensor.dims.some((d) => d !== 1)) {
        graph.fail(at, `${where}, but tensor '${operand.tensor}' is [${tensor.dims.join(',')}] per request (${tensor.what}): a condition reads one value per request`,
          'use a tensor of one element per request (dims [1] or [])');
      }
      for (const value of values) {
        if (literalKind(value) !== kind) {
          graph.fail(at, `${where}, which compares ${tensor.datatype} tensor '${operand.tensor}' with ${describeLiteral(value)}, a ${literalKind(value) === 'BOOL' ? 'boolean' : literalKind(value)}`,
            kind === 'BOOL' ? 'compare a BOOL tensor with true or false, or write it alone' : 'compare a numeric tensor with a number');
        }
      }
      if (kind === 'BOOL' && ordering) graph.fail(at, `${where}, which orders BOOL tensor '${operand.tensor}' with '${test.op}'`, 'compare a BOOL with == or !=, or write it alone');
    }
  });
}

/** What the equality tests on one operand allow: a set of values (undefined: any), minus some. */
interface Allowed {
  readonly only: ReadonlySet<ConditionLiteral> | undefined;
  readonly except: ReadonlySet<ConditionLiteral>;
  readonly origins: readonly string[];
}

/** A conjunction of the equality tests a step runs under, its own and inherited, by operand. */
type Constraint = ReadonlyMap<string, Allowed>;

function keyOf(operand: ConditionOperand): string {
  return operand.kind === 'parameter' ? `parameter ${operand.name}` : `tensor ${operand.tensor}`;
}

function possible(a: Allowed): boolean {
  return a.only === undefined || [...a.only].some((v) => !a.except.has(v));
}

function meet(a: Allowed, b: Allowed): Allowed {
  const only = a.only && b.only ? new Set([...a.only].filter((v) => b.only!.has(v))) : a.only ?? b.only;
  return { only, except: new Set([...a.except, ...b.except]), origins: [...new Set([...a.origins, ...b.origins])] };
}

function conjoin(a: Constraint, b: Constraint): Map<string, Allowed> {
  const out = new Map(a);
  for (const [key, allowed] of b) out.set(key, out.has(key) ? meet(out.get(key)!, allowed) : allowed);
  return out;
}

/** The first operand whose tests cannot all hold, or undefined when the constraint is satisfiable (as far as equality shows). */
function conflict(c: Constraint): Allowed | undefined {
  for (const allowed of c.values()) if (!possible(allowed)) return allowed;
  return undefined;
}

function ownConstraint(conditions: readonly Located[], tensorKind: (name: string) => 'BOOL' | 'number' | undefined): Map<string, Allowed> {
  let out = new Map<string, Allowed>();
  for (const { condition } of conditions) {
    const { operand, test } = condition;
    const bool = operand.kind === 'tensor' && tensorKind(operand.tensor) === 'BOOL';
    const domain = bool ? new Set<ConditionLiteral>([true, false]) : undefined;
    let allowed: Allowed | undefined;
    if (test.op === '==' || test.op === 'in') {
      allowed = { only: new Set(testValues(test)), except: new Set(), origins: [condition.origin] };
    } else if (test.op === '!=' || test.op === 'not in') {
      allowed = { only: domain, except: new Set(testValues(test)), origins: [condition.origin] };
    }
    if (allowed) out = conjoin(out, new Map([[keyOf(operand), allowed]]));
  }
  return out;
}

/**
 * The graph-wide checks, in topological order: a step that can never run,
 * and writers of one tensor that could both run.
 */
export function checkConditionalGraph(
  graph: ConditionGraph,
  located: readonly Located[][],
  order: readonly number[],
  /** Per step: the tensors it cannot run without (required member inputs and condition tensors). */
  needs: readonly (readonly string[])[],
  tensorKind: (name: string) => 'BOOL' | 'number' | undefined,
): void {
  const effective: Constraint[] = [];
  for (const step of order) {
    let c: Constraint = ownConstraint(located[step]!, tensorKind);
    for (const tensor of needs[step]!) {
      const from = graph.writers.get(tensor);
      if (from?.length === 1) c = conjoin(c, effective[from[0]!]!);
    }
    effective[step] = c;
    const bad = conflict(c);
    if (bad) {
      const at = located[step]![0]?.at ?? graph.layout.step(step);
      graph.fail(at, `${graph.ensemble} ${graph.labels[step]} can never run: it runs only on ${bad.origins.join(', and on ')} (its own conditions and those of the steps it needs tensors from), which cannot all hold`,
        'read a join of the branches\' outputs (a tensor that each branch writes), or move the step out of the branch');
    }
  }
  for (const [tensor, writers] of graph.writers) {
    for (let i = 1; i < writers.length; i++) {
      for (let j = 0; j < i; j++) {
        const a = writers[j]!;
        const b = writers[i]!;
        if (conflict(conjoin(effective[a]!, effective[b]!))) continue;
        graph.fail(graph.layout.step(b),
          `${graph.ensemble} ${graph.labels[b]} writes tensor '${tensor}', which ${graph.labels[a]} writes too, and both could run for one request: ` +
          'a tensor is written once, or by steps of which at most one runs',
          'put the two steps in different cases of one switch (or give them when conditions that exclude each other, such as X == 1 and X != 1), or give one output another tensor name');
      }
    }
  }
}
