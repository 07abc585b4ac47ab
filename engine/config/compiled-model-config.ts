/**
 * The readonly form of a model's configuration that the rest of the engine
 * reads. Built once at load time by compileModelConfig; nothing downstream
 * looks at the raw proto object again except GET .../config.
 */
import type { EnsemblePlan } from '../ensemble/ensemble-plan.ts';
import type { RateLimiterSpec } from '../scheduling/rate-limiter.ts';
import type { DataType, FixedDataType } from '../tensor.ts';
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
  /** An output's labels from its label_filename, one per class index; read once at load. */
  readonly labels?: readonly string[];
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
  /** What each instance of the group needs from the rate limiter (--rate-limit=execution_count), and its priority. */
  readonly rateLimiter: RateLimiterSpec;
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
  /** Switchyard's padded batching (parameters padded_batching*); absent: every input's shape must match within a batch. */
  readonly padding?: PaddedBatchingSpec;
}

/** One input that padded batching lets differ within a batch (compile-padded-batching.ts). */
export interface PaddedInputSpec {
  readonly name: string;
  readonly datatype: FixedDataType;
  /** Positions in a request's shape (0 is the batch dimension) that may differ: the config's -1 dims. */
  readonly axes: readonly number[];
  /** The pad value as written in the config, for log lines. */
  readonly padText: string;
  /** One element of the pad value: little-endian bytes of the input's datatype. */
  readonly padElement: Uint8Array;
}

/**
 * Padded batching: requests whose listed inputs differ along their -1 dims
 * share a batch when each such dim falls in the same bucket
 * (ceil(dim / bucketWidth)); the batch is padded to its widest member.
 */
export interface PaddedBatchingSpec {
  readonly inputs: ReadonlyMap<string, PaddedInputSpec>;
  readonly bucketWidth: number;
}

/**
 * A model input the sequence batcher sets for every request of a batch
 * (Triton's control_input): START, END and READY as the configured
 * false/true values, CORRID as the request's correlation ID. Shaped [1] per
 * request, so [batch, 1] for a model that batches.
 */
export type SequenceControlSpec =
  | {
    readonly kind: 'START' | 'END' | 'READY';
    readonly inputName: string;
    readonly datatype: 'INT32' | 'FP32' | 'BOOL';
    /** The values sent for false and true (booleans are sent as 0 and 1). */
    readonly falseValue: number;
    readonly trueValue: number;
  }
  | {
    readonly kind: 'CORRID';
    readonly inputName: string;
    /** BYTES carries the ID as text; the integer types carry a numeric ID's low bits, as Triton copies them. */
    readonly datatype: 'UINT64' | 'INT64' | 'UINT32' | 'INT32' | 'BYTES';
  };

/**
 * Implicit state (Triton's sequence_batching.state): the batcher feeds
 * `inputName` from what the previous request of the sequence produced as
 * `outputName`, and the start value below on a sequence's first request.
 * Neither tensor is seen by clients.
 */
export interface SequenceStateSpec {
  readonly inputName: string;
  readonly outputName: string;
  readonly datatype: FixedDataType;
  /** Dims without the batch dimension; -1 means any size. */
  readonly dims: readonly number[];
  /** Shape (without the batch dimension) of a new sequence's state: initial_state's dims, or dims with -1 taken as 1. */
  readonly initialDims: readonly number[];
  /** Little-endian bytes of a new sequence's state: zeros, or initial_state's data_file. */
  readonly initialData: Uint8Array;
}

export type SequenceStrategySpec =
  | {
    /** Each sequence holds one batch slot of one instance for its whole life. */
    readonly kind: 'direct';
    readonly maxQueueDelayMicroseconds: number;
    /** 0..1: the share of an instance's slots that must have a request before a batch goes without waiting. */
    readonly minimumSlotUtilization: number;
  }
  | {
    /** Batches form across an instance's candidate sequences, oldest request first, one request per sequence. */
    readonly kind: 'oldest';
    readonly maxCandidateSequences: number;
    /** Ascending, distinct, each within 1..max_batch_size. */
    readonly preferredBatchSizes: readonly number[];
    readonly maxQueueDelayMicroseconds: number;
    readonly preserveOrdering: boolean;
  };

/** sequence_batching, compiled (compile-sequence-batching.ts). */
export interface SequenceBatchingSpec {
  /** How long a sequence may have nothing queued or running before it is ended and its slot freed. Default 1 s. */
  readonly maxSequenceIdleMicroseconds: number;
  readonly strategy: SequenceStrategySpec;
  /** Sequences one instance holds at once: max(1, max_batch_size) for direct, max_candidate_sequences for oldest. */
  readonly slotsPerInstance: number;
  /** New sequences that may wait for a slot when every slot is taken; one more is refused UNAVAILABLE (parameters.max_sequence_backlog, default 10000). */
  readonly maxBacklog: number;
  readonly controls: readonly SequenceControlSpec[];
  readonly states: readonly SequenceStateSpec[];
}

/** Which scheduler the model gets; create-scheduler.ts is the one place that reads this. */
export type SchedulingSpec =
  | { readonly kind: 'dynamic'; readonly batching: DynamicBatchingSpec | undefined }
  | { readonly kind: 'sequence'; readonly batching: SequenceBatchingSpec }
  | { readonly kind: 'ensemble'; readonly plan: EnsemblePlan };

/**
 * One input of a warmup sample (Triton's ModelWarmup.Input), with its data
 * made at load time: zeros, random bytes, or the bytes of a file in the
 * model's warmup/ folder.
 */
export interface WarmupInputSpec {
  readonly name: string;
  readonly datatype: DataType;
  /** Dims without the batch dimension; every one fixed. */
  readonly dims: readonly number[];
  readonly source: 'zero_data' | 'random_data' | 'input_data_file';
  /** Little-endian element bytes of a fixed-size input. */
  readonly raw?: Uint8Array;
  /** One byte string per element of a BYTES input. */
  readonly elements?: readonly Uint8Array[];
}

/**
 * A warmup sample (Triton's model_warmup entry): `batchSize` requests of
 * batch size 1, executed together on every instance, `count` times, before
 * the version turns READY.
 */
export interface WarmupSampleSpec {
  readonly name: string;
  readonly batchSize: number;
  /** Executions per instance; at least 1 (Triton's count 0 means once). */
  readonly count: number;
  readonly inputs: readonly WarmupInputSpec[];
}

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
  /** File the config came from, or undefined when it was fully auto-completed. */
  readonly file: string | undefined;
  /** model_transaction_policy.decoupled: zero or many responses per request (TypeScript models only). Absent means false. */
  readonly decoupled?: boolean;
  /**
   * response_cache.enable: answers may come from the server's response cache
   * (when it runs with --cache-config). Never set for sequence or decoupled models.
   */
  readonly responseCache: boolean;
  /** model_warmup samples, run on every instance before the version turns READY. Empty for ensembles. */
  readonly warmup: readonly WarmupSampleSpec[];
}
