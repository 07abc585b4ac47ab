/**
 * Compiles a model's sequence_batching section, once at load, into the
 * readonly SequenceBatchingSpec the sequence batcher runs from: control
 * inputs, implicit state and the strategy, each checked against the model's
 * signature. Control and state tensors are the server's to make and to keep,
 * like batch_input targets: they are not request inputs or client outputs,
 * and the completed `input` / `output` lists leave them out.
 *
 * Rules follow Triton's (model_config_utils.cc, sequence_batch_scheduler.cc);
 * every failure names file, line, field and a fix.
 */
import { readConfinedFileSync } from '../repository/confined-path.ts';
import { elementByteSize, formatShape, fromConfigDataType, toConfigDataType, type DataType, type FixedDataType } from '../tensor.ts';
import type { ConfigContext } from './compile-model-config.ts';
import type { SequenceBatchingSpec, SequenceControlSpec, SequenceStateSpec, SequenceStrategySpec } from './compiled-model-config.ts';
import type { ModelSignature, SignatureTensor } from './model-signature.ts';
import { asObj, asArray, asNumber, asString, failAt, type Obj } from './config-values.ts';

/** Triton's default max_sequence_idle_microseconds. */
export const DEFAULT_MAX_SEQUENCE_IDLE_MICROSECONDS = 1_000_000;

/**
 * Switchyard's bound on sequences waiting for a slot (Triton's backlog has
 * none): the model config parameter max_sequence_backlog, this by default.
 */
export const DEFAULT_MAX_SEQUENCE_BACKLOG = 10_000;
export const MAX_SEQUENCE_BACKLOG_PARAMETER = 'max_sequence_backlog';

/** Where initial_state data_file paths are relative to, inside the model's folder (Triton's kInitialStateFolder). */
export const INITIAL_STATE_FOLDER = 'initial_state';


const SECTION = 'sequence_batching';
const CONTROL_KINDS = ['CONTROL_SEQUENCE_START', 'CONTROL_SEQUENCE_READY', 'CONTROL_SEQUENCE_END', 'CONTROL_SEQUENCE_CORRID'] as const;
const SHORT_KIND = { CONTROL_SEQUENCE_START: 'START', CONTROL_SEQUENCE_READY: 'READY', CONTROL_SEQUENCE_END: 'END', CONTROL_SEQUENCE_CORRID: 'CORRID' } as const;
const CORRID_TYPES: readonly DataType[] = ['UINT64', 'INT64', 'UINT32', 'INT32', 'BYTES'];
const FALSE_TRUE_FIELDS = [
  { field: 'int32_false_true', datatype: 'INT32' },
  { field: 'fp32_false_true', datatype: 'FP32' },
  { field: 'bool_false_true', datatype: 'BOOL' },
] as const;



/** The model inputs the sequence batcher feeds (controls, state inputs) and the outputs it keeps (state outputs). */
export interface SequenceTensorNames {
  readonly inputs: ReadonlySet<string>;
  readonly outputs: ReadonlySet<string>;
}

export function sequenceTensorNames(section: unknown): SequenceTensorNames {
  const obj = asObj(section);
  if (!obj) return { inputs: new Set(), outputs: new Set() };
  const controls = asArray(obj['control_input']).map((c) => asString(asObj(c)?.['name'])).filter((n) => n);
  const states = asArray(obj['state']).map((s) => asObj(s) ?? {});
  return {
    inputs: new Set([...controls, ...states.map((s) => asString(s['input_name'])).filter((n) => n)]),
    outputs: new Set(states.map((s) => asString(s['output_name'])).filter((n) => n)),
  };
}

/** A config that lists a control or state tensor as an `input` or `output` would have clients send or see it. */
export function checkSequenceTensorsNotListed(ctx: ConfigContext, inputs: readonly Obj[], outputs: readonly Obj[], names: SequenceTensorNames): void {
  inputs.forEach((t, i) => {
    const name = asString(t['name']);
    if (names.inputs.has(name)) {
      failAt(ctx, `input[${i}].name`, `'${name}' is a ${SECTION} control or state input, so the server sets it for every request and clients never send it`,
        `remove '${name}' from input`);
    }
  });
  outputs.forEach((t, i) => {
    const name = asString(t['name']);
    if (names.outputs.has(name)) {
      failAt(ctx, `output[${i}].name`, `'${name}' is a ${SECTION} state output, so the server keeps it for the sequence's next request and clients never see it`,
        `remove '${name}' from output`);
    }
  });
}

export interface SequenceCompileOptions {
  readonly maxBatchSize: number;
  readonly signature: ModelSignature;
  /** The model's folder; initial_state data files are read from its initial_state/ folder. */
  readonly modelDir: string;
  /** Model inputs already fed by batch_input, which a control or state cannot also feed. */
  readonly batchInputTargets: ReadonlySet<string>;
  /** The model config's parameters, by key (string_value). */
  readonly parameters: ReadonlyMap<string, string>;
}

export interface CompiledSequenceBatching {
  readonly spec: SequenceBatchingSpec;
  /** The section with its defaults filled in, for the completed config. */
  readonly completed: Obj;
}

export function compileSequenceBatching(ctx: ConfigContext, section: Obj, options: SequenceCompileOptions): CompiledSequenceBatching {
  if (section['iterative_sequence'] === true) {
    failAt(ctx, `${SECTION}.iterative_sequence`, 'is true, but iterative sequences (requests rescheduled by the model) are not supported by this Switchyard build',
      'remove iterative_sequence');
  }
  const idle = asNumber(section['max_sequence_idle_microseconds']);
  if (!Number.isInteger(idle) || idle < 0) {
    failAt(ctx, `${SECTION}.max_sequence_idle_microseconds`, `is ${idle}`, `use a whole number of microseconds, or leave it out for the default ${DEFAULT_MAX_SEQUENCE_IDLE_MICROSECONDS}`);
  }
  const maxSequenceIdleMicroseconds = idle === 0 ? DEFAULT_MAX_SEQUENCE_IDLE_MICROSECONDS : idle;
  const strategy = compileStrategy(ctx, section, options.maxBatchSize);
  const controls = compileControls(ctx, asArray(section['control_input']), options);
  const controlNames = new Set(controls.map((c) => c.inputName));
  const states = asArray(section['state']).map((value, index) => compileState(ctx, asObj(value) ?? {}, index, options, controlNames));
  checkDistinctStates(ctx, states);

  const completed: Obj = {
    ...section,
    max_sequence_idle_microseconds: maxSequenceIdleMicroseconds,
    state: asArray(section['state']).map((value, index) => ({
      ...(asObj(value) ?? {}),
      data_type: toConfigDataType(states[index]!.datatype),
      dims: [...states[index]!.dims],
    })),
  };
  if (strategy.kind === 'direct' && !asObj(section['direct'])) completed['direct'] = {};
  if (strategy.kind === 'oldest') completed['oldest'] = { ...asObj(section['oldest']), max_candidate_sequences: strategy.maxCandidateSequences };
  const slotsPerInstance = strategy.kind === 'oldest' ? strategy.maxCandidateSequences : Math.max(1, options.maxBatchSize);
  const maxBacklog = compileMaxBacklog(ctx, options.parameters.get(MAX_SEQUENCE_BACKLOG_PARAMETER));
  return { spec: { maxSequenceIdleMicroseconds, strategy, slotsPerInstance, maxBacklog, controls, states }, completed };
}

function compileMaxBacklog(ctx: ConfigContext, written: string | undefined): number {
  if (written === undefined) return DEFAULT_MAX_SEQUENCE_BACKLOG;
  const value = /^[0-9]+$/.test(written.trim()) ? Number(written) : Number.NaN;
  if (!Number.isSafeInteger(value)) {
    failAt(ctx, `parameters.${MAX_SEQUENCE_BACKLOG_PARAMETER}`, `is '${written}'`,
      `use the number of new sequences that may wait for a free sequence slot (0: none wait; default ${DEFAULT_MAX_SEQUENCE_BACKLOG})`);
  }
  return value;
}

function compileStrategy(ctx: ConfigContext, section: Obj, maxBatchSize: number): SequenceStrategySpec {
  const oldest = asObj(section['oldest']);
  if (!oldest) {
    const direct = asObj(section['direct']) ?? {};
    const delay = asNumber(direct['max_queue_delay_microseconds']);
    if (!Number.isInteger(delay) || delay < 0) {
      failAt(ctx, `${SECTION}.direct.max_queue_delay_microseconds`, `is ${delay}`, 'use a whole number of microseconds, 0 for no delay');
    }
    const utilization = asNumber(direct['minimum_slot_utilization']);
    if (!(utilization >= 0 && utilization <= 1)) {
      failAt(ctx, `${SECTION}.direct.minimum_slot_utilization`, `is ${utilization}`, 'use a share of the slots between 0 and 1, e.g. 0.5');
    }
    return { kind: 'direct', maxQueueDelayMicroseconds: delay, minimumSlotUtilization: utilization };
  }
  const candidates = asNumber(oldest['max_candidate_sequences']);
  if (!Number.isInteger(candidates) || candidates < 0) {
    failAt(ctx, `${SECTION}.oldest.max_candidate_sequences`, `is ${candidates}`,
      'use the number of sequences one instance holds at once, or leave it out for max_batch_size');
  }
  const largest = Math.max(1, maxBatchSize);
  const preferred = asArray(oldest['preferred_batch_size']).map((v) => asNumber(v));
  for (const size of preferred) {
    if (!Number.isInteger(size) || size < 1 || size > largest) {
      failAt(ctx, `${SECTION}.oldest.preferred_batch_size`, `${size} is outside 1..max_batch_size (${largest})`, `use sizes between 1 and ${largest}`);
    }
  }
  const delay = asNumber(oldest['max_queue_delay_microseconds']);
  if (!Number.isInteger(delay) || delay < 0) {
    failAt(ctx, `${SECTION}.oldest.max_queue_delay_microseconds`, `is ${delay}`, 'use a whole number of microseconds, 0 for no delay');
  }
  return {
    kind: 'oldest',
    maxCandidateSequences: candidates === 0 ? largest : candidates,
    preferredBatchSizes: [...new Set(preferred)].sort((a, b) => a - b),
    maxQueueDelayMicroseconds: delay,
    preserveOrdering: oldest['preserve_ordering'] === true,
  };
}

function compileControls(ctx: ConfigContext, entries: unknown[], options: SequenceCompileOptions): SequenceControlSpec[] {
  const names = new Set<string>();
  const kinds = new Map<string, string>();
  return entries.map((value, index) => {
    const entry = asObj(value) ?? {};
    const field = `${SECTION}.control_input[${index}]`;
    const name = asString(entry['name']);
    if (!name) failAt(ctx, `${field}.name`, 'is missing', 'name the model input that carries the control');
    if (names.has(name)) {
      failAt(ctx, `${field}.name`, `'${name}' is listed by an earlier control_input too`, 'give each control its own model input');
    }
    names.add(name);
    const controls = asArray(entry['control']);
    if (controls.length !== 1) {
      failAt(ctx, `${field}.control`, controls.length === 0 ? 'lists no control' : `lists ${controls.length} controls, but one model input carries one control`,
        'give the control_input exactly one control { kind: ... }');
    }
    const control = asObj(controls[0]) ?? {};
    const at = `${field}.control[0]`;
    const rawKind = control['kind'] ?? CONTROL_KINDS[0];
    const kindName = typeof rawKind === 'number' ? CONTROL_KINDS[rawKind] ?? String(rawKind) : asString(rawKind);
    if (!(CONTROL_KINDS as readonly string[]).includes(kindName)) {
      failAt(ctx, `${at}.kind`, `'${kindName}' is not a control kind`, `use one of ${CONTROL_KINDS.join(', ')}`);
    }
    const kind = SHORT_KIND[kindName as (typeof CONTROL_KINDS)[number]];
    const earlier = kinds.get(kind);
    if (earlier) {
      failAt(ctx, `${at}.kind`, `${kindName} is already carried by input '${earlier}'`, `keep one control_input with ${kindName}`);
    }
    kinds.set(kind, name);
    const model = modelInput(ctx, `${field}.name`, name, options);
    const given = FALSE_TRUE_FIELDS.filter((f) => asArray(control[f.field]).length > 0);
    let spec: SequenceControlSpec;
    let typeField: string;
    if (kind === 'CORRID') {
      if (given.length > 0) {
        failAt(ctx, `${at}.${given[0]!.field}`, `is set, but ${kindName} carries the correlation ID itself, not a false/true pair`,
          `remove ${given[0]!.field} and set data_type`);
      }
      const datatype = fromConfigDataType(asString(control['data_type']));
      if (!datatype || !CORRID_TYPES.includes(datatype)) {
        failAt(ctx, `${at}.data_type`, `is ${asString(control['data_type']) || 'missing'}`,
          `set data_type to one of ${CORRID_TYPES.map(toConfigDataType).join(', ')}, as the model takes the correlation ID`);
      }
      spec = { kind, inputName: name, datatype: datatype as Extract<SequenceControlSpec, { kind: 'CORRID' }>['datatype'] };
      typeField = `${at}.data_type`;
    } else {
      if (given.length !== 1) {
        failAt(ctx, at, given.length === 0
          ? `${kindName} gives no false/true values`
          : `${kindName} sets more than one of ${given.map((f) => f.field).join(', ')}`,
        'set exactly one of int32_false_true, fp32_false_true or bool_false_true, e.g. int32_false_true: [ 0, 1 ]');
      }
      const chosen = given[0]!;
      const pair = asArray(control[chosen.field]);
      if (pair.length !== 2) {
        failAt(ctx, `${at}.${chosen.field}`, `has ${pair.length} entries`, 'give exactly two: the false value, then the true value');
      }
      const toNumber = (v: unknown): number => (typeof v === 'boolean' ? (v ? 1 : 0) : asNumber(v));
      spec = { kind, inputName: name, datatype: chosen.datatype, falseValue: toNumber(pair[0]), trueValue: toNumber(pair[1]) };
      typeField = `${at}.${chosen.field}`;
    }
    if (model.datatype !== spec.datatype) {
      const modelType = model.datatype ? toConfigDataType(model.datatype) : model.modelType;
      failAt(ctx, typeField, `sends '${name}' as ${toConfigDataType(spec.datatype)}, but ${options.signature.file} declares it ${modelType}`,
        spec.kind === 'CORRID' ? `set data_type: ${modelType}` : `use the false/true field of the model's type, or change the model`);
    }
    const expected = options.maxBatchSize > 0 ? '[-1,1]' : '[1]';
    const fits = options.maxBatchSize > 0
      ? model.shape.length === 2 && model.shape[0] === -1 && (model.shape[1] === 1 || model.shape[1] === -1)
      : model.shape.length === 1 && (model.shape[0] === 1 || model.shape[0] === -1);
    if (!fits) {
      failAt(ctx, `${field}.name`, `'${name}' is ${formatShape(model.shape)} in ${options.signature.file}, but a control tensor holds one value per request` +
        (options.maxBatchSize > 0 ? ', shaped [batch, 1]' : ', shaped [1]'),
      `give the model input '${name}' the shape ${expected}`);
    }
    return spec;
  });
}

function modelInput(ctx: ConfigContext, field: string, name: string, options: SequenceCompileOptions): SignatureTensor {
  const m = options.signature.inputs.find((x) => x.name === name);
  if (!m) {
    const names = options.signature.inputs.map((x) => `'${x.name}'`).join(', ');
    failAt(ctx, field, `'${name}' is not an input of ${options.signature.file}`, `use one of the model's inputs: ${names}`);
  }
  if (options.batchInputTargets.has(name)) {
    failAt(ctx, field, `'${name}' is already fed by a batch_input`, 'feed each model input from one place');
  }
  return m;
}

function compileState(ctx: ConfigContext, state: Obj, index: number, options: SequenceCompileOptions, controlNames: ReadonlySet<string>): SequenceStateSpec {
  const field = `${SECTION}.state[${index}]`;
  const { signature, maxBatchSize } = options;
  const inputName = asString(state['input_name']);
  const outputName = asString(state['output_name']);
  if (!inputName) failAt(ctx, `${field}.input_name`, 'is missing', 'name the model input the state is fed to');
  if (!outputName) failAt(ctx, `${field}.output_name`, 'is missing', 'name the model output the next state is read from');
  if (controlNames.has(inputName)) {
    failAt(ctx, `${field}.input_name`, `'${inputName}' already carries a control_input`, 'feed the state to its own model input');
  }
  const input = modelInput(ctx, `${field}.input_name`, inputName, options);
  const output = signature.outputs.find((x) => x.name === outputName);
  if (!output) {
    const names = signature.outputs.map((x) => `'${x.name}'`).join(', ');
    failAt(ctx, `${field}.output_name`, `'${outputName}' is not an output of ${signature.file}`, `use one of the model's outputs: ${names}`);
  }
  const written = asString(state['data_type']);
  const datatype = written && written !== 'TYPE_INVALID' ? fromConfigDataType(written) : input.datatype;
  if (!datatype) failAt(ctx, `${field}.data_type`, `is ${written || 'missing'}`, 'set data_type, e.g. TYPE_FP32');
  if (datatype === 'BYTES') {
    failAt(ctx, `${field}.data_type`, 'is TYPE_STRING, but this build keeps states of fixed-size types only', 'use a numeric state type');
  }
  for (const [tensor, kind] of [[input, 'input'], [output, 'output']] as const) {
    if (tensor.datatype !== datatype) {
      const modelType = tensor.datatype ? toConfigDataType(tensor.datatype) : tensor.modelType;
      failAt(ctx, `${field}.data_type`, `is ${toConfigDataType(datatype)} but ${signature.file} declares ${kind} '${tensor.name}' as ${modelType}`,
        `set data_type: ${modelType}`);
    }
  }
  const batchRank = maxBatchSize > 0 ? 1 : 0;
  const givenDims = asArray(state['dims']).map((d) => asNumber(d));
  const dims = givenDims.length > 0 ? givenDims : input.shape.slice(batchRank);
  for (const d of dims) {
    if (!Number.isInteger(d) || (d < 1 && d !== -1)) {
      failAt(ctx, `${field}.dims`, `contains ${d}`, 'each dim is a positive size, or -1 for a variable size');
    }
  }
  for (const tensor of [input, output]) {
    const expected = batchRank ? [-1, ...dims] : dims;
    const fits = tensor.shape.length === expected.length
      && (batchRank === 0 || tensor.shape[0] === -1)
      && expected.every((d, i) => d === -1 || tensor.shape[i] === -1 || tensor.shape[i] === d);
    if (!fits) {
      failAt(ctx, `${field}.dims`, `${formatShape(dims)} does not match ${signature.file}, which has '${tensor.name}' as ${formatShape(tensor.shape)}` +
        (batchRank ? ` (the state's dims leave out the batch dimension because max_batch_size is ${maxBatchSize})` : ''),
      `set dims: ${formatShape(tensor.shape.slice(batchRank))}`);
    }
  }
  const initial = compileInitialState(ctx, field, state, { inputName, datatype, dims }, options.modelDir);
  return { inputName, outputName, datatype, dims, ...initial };
}

function compileInitialState(
  ctx: ConfigContext, field: string, state: Obj, described: { inputName: string; datatype: FixedDataType; dims: readonly number[] }, modelDir: string,
): Pick<SequenceStateSpec, 'initialDims' | 'initialData'> {
  const entries = asArray(state['initial_state']);
  const elementBytes = elementByteSize(described.datatype)!;
  if (entries.length === 0) {
    // Triton's default: zeros, with variable dims taken as 1.
    const initialDims = described.dims.map((d) => (d === -1 ? 1 : d));
    return { initialDims, initialData: new Uint8Array(product(initialDims) * elementBytes) };
  }
  const at = `${field}.initial_state`;
  if (entries.length > 1) {
    failAt(ctx, at, `has ${entries.length} entries for state input '${described.inputName}'`, 'give exactly one initial_state, or none for zeros');
  }
  const initial = asObj(entries[0]) ?? {};
  if (fromConfigDataType(asString(initial['data_type'])) !== described.datatype) {
    failAt(ctx, `${at}.data_type`, `is ${asString(initial['data_type']) || 'missing'} but the state is ${toConfigDataType(described.datatype)}`,
      `set data_type: ${toConfigDataType(described.datatype)}`);
  }
  if (!asString(initial['name'])) failAt(ctx, `${at}.name`, 'is missing', 'give the initial state a name, as Triton requires');
  const initialDims = asArray(initial['dims']).map((d) => asNumber(d));
  if (initialDims.length !== described.dims.length) {
    failAt(ctx, `${at}.dims`, `${formatShape(initialDims)} has ${initialDims.length} dims but the state has ${described.dims.length} (${formatShape(described.dims)})`,
      'give initial_state the same number of dims as the state');
  }
  initialDims.forEach((d, i) => {
    if (!Number.isInteger(d) || d < 1) {
      failAt(ctx, `${at}.dims`, `contains ${d}; an initial state has a fixed shape`, 'give every dim a positive size');
    }
    const stateDim = described.dims[i]!;
    if (stateDim !== -1 && stateDim !== d) {
      failAt(ctx, `${at}.dims`, `${formatShape(initialDims)} does not match the state's dims ${formatShape(described.dims)}`,
        `set dims: ${formatShape(described.dims.map((s, j) => (s === -1 ? initialDims[j]! : s)))}`);
    }
  });
  const byteLength = product(initialDims) * elementBytes;
  if (initial['zero_data'] === true) return { initialDims, initialData: new Uint8Array(byteLength) };
  const dataFile = asString(initial['data_file']);
  if (!dataFile) failAt(ctx, at, 'sets neither zero_data nor data_file', 'set zero_data: true, or data_file: "<file in the model\'s initial_state folder>"');
  const read = readConfinedFileSync(modelDir, dataFile, INITIAL_STATE_FOLDER);
  if (read.problem !== undefined) {
    failAt(ctx, `${at}.data_file`, read.problem, `put the state's raw little-endian bytes in a file inside the model's ${INITIAL_STATE_FOLDER} folder and name it relative to that folder`);
  }
  const bytes = read.bytes;
  if (bytes.byteLength < byteLength) {
    failAt(ctx, `${at}.data_file`, `${INITIAL_STATE_FOLDER}/${dataFile} has ${bytes.byteLength} bytes, but an initial state ${formatShape(initialDims)} of ${toConfigDataType(described.datatype)} takes ${byteLength}`,
      'write the full state into the file, or change initial_state dims');
  }
  return { initialDims, initialData: new Uint8Array(bytes.subarray(0, byteLength)) };
}

function checkDistinctStates(ctx: ConfigContext, states: readonly SequenceStateSpec[]): void {
  const inputs = new Set<string>();
  const outputs = new Set<string>();
  states.forEach((s, i) => {
    if (inputs.has(s.inputName)) failAt(ctx, `${SECTION}.state[${i}].input_name`, `'${s.inputName}' is fed by an earlier state too`, 'give each state its own input');
    if (outputs.has(s.outputName)) failAt(ctx, `${SECTION}.state[${i}].output_name`, `'${s.outputName}' is read by an earlier state too`, 'give each state its own output');
    inputs.add(s.inputName);
    outputs.add(s.outputName);
  });
}

function product(dims: readonly number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}
