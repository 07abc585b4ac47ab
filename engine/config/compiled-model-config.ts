/**
 * The readonly form of a model's configuration that the rest of the engine
 * reads. Built once at load time by compileModelConfig; nothing downstream
 * looks at the raw proto object again except GET .../config.
 */
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

export interface DynamicBatchingSpec {
  readonly preferredBatchSizes: readonly number[];
  readonly maxQueueDelayMicroseconds: number;
  readonly preserveOrdering: boolean;
  /** The rest of Triton's fields (priorities, queue policy), as configured. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** Which scheduler the model gets; create-scheduler.ts is the one place that reads this. */
export type SchedulingSpec =
  | { readonly kind: 'dynamic'; readonly batching: DynamicBatchingSpec | undefined }
  | { readonly kind: 'sequence'; readonly raw: Readonly<Record<string, unknown>> }
  | { readonly kind: 'ensemble'; readonly raw: Readonly<Record<string, unknown>> };

export interface CompiledModelConfig {
  readonly name: string;
  readonly platform: string;
  readonly backend: string;
  readonly maxBatchSize: number;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly inputByName: ReadonlyMap<string, TensorSpec>;
  readonly outputByName: ReadonlyMap<string, TensorSpec>;
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
