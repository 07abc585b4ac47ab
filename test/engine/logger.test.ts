/**
 * The pino-backed server logger on its own: start options, the three line
 * layouts, the live verbose switch seen by pino's child loggers, the log
 * file (created with its folder, appended to), and the update rules.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger, silentLogger } from '../../engine/logger.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-logger-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('options map to Triton\'s settings; the defaults are Triton\'s', () => {
  const plain = createLogger();
  assert.deepEqual(plain.settings(), { log_file: '', log_info: true, log_warning: true, log_error: true, log_verbose_level: 0, log_format: 'default' });
  assert.equal(plain.verboseEnabled, false);
  const custom = createLogger({ verbose: 2, info: false, warning: false, error: false, format: 'json', file: join(dir, 'custom.log') });
  assert.deepEqual(custom.settings(), {
    log_file: join(dir, 'custom.log'), log_info: false, log_warning: false, log_error: false, log_verbose_level: 2, log_format: 'json',
  });
  assert.equal(custom.verboseEnabled, true);
  custom.close();
});

test('the file and its folder are created, earlier content is kept, and each layout is written as documented', async () => {
  const file = join(dir, 'nested', 'folder', 'server.log');
  const first = createLogger({ file });
  first.info('first run');
  first.close();
  const logger = createLogger({ file, verbose: 1 });
  logger.info('plain info');
  logger.verbose('plain verbose');
  logger.update({ log_format: 'ISO8601' });
  logger.error('iso error');
  logger.update({ log_format: 'json' });
  logger.warn('json warn');
  logger.close();
  const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
  assert.equal(lines.length, 5);
  assert.match(lines[0]!, new RegExp(`^I\\d{4} \\d\\d:\\d\\d:\\d\\d\\.\\d{6} ${process.pid} switchyard\\] first run$`));
  assert.match(lines[1]!, /^I\d{4} [\d:.]+ \d+ switchyard\] plain info$/);
  assert.match(lines[2]!, /^I\d{4} [\d:.]+ \d+ switchyard\] plain verbose$/, 'verbose lines carry I, as in Triton');
  assert.match(lines[3]!, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ E ${process.pid} switchyard\\] iso error$`));
  const json = JSON.parse(lines[4]!) as Record<string, unknown>;
  assert.equal(json['level'], 'warn');
  assert.equal(json['msg'], 'json warn');
  assert.equal(json['pid'], process.pid);
  // Both text layouts give UTC: the default layout's MMDD is the ISO line's month and day.
  const iso = /^\d{4}-(\d\d)-(\d\d)T/.exec(lines[3]!)!;
  assert.equal(lines[2]!.slice(1, 5), `${iso[1]}${iso[2]}`);
  assert.equal(iso[1]! + iso[2]!, `${String(new Date().getUTCMonth() + 1).padStart(2, '0')}${String(new Date().getUTCDate()).padStart(2, '0')}`);
});

test('the verbose level changes pino\'s threshold live, for child loggers made before the change too', async () => {
  const file = join(dir, 'children.log');
  const logger = createLogger({ file });
  const child = logger.pino.child({ reqId: 'r1' }, {});
  child.debug('hidden');
  logger.update({ log_verbose_level: 1 });
  assert.equal(logger.verboseEnabled, true);
  child.debug('shown');
  logger.update({ log_verbose_level: 0 });
  child.debug('hidden again');
  logger.verbose('hidden too');
  logger.close();
  const text = await readFile(file, 'utf8');
  assert.match(text, /switchyard\] shown$/m);
  assert.ok(!text.includes('hidden'));
});

test('an error with no message text is logged with the error\'s message', async () => {
  const file = join(dir, 'err.log');
  const logger = createLogger({ file });
  logger.pino.error({ err: new Error('boom') });
  logger.close();
  assert.match(await readFile(file, 'utf8'), /^E\d{4} [\d:.]+ \d+ switchyard\] boom$/m);
});

test('a log file that cannot be opened is a clear error at start', async () => {
  const notAFolder = join(dir, 'plain-file');
  await writeFile(notAFolder, 'x');
  assert.throws(() => createLogger({ file: join(notAFolder, 'server.log') }), /^Error: cannot open log file '.*plain-file\/server\.log': /);
});

test('update checks every entry before applying any', () => {
  const logger = createLogger();
  assert.throws(() => logger.update({ log_info: false, log_verbose_level: -2 }), /invalid log setting 'log_verbose_level'/);
  assert.equal(logger.settings().log_info, true);
  assert.throws(() => logger.update({ log_file: '/elsewhere' }), (err: { code?: string }) => err.code === 'LOG_FILE_FIXED');
  assert.deepEqual(logger.update({ log_file: '', log_verbose_level: 4294967295 }).log_verbose_level, 4294967295);
});

test('silentLogger stays the same no-op Logger', () => {
  assert.equal(silentLogger.verboseEnabled, false);
  silentLogger.error('nothing');
  silentLogger.verbose('nothing');
});
