/**
 * The compiled form of an ensemble: steps with their tensor wiring, who
 * writes and who reads each tensor, and a topological order. Built and
 * validated once at load (ensemble-graph.ts); read by every request's run.
 * A Triton ensemble and a pipeline.yaml that describe the same graph give
 * plans that differ only in step names and source locations.
 */

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
}

/**
 * The steps that must run to produce `tensors`: their writers, and the
 * writers of what those read, transitively. Anything else is skipped.
 */
export function stepsNeeded(plan: EnsemblePlan, tensors: Iterable<string>): Set<number> {
  const needed = new Set<number>();
  const pending = [...tensors];
  for (let tensor = pending.pop(); tensor !== undefined; tensor = pending.pop()) {
    const step = plan.producer.get(tensor);
    if (step === undefined || needed.has(step)) continue;
    needed.add(step);
    for (const input of plan.steps[step]!.inputs) pending.push(input.tensor);
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
