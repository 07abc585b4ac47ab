/**
 * Validates a parsed config, completes it from the model's own signature
 * (as Triton's ONNX Runtime backend does) and freezes the result into a
 * CompiledModelConfig. Checks that need no model file run in
 * readModelSettings, before any backend work starts.
 */
import protobuf from 'protobufjs';
import { formatShape, fromConfigDataType, toConfigDataType } from '../tensor.ts';
import { ConfigSourceMap as SourceMapClass } from './config-source-map.ts';
import {
  NO_QUEUE_POLICY,
  type BatchInputKind, type BatchInputSpec,
  type CompiledModelConfig, type DynamicBatchingSpec, type InstanceGroupSpec, type QueuePolicySpec, type SchedulingSpec,
  type TensorSpec, type VersionPolicy,
} from './compiled-model-config.ts';
import { modelConfigType, toPlainObject, type ModelConfigObject } from './model-config-schema.ts';
import type { ModelSignature, SignatureTensor } from './model-signature.ts';
import type { ParsedModelConfig } from './parse-model-config.ts';
import type { BackendCatalog, BackendTraits } from './backend-catalog.ts';
import { checkSequenceTensorsNotListed, compileSequenceBatching, sequenceTensorNames } from './compile-sequence-batching.ts';
import { compileModelWarmup } from './compile-model-warmup.ts';
import { compilePaddedBatching } from './compile-padded-batching.ts';
import { confinePathSync, readConfinedFileSync, relativePathProblem } from '../repository/confined-path.ts';
import { parseLabels } from '../output-classification.ts';
import { asObj, asArray, asNumber, asString, failAt, type ConfigContext, type Obj } from './config-values.ts';
import { NO_RATE_LIMITER_SPEC, type RateLimiterResourceSpec, type RateLimiterSpec } from '../scheduling/rate-limiter.ts';

/** Triton's ONNX Runtime backend uses this batch size when it infers that a model batches. */
export const DEFAULT_MAX_BATCH_SIZE = 4;

/**
 * How far a config is completed from the model (tritonserver's
 * --disable-auto-complete-config / --strict-model-config and
 * --backend-config=default-max-batch-size=N).
 */
export interface ConfigCompletion {
  /** false: the config must exist and list every input and output with its data_type and dims; max_batch_size is taken as written. */
  readonly enabled: boolean;
  /** The max_batch_size given to a model whose config leaves it out while every tensor has a variable first dim; 0 leaves such models unbatched. */
  readonly defaultMaxBatchSize: number;
}

export const DEFAULT_CONFIG_COMPLETION: ConfigCompletion = { enabled: true, defaultMaxBatchSize: DEFAULT_MAX_BATCH_SIZE };

/** Ensembles run no backend; the repository recognises this name and builds their step graph instead. */
export const ENSEMBLE_BACKEND = 'ensemble';

/** Sandboxed TypeScript models: the config declares their inputs and outputs, and `<version>/model.ts` holds the code. */
export const TYPESCRIPT_BACKEND = 'typescript';

/** Ensembles are the engine's own: platform "ensemble" and backend "ensemble" mean each other, whatever backends the server has. */
const ENSEMBLE_TRAITS: BackendTraits = { name: ENSEMBLE_BACKEND, platforms: [ENSEMBLE_BACKEND], defaultModelFilename: '' };

/** What the repository needs before it can load anything. */
export interface ModelSettings {
  readonly backend: string;
  readonly platform: string;
  readonly versionPolicy: VersionPolicy;
  readonly instanceGroups: readonly InstanceGroupSpec[];
  readonly defaultModelFilename: string;
  readonly parameters: ReadonlyMap<string, string>;
  /** The backend may send any number of responses per request (BackendTraits.decoupled). */
  readonly decoupledCapable: boolean;
}

export type { ConfigContext } from './config-values.ts';
type Ctx = ConfigContext;




export function contextOf(modelDir: string, parsed: ParsedModelConfig | undefined): Ctx {
  return parsed
    ? { file: parsed.file, sourceMap: parsed.sourceMap }
    : { file: `${modelDir}/config.pbtxt (absent; auto-completed)`, sourceMap: SourceMapClass.empty() };
}

/**
 * The settings a repository needs before loading: backend and platform
 * (either one gives the other, through `backends`), version policy,
 * instance groups, model file name. A backend the server does not have is
 * a config error naming the field.
 */
export function readModelSettings(modelName: string, modelDir: string, parsed: ParsedModelConfig | undefined, backends: BackendCatalog): ModelSettings {
  const ctx = contextOf(modelDir, parsed);
  const config = parsed?.config ?? {};
  const name = asString(config['name']);
  if (name && name !== modelName) {
    failAt(ctx, 'name', `is '${name}' but the model's folder is '${modelName}'`,
      `set name: "${modelName}" or rename the folder; Triton requires the two to match`);
  }
  const backendOfPlatform = (p: string): string | undefined => (p === ENSEMBLE_BACKEND ? ENSEMBLE_BACKEND : backends.backendOfPlatform(p));
  let platform = asString(config['platform']);
  let backend = asString(config['backend']);
  if (platform && !backend) backend = backendOfPlatform(platform) ?? '';
  if (!platform && !backend) backend = backends.defaultBackend ?? '';
  const traits = backend === ENSEMBLE_BACKEND ? ENSEMBLE_TRAITS : backends.get(backend);
  if (!platform) platform = traits?.platforms?.[0] ?? '';
  if (!traits) {
    const field = config['backend'] ? 'backend' : 'platform';
    const written = asString(config[field]);
    const later = backend === 'python' || written === 'python'
      ? `'${written}' models arrive in a later Switchyard release`
      : written === '' ? 'is not set, and this server has no default backend' : `'${written}' is not a backend this server has`;
    failAt(ctx, field, later, `use one of this server's backends: ${backendChoices(backends)}`);
  }
  const platformBackend = backendOfPlatform(platform);
  if (platformBackend !== undefined && platformBackend !== backend) {
    failAt(ctx, 'platform', `'${platform}' does not go with backend '${backend}'`, 'drop one of platform and backend');
  }
  const modelFilename = asString(config['default_model_filename']);
  if (modelFilename) checkConfined(ctx, 'default_model_filename', undefined, modelFilename, 'name the model file inside each version folder, such as model.onnx');
  for (const [arch, file] of Object.entries(asObj(config['cc_model_filenames']) ?? {})) {
    checkConfined(ctx, `cc_model_filenames.${arch}`, undefined, asString(file), 'name a model file inside each version folder');
  }
  const parameters = new Map<string, string>();
  for (const [key, value] of Object.entries(asObj(config['parameters']) ?? {})) {
    parameters.set(key, asString(asObj(value)?.['string_value']));
  }
  return {
    backend,
    platform,
    versionPolicy: compileVersionPolicy(ctx, asObj(config['version_policy'])),
    instanceGroups: backend === ENSEMBLE_BACKEND ? [] : compileInstanceGroups(ctx, modelName, asArray(config['instance_group']), backend),
    defaultModelFilename: modelFilename || (traits.defaultModelFilename ?? ''),
    parameters,
    decoupledCapable: traits.decoupled === true,
  };
}

/** How a config may name each backend, for the hint of an unknown one: backend: "onnxruntime" (or platform: "onnxruntime_onnx"), ... */
function backendChoices(backends: BackendCatalog): string {
  const choices = backends.list().map((b) => `backend: "${b.name}"${b.platforms?.length ? ` (or platform: "${b.platforms[0]}")` : ''}`);
  return [...choices, `platform: "${ENSEMBLE_BACKEND}" for ensembles`].join(', ');
}

function compileVersionPolicy(ctx: Ctx, policy: Obj | undefined): VersionPolicy {
  if (!policy) return { kind: 'latest', numVersions: 1 };
  if (policy['all']) return { kind: 'all' };
  const specific = asObj(policy['specific']);
  if (specific) {
    const versions = asArray(specific['versions']).map((v) => asNumber(v));
    if (versions.length === 0) {
      failAt(ctx, 'version_policy.specific.versions', 'is empty', 'list the versions to serve, e.g. specific { versions: [1, 3] }');
    }
    for (const v of versions) {
      if (!Number.isInteger(v) || v < 1) {
        failAt(ctx, 'version_policy.specific.versions', `${v} is not a version number`, 'versions are the positive integer names of version folders');
      }
    }
    return { kind: 'specific', versions };
  }
  const latest = asObj(policy['latest']);
  const numVersions = asNumber(latest?.['num_versions'], 1);
  if (latest && numVersions < 1) {
    failAt(ctx, 'version_policy.latest.num_versions', `is ${numVersions}`, 'serve at least one version: num_versions: 1');
  }
  return { kind: 'latest', numVersions: latest ? numVersions : 1 };
}

function compileInstanceGroups(ctx: Ctx, modelName: string, groups: unknown[], backend: string): InstanceGroupSpec[] {
  if (groups.length === 0) return [{ name: modelName, kind: 'CPU', count: 1, gpus: [], rateLimiter: NO_RATE_LIMITER_SPEC }];
  const scripted = backend === TYPESCRIPT_BACKEND;
  return groups.map((value, index) => {
    const group = asObj(value) ?? {};
    const field = `instance_group[${index}]`;
    const count = asNumber(group['count'], 1) || 1;
    if (!Number.isInteger(count) || count < 1) {
      failAt(ctx, `${field}.count`, `is ${count}`, 'use a positive number of instances');
    }
    // No kind is Triton's KIND_AUTO: GPU when the group names GPUs, CPU otherwise (this server finds no GPUs by itself).
    const kindName = asString(group['kind']) || 'KIND_AUTO';
    if (scripted && kindName === 'KIND_GPU') {
      failAt(ctx, `${field}.kind`, 'is KIND_GPU, but TypeScript models run in CPU isolates', 'use KIND_CPU (or leave kind out)');
    }
    const gpus = asArray(group['gpus']).map((g) => asNumber(g));
    const auto = kindName === 'KIND_AUTO' ? (gpus.length > 0 && !scripted ? 'GPU' : 'CPU') : undefined;
    const kind = kindName === 'KIND_GPU' ? 'GPU' : kindName === 'KIND_CPU' ? 'CPU' : auto;
    if (!kind) {
      failAt(ctx, `${field}.kind`, `${kindName} instances are not something the ONNX Runtime backend runs`, 'use KIND_CPU, KIND_GPU or KIND_AUTO');
    }
    const rateLimiter = compileRateLimiter(ctx, `${field}.rate_limiter`, asObj(group['rate_limiter']));
    return { name: asString(group['name']) || (groups.length === 1 ? modelName : `${modelName}_${index}`), kind, count, gpus, rateLimiter };
  });
}

const UINT32_MAX = 4_294_967_295;

/**
 * instance_group.rate_limiter, checked whatever --rate-limit says. Triton
 * takes any names and, for a name listed twice, the last count; both are
 * refused here as the mistakes they are. Checks across instances and models
 * (a resource both global and per device, pool sizes) are the limiter's, at
 * load, and only with --rate-limit=execution_count, as in Triton.
 */
function compileRateLimiter(ctx: Ctx, field: string, limiter: Obj | undefined): RateLimiterSpec {
  if (!limiter) return NO_RATE_LIMITER_SPEC;
  const priority = asNumber(limiter['priority'], 0);
  if (!Number.isInteger(priority) || priority < 0 || priority > UINT32_MAX) {
    failAt(ctx, `${field}.priority`, `is ${limiter['priority']}`, `use a whole number from 0 to ${UINT32_MAX}; 1 (or 0) is the highest, 2 gets half the turns of 1`);
  }
  const seen = new Set<string>();
  const resources = asArray(limiter['resources']).map((value, i): RateLimiterResourceSpec => {
    const resource = asObj(value) ?? {};
    const at = `${field}.resources[${i}]`;
    const name = asString(resource['name']);
    if (name === '') failAt(ctx, `${at}.name`, 'is empty', 'name the resource, e.g. name: "R1"; instances sharing a name share its pool');
    if (seen.has(name)) failAt(ctx, `${at}.name`, `'${name}' is listed twice in this rate_limiter`, 'list each resource once, with the count one execution needs');
    seen.add(name);
    const count = asNumber(resource['count'], 0);
    if (!Number.isInteger(count) || count < 0 || count > UINT32_MAX) {
      failAt(ctx, `${at}.count`, `is ${resource['count']}`, `use a whole number from 0 to ${UINT32_MAX}: how many of '${name}' one execution holds`);
    }
    return { name, global: resource['global'] === true, count };
  });
  return { resources, priority };
}

/** The rate_limiter of a group as the completed config shows it; absent when the group declares none. */
function rateLimiterJson(spec: RateLimiterSpec): Obj | undefined {
  if (spec === NO_RATE_LIMITER_SPEC) return undefined;
  return { resources: spec.resources.map((r) => ({ name: r.name, global: r.global, count: r.count })), priority: spec.priority };
}

/**
 * A path the config names must stay in the model's folder (`root`), symbolic
 * links followed; without a root (the folder is per version, not known yet)
 * only its text is judged, and the backend confines it when it opens it.
 */
function checkConfined(ctx: Ctx, field: string, root: string | undefined, given: string, fix: string): void {
  const problem = root === undefined ? relativePathProblem(given) : confinePathSync(root, given).problem;
  if (problem !== undefined) failAt(ctx, field, `'${given}' ${problem}`, fix);
}

/** The kind written in the file (or the default): KIND_AUTO becomes KIND_CPU in the completed config. */
function kindJson(group: InstanceGroupSpec): string {
  return group.kind === 'GPU' ? 'KIND_GPU' : 'KIND_CPU';
}

/**
 * Full compile, from the settings readModelSettings already checked: inputs/outputs completed from and checked
 * against the model's signature, then scheduling.
 */
export function compileModelConfig(
  modelName: string,
  modelDir: string,
  parsed: ParsedModelConfig | undefined,
  settings: ModelSettings,
  signature: ModelSignature,
  completion: ConfigCompletion = DEFAULT_CONFIG_COMPLETION,
): CompiledModelConfig {
  const ctx = contextOf(modelDir, parsed);
  const config: Obj = structuredClone(parsed?.config ?? {});
  if (!completion.enabled) checkComplete(modelDir, ctx, parsed);

  let maxBatchSize = asNumber(config['max_batch_size']);
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 0) {
    failAt(ctx, 'max_batch_size', `is ${maxBatchSize}`, 'use 0 for a model that does not batch, or the largest batch it takes');
  }
  const inputsGiven = asArray(config['input']);
  const outputsGiven = asArray(config['output']);
  if (completion.enabled && maxBatchSize === 0 && completion.defaultMaxBatchSize > 0 && impliesBatching(signature, inputsGiven, outputsGiven)) {
    maxBatchSize = completion.defaultMaxBatchSize;
    if (!config['dynamic_batching'] && !config['sequence_batching'] && !config['ensemble_scheduling']) {
      config['dynamic_batching'] = {};
    }
  }
  const batchRank = maxBatchSize > 0 ? 1 : 0;

  // Model inputs fed by batch_input are the backend's to make: not request inputs, not completed into `input`.
  const batchInputs = readBatchInputs(ctx, asArray(config['batch_input']), maxBatchSize, signature);
  const fedByBatchInput = new Set(batchInputs.flatMap((b) => b.targetNames));
  // Likewise sequence control and state inputs, and the state outputs the sequence batcher keeps from clients.
  const sequenceTensors = sequenceTensorNames(config['sequence_batching']);
  const requestInputs = signature.inputs.filter((m) => !fedByBatchInput.has(m.name) && !sequenceTensors.inputs.has(m.name));
  const clientOutputs = signature.outputs.filter((m) => !sequenceTensors.outputs.has(m.name));
  const complete = completion.enabled ? completeTensors : (_c: Ctx, _k: string, given: unknown[]): Obj[] => given.map((t) => ({ ...(asObj(t) ?? {}) }));
  const inputs = complete(ctx, 'input', inputsGiven, requestInputs, batchRank, signature.file);
  const outputs = complete(ctx, 'output', outputsGiven, clientOutputs, batchRank, signature.file);
  checkSequenceTensorsNotListed(ctx, inputs, outputs, sequenceTensors);
  inputs.forEach((t, i) => {
    const name = asString(t['name']);
    if (fedByBatchInput.has(name)) {
      failAt(ctx, `input[${i}].name`, `'${name}' is the target of a batch_input, so the server makes it for each batch and requests never send it`,
        `remove '${name}' from input`);
    }
  });
  const inputSpecs = inputs.map((t, i) => compileTensor(ctx, `input[${i}]`, t, maxBatchSize, signature.inputs, signature.file));
  const outputSpecs = outputs.map((t, i) => withLabels(ctx, `output[${i}]`, t, modelDir,
    compileTensor(ctx, `output[${i}]`, t, maxBatchSize, signature.outputs, signature.file)));
  checkAllModelTensorsConfigured(ctx, 'input', inputSpecs, requestInputs, signature.file);
  checkBatchInputSources(ctx, batchInputs, inputSpecs);

  const dynamic = asObj(config['dynamic_batching']);
  if (dynamic && maxBatchSize > 0 && asArray(dynamic['preferred_batch_size']).length === 0) {
    config['dynamic_batching'] = { ...dynamic, preferred_batch_size: [maxBatchSize] };
  }
  const sequence = asObj(config['sequence_batching']);
  let scheduling: SchedulingSpec;
  if (sequence) {
    const compiled = compileSequenceBatching(ctx, sequence, {
      maxBatchSize, signature, modelDir, batchInputTargets: fedByBatchInput, parameters: settings.parameters,
    });
    config['sequence_batching'] = compiled.completed;
    scheduling = { kind: 'sequence', batching: compiled.spec };
  } else {
    scheduling = compileScheduling(ctx, config, maxBatchSize);
  }
  const padding = compilePaddedBatching(ctx, {
    parameters: settings.parameters, inputs: inputSpecs, maxBatchSize,
    dynamicBatching: scheduling.kind === 'dynamic' && scheduling.batching !== undefined, sequenceBatching: scheduling.kind === 'sequence',
  });
  if (padding && scheduling.kind === 'dynamic' && scheduling.batching) scheduling = { kind: 'dynamic', batching: { ...scheduling.batching, padding } };
  checkUnsupported(ctx, config, settings);
  const responseCache = compileResponseCache(ctx, config, scheduling);
  const warmup = compileModelWarmup(ctx, asArray(config['model_warmup']), {
    modelDir, maxBatchSize, inputs: inputSpecs,
    controlInputs: new Map(scheduling.kind === 'sequence' ? scheduling.batching.controls.map((c) => [c.inputName, c.datatype]) : []),
  });

  config['name'] = modelName;
  config['platform'] = settings.platform;
  config['backend'] = settings.backend;
  config['max_batch_size'] = maxBatchSize;
  config['input'] = inputs;
  config['output'] = outputs;
  config['default_model_filename'] = settings.defaultModelFilename;
  config['instance_group'] = settings.instanceGroups.map((g) => {
    const rateLimiter = rateLimiterJson(g.rateLimiter);
    return { name: g.name, kind: kindJson(g), count: g.count, gpus: g.gpus, ...(rateLimiter ? { rate_limiter: rateLimiter } : {}) };
  });
  if (!config['version_policy']) config['version_policy'] = { latest: { num_versions: 1 } };

  return deepFreeze({
    name: modelName,
    platform: settings.platform,
    backend: settings.backend,
    maxBatchSize,
    inputs: inputSpecs,
    outputs: outputSpecs,
    inputByName: new Map(inputSpecs.map((s) => [s.name, s])),
    outputByName: new Map(outputSpecs.map((s) => [s.name, s])),
    batchInputs,
    versionPolicy: settings.versionPolicy,
    instanceGroups: settings.instanceGroups,
    scheduling,
    parameters: settings.parameters,
    defaultModelFilename: settings.defaultModelFilename,
    json: tritonJson(ctx, config),
    file: parsed?.file,
    decoupled: isDecoupled(config),
    responseCache,
    warmup,
  });
}

const STRICT_HINT = 'auto-complete is off (--disable-auto-complete-config or --strict-model-config=true)';

/** With auto-complete off, nothing is taken from the model: the config itself must be whole. */
function checkComplete(modelDir: string, ctx: Ctx, parsed: ParsedModelConfig | undefined): void {
  if (!parsed) {
    failAt({ file: `${modelDir}/config.pbtxt`, sourceMap: SourceMapClass.empty() }, 'model configuration', `is missing and ${STRICT_HINT}`,
      'write a config.pbtxt listing max_batch_size, every input and every output');
  }
  for (const kind of ['input', 'output'] as const) {
    const tensors = asArray(parsed.config[kind]);
    if (tensors.length === 0) failAt(ctx, kind, `is empty and ${STRICT_HINT}`, `list every ${kind} with its name, data_type and dims`);
    tensors.forEach((value, i) => {
      const t = asObj(value) ?? {};
      if (!t['data_type'] || t['data_type'] === 'TYPE_INVALID') failAt(ctx, `${kind}[${i}].data_type`, `is missing and ${STRICT_HINT}`, 'set data_type, e.g. TYPE_FP32');
      if (!('dims' in t) && !asObj(t['reshape'])) failAt(ctx, `${kind}[${i}].dims`, `is missing and ${STRICT_HINT}`, 'set dims, e.g. dims: [ 16 ]');
    });
  }
}

/** The output's labels, read once from its label_filename inside the model folder (the classification extension's). */
function withLabels(ctx: Ctx, field: string, t: Obj, modelDir: string, spec: TensorSpec): TensorSpec {
  const fileName = asString(t['label_filename']);
  if (!fileName) return spec;
  const read = readConfinedFileSync(modelDir, fileName);
  if (read.problem !== undefined) {
    failAt(ctx, `${field}.label_filename`, read.problem, "put the label file in the model's folder and name it relative to that folder");
  }
  return { ...spec, labels: parseLabels(read.bytes) };
}

/** Triton's rule: an unset max_batch_size is inferred as batching when every model tensor has a dynamic first dim the config leaves out. */
function impliesBatching(signature: ModelSignature, inputs: unknown[], outputs: unknown[]): boolean {
  const all = [...signature.inputs, ...signature.outputs];
  if (all.length === 0 || !all.every((t) => t.shape.length > 0 && t.shape[0] === -1)) return false;
  const configured = [...inputs, ...outputs].map((t) => asObj(t) ?? {});
  return configured.every((t) => {
    const model = all.find((m) => m.name === asString(t['name']));
    // The model sees reshape.shape where there is one.
    const dims = asArray(asObj(t['reshape'])?.['shape'] ?? t['dims']);
    return !model || dims.length === 0 || dims.length === model.shape.length - 1;
  });
}

/** Adds tensors the config leaves out, and dims or types a config tensor leaves out, from the model. */
function completeTensors(ctx: Ctx, kind: 'input' | 'output', given: unknown[], model: readonly SignatureTensor[], batchRank: number, modelFile: string): Obj[] {
  const configured = given.map((t) => ({ ...(asObj(t) ?? {}) }));
  const completeOne = (t: Obj, m: SignatureTensor): Obj => {
    if (!t['data_type'] || t['data_type'] === 'TYPE_INVALID') {
      if (!m.datatype) unsupportedModelType(ctx, kind, m, modelFile);
      t['data_type'] = toConfigDataType(m.datatype);
    }
    if (asArray(t['dims']).length === 0 && !asObj(t['reshape'])) t['dims'] = m.shape.slice(batchRank);
    return t;
  };
  if (configured.length > 0) {
    return configured.map((t) => {
      const m = model.find((x) => x.name === asString(t['name']));
      return m ? completeOne(t, m) : t;
    });
  }
  return model.map((m) => completeOne({ name: m.name }, m));
}

function unsupportedModelType(ctx: Ctx, kind: string, m: SignatureTensor, modelFile: string): never {
  failAt(ctx, kind, `${modelFile} has ${kind} '${m.name}' of type ${m.modelType}, which has no KServe datatype`, 'change the model to use a supported element type');
}

function compileTensor(
  ctx: Ctx, field: string, t: Obj, maxBatchSize: number, model: readonly SignatureTensor[], modelFile: string,
): TensorSpec {
  const kind = field.startsWith('input') ? 'input' : 'output';
  const name = asString(t['name']);
  if (!name) failAt(ctx, `${field}.name`, 'is missing', `give every ${kind} the name the model uses`);
  const datatype = fromConfigDataType(asString(t['data_type']));
  if (!datatype) {
    failAt(ctx, `${field}.data_type`, 'is missing', 'set data_type, e.g. TYPE_FP32');
  }
  const dims = asArray(t['dims']).map((d) => asNumber(d));
  for (const d of dims) {
    if (!Number.isInteger(d) || (d < 1 && d !== -1)) {
      failAt(ctx, `${field}.dims`, `contains ${d}`, 'each dim is a positive size, or -1 for a variable size');
    }
  }
  const reshape = asObj(t['reshape']);
  const reshapeDims = reshape ? asArray(reshape['shape']).map((d) => asNumber(d)) : undefined;
  if (reshapeDims) checkReshape(ctx, field, `model ${kind} '${name}'`, dims, reshapeDims);
  const modelDims = reshapeDims ?? dims;
  const spec: TensorSpec = {
    name, datatype, dims, modelDims,
    optional: t['optional'] === true,
    allowRaggedBatch: t['allow_ragged_batch'] === true,
  };
  const m = model.find((x) => x.name === name);
  if (!m) {
    const names = model.map((x) => `'${x.name}'`).join(', ');
    failAt(ctx, `${field}.name`, `'${name}' is not an ${kind} of ${modelFile}`, `use one of the model's ${kind}s: ${names}`);
  }
  if (m.datatype !== datatype) {
    const modelType = m.datatype ? toConfigDataType(m.datatype) : m.modelType;
    failAt(ctx, `${field}.data_type`, `is ${toConfigDataType(datatype)} but ${modelFile} declares ${kind} '${name}' as ${modelType}`,
      `set data_type: ${modelType}`);
  }
  if (spec.allowRaggedBatch && maxBatchSize > 0) checkRaggedAgainstModel(ctx, field, spec, m, modelFile);
  else checkDimsAgainstModel(ctx, field, spec, m, maxBatchSize, modelFile, reshapeDims !== undefined);
  return spec;
}

/**
 * Triton's reshape rules: each dim a positive size or -1, as many -1 dims as
 * in `dims`, and the same element count between each pair of them (so a
 * request's shape maps onto one model shape).
 */
function checkReshape(ctx: Ctx, field: string, prefix: string, dims: readonly number[], reshape: readonly number[]): void {
  const where = `${field}.reshape.shape`;
  for (const d of reshape) {
    if (!Number.isInteger(d) || (d < 1 && d !== -1)) failAt(ctx, where, `contains ${d}`, 'each dim is a positive size, or -1 for a variable size');
  }
  const fix = `give reshape.shape the element count of dims ${formatShape(dims)}, with its -1 dims where the counts between them agree`;
  const segments = (shape: readonly number[]): number[] => shape.reduce<number[]>(
    (acc, d) => (d === -1 ? [...acc, 1] : [...acc.slice(0, -1), acc.at(-1)! * d]), [1]);
  const fromDims = segments(dims);
  const fromReshape = segments(reshape);
  if (fromDims.length !== fromReshape.length) {
    failAt(ctx, where, `${prefix} has different number of variable-size dimensions for dims and reshape: dims ${formatShape(dims)}, reshape ${formatShape(reshape)}`, fix);
  }
  if (fromDims.some((n, i) => n !== fromReshape[i])) {
    failAt(ctx, where, `${prefix} has different size for dims and reshape: dims ${formatShape(dims)}, reshape ${formatShape(reshape)}`, fix);
  }
}

/**
 * A ragged input reaches the model as one 1-D tensor of every element in the
 * batch (as in Triton's ONNX Runtime backend), whatever its configured dims:
 * the model must take it as rank 1 of any size.
 */
function checkRaggedAgainstModel(ctx: Ctx, field: string, spec: TensorSpec, m: SignatureTensor, modelFile: string): void {
  if (m.shape.length === 1 && m.shape[0] === -1) return;
  failAt(ctx, `${field}.allow_ragged_batch`,
    `is true, so '${spec.name}' reaches the model as a 1-D tensor holding every element of the batch, but ${modelFile} has it as ${formatShape(m.shape)}`,
    `give the model input '${spec.name}' the shape [-1], or set allow_ragged_batch: false`);
}

function checkDimsAgainstModel(
  ctx: Ctx, field: string, spec: TensorSpec, m: SignatureTensor, maxBatchSize: number, modelFile: string, reshaped: boolean,
): void {
  if (m.shape.length === 0 && spec.modelDims.length <= 1) return;
  const batched = maxBatchSize > 0;
  const expected = batched ? [-1, ...spec.modelDims] : spec.modelDims;
  const where = reshaped ? `${field}.reshape.shape` : `${field}.dims`;
  const shown = formatShape(spec.modelDims);
  if (expected.length !== m.shape.length) {
    if (batched && spec.modelDims.length === m.shape.length) {
      failAt(ctx, where, `${shown} includes the batch dimension, but with max_batch_size ${maxBatchSize} > 0 the batch dimension is implicit: ` +
        `${modelFile} has '${spec.name}' as ${formatShape(m.shape)}, so the config leaves its first dim out`,
      `set dims: ${formatShape(m.shape.slice(1))}, or set max_batch_size: 0 if the model does not batch`);
    }
    if (!batched && spec.modelDims.length + 1 === m.shape.length) {
      failAt(ctx, where, `${shown} has one dim fewer than ${modelFile}'s ${formatShape(m.shape)} for '${spec.name}'. With max_batch_size 0 the config must give the full shape`,
        `set max_batch_size > 0 (the batch dimension is then implicit), or set dims: ${formatShape(m.shape)}`);
    }
    failAt(ctx, where, `${shown} does not match ${modelFile}, which has '${spec.name}' as ${formatShape(m.shape)}` +
      (batched ? ` (the config's dims leave out the batch dimension because max_batch_size is ${maxBatchSize})` : ''),
    `set dims: ${formatShape(batched ? m.shape.slice(1) : m.shape)}`);
  }
  if (batched && m.shape[0] !== -1) {
    failAt(ctx, 'max_batch_size', `is ${maxBatchSize}, but ${modelFile} fixes the first dim of '${spec.name}' to ${m.shape[0]}, so the model cannot batch`,
      `set max_batch_size: 0 and dims: ${formatShape(m.shape)}`);
  }
  expected.forEach((dim, i) => {
    const modelDim = m.shape[i]!;
    if (dim !== -1 && modelDim !== -1 && dim !== modelDim) {
      failAt(ctx, where, `${shown} does not match ${modelFile}, which has '${spec.name}' as ${formatShape(m.shape)}` +
        (batched ? ' (first dim: the implicit batch dimension)' : ''),
      `set dims: ${formatShape(batched ? m.shape.slice(1) : m.shape)}`);
    }
  });
}

function checkAllModelTensorsConfigured(ctx: Ctx, kind: string, specs: readonly TensorSpec[], model: readonly SignatureTensor[], modelFile: string): void {
  const seen = new Set<string>();
  specs.forEach((s, i) => {
    if (seen.has(s.name)) failAt(ctx, `${kind}[${i}].name`, `'${s.name}' appears twice`, `remove the duplicate ${kind}`);
    seen.add(s.name);
  });
  const missing = model.filter((m) => !seen.has(m.name)).map((m) => `'${m.name}'`);
  if (missing.length > 0) {
    failAt(ctx, kind, `${modelFile} has ${kind}s ${missing.join(', ')} that the config does not list`,
      `add them to the ${kind} list, or leave the list out entirely so it is completed from the model`);
  }
}

const BATCH_INPUT_KINDS = [
  'BATCH_ELEMENT_COUNT', 'BATCH_ACCUMULATED_ELEMENT_COUNT', 'BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO',
  'BATCH_MAX_ELEMENT_COUNT_AS_SHAPE', 'BATCH_ITEM_SHAPE', 'BATCH_ITEM_SHAPE_FLATTEN',
] as const;
/** The kinds this build generates; the rest fail the load. */
const GENERATED_KINDS: readonly string[] = BATCH_INPUT_KINDS.slice(0, 4);

/**
 * batch_input entries, checked against the model: a kind this build makes,
 * INT32 or FP32 as Triton allows, targets that are model inputs of that type
 * and rank 1, one source input. Sources are checked against the request inputs later.
 */
function readBatchInputs(ctx: Ctx, entries: unknown[], maxBatchSize: number, signature: ModelSignature): BatchInputSpec[] {
  const targeted = new Set<string>();
  return entries.map((value, index) => {
    const entry = asObj(value) ?? {};
    const field = `batch_input[${index}]`;
    const rawKind = entry['kind'] ?? 'BATCH_ELEMENT_COUNT';
    const kind = typeof rawKind === 'number' ? BATCH_INPUT_KINDS[rawKind] ?? String(rawKind) : asString(rawKind);
    if (!GENERATED_KINDS.includes(kind)) {
      failAt(ctx, `${field}.kind`, `${kind} is not supported by this Switchyard build`,
        `use one of ${GENERATED_KINDS.join(', ')}, or remove the batch_input`);
    }
    if (maxBatchSize === 0) {
      failAt(ctx, field, 'is set but max_batch_size is 0, so there is never a batch to describe',
        'set max_batch_size to the largest batch the model takes, or remove batch_input');
    }
    const datatype = fromConfigDataType(asString(entry['data_type']));
    if (datatype !== 'INT32' && datatype !== 'FP32') {
      failAt(ctx, `${field}.data_type`, `is ${asString(entry['data_type']) || 'missing'}`, 'use TYPE_INT32 or TYPE_FP32, as Triton allows for batch inputs');
    }
    const targetNames = asArray(entry['target_name']).map(asString);
    if (targetNames.length === 0 || targetNames.some((t) => !t)) {
      failAt(ctx, `${field}.target_name`, 'is missing', 'name the model input the server feeds with this batch input');
    }
    for (const target of targetNames) {
      const m = signature.inputs.find((x) => x.name === target);
      if (!m) {
        const names = signature.inputs.map((x) => `'${x.name}'`).join(', ');
        failAt(ctx, `${field}.target_name`, `'${target}' is not an input of ${signature.file}`, `use one of the model's inputs: ${names}`);
      }
      if (targeted.has(target)) failAt(ctx, `${field}.target_name`, `'${target}' is fed by an earlier batch_input too`, 'feed each model input from one batch_input');
      targeted.add(target);
      if (m.datatype !== datatype) {
        const modelType = m.datatype ? toConfigDataType(m.datatype) : m.modelType;
        failAt(ctx, `${field}.data_type`, `is ${toConfigDataType(datatype)} but ${signature.file} declares input '${target}' as ${modelType}`,
          `set data_type: ${modelType}, or change the model`);
      }
      if (m.shape.length !== 1 || m.shape[0] !== -1) {
        failAt(ctx, `${field}.target_name`, `'${target}' is ${formatShape(m.shape)} in ${signature.file}, but a ${kind} batch input is 1-D and its length changes with the batch`,
          `give the model input '${target}' the shape [-1]`);
      }
    }
    const sources = asArray(entry['source_input']).map(asString);
    if (sources.length !== 1 || !sources[0]) {
      failAt(ctx, `${field}.source_input`, sources.length === 0 ? 'is missing' : `lists ${sources.length} inputs`,
        `name the one input whose element counts ${kind} is computed from`);
    }
    return { kind: kind as BatchInputKind, targetNames, datatype, sourceInput: sources[0]! };
  });
}

function checkBatchInputSources(ctx: Ctx, batchInputs: readonly BatchInputSpec[], inputs: readonly TensorSpec[]): void {
  batchInputs.forEach((b, index) => {
    if (!inputs.some((s) => s.name === b.sourceInput)) {
      failAt(ctx, `batch_input[${index}].source_input`, `'${b.sourceInput}' is not an input of the model`,
        `use one of the request inputs: ${inputs.map((s) => `'${s.name}'`).join(', ')}`);
    }
  });
}

/** Schedulers other than the sequence batcher (compile-sequence-batching.ts). */
function compileScheduling(ctx: Ctx, config: Obj, maxBatchSize: number): SchedulingSpec {
  if (asObj(config['ensemble_scheduling'])) {
    failAt(ctx, 'ensemble_scheduling', `is set but platform is '${asString(config['platform'])}'`,
      'set platform: "ensemble" to make the model an ensemble, or remove ensemble_scheduling');
  }
  const dynamic = asObj(config['dynamic_batching']);
  if (!dynamic) return { kind: 'dynamic', batching: undefined };
  if (maxBatchSize === 0) {
    failAt(ctx, 'dynamic_batching', 'is set but max_batch_size is 0, so there is no batch dimension to batch along',
      'set max_batch_size to the largest batch the model takes, or remove dynamic_batching');
  }
  const preferred = asArray(dynamic['preferred_batch_size']).map((v) => asNumber(v));
  preferred.forEach((size) => {
    if (!Number.isInteger(size) || size < 1 || size > maxBatchSize) {
      failAt(ctx, 'dynamic_batching.preferred_batch_size', `${size} is outside 1..max_batch_size (${maxBatchSize})`,
        `use sizes between 1 and ${maxBatchSize}`);
    }
  });
  const delay = asNumber(dynamic['max_queue_delay_microseconds']);
  if (!Number.isInteger(delay) || delay < 0) {
    failAt(ctx, 'dynamic_batching.max_queue_delay_microseconds', `is ${delay}`, 'use a whole number of microseconds, 0 for no delay');
  }
  const levels = asNumber(dynamic['priority_levels']);
  const defaultLevel = asNumber(dynamic['default_priority_level']);
  if (levels > 0 && (defaultLevel < 1 || defaultLevel > levels)) {
    failAt(ctx, 'dynamic_batching.default_priority_level', `is ${defaultLevel}, outside the priority levels 1..${levels}`,
      `set default_priority_level to a level between 1 (highest) and ${levels}`);
  }
  if (levels === 0 && defaultLevel !== 0) {
    failAt(ctx, 'dynamic_batching.default_priority_level', `is ${defaultLevel} but priority_levels is not set`,
      'set priority_levels to the number of levels, or remove default_priority_level');
  }
  const defaultPolicy = compileQueuePolicy(asObj(dynamic['default_queue_policy']));
  const perLevel = asObj(dynamic['priority_queue_policy']) ?? {};
  for (const key of Object.keys(perLevel)) {
    const level = Number(key);
    if (!Number.isInteger(level) || level < 1 || level > levels) {
      failAt(ctx, `dynamic_batching.priority_queue_policy[${key}]`,
        levels === 0 ? 'is set but priority_levels is not' : `names level ${key}, outside the priority levels 1..${levels}`,
        levels === 0 ? 'set priority_levels, or use default_queue_policy' : `use levels between 1 and ${levels}`);
    }
  }
  const queuePolicies = levels === 0
    ? [defaultPolicy]
    : Array.from({ length: levels }, (_, i) => {
      const own = asObj(perLevel[String(i + 1)]);
      return own ? compileQueuePolicy(own) : defaultPolicy;
    });
  const batching: DynamicBatchingSpec = {
    preferredBatchSizes: [...new Set(preferred)].sort((a, b) => a - b),
    maxQueueDelayMicroseconds: delay,
    preserveOrdering: dynamic['preserve_ordering'] === true,
    priorityLevels: levels,
    defaultPriorityLevel: defaultLevel,
    queuePolicies,
  };
  return { kind: 'dynamic', batching };
}

function compileQueuePolicy(policy: Obj | undefined): QueuePolicySpec {
  if (!policy) return NO_QUEUE_POLICY;
  return {
    timeoutAction: policy['timeout_action'] === 'DELAY' || policy['timeout_action'] === 1 ? 'DELAY' : 'REJECT',
    defaultTimeoutMicroseconds: asNumber(policy['default_timeout_microseconds']),
    allowTimeoutOverride: policy['allow_timeout_override'] === true,
    maxQueueSize: asNumber(policy['max_queue_size']),
  };
}

/**
 * response_cache { enable: true }. Refused where a request alone does not
 * decide the answer, as Triton refuses it: a sequence model's answer depends
 * on the requests before it, and a decoupled model's is a stream.
 */
function compileResponseCache(ctx: Ctx, config: Obj, scheduling: SchedulingSpec): boolean {
  if (asObj(config['response_cache'])?.['enable'] !== true) return false;
  if (scheduling.kind === 'sequence') {
    failAt(ctx, 'response_cache.enable', 'is true, but the model uses sequence_batching, whose answers depend on the earlier requests of each sequence',
      'remove response_cache (or set enable: false); the response cache serves stateless models only');
  }
  if (isDecoupled(config)) {
    failAt(ctx, 'response_cache.enable', 'is true, but the model is decoupled (model_transaction_policy), so it answers with a stream, not one response',
      'remove response_cache (or set enable: false)');
  }
  return true;
}

/** model_transaction_policy { decoupled: true }: the model may send any number of responses per request. */
function isDecoupled(config: Obj): boolean {
  return asObj(config['model_transaction_policy'])?.['decoupled'] === true;
}

/** Fields this build parses but cannot honour yet fail loudly rather than being ignored. */
function checkUnsupported(ctx: Ctx, config: Obj, settings: ModelSettings): void {
  // Only a backend that says so (scripts, through request.send) can send zero or many responses per request.
  if (isDecoupled(config) && !settings.decoupledCapable) {
    failAt(ctx, 'model_transaction_policy.decoupled', `is true, but backend '${settings.backend}' answers each request exactly once, ` +
      'so its models cannot be decoupled', 'remove model_transaction_policy or set decoupled: false');
  }
  // batch_input kinds this build cannot make were refused in readBatchInputs.
  if (asArray(config['batch_output']).length > 0) {
    failAt(ctx, 'batch_output', 'is not supported by this Switchyard build', 'remove batch_output');
  }
  // A repository agent (Triton's checksum agent, say) guards or rewrites the model before load; skipping it silently would be unsafe.
  const agents = asArray(asObj(config['model_repository_agents'])?.['agents']);
  if (agents.length > 0) {
    const names = agents.map((a) => `'${asString(asObj(a)?.['name'])}'`).join(', ');
    failAt(ctx, 'model_repository_agents.agents', `names ${names}, but this Switchyard build runs no repository agents, so the model would load unchecked`,
      'remove model_repository_agents, or do the agent\'s work (checksums, decryption) before the files reach the repository');
  }
  if (asArray(asObj(config['model_operations'])?.['op_library_filename']).length > 0) {
    failAt(ctx, 'model_operations.op_library_filename', 'names custom operator libraries, which onnxruntime-node cannot load',
      'remove model_operations, or export the model with standard ONNX operators');
  }
}

/** The completed config as Triton's GET .../config prints it: snake_case, enums by name, defaults filled. */
export function tritonJson(ctx: Ctx, config: Obj): ModelConfigObject {
  const type = modelConfigType();
  let message;
  try {
    message = type.fromObject(config);
  } catch (err) {
    failAt(ctx, 'config', err instanceof Error ? err.message : String(err), 'check the field types against the ModelConfig schema');
  }
  return inSchemaOrder(type, pruneNulls(toPlainObject(message, true))) as ModelConfigObject;
}

/** Keys in the order the schema declares them, as protobuf's own JSON printer writes them. */
function inSchemaOrder(type: protobuf.Type, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => inSchemaOrder(type, v));
  const obj = asObj(value);
  if (!obj) return value;
  const out: Obj = {};
  for (const field of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    if (!(field.name in obj)) continue;
    const nested = field.resolve().resolvedType;
    const v = obj[field.name];
    out[field.name] = nested instanceof protobuf.Type
      ? field.map ? Object.fromEntries(Object.entries(asObj(v) ?? {}).map(([k, x]) => [k, inSchemaOrder(nested, x)])) : inSchemaOrder(nested, v)
      : v;
  }
  return out;
}

function pruneNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pruneNulls);
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    const out: Obj = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = pruneNulls(v);
    return out;
  }
  return value;
}

export function deepFreeze<T>(value: T): T {
  // Typed arrays (an initial state's bytes) cannot be frozen; the specs holding them are.
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value) && !(value instanceof Map) && !ArrayBuffer.isView(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
