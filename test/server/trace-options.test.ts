import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readTraceOptions, TraceOptionError, type TraceFlags } from '../../server/trace-options.ts';

const read = (config: string[], rest: Partial<TraceFlags> = {}) => readTraceOptions({ config, level: [], ...rest });
const values = (...config: string[]) => read(config).startup.values;

function refused(flags: Partial<TraceFlags> & { config?: string[] }, message: string): void {
  assert.throws(() => readTraceOptions({ config: [], level: [], ...flags }),
    (err: unknown) => err instanceof TraceOptionError && err.message === message, `${JSON.stringify(flags)} -> ${message}`);
}

test('no trace flag: triton mode, level OFF, rate 1000, count -1, log frequency 0, no file, nothing to warn about', () => {
  assert.deepEqual(read([]), {
    startup: { mode: 'triton', values: { level: [], rate: 1000, count: -1, logFrequency: 0, file: '' }, modeSettings: [] },
    warnings: [],
  });
});

test('global settings: rate, count, level and mode, the last given winning; other global keys ignored', () => {
  assert.deepEqual(values('rate=1', 'count=5', 'level=TIMESTAMPS'), { level: ['TIMESTAMPS'], rate: 1, count: 5, logFrequency: 0, file: '' });
  assert.equal(values('rate=7', 'rate=0').rate, 0, 'rate 0 is allowed at start (only propagated contexts would be traced)');
  assert.equal(values('count=-1').count, -1);
  assert.equal(values('count=-7').count, -7, 'tritonserver has no lower bound on the command line');
  assert.equal(values('rate= 12 ').rate, 12);
  assert.equal(values('rate=2147483647').rate, 2147483647);
  assert.deepEqual(values('colour=blue', 'rate=3'), { ...values('rate=3') });
  assert.equal(read(['mode=OpenTelemetry']).startup.mode, 'opentelemetry');
  assert.equal(read(['mode=opentelemetry', 'mode=TRITON']).startup.mode, 'triton');
});

test('levels: tritonserver\'s words in any case, ORed in a fixed order, any OFF winning', () => {
  for (const word of ['timestamps', 'TIMESTAMPS', 'on', 'true', 'min', 'MAX']) assert.deepEqual(values(`level=${word}`).level, ['TIMESTAMPS'], word);
  assert.deepEqual(values('level=tensors').level, ['TENSORS']);
  assert.deepEqual(values('level=TENSORS', 'level=TIMESTAMPS').level, ['TIMESTAMPS', 'TENSORS']);
  for (const off of ['off', 'OFF', 'false']) {
    assert.deepEqual(values('level=TIMESTAMPS', `level=${off}`, 'level=TENSORS').level, [], `${off} wins wherever it is`);
  }
  assert.deepEqual(read(['level=TENSORS'], { level: ['timestamps'] }).startup.values.level, ['TIMESTAMPS', 'TENSORS'],
    'the deprecated flag and --trace-config are ORed, as tritonserver does');
  assert.deepEqual(read(['level=TIMESTAMPS'], { level: ['off'] }).startup.values.level, [], 'an OFF from the deprecated flag wins too');
});

test('triton mode: file and log-frequency apply, other keys are echoed, opentelemetry settings are ignored', () => {
  const options = read(['triton,file=/tmp/trace.json', 'TRITON,log-frequency=50', 'triton,foo=a=b', 'opentelemetry,url=localhost:4318/v1/traces', 'level=TIMESTAMPS']);
  assert.deepEqual(options.startup, {
    mode: 'triton',
    values: { level: ['TIMESTAMPS'], rate: 1000, count: -1, logFrequency: 50, file: '/tmp/trace.json' },
    modeSettings: [['foo', 'a=b']],
  });
  assert.deepEqual(options.warnings, []);
  assert.equal(values('triton,file=a', 'triton,file=b').file, 'b');
  assert.deepEqual(values('level=TIMESTAMPS'), { level: ['TIMESTAMPS'], rate: 1000, count: -1, logFrequency: 0, file: '' },
    'a level with no file still starts: it traces nothing');
});

test('opentelemetry mode: its keys in order, the batch span processor defaults after them, triton settings ignored, one warning', () => {
  const options = read([
    'level=TIMESTAMPS', 'rate=0', 'count=-1', 'mode=opentelemetry', 'opentelemetry,url=localhost:10000/v1/traces',
    'triton,file=/tmp/ignored.json', 'triton,log-frequency=3',
  ]);
  assert.deepEqual(options.startup, {
    mode: 'opentelemetry',
    values: { level: ['TIMESTAMPS'], rate: 0, count: -1, logFrequency: 0, file: '' },
    modeSettings: [['url', 'localhost:10000/v1/traces'], ['bsp_max_export_batch_size', '512'], ['bsp_schedule_delay', '5000'], ['bsp_max_queue_size', '2048']],
  });
  assert.deepEqual(options.warnings, []);
  const given = read(['mode=opentelemetry', 'opentelemetry,bsp_schedule_delay=0100', 'opentelemetry,resource=service.name=triton',
    'opentelemetry,resource=a=b', 'opentelemetry,bsp_max_queue_size=4294967295', 'opentelemetry,bsp_max_export_batch_size=1']).startup.modeSettings;
  assert.deepEqual(given, [
    ['bsp_schedule_delay', '100'], ['resource', 'service.name=triton'], ['resource', 'a=b'], ['bsp_max_queue_size', '4294967295'],
    ['bsp_max_export_batch_size', '1'],
  ]);
});

test('deprecated flags: each maps to its setting and warns once, in tritonserver\'s words', () => {
  const options = read([], { file: '/tmp/t.json', level: ['TIMESTAMPS', 'TENSORS'], rate: '6', count: '20', logFrequency: '2' });
  assert.deepEqual(options.startup.values, { level: ['TIMESTAMPS', 'TENSORS'], rate: 6, count: 20, logFrequency: 2, file: '/tmp/t.json' });
  assert.deepEqual(options.warnings, [
    "Warning: '--trace-file' has been deprecated and will be removed in future releases. Please use '--trace-config triton,file=<filepath> instead.",
    "Warning: '--trace-level' has been deprecated and will be removed in future releases. Please use '--trace-config level=<OFF|TIMESTAMPS|TENSORS> instead.",
    "Warning: '--trace-rate' has been deprecated and will be removed in future releases. Please use '--trace-config rate=<rate value> instead.",
    "Warning: '--trace-count' has been deprecated and will be removed in future releases. Please use '--trace-config count=<count value> instead.",
    "Warning: '--trace-log-frequency' has been deprecated and will be removed in future releases. Please use '--trace-config triton,log-frequency=<log frequency value> instead.",
  ]);
});

test('--trace-config wins over a deprecated flag, with the override warning once; in opentelemetry mode --trace-file and --trace-log-frequency are ignored', () => {
  const options = read(['rate=1', 'rate=2', 'count=3', 'triton,file=/new.json', 'triton,log-frequency=4', 'level=TENSORS'],
    { file: '/old.json', level: ['TIMESTAMPS'], rate: '100', count: '200', logFrequency: '300' });
  assert.deepEqual(options.startup.values, { level: ['TIMESTAMPS', 'TENSORS'], rate: 2, count: 3, logFrequency: 4, file: '/new.json' });
  assert.deepEqual(options.warnings.filter((w) => w.includes('Overriding')), [
    "Warning: Overriding deprecated '--trace-rate' in favor of provided rate value in --trace-config!",
    "Warning: Overriding deprecated '--trace-count' in favor of provided count in --trace-config!",
    "Warning: Overriding deprecated '--trace-level' in favor of provided level in --trace-config!",
    "Warning: Overriding deprecated '--trace-file' in favor of provided file in --trace-config!",
    "Warning: Overriding deprecated '--trace-log-frequency' in favor of provided log-frequency in --trace-config!",
  ]);
  assert.equal(options.warnings.length, 10, 'five deprecations and five overrides, each once');

  const otel = read(['mode=opentelemetry'], { file: '/t.json', logFrequency: '5' });
  assert.deepEqual(otel.startup.values, { level: [], rate: 1000, count: -1, logFrequency: 0, file: '' });
  assert.deepEqual(otel.warnings.slice(2), [
    "Warning: '--trace-file' is deprecated and will be ignored with opentelemetry tracing mode.",
    "Warning: '--trace-log-frequency' is deprecated and will be ignored with opentelemetry tracing mode.",
  ]);
});

test('bad values: tritonserver\'s texts, after the flag and value as given', () => {
  const format = (arg: string) => `--trace-config option format is '<trace mode>,<setting>=<value>'. Got ${arg}`;
  for (const arg of ['rate', 'rate=', '=5', 'triton,file', 'triton,=x', 'triton,file=']) refused({ config: [arg] }, format(arg));
  refused({ config: [',file=x'] }, 'No trace mode specified. --trace-config option format is <trace mode>,<setting>=<value> or <setting>=<value>. Got ,file=x');
  refused({ config: ['Jaeger,url=x'] },
    '--trace-config=Jaeger,url=x: invalid value for trace mode option: jaeger. Available options are "triton" and "opentelemetry"');
  refused({ config: ['level=a,b'] },
    '--trace-config=level=a,b: invalid value for trace mode option: level=a. Available options are "triton" and "opentelemetry"');
  refused({ config: ['mode=Zipkin'] },
    '--trace-config=mode=Zipkin: invalid value for trace mode option: zipkin. Available options are "triton" and "opentelemetry"');
  refused({ config: ['level=Everything'] }, '--trace-config=level=Everything: invalid value for trace level option: everything');
  refused({ level: ['Loud'] }, '--trace-level=Loud: invalid value for trace level option: loud');
  for (const [config, message] of [
    ['rate=abc', '--trace-config=rate=abc: Invalid option value. Got abc'],
    ['rate=1.5', '--trace-config=rate=1.5: Invalid option value. Got 1.5'],
    ['rate=-1', '--trace-config=rate=-1: Provided option value is out of bound. Got -1'],
    ['rate=2147483648', '--trace-config=rate=2147483648: Provided option value is out of bound. Got 2147483648'],
    ['count=x', '--trace-config=count=x: Invalid option value. Got x'],
    ['count=-2147483649', '--trace-config=count=-2147483649: Provided option value is out of bound. Got -2147483649'],
    ['triton,log-frequency=often', '--trace-config=triton,log-frequency=often: Invalid option value. Got often'],
    ['triton,log-frequency=-3', '--trace-config=triton,log-frequency=-3: Provided option value is out of bound. Got -3'],
  ] as const) refused({ config: [config] }, message);
  for (const key of ['bsp_max_queue_size', 'bsp_schedule_delay', 'bsp_max_export_batch_size']) {
    refused({ config: ['mode=opentelemetry', `opentelemetry,${key}=bad_value`] }, `--trace-config=opentelemetry,${key}=bad_value: Invalid option value. Got bad_value`);
    refused({ config: ['mode=opentelemetry', `opentelemetry,${key}=4294967296`] },
      `--trace-config=opentelemetry,${key}=4294967296: Provided option value is out of bound. Got 4294967296`);
  }
  // The inactive mode's values are not read, as in tritonserver.
  assert.equal(values('opentelemetry,bsp_max_queue_size=bad_value').file, '');
  assert.equal(read(['mode=opentelemetry', 'triton,log-frequency=often']).startup.mode, 'opentelemetry');
  refused({ rate: 'ten' }, '--trace-rate=ten: Invalid option value. Got ten');
  refused({ count: '9999999999' }, '--trace-count=9999999999: Provided option value is out of bound. Got 9999999999');
  refused({ logFrequency: '-1' }, '--trace-log-frequency=-1: Provided option value is out of bound. Got -1');
});
