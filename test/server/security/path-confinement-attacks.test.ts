/**
 * Attacks on the paths a load request can name (issue 15, class 8): a
 * config override's initial_state data_file, default_model_filename, an
 * output's label_filename, a warmup input_data_file, and the names of
 * uploaded `file:` overrides; plus symbolic links planted in the repository
 * (a data file, a model file, a version folder, a config file) that lead
 * out of the model's folder. Over HTTP and gRPC, each is refused with 400 /
 * INVALID_ARGUMENT naming the field, no answer carries a byte of the file
 * it points at, and the server keeps serving, its memory bounded.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { addSubModel, stateAccumulatorModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient } from '../../helpers/grpc-raw-client.ts';

/** What the secret file outside the repository holds; no answer may carry it. */
const SECRET = `top-secret-${randomUUID()}`;
/** The first line of /etc/passwd starts with this on any Linux host. */
const PASSWD = /root:x?:?0:0/;
/** RSS may grow this much over the whole attack run (the server is this process). */
const RSS_GROWTH_LIMIT = 200 * 1024 * 1024;

const fp32 = (name: string, extra: Record<string, unknown> = {}) => ({ name, data_type: 'TYPE_FP32', dims: [1], ...extra });

/** The `seeded` model's config as Triton's JSON, with an initial state read from `dataFile` unless it is undefined. */
function seededConfig(options: { dataFile?: string; extra?: Record<string, unknown>; labels?: string } = {}): string {
  const initial = options.dataFile === undefined
    ? { data_type: 'TYPE_FP32', dims: [1], name: 'init', zero_data: true }
    : { data_type: 'TYPE_FP32', dims: [1], name: 'init', data_file: options.dataFile };
  return JSON.stringify({
    name: 'seeded', platform: 'onnxruntime_onnx', max_batch_size: 2,
    ...(options.labels !== undefined ? { output: [fp32('OUTPUT', { label_filename: options.labels })] } : {}),
    sequence_batching: { state: [{ input_name: 'STATE_IN', output_name: 'STATE_OUT', data_type: 'TYPE_FP32', dims: [1], initial_state: [initial] }] },
    ...options.extra,
  });
}

const warmupFrom = (file: string) => ({
  model_warmup: [{ name: 'w', batch_size: 1, inputs: { INPUT: { data_type: 'TYPE_FP32', dims: [1], input_data_file: file } } }],
});

interface Attack {
  readonly title: string;
  readonly model: string;
  /** parameters.config, when the attack sends one. */
  readonly config?: string;
  /** file:<path> overrides. */
  readonly files?: Readonly<Record<string, Uint8Array>>;
  /** What the refusal must say: the field, and why. */
  readonly expect: RegExp;
}

const DATA_FILE = 'sequence_batching\\.state\\[0\\]\\.initial_state\\.data_file';
const ATTACKS: readonly Attack[] = [
  { title: "data_file with '..'", model: 'seeded', config: seededConfig({ dataFile: '../../outside/secret.bin' }),
    expect: new RegExp(`${DATA_FILE}: '\\.\\./\\.\\./outside/secret\\.bin' contains '\\.\\.'`) },
  { title: 'data_file /etc/passwd', model: 'seeded', config: seededConfig({ dataFile: '/etc/passwd' }),
    expect: new RegExp(`${DATA_FILE}: '/etc/passwd' is an absolute path`) },
  { title: 'data_file through a symbolic link out of the folder', model: 'seeded', config: seededConfig({ dataFile: 'leak.bin' }),
    expect: new RegExp(`${DATA_FILE}: 'leak\\.bin' leads out of the model folder through a symbolic link`) },
  { title: 'data_file with a NUL', model: 'seeded', config: seededConfig({ dataFile: 'hundred.bin\u0000/../../../etc/passwd' }),
    expect: new RegExp(`${DATA_FILE}: .* contains a NUL character`) },
  { title: "default_model_filename with '..'", model: 'seeded', config: seededConfig({ extra: { default_model_filename: '../../outside/model.onnx' } }),
    expect: /default_model_filename: '\.\.\/\.\.\/outside\/model\.onnx' contains '\.\.'/ },
  { title: 'default_model_filename /etc/passwd', model: 'seeded', config: seededConfig({ extra: { default_model_filename: '/etc/passwd' } }),
    expect: /default_model_filename: '\/etc\/passwd' is an absolute path/ },
  { title: 'default_model_filename through a symbolic link', model: 'seeded', config: seededConfig({ extra: { default_model_filename: 'link.onnx' } }),
    expect: /version 1: default_model_filename 'link\.onnx' leads out of the model folder through a symbolic link/ },
  { title: 'a script default_model_filename through a symbolic link (its parse error would quote the file)', model: 'seeded',
    config: JSON.stringify({ name: 'seeded', backend: 'typescript', max_batch_size: 0, default_model_filename: 'evil.ts', input: [fp32('X')], output: [fp32('Y')] }),
    expect: /version 1: default_model_filename 'evil\.ts' leads out of the model folder through a symbolic link/ },
  { title: 'a script default_model_filename outside the repository', model: 'seeded',
    config: JSON.stringify({ name: 'seeded', backend: 'typescript', max_batch_size: 0, default_model_filename: '../../outside/evil.ts', input: [fp32('X')], output: [fp32('Y')] }),
    expect: /default_model_filename: '\.\.\/\.\.\/outside\/evil\.ts' contains '\.\.'/ },
  { title: "label_filename with '..'", model: 'seeded', config: seededConfig({ labels: '../outside/secret.bin' }),
    expect: /output\[0\]\.label_filename: '\.\.\/outside\/secret\.bin' contains '\.\.'/ },
  { title: 'label_filename through a symbolic link', model: 'seeded', config: seededConfig({ labels: 'labels.txt' }),
    expect: /output\[0\]\.label_filename: 'labels\.txt' leads out of the model folder through a symbolic link/ },
  { title: 'warmup input_data_file /etc/passwd', model: 'seeded', config: seededConfig({ extra: warmupFrom('/etc/passwd') }),
    expect: /model_warmup\[0\]\.inputs\[0\]\.value\.input_data_file: '\/etc\/passwd' is an absolute path/ },
  { title: 'warmup input_data_file through a symbolic link', model: 'seeded', config: seededConfig({ extra: warmupFrom('leak.bin') }),
    expect: /model_warmup\[0\]\.inputs\[0\]\.value\.input_data_file: 'leak\.bin' leads out of the model folder through a symbolic link/ },
  { title: "a file: override named with '..'", model: 'uploaded', config: seededConfig(), files: { '1/../../escape.onnx': stateAccumulatorModel() },
    expect: /file override 'file:1\/\.\.\/\.\.\/escape\.onnx' contains '\.\.'/ },
  { title: 'a file: override with an absolute name', model: 'uploaded', config: seededConfig(), files: { '/etc/cron.d/x': stateAccumulatorModel() },
    expect: /file override 'file:\/etc\/cron\.d\/x' is an absolute path/ },
  { title: 'a file: override with a NUL', model: 'uploaded', config: seededConfig(), files: { '1/model.onnx\u0000.txt': stateAccumulatorModel() },
    expect: /file override 'file:1\/model\.onnx.*' contains a NUL character/ },
  { title: 'uploaded files with a data_file out of their folder', model: 'uploaded', config: seededConfig({ dataFile: '../../../../etc/passwd', extra: { name: 'uploaded' } }),
    files: { '1/model.onnx': stateAccumulatorModel() }, expect: new RegExp(`${DATA_FILE}: '\\.\\./\\.\\./\\.\\./\\.\\./etc/passwd' contains '\\.\\.'`) },
  { title: 'a version folder that is a symbolic link out of the model folder', model: 'linked_version',
    expect: /version 1: version folder '1' leads out of the model folder through a symbolic link/ },
  { title: 'a config file that is a symbolic link out of the model folder', model: 'linked_config',
    expect: /linked_config\/config\.pbtxt leads out of the model folder through a symbolic link/ },
];

describe('paths named by a load request or planted in the repository stay in the model folder', () => {
  let root: string;
  let outside: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    outside = await mkdtemp(join(tmpdir(), 'switchyard-outside-'));
    await writeFile(join(outside, 'secret.bin'), `${SECRET}\n`);
    await writeFile(join(outside, 'evil.ts'), `${SECRET} this is not a script\n`);
    await writeFile(join(outside, 'model.onnx'), stateAccumulatorModel());
    await writeFile(join(outside, 'config.pbtxt'), `${SECRET}\n`);
    await mkdir(join(outside, 'version'));
    await writeFile(join(outside, 'version', 'model.onnx'), addSubModel());
    root = await makeRepository({
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      seeded: { versions: { 1: stateAccumulatorModel() } },
      linked_version: { config: addSubConfig('linked_version'), versions: {} },
      linked_config: { versions: { 1: addSubModel() } },
    });
    const seeded = join(root, 'seeded');
    await mkdir(join(seeded, 'initial_state'));
    await writeFile(join(seeded, 'initial_state', 'hundred.bin'), Buffer.from(Float32Array.of(100).buffer));
    await symlink(join(outside, 'secret.bin'), join(seeded, 'initial_state', 'leak.bin'));
    await mkdir(join(seeded, 'warmup'));
    await symlink(join(outside, 'secret.bin'), join(seeded, 'warmup', 'leak.bin'));
    await symlink(join(outside, 'secret.bin'), join(seeded, 'labels.txt'));
    await symlink(join(outside, 'model.onnx'), join(seeded, '1', 'link.onnx'));
    await symlink(join(outside, 'evil.ts'), join(seeded, '1', 'evil.ts'));
    await symlink(join(outside, 'version'), join(root, 'linked_version', '1'));
    // Reading the folder's fingerprint must not walk the host through a link to '/'.
    await symlink('/', join(seeded, 'hostroot'));
    await symlink(join(outside, 'config.pbtxt'), join(root, 'linked_config', 'config.pbtxt'));
    fixture = await startBoth(root, { modelControlMode: 'explicit', startupModels: ['add_sub'] });
    client = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
    await rm(outside, { recursive: true, force: true });
  });

  const loadOverHttp = async (attack: Attack): Promise<{ code: number; message: string }> => {
    const parameters: Record<string, string> = {
      ...(attack.config !== undefined ? { config: attack.config } : {}),
      ...Object.fromEntries(Object.entries(attack.files ?? {}).map(([path, bytes]) => [`file:${path}`, Buffer.from(bytes).toString('base64')])),
    };
    const res = await fetch(`${fixture.httpUrl}/v2/repository/models/${attack.model}/load`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ parameters }),
    });
    const text = await res.text();
    return { code: res.status, message: (JSON.parse(text) as { error?: string }).error ?? text };
  };

  const loadOverGrpc = async (attack: Attack): Promise<{ code: number; message: string }> => {
    const { error } = await client.call('RepositoryModelLoad', {
      model_name: attack.model,
      parameters: {
        ...(attack.config !== undefined ? { config: { string_param: attack.config } } : {}),
        ...Object.fromEntries(Object.entries(attack.files ?? {}).map(([path, bytes]) => [`file:${path}`, { bytes_param: bytes }])),
      },
    });
    return { code: error?.code ?? status.OK, message: error?.details ?? '' };
  };

  const inferAddSub = async (): Promise<number[]> => {
    const a = Array.from({ length: 16 }, (_, i) => i);
    const res = await fetch(`${fixture.httpUrl}/v2/models/add_sub/infer`, {
      method: 'POST', body: JSON.stringify({ inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data: a })) }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { outputs: Array<{ name: string; data: number[] }> }).outputs.find((o) => o.name === 'OUTPUT0')!.data;
  };

  for (const [protocol, load, refused] of [['HTTP', loadOverHttp, 400], ['gRPC', loadOverGrpc, status.INVALID_ARGUMENT]] as const) {
    test(`over ${protocol}: every attack is refused naming the field, never quoting the file, and the server keeps serving`, async (t) => {
      const rssBefore = process.memoryUsage().rss;
      for (const attack of ATTACKS) {
        const { code, message } = await load(attack);
        assert.equal(code, refused, `${attack.title}: ${message}`);
        assert.match(message, attack.expect, attack.title);
        assert.ok(!message.includes(SECRET), `${attack.title}: the answer quotes the secret file: ${message}`);
        assert.doesNotMatch(message, PASSWD, `${attack.title}: the answer quotes /etc/passwd`);
        assert.ok(message.length < 2000, `${attack.title}: the message is bounded (${message.length} chars)`);
      }
      // Nothing the attacks named was loaded, and the model that serves still answers.
      assert.equal(fixture.engine.isModelReady('seeded'), false);
      assert.equal(fixture.engine.isModelReady('uploaded'), false);
      assert.deepEqual(await inferAddSub(), Array.from({ length: 16 }, (_, i) => 2 * i));
      const growth = process.memoryUsage().rss - rssBefore;
      t.diagnostic(`RSS growth: ${(growth / 1048576).toFixed(1)} MiB`);
      assert.ok(growth < RSS_GROWTH_LIMIT, `RSS grew ${growth} bytes over the attacks; the bound is ${RSS_GROWTH_LIMIT}`);
    });
  }

  test('the same model loads when its paths stay inside its folder, and its initial state is the in-folder file', async () => {
    const res = await fetch(`${fixture.httpUrl}/v2/repository/models/seeded/load`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: seededConfig({ dataFile: 'hundred.bin' }) } }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const answer = await fetch(`${fixture.httpUrl}/v2/models/seeded/infer`, {
      method: 'POST',
      body: JSON.stringify({ parameters: { sequence_id: 7, sequence_start: true, sequence_end: true }, inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], data: [1] }] }),
    });
    assert.equal(answer.status, 200);
    const body = await answer.json() as { outputs: Array<{ name: string; data: number[] }> };
    assert.deepEqual(body.outputs.find((o) => o.name === 'OUTPUT')!.data, [101]);
  });
});
