/**
 * model_warmup end to end, on real TypeScript and ONNX models: each sample
 * runs `count` times on every instance with the data its config describes
 * (zeros, random bytes, a file in <model>/warmup/); the version is not READY,
 * and answers nothing, until warmup is over; warmup never shows in the
 * statistics; a failing sample leaves the version UNAVAILABLE with the
 * sample and the error as its reason; stateful models are warmed as
 * one-request sequences.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { addSubModel, stateAccumulatorControlsModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine, startHttp } from '../../helpers/fixture-repository.ts';
import { capturingLogger, int32x16, scriptConfig, writeScript, type CapturingLogger } from '../../helpers/script-fixtures.ts';
import { waitForLogLine } from '../../helpers/wait.ts';

/** Echoes X as Y and logs what each execute() received; with SLOW_MS set, an all-zero X busy-waits that long, and with FAIL set it throws. */
function recorderScript(options: { slowMs?: number; fail?: boolean } = {}): string {
  return `
export default class Recorder {
  execute(requests: any[], ctx: any) {
    ctx.log.info('execute ' + JSON.stringify(requests.map((r) => ({
      x: Array.from(r.inputs.X.data), xs: r.inputs.X.shape, t: r.inputs.T.data, ts: r.inputs.T.shape,
    }))));
    const warming = requests.every((r) => Array.from(r.inputs.X.data).every((v) => v === 0));
    if (warming && ${options.fail === true}) throw new Error('no zeros here');
    if (warming) { const until = Date.now() + ${options.slowMs ?? 0}; while (Date.now() < until) { /* a slow first run */ } }
    return requests.map((r) => ({ outputs: { Y: { shape: r.inputs.X.shape, data: r.inputs.X.data } } }));
  }
}
`;
}

const RECORDER_IO = {
  maxBatchSize: 4,
  inputs: [['X', 'TYPE_INT32', [4]], ['T', 'TYPE_STRING', [-1]]] as const,
  outputs: [['Y', 'TYPE_INT32', [4]]] as const,
};

const input = (key: string, value: string): string => `{ key: "${key}" value: { ${value} } }`;

interface Execution {
  readonly instance: string;
  readonly requests: ReadonlyArray<{ x: number[]; xs: number[]; t: string[]; ts: number[] }>;
}

function executions(logger: CapturingLogger, model: string): Execution[] {
  return logger.lines.flatMap((line) => {
    const match = new RegExp(`^info '${model}' \\((\\S+)\\): execute (.*)$`).exec(line);
    return match ? [{ instance: match[1]!, requests: JSON.parse(match[2]!) as Execution['requests'] }] : [];
  });
}

test('every sample runs count times on every instance, with zeros, random data of the right shape, and a file\'s bytes', async () => {
  const root = await makeRepository({});
  await writeScript(root, 'recorder', 1, recorderScript());
  await writeFile(join(root, 'recorder', 'config.pbtxt'), scriptConfig({
    ...RECORDER_IO,
    extra: `instance_group [ { count: 2 kind: KIND_CPU } ]
model_warmup [
  { name: "zeros" batch_size: 2 count: 2 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] zero_data: true')}, ${input('T', 'data_type: TYPE_STRING dims: [ 2 ] zero_data: true')} ] },
  { name: "random" batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] random_data: true')}, ${input('T', 'data_type: TYPE_STRING dims: [ 3 ] random_data: true')} ] },
  { name: "file" batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] input_data_file: "x.bin"')}, ${input('T', 'data_type: TYPE_STRING dims: [ 2 ] input_data_file: "t.bin"')} ] }
]`,
  }));
  await mkdir(join(root, 'recorder', 'warmup'));
  await writeFile(join(root, 'recorder', 'warmup', 'x.bin'), Buffer.from(Int32Array.of(7, -1, 2 ** 30, 42).buffer));
  await writeFile(join(root, 'recorder', 'warmup', 't.bin'), Buffer.from([2, 0, 0, 0, 0x68, 0x69, 3, 0, 0, 0, 0x61, 0x62, 0x63]));
  const logger = capturingLogger();
  const engine = await startEngine(root, { logger });
  try {
    assert.equal(engine.isModelReady('recorder'), true);
    const runs = executions(logger, 'recorder');
    for (const instance of ['recorder_0', 'recorder_1']) {
      const mine = runs.filter((r) => r.instance === instance);
      assert.equal(mine.length, 4, `${instance}: zeros twice, random once, file once`);
      const [zeros1, zeros2, random, file] = mine as [Execution, Execution, Execution, Execution];
      for (const zeros of [zeros1, zeros2]) {
        assert.deepEqual(zeros.requests, [
          { x: [0, 0, 0, 0], xs: [1, 4], t: ['', ''], ts: [1, 2] },
          { x: [0, 0, 0, 0], xs: [1, 4], t: ['', ''], ts: [1, 2] },
        ], 'batch_size 2: two requests of batch size 1, run together');
      }
      assert.equal(random.requests.length, 1);
      assert.deepEqual([random.requests[0]!.xs, random.requests[0]!.x.length, random.requests[0]!.ts, random.requests[0]!.t], [[1, 4], 4, [1, 3], ['', '', '']]);
      assert.deepEqual(file.requests, [{ x: [7, -1, 2 ** 30, 42], xs: [1, 4], t: ['hi', 'abc'], ts: [1, 2] }]);
    }
    const warmupLines = logger.lines.filter((l) => / is running warmup sample /.test(l));
    assert.equal(warmupLines.length, 8);
    assert.ok(warmupLines.includes("info model 'recorder' instance recorder_1 is running warmup sample 'zeros' for iteration 2 of 2"));
    const ready = logger.lines.findIndex((l) => l.includes("successfully loaded 'recorder'"));
    assert.ok(ready > logger.lines.lastIndexOf(warmupLines.at(-1)!), 'the version turned READY after its warmup');

    const stats = engine.modelStatistics('recorder').model_stats[0]!;
    assert.deepEqual([stats.execution_count, stats.inference_count, stats.inference_stats.success.count, stats.batch_stats.length], [0, 0, 0, 0],
      'warmup does not show in the statistics');
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});

test('a model loading with warmup is not ready, and answers nothing, until its warmup is over', async () => {
  const root = await makeRepository({});
  await writeScript(root, 'slow', 1, recorderScript({ slowMs: 300 }));
  await writeFile(join(root, 'slow', 'config.pbtxt'), scriptConfig({
    ...RECORDER_IO,
    extra: `model_warmup [ { name: "zeros" batch_size: 1 count: 3 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] zero_data: true')}, ${input('T', 'data_type: TYPE_STRING dims: [ 1 ] zero_data: true')} ] } ]`,
  }));
  const logger = capturingLogger();
  const fixture = await startHttp(root, { logger, modelControlMode: 'explicit', startupModels: [] });
  try {
    const load = fetch(`${fixture.url}/v2/repository/models/slow/load`, { method: 'POST' });
    await waitForLogLine(logger, "is running warmup sample 'zeros' for iteration 1", 10_000);
    assert.notEqual((await fetch(`${fixture.url}/v2/models/slow/ready`)).status, 200, 'not ready while warming up');
    const index = await (await fetch(`${fixture.url}/v2/repository/index`, { method: 'POST' })).json() as Array<{ name: string; state: string }>;
    assert.notEqual(index.find((e) => e.name === 'slow')?.state, 'READY');

    const request = () => fetch(`${fixture.url}/v2/models/slow/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 4], data: [1, 2, 3, 4] }, { name: 'T', datatype: 'BYTES', shape: [1, 1], data: ['q'] }] }),
    });
    const refused = await request();
    assert.notEqual(refused.status, 200);
    assert.match((await refused.json() as { error: string }).error, /'slow'/);
    assert.equal(logger.lines.some((l) => l.includes("successfully loaded 'slow'")), false, 'refused while the warmup was still running');

    assert.equal((await load).status, 200);
    const answer = await request();
    assert.equal(answer.status, 200);
    assert.deepEqual((await answer.json() as { outputs: Array<{ data: number[] }> }).outputs[0]!.data, [1, 2, 3, 4]);
    const runs = executions(logger, 'slow');
    assert.deepEqual(runs.map((r) => r.requests[0]!.x), [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4]], 'the model ran the warmup, then only the request made once READY');
    assert.equal((await fetch(`${fixture.url}/v2/models/slow/ready`)).status, 200);
    const stats = await (await fetch(`${fixture.url}/v2/models/slow/stats`)).json() as { model_stats: Array<{ execution_count: number; inference_stats: { success: { count: number } } }> };
    assert.deepEqual([stats.model_stats[0]!.execution_count, stats.model_stats[0]!.inference_stats.success.count], [1, 1], 'only the request counts');
  } finally {
    await fixture.close();
    await removeRepository(root);
  }
});

test('a failing warmup sample leaves the version UNAVAILABLE, naming the sample and the error', async () => {
  const root = await makeRepository({});
  await writeScript(root, 'failing', 1, recorderScript({ fail: true }));
  await writeFile(join(root, 'failing', 'config.pbtxt'), scriptConfig({
    ...RECORDER_IO,
    extra: `model_warmup [ { name: "boom" batch_size: 1 inputs [ ${input('X', 'data_type: TYPE_INT32 dims: [ 4 ] zero_data: true')}, ${input('T', 'data_type: TYPE_STRING dims: [ 1 ] zero_data: true')} ] } ]`,
  }));
  const logger = capturingLogger();
  const fixture = await startHttp(root, { logger, strictReadiness: false });
  try {
    const reason = /^warmup sample 'boom' failed on instance failing_0: .*execute\(\) threw: no zeros here/;
    const index = await (await fetch(`${fixture.url}/v2/repository/index`, { method: 'POST' })).json() as Array<{ name: string; version: string; state: string; reason: string }>;
    const entry = index.find((e) => e.name === 'failing')!;
    assert.deepEqual([entry.version, entry.state], ['1', 'UNAVAILABLE']);
    assert.match(entry.reason, reason);
    assert.notEqual((await fetch(`${fixture.url}/v2/models/failing/ready`)).status, 200);
    const res = await fetch(`${fixture.url}/v2/models/failing/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 4], data: [1, 2, 3, 4] }, { name: 'T', datatype: 'BYTES', shape: [1, 1], data: ['q'] }] }),
    });
    assert.notEqual(res.status, 200);
    assert.match((await res.json() as { error: string }).error, /'failing' has no available versions \(version 1: warmup sample 'boom' failed/);
    assert.ok(logger.lines.some((l) => /^error failed to load 'failing' version 1: warmup sample 'boom' failed/.test(l)));
  } finally {
    await fixture.close();
    await removeRepository(root);
  }
});

test('ONNX models warm up too, a stateful one as one-request sequences, and serve normally after', async () => {
  const root = await makeRepository({
    add_sub: {
      config: addSubConfig('add_sub', `instance_group [ { count: 2 kind: KIND_CPU } ]
model_warmup [ { name: "w" batch_size: 8 count: 2 inputs [
  { key: "INPUT0" value: { data_type: TYPE_INT32 dims: [ 16 ] random_data: true } },
  { key: "INPUT1" value: { data_type: TYPE_INT32 dims: [ 16 ] zero_data: true } } ] } ]
`),
      versions: { 1: addSubModel() },
    },
    accumulator: {
      config: `max_batch_size: 4
sequence_batching {
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
}
model_warmup [ { name: "one step" batch_size: 4 inputs { key: "INPUT" value: { data_type: TYPE_FP32 dims: [ 1 ] random_data: true } } } ]
`,
      versions: { 1: stateAccumulatorControlsModel('UINT64') },
    },
  });
  const logger = capturingLogger();
  const engine = await startEngine(root, { logger });
  try {
    assert.equal(engine.isModelReady('add_sub'), true, engine.loadFailures().map((f) => f.reason).join('; '));
    assert.equal(engine.isModelReady('accumulator'), true, engine.loadFailures().map((f) => f.reason).join('; '));
    assert.equal(logger.lines.filter((l) => /model 'add_sub' instance add_sub_\d is running warmup sample 'w'/.test(l)).length, 4);
    assert.equal(logger.lines.filter((l) => /model 'accumulator' instance \S+ is running warmup sample 'one step' for iteration 1 of 1/.test(l)).length, 1);
    const answer = await engine.infer({ modelName: 'add_sub', inputs: [int32x16('INPUT0', 1), int32x16('INPUT1')] });
    assert.equal(answer.outputs.length, 2);
    for (const model of ['add_sub', 'accumulator']) {
      const stats = engine.modelStatistics(model).model_stats[0]!;
      assert.equal(stats.execution_count, model === 'add_sub' ? 1 : 0, `${model}: warmup executions are not counted`);
    }
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});

test('model_warmup on an ensemble is refused: its steps warm up in their own configs', async () => {
  const root = await makeRepository({
    add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel() } },
    pipe: {
      config: `platform: "ensemble"
max_batch_size: 8
ensemble_scheduling { step [ { model_name: "add_sub" model_version: -1
  input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT0" value: "SUM" } } ] }
model_warmup [ { name: "w" batch_size: 1 } ]
`,
      versions: {},
    },
  });
  const engine = await startEngine(root, { strictReadiness: false });
  try {
    const failure = engine.loadFailures().find((f) => f.name === 'pipe');
    assert.match(failure?.reason ?? '', /config\.pbtxt:5: model_warmup: is set on ensemble 'pipe', which runs no model of its own\. Fix: remove it; set model_warmup in the config of the step models/);
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});
