/**
 * Compiles an ensemble's config (Triton's `platform: "ensemble"`, or a
 * pipeline.yaml already turned into that form) once its members are loaded:
 * the step graph is built and validated against them, the ensemble's inputs
 * and outputs are completed from them, and the plan becomes the scheduling
 * spec that createScheduler reads.
 */
import {
  contextOf, deepFreeze, tritonJson, type ConfigContext, type ModelSettings,
} from '../config/compile-model-config.ts';
import type { CompiledModelConfig, TensorSpec } from '../config/compiled-model-config.ts';
import { ModelConfigError } from '../config/config-error.ts';
import type { ParsedModelConfig } from '../config/parse-model-config.ts';
import { fromConfigDataType, toConfigDataType } from '../tensor.ts';
import { buildEnsemble, type DeclaredTensor, type EnsembleStepSource, type MemberLookup } from './ensemble-graph.ts';
import { tritonLayout } from './ensemble-layout.ts';
import { readEnsembleExtensions } from './ensemble-extensions.ts';
import { asArray, asObj, type Obj } from '../config/config-values.ts';


/** Sections that have no meaning for an ensemble: each step's own model config decides them. */
const MEMBER_ONLY = ['dynamic_batching', 'sequence_batching', 'instance_group', 'batch_input', 'batch_output', 'model_warmup'] as const;

export interface CompiledEnsemble {
  readonly config: CompiledModelConfig;
  readonly warnings: readonly string[];
}

export function compileEnsembleConfig(
  modelName: string,
  modelDir: string,
  parsed: ParsedModelConfig | undefined,
  settings: ModelSettings,
  lookup: MemberLookup,
): CompiledEnsemble {
  const ctx = contextOf(modelDir, parsed);
  const raw: Obj = structuredClone(parsed?.config ?? {});
  const fail: (field: string, problem: string, fix: string) => never = (field, problem, fix) => {
    throw new ModelConfigError({ file: ctx.file, line: ctx.sourceMap.lineOf(field), field, problem, fix });
  };
  for (const section of MEMBER_ONLY) {
    const value = raw[section];
    if (value !== undefined && !(Array.isArray(value) && value.length === 0)) {
      fail(section, `is set on ensemble '${modelName}', which runs no model of its own`,
        `remove it; set ${section} in the config of the step models, which batch and schedule on their own`);
    }
  }
  const maxBatchSize = Number(raw['max_batch_size'] ?? 0);
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 0) {
    fail('max_batch_size', `is ${maxBatchSize}`, 'use 0 for an ensemble without a batch dimension, or the largest batch it takes');
  }
  const scheduling = asObj(raw['ensemble_scheduling']);
  if (!scheduling) {
    fail('ensemble_scheduling', `is missing, and platform "ensemble" needs it`,
      'add ensemble_scheduling { step [ { model_name: "...", model_version: -1, input_map {...}, output_map {...} } ] }');
  }
  const steps: EnsembleStepSource[] = asArray(scheduling['step']).map((value) => {
    const step = asObj(value) ?? {};
    return {
      modelName: String(step['model_name'] ?? ''),
      modelVersion: Number(step['model_version'] ?? -1),
      inputMap: stringMap(step['input_map']),
      outputMap: stringMap(step['output_map']),
    };
  });
  // The schema (uint32) already refused a negative, fractional or too large value, in protobuf's words.
  const maxInflightRequests = Number(scheduling['max_inflight_requests'] ?? 0);
  steps.forEach((step, i) => {
    if (!Number.isInteger(step.modelVersion) || step.modelVersion < -1 || step.modelVersion === 0) {
      fail(`ensemble_scheduling.step[${i}].model_version`, `is ${step.modelVersion}`, 'use -1 for the latest ready version, or a version number');
    }
  });
  const layout = parsed?.ensembleLayout ?? tritonLayout(raw, ctx.sourceMap);
  const parameters = Object.fromEntries(Object.entries(asObj(raw['parameters']) ?? {}).map(([k, v]) => [k, String(asObj(v)?.['string_value'] ?? '')]));
  const extensions = readEnsembleExtensions(modelName, parameters, steps.map((s) => s.modelName), layout,
    (at, problem, fix) => { throw new ModelConfigError({ file: ctx.file, line: at.line, field: at.field, problem, fix }); });
  const built = buildEnsemble({
    name: modelName,
    file: ctx.file,
    layout,
    maxBatchSize,
    inputs: declared(ctx, raw, 'input'),
    outputs: declared(ctx, raw, 'output'),
    steps,
    maxInflightRequests,
    extensions,
  }, lookup);

  raw['name'] = modelName;
  raw['platform'] = 'ensemble';
  raw['backend'] = '';
  raw['max_batch_size'] = maxBatchSize;
  raw['input'] = built.inputs.map((t) => tensorJson(t));
  raw['output'] = built.outputs.map((t) => tensorJson(t));
  if (!raw['version_policy']) raw['version_policy'] = { latest: { num_versions: 1 } };
  // As in Triton, an ensemble with a decoupled step is decoupled, and its config says so.
  if (built.plan.decoupled) raw['model_transaction_policy'] = { decoupled: true };
  const config: CompiledModelConfig = deepFreeze({
    name: modelName,
    platform: 'ensemble',
    backend: '',
    maxBatchSize,
    inputs: built.inputs,
    outputs: built.outputs,
    inputByName: new Map(built.inputs.map((s) => [s.name, s])),
    outputByName: new Map(built.outputs.map((s) => [s.name, s])),
    batchInputs: [],
    versionPolicy: settings.versionPolicy,
    instanceGroups: [],
    scheduling: { kind: 'ensemble', plan: built.plan },
    parameters: settings.parameters,
    defaultModelFilename: '',
    json: tritonJson(ctx, raw),
    file: parsed?.file,
    // Triton caches an ensemble's top-level answers too; its steps cache (or not) by their own configs.
    responseCache: asObj(raw['response_cache'])?.['enable'] === true,
    warmup: [],
    ...(built.plan.decoupled ? { decoupled: true } : {}),
  });
  return { config, warnings: built.warnings };
}

function stringMap(value: unknown): Record<string, string> {
  return Object.fromEntries(Object.entries(asObj(value) ?? {}).map(([k, v]) => [k, String(v)]));
}

/** The ensemble's input or output list as written: datatype and dims may be absent, to be completed. */
function declared(ctx: ConfigContext, config: Obj, kind: 'input' | 'output'): DeclaredTensor[] {
  const seen = new Set<string>();
  return asArray(config[kind]).map((value, i) => {
    const t = asObj(value) ?? {};
    const name = String(t['name'] ?? '');
    const field = `${kind}[${i}]`;
    const problem = (f: string, p: string, fix: string): never => {
      throw new ModelConfigError({ file: ctx.file, line: ctx.sourceMap.lineOf(f), field: f, problem: p, fix });
    };
    if (!name) problem(`${field}.name`, 'is missing', `name every ensemble ${kind}`);
    if (seen.has(name)) problem(`${field}.name`, `'${name}' appears twice`, `remove the duplicate ${kind}`);
    seen.add(name);
    const typeName = String(t['data_type'] ?? '');
    const datatype = typeName === '' || typeName === 'TYPE_INVALID' ? undefined : fromConfigDataType(typeName);
    if (typeName !== '' && typeName !== 'TYPE_INVALID' && !datatype) problem(`${field}.data_type`, `'${typeName}' has no KServe datatype`, 'use a type such as TYPE_FP32');
    const dims = asArray(t['dims']).map(Number);
    for (const d of dims) {
      if (!Number.isInteger(d) || (d < 1 && d !== -1)) problem(`${field}.dims`, `contains ${d}`, 'each dim is a positive size, or -1 for a variable size');
    }
    return { name, datatype, dims: dims.length > 0 ? dims : undefined, optional: t['optional'] === true };
  });
}

function tensorJson(t: TensorSpec): Obj {
  return { name: t.name, data_type: toConfigDataType(t.datatype), dims: [...t.dims], ...(t.optional ? { optional: true } : {}) };
}
