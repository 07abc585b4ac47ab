/**
 * Triton's logging extension over real HTTP and gRPC ports, with the log
 * written to a file (--log-file) that the tests read back: GET and POST
 * /v2/logging, the LogSettings RPC, bad settings refused whole, and changes
 * taking effect on the lines written at once (verbose request lines, the
 * severity switches, the three formats).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { addSubModel } from '../../../generator/models.ts';
import { createLogger, type ServerLogger } from '../../../engine/logger.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';

const DEFAULTS = { log_info: true, log_warning: true, log_error: true, log_verbose_level: 0, log_format: 'default' };

let root: string;
let dir: string;
let logFile: string;
let logger: ServerLogger;
let fixture: DualFixture;
let client: RawGrpcClient;

before(async () => {
  root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } } });
  dir = await mkdtemp(join(tmpdir(), 'switchyard-logging-'));
  logFile = join(dir, 'server.log');
  logger = createLogger({ file: logFile });
  fixture = await startBoth(root, { logger });
  client = new RawGrpcClient(fixture.grpcAddress);
});
after(async () => {
  client.close();
  await fixture.close();
  logger.close();
  await removeRepository(root);
  await rm(dir, { recursive: true, force: true });
});

/** Back to the start settings before each test, so they do not depend on each other. */
beforeEach(() => {
  logger.update({ ...DEFAULTS });
});

const log = (): Promise<string> => readFile(logFile, 'utf8');

async function post(body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${fixture.httpUrl}/v2/logging`, { method: 'POST', body });
  return { status: res.status, json: await res.json() as Record<string, unknown> };
}

/** A request with a path no other test uses, so its verbose line can be looked for. */
async function marked(tag: string): Promise<string> {
  const path = `/v2/models/add_sub/ready?mark=${tag}`;
  assert.equal((await fetch(`${fixture.httpUrl}${path}`)).status, 200);
  return path;
}

describe('GET and POST /v2/logging', () => {
  test('GET answers Triton\'s settings object, with the file given at start', async () => {
    const res = await fetch(`${fixture.httpUrl}/v2/logging`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), { log_file: logFile, ...DEFAULTS });
  });

  test('POST with a subset changes those settings and answers all of them; null leaves one alone', async () => {
    const { status, json } = await post('{"log_info":false,"log_verbose_level":2,"log_warning":null}');
    assert.equal(status, 200);
    assert.deepEqual(json, { log_file: logFile, ...DEFAULTS, log_info: false, log_verbose_level: 2 });
    assert.deepEqual(await (await fetch(`${fixture.httpUrl}/v2/logging`)).json(), json);
    assert.equal(logger.verboseEnabled, true);
    assert.deepEqual((await post('')).json, json, 'an empty body changes nothing');
  });

  test('bad settings are 400 naming the setting, and a request with one bad setting changes nothing', async () => {
    const cases: ReadonlyArray<readonly [body: string, error: RegExp]> = [
      ['{"log_info":"yes"}', /^invalid log setting 'log_info': expected true or false, got "yes"$/],
      ['{"log_error":1}', /^invalid log setting 'log_error': expected true or false, got 1$/],
      ['{"log_verbose_level":-1}', /^invalid log setting 'log_verbose_level': expected an integer from 0 to 4294967295, got -1$/],
      ['{"log_verbose_level":1.5}', /^invalid log setting 'log_verbose_level': .* got 1\.5$/],
      ['{"log_verbose_level":true}', /^invalid log setting 'log_verbose_level': .* got true$/],
      ['{"log_format":"xml"}', /^invalid log setting 'log_format': expected one of "default", "ISO8601", "json", got "xml"$/],
      ['{"log_format":["json"]}', /^invalid log setting 'log_format': .* got \["json"\]$/],
      ['{"log_verbos_level":1}', /^invalid log setting 'log_verbos_level': unknown setting; did you mean 'log_verbose_level'\?/],
      ['{"log_info":false,"log_colour":true}', /^invalid log setting 'log_colour': unknown setting/],
      ['{"log_info":false,"log_format":"xml"}', /^invalid log setting 'log_format'/],
      ['{"log_file":5}', /^invalid log setting 'log_file': expected a string, got 5$/],
      ['not json', /^failed to parse the request JSON buffer/],
      ['[1]', /must be a JSON object/],
    ];
    for (const [body, error] of cases) {
      const { status, json } = await post(body);
      assert.equal(status, 400, body);
      assert.match(String(json['error']), error, body);
    }
    assert.deepEqual(logger.settings(), { log_file: logFile, ...DEFAULTS }, 'nothing changed');
  });

  test('the log file cannot be moved over the network (501, Triton\'s wording); naming the current one is fine', async () => {
    const moved = await post(JSON.stringify({ log_file: join(dir, 'elsewhere.log'), log_info: false }));
    assert.equal(moved.status, 501);
    assert.match(String(moved.json['error']), /^log file location can not be updated through network protocol/);
    assert.equal(logger.settings().log_info, true);
    const same = await post(JSON.stringify({ log_file: logFile, log_info: false }));
    assert.equal(same.status, 200);
    assert.equal(same.json['log_info'], false);
  });
});

describe('changes take effect on the next line', () => {
  test('verbose request lines appear once log_verbose_level > 0, and stop when it is 0 again', async () => {
    const before = await marked('quiet-1');
    assert.equal(logger.verboseEnabled, false);
    assert.equal((await post('{"log_verbose_level":1}')).status, 200);
    assert.equal(logger.verboseEnabled, true);
    const loud = await marked('loud');
    assert.equal((await post('{"log_verbose_level":0}')).status, 200);
    const after = await marked('quiet-2');
    const text = await log();
    assert.ok(!text.includes(before), 'no request line before verbose was turned on');
    assert.match(text, new RegExp(`^I\\d{4} \\d\\d:\\d\\d:\\d\\d\\.\\d{6} ${process.pid} switchyard\\] HTTP GET ${escape(loud)} 200 in [\\d.]+ ms$`, 'm'));
    assert.ok(!text.includes(after), 'no request line after verbose was turned off');
  });

  test('an inference request\'s verbose line names its request id', async () => {
    assert.equal((await post('{"log_verbose_level":1}')).status, 200);
    const body = JSON.stringify({
      id: 'logged-request-7', inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, () => 1) },
      ],
    });
    const res = await fetch(`${fixture.httpUrl}/v2/models/add_sub/infer?mark=ids`, { method: 'POST', body });
    assert.equal(res.status, 200);
    assert.equal((await post('{"log_verbose_level":0}')).status, 200);
    const text = await log();
    assert.match(text, /HTTP POST \/v2\/models\/add_sub\/infer\?mark=ids 200 in [\d.]+ ms, request id 'logged-request-7'$/m);
  });

  test('log_info, log_warning and log_error switch their severities off and on', async () => {
    await post('{"log_info":false,"log_warning":false,"log_error":false}');
    logger.info('info-off');
    logger.warn('warn-off');
    logger.error('error-off');
    await post('{"log_info":true,"log_warning":true,"log_error":true}');
    logger.info('info-on');
    logger.warn('warn-on');
    logger.error('error-on');
    const text = await log();
    for (const word of ['info-off', 'warn-off', 'error-off']) assert.ok(!text.includes(word), word);
    assert.match(text, /^I\d{4} [\d:.]+ \d+ switchyard\] info-on$/m);
    assert.match(text, /^W\d{4} [\d:.]+ \d+ switchyard\] warn-on$/m);
    assert.match(text, /^E\d{4} [\d:.]+ \d+ switchyard\] error-on$/m);
  });

  test('log_format switches between Triton\'s two layouts and pino JSON lines', async () => {
    await post('{"log_format":"ISO8601"}');
    logger.warn('iso-line');
    await post('{"log_format":"json","log_verbose_level":1}');
    logger.verbose('json-verbose-line');
    const path = await marked('json');
    await post('{"log_format":"default"}');
    const lines = (await log()).split('\n');
    assert.ok(lines.some((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ W \d+ switchyard\] iso-line$/.test(l)), 'ISO8601 line');
    const json = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const verbose = json.find((l) => l['msg'] === 'json-verbose-line');
    assert.ok(verbose, 'the verbose line is JSON');
    assert.equal(verbose['level'], 'debug');
    assert.equal(verbose['pid'], process.pid);
    assert.equal(typeof verbose['time'], 'number');
    const request = json.find((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith(`HTTP GET ${path} 200`));
    assert.ok(request, 'fastify\'s request line goes through the same pino instance');
    assert.equal(typeof request['reqId'], 'string');
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('the LogSettings RPC', () => {
  const settingsOf = (response: Message | undefined): Record<string, unknown> => Object.fromEntries(
    Object.entries(response!['settings'] as Record<string, Message>).map(([name, value]) => [name, value[value['parameter_choice'] as string]]),
  );

  test('an empty request answers every setting in the SettingValue member Triton uses for it', async () => {
    const { response, error } = await client.call('LogSettings', {});
    assert.equal(error, undefined);
    const settings = response!['settings'] as Record<string, Message>;
    assert.equal(settings['log_info']!['parameter_choice'], 'bool_param');
    assert.equal(settings['log_verbose_level']!['parameter_choice'], 'uint32_param');
    assert.equal(settings['log_format']!['parameter_choice'], 'string_param');
    assert.equal(settings['log_file']!['parameter_choice'], 'string_param');
    assert.deepEqual(settingsOf(response), { log_file: logFile, ...DEFAULTS });
  });

  test('an update applies and is seen over HTTP too', async () => {
    const { response } = await client.call('LogSettings', {
      settings: { log_verbose_level: { uint32_param: 3 }, log_warning: { bool_param: false }, log_format: { string_param: 'ISO8601' } },
    });
    const expected = { log_file: logFile, ...DEFAULTS, log_verbose_level: 3, log_warning: false, log_format: 'ISO8601' };
    assert.deepEqual(settingsOf(response), expected);
    assert.deepEqual(await (await fetch(`${fixture.httpUrl}/v2/logging`)).json(), expected);
    assert.equal(logger.verboseEnabled, true);
  });

  test('a value of the wrong kind or an unknown setting is INVALID_ARGUMENT naming it; the file is UNIMPLEMENTED', async () => {
    const cases: ReadonlyArray<readonly [settings: Message, code: number, error: RegExp]> = [
      [{ log_info: { string_param: 'true' } }, grpc.status.INVALID_ARGUMENT, /^invalid log setting 'log_info': expected true or false, got "true"$/],
      [{ log_verbose_level: { bool_param: true } }, grpc.status.INVALID_ARGUMENT, /^invalid log setting 'log_verbose_level'/],
      [{ log_format: { string_param: 'xml' } }, grpc.status.INVALID_ARGUMENT, /^invalid log setting 'log_format'/],
      [{ log_nonsense: { bool_param: true } }, grpc.status.INVALID_ARGUMENT, /^invalid log setting 'log_nonsense': unknown setting/],
      [{ log_file: { string_param: '/tmp/other.log' } }, grpc.status.UNIMPLEMENTED, /^log file location can not be updated through network protocol/],
    ];
    for (const [settings, code, error] of cases) {
      const outcome = await client.call('LogSettings', { settings: { log_info: { bool_param: false }, ...settings } });
      assert.equal(outcome.error?.code, code, JSON.stringify(settings));
      assert.match(outcome.error.details, error);
    }
    assert.deepEqual(logger.settings(), { log_file: logFile, ...DEFAULTS }, 'nothing changed');
  });

  test('a setting with no value chosen leaves it alone', async () => {
    const { response } = await client.call('LogSettings', { settings: { log_info: {} } });
    assert.equal(settingsOf(response)['log_info'], true);
  });
});

test('ServerMetadata lists the logging extension', async () => {
  const body = await (await fetch(`${fixture.httpUrl}/v2`)).json() as { extensions: string[] };
  assert.ok(body.extensions.includes('logging'));
});

test('a server with a fixed logger answers 501 / UNIMPLEMENTED rather than pretending', async () => {
  const plain = await startBoth(root);
  const plainClient = new RawGrpcClient(plain.grpcAddress);
  try {
    const res = await fetch(`${plain.httpUrl}/v2/logging`);
    assert.equal(res.status, 501);
    assert.match((await res.json() as { error: string }).error, /fixed logger/);
    const { error } = await plainClient.call('LogSettings', {});
    assert.equal(error?.code, grpc.status.UNIMPLEMENTED);
  } finally {
    plainClient.close();
    await plain.close();
  }
});
