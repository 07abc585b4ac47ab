/**
 * The readonly form of a model's configuration that the rest of the engine
 * reads. Built once at load time by compileModelConfig; nothing downstream
 * looks at the raw proto object again except GET .../config.
 */
import type { EnsemblePlan } from '../ensemble/ensemble-plan.ts';
import type { DataType } from '../tensor.ts';
import type { ModelConfigObject } from './model-config-schema.ts';

export interface TensorSpec {
  readonly name: string;
  readonly datatype: DataType;
  /** Dims as configured, without the implicit batch dimension. -1 means any size. */
  readonly dims: readonly number[];
  /** The shape the model itself sees (reshape.shape when set, else dims). */
  readonly modelDims: readonly number[];
  readonly optional: boolean;
  readonly allowRaggedBatch: boolean;
}

/** The batch_input kinds this build generates (Triton's BatchInput.Kind). */
export type BatchInputKind =
  | 'BATCH_ELEMENT_COUNT' | 'BATCH_ACCUMULATED_ELEMENT_COUNT'
  | 'BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO' | 'BATCH_MAX_ELEMENT_COUNT_AS_SHAPE';

/**
 * A model input the backend makes for each batch from the requests in it
 * (Triton's batch_input); requests never send it and metadata does not list it.
 */
export interface BatchInputSpec {
  readonly kind: BatchInputKind;
  /** Model inputs fed with the generated tensor. */
  readonly targetNames: readonly string[];
  readonly datatype: 'INT32' | 'FP32';
  /** The request input whose element counts the tensor is computed from. */
  readonly sourceInput: string;
}

export type VersionPolicy =
  | { readonly kind: 'latest'; readonly numVersions: number }
  | { readonly kind: 'all' }
  | { readonly kind: 'specific'; readonly versions: readonly number[] };

export type InstanceKind = 'CPU' | 'GPU';

export interface InstanceGroupSpec {
  readonly name: string;
  readonly kind: InstanceKind;
  readonly count: number;
  readonly gpus: readonly number[];
}

/** Triton's ModelQueuePolicy: what happens to requests waiting at one priority level. */
export interface QueuePolicySpec {
  /** REJECT answers a request whose timeout passed while queued; DELAY moves it behind the level's other requests. */
  readonly timeoutAction: 'REJECT' | 'DELAY';
  /** 0 means no timeout. */
  readonly defaultTimeoutMicroseconds: number;
  /** Whether a request's own `timeout` parameter may shorten the default. */
  readonly allowTimeoutOverride: boolean;
  /** 0 means unbounded. */
  readonly maxQueueSize: number;
}

export const NO_QUEUE_POLICY: QueuePolicySpec = {
  timeoutAction: 'REJECT', defaultTimeoutMicroseconds: 0, allowTimeoutOverride: false, maxQueueSize: 0,
};

export interface DynamicBatchingSpec {
  /** Ascending, distinct, each within 1..max_batch_size. */
  readonly preferredBatchSizes: readonly number[];
  readonly maxQueueDelayMicroseconds: number;
  readonly preserveOrdering: boolean;
  /** 0 when the model has no priority levels (one queue). */
  readonly priorityLevels: number;
  /** The level a request without a `priority` parameter (or with 0) gets; 0 when there are no levels. */
  readonly defaultPriorityLevel: number;
  /** Policy per level: index 0 is level 1 (the highest). With no levels, one entry for the single queue. */
  readonly queuePolicies: readonly QueuePolicySpec[];
}

/** Which scheduler the model gets; create-scheduler.ts is the one place that reads this. */
export type SchedulingSpec =
  | { readonly kind: 'dynamic'; readonly batching: DynamicBatchingSpec | undefined }
  | { readonly kind: 'sequence'; readonly raw: Readonly<Record<string, unknown>> }
  | { readonly kind: 'ensemble'; readonly plan: EnsemblePlan };

export interface CompiledModelConfig {
  readonly name: string;
  readonly platform: string;
  readonly backend: string;
  readonly maxBatchSize: number;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly inputByName: ReadonlyMap<string, TensorSpec>;
  readonly outputByName: ReadonlyMap<string, TensorSpec>;
  /** batch_input entries; their targets are model inputs that are not in `inputs`. */
  readonly batchInputs: readonly BatchInputSpec[];
  readonly versionPolicy: VersionPolicy;
  readonly instanceGroups: readonly InstanceGroupSpec[];
  readonly scheduling: SchedulingSpec;
  /** `parameters` with their string values. */
  readonly parameters: ReadonlyMap<string, string>;
  readonly defaultModelFilename: string;
  /** The completed config in Triton's JSON form, for GET .../config. */
  readonly json: Readonly<ModelConfigObject>;
  /** Sections that are valid but that this build does not act on yet; logged as warnings at load. */
  readonly notActedOn: readonly string[];
  /** File the config came from, or undefined when it was fully auto-completed. */
  readonly file: string | undefined;
}
