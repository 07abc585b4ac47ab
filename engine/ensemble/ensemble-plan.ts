/**
 * The compiled form of an ensemble: steps with their tensor wiring, who
 * writes and who reads each tensor, and a topological order. Built and
 * validated once at load (ensemble-graph.ts); read by every request's run.
 * A Triton ensemble and a pipeline.yaml that describe the same graph give
 * plans that differ only in step names and source locations.
 */
import type { OutputDefault } from './output-default.ts';
import type { StepCondition } from './step-condition.ts';

export interface TensorLink {
  /** The member model's input or output name. */
  readonly member: string;
  /** The ensemble tensor it reads or writes. */
  readonly tensor: string;
}

export interface PlannedStep {
  readonly index: number;
  /** How messages name the step: `step 'classify' (model 'feature_classifier')` or `step 2 ('feature_classifier')`. */
  readonly label: string;
  readonly modelName: string;
  /** A version number as text, or undefined for the latest ready version (-1 in the config). */
  readonly modelVersion: string | undefined;
  readonly inputs: readonly TensorLink[];
  readonly outputs: readonly TensorLink[];
  /** The member may send any number of responses per request (model_transaction_policy.decoupled). */
  readonly decoupled: boolean;
  /** Switchyard's `when` and `switch`: the step runs only when every one holds. Absent: it always runs. */
  readonly conditions?: readonly StepCondition[];
  /**
   * Tensors the step cannot run without (it is skipped when one is not
   * there): those feeding a required member input, and condition tensors.
   * Set when the plan is conditional.
   */
  readonly needs?: ReadonlySet<string>;
}

export interface EnsemblePlan {
  readonly ensemble: string;
  readonly steps: readonly PlannedStep[];
  /** The ensemble's own input tensors, in config order. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** Tensor -> index of the step that writes it. Ensemble inputs have none. */
  readonly producer: ReadonlyMap<string, number>;
  /** Tensor -> indexes of the steps that read it. */
  readonly consumers: ReadonlyMap<string, readonly number[]>;
  /** Every tensor a step writes, in topological order of the writers. */
  readonly written: readonly string[];
  /** Step indexes, each after every step it reads from. */
  readonly order: readonly number[];
  /** Member models, by name, for load order and availability. */
  readonly members: readonly string[];
  /** A step is decoupled, so the ensemble is too: each response of that step runs the steps after it again. */
  readonly decoupled: boolean;
  /**
   * ensemble_scheduling.max_inflight_requests: how many requests of one step
   * may be in flight at once, across every running request of the ensemble;
   * 0 for no limit.
   */
  readonly maxInflightRequests: number;
  /**
   * Steps may be skipped for a request: a step has conditions, an ensemble
   * input is optional, or a tensor has several writers. False or absent:
   * every needed step runs.
   */
  readonly conditional?: boolean;
  /** Tensors written by several steps (a join), at most one of which runs per request; `producer` holds the first. */
  readonly joins?: ReadonlyMap<string, readonly number[]>;
  /** Outputs sent with this value (filling the output's shape) when no step wrote them. */
  readonly outputDefaults?: ReadonlyMap<string, OutputDefault>;
  /** Decoupled ensembles: which stream each tensor and step belongs to (see StreamLayout). */
  readonly streams?: StreamLayout;
}

/**
 * The streams of a decoupled ensemble, numbered as Triton labels them: 0 is
 * the request's own, and each decoupled step starts one more, below the
 * stream it reads from.
 */
export interface StreamLayout {
  /** Each tensor's stream; ensemble inputs are in stream 0. */
  readonly tensor: ReadonlyMap<string, number>;
  /** Each step's stream: the deepest one it reads from, whose every response runs it once. */
  readonly step: readonly number[];
  /** Each stream's parent; stream 0 has -1. */
  readonly parent: readonly number[];
}

/** Whether stream `stream` is `ancestor` or lies below it. */
export function streamWithin(layout: StreamLayout, stream: number, ancestor: number): boolean {
  for (let s = stream; s >= 0; s = layout.parent[s]!) if (s === ancestor) return true;
  return false;
}

/**
 * The steps that must run to produce `tensors`: their writers, and the
 * writers of what those read (inputs and condition tensors), transitively.
 * Anything else is skipped. A step in `skipped` (its conditions already
 * failed) is needed, to be counted as skipped, but what it reads is not.
 */
export function stepsNeeded(plan: EnsemblePlan, tensors: Iterable<string>, skipped?: ReadonlySet<number>): Set<number> {
  const needed = new Set<number>();
  const pending = [...tensors];
  const add = (step: number): void => {
    if (needed.has(step)) return;
    needed.add(step);
    if (skipped?.has(step)) return;
    const planned = plan.steps[step]!;
    for (const input of planned.inputs) pending.push(input.tensor);
    for (const c of planned.conditions ?? []) if (c.operand.kind === 'tensor') pending.push(c.operand.tensor);
  };
  for (let tensor = pending.pop(); tensor !== undefined; tensor = pending.pop()) {
    const joined = plan.joins?.get(tensor);
    if (joined) {
      for (const step of joined) add(step);
      continue;
    }
    const step = plan.producer.get(tensor);
    if (step !== undefined) add(step);
  }
  return needed;
}

/** The plan without names or locations: what two equivalent ensembles share. */
export function describePlan(plan: EnsemblePlan): object {
  return {
    inputs: [...plan.inputs].sort(),
    outputs: [...plan.outputs].sort(),
    steps: plan.steps.map((s) => ({
      model: s.modelName,
      version: s.modelVersion ?? 'latest',
      inputs: Object.fromEntries([...s.inputs].sort((a, b) => a.member.localeCompare(b.member)).map((l) => [l.member, l.tensor])),
      outputs: Object.fromEntries([...s.outputs].sort((a, b) => a.member.localeCompare(b.member)).map((l) => [l.member, l.tensor])),
    })),
    order: plan.order,
  };
}
