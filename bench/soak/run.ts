/**
 * Soak: the real server (server/cli.ts in a child process, loopback only,
 * metrics off) under mixed traffic at a fixed concurrency for a long time,
 * over HTTP (binary and JSON tensors) and gRPC: plain, dynamically batched,
 * ensemble, script (BLS) and sequence requests, every answer checked (see
 * workloads.ts), the server's RSS sampled from /proc. Prints a table and one
 * JSON line.
 *
 *   npm run bench:soak                          # concurrency 128 plus 2 attackers, 90 s warm-up, 10 min window
 *   npm run bench:soak -- --duration=30         # a 30 s window after the same warm-up
 *   npm run bench:soak -- --attackers=0         # ordinary traffic only
 *
 * Flags: --concurrency=N (default 128, at least 5), --duration=S (measured
 * seconds, default 600), --warmup=S (default 90: the server's RSS ramps up
 * under this load, attacks included, for about 90 s before it levels off, and
 * the start sample is taken when the warm-up ends), --rss-every=S (default 5),
 * --sequence-steps=N (requests per sequence, default 6), --request-timeout=S
 * (default 30), --attackers=N (workers sending the hostile requests of
 * attacks.ts next to the ordinary traffic, default 2; 0 for the plain soak),
 * --no-fail (always exit 0 once the run finished).
 *
 * Exit code: 0 when there were no errors, every kind got traffic, every
 * attack was sent and handled as it should be, RSS grew
 * less than 10% from the end of the warm-up to the end of the window, and
 * the server exited cleanly on SIGTERM; 1 otherwise; 2 when the server did
 * not exit within 15 s of SIGTERM (it is killed); 3 when the hard deadline
 * passed (the server is killed). --no-fail turns 1 into 0.
 */
import { fmtMs, fmtRate, table } from '../report.ts';
import { killServers } from './server-process.ts';
import { DEFAULT_OPTIONS, runSoak, TRANSPORTS, type SoakOptions, type SoakResult } from './soak.ts';

export const RSS_GROWTH_LIMIT_PERCENT = 10;

interface Flags {
  readonly options: SoakOptions;
  readonly noFail: boolean;
}

function parseFlags(argv: readonly string[]): Flags {
  const numbers: Record<string, number> = {};
  let noFail = false;
  const known = ['concurrency', 'duration', 'warmup', 'rss-every', 'sequence-steps', 'request-timeout', 'attackers'];
  for (const arg of argv) {
    if (arg === '--no-fail') {
      noFail = true;
      continue;
    }
    const match = /^--([a-z-]+)=(.+)$/.exec(arg);
    if (!match || !known.includes(match[1]!)) {
      throw new Error(`unknown argument '${arg}'; flags: ${known.map((k) => `--${k}=<n>`).join(' ')} --no-fail`);
    }
    const value = Number(match[2]);
    if (!Number.isFinite(value) || value < 0 || (value === 0 && match[1] !== 'warmup' && match[1] !== 'attackers')) throw new Error(`--${match[1]}=${match[2]}: expected a positive number`);
    numbers[match[1]!] = value;
  }
  const d = DEFAULT_OPTIONS;
  return {
    noFail,
    options: {
      ...d,
      concurrency: numbers['concurrency'] ?? d.concurrency,
      durationSeconds: numbers['duration'] ?? d.durationSeconds,
      warmupSeconds: numbers['warmup'] ?? d.warmupSeconds,
      rssEverySeconds: numbers['rss-every'] ?? d.rssEverySeconds,
      sequenceSteps: numbers['sequence-steps'] ?? d.sequenceSteps,
      requestTimeoutMs: (numbers['request-timeout'] ?? d.requestTimeoutMs / 1000) * 1000,
      attackers: numbers['attackers'] ?? d.attackers,
    },
  };
}

const mib = (kib: number | undefined): string => (kib === undefined ? '-' : (kib / 1024).toFixed(1));

/** Why the run fails its targets (empty when it meets them all). */
export function failures(result: SoakResult): string[] {
  const reasons: string[] = [];
  if (!result.preflightOk) reasons.push('the preflight failed, so no load was applied');
  if (result.overall.errors > 0) reasons.push(`${result.overall.errors} failed or wrong request(s)`);
  for (const kind of result.kinds) if (kind.requests === 0) reasons.push(`no ${kind.kind} request completed in the window`);
  const growth = result.rss.growthPercent;
  if (growth === undefined) reasons.push('server RSS could not be read from /proc');
  else if (growth >= RSS_GROWTH_LIMIT_PERCENT) reasons.push(`server RSS grew ${growth.toFixed(1)}% (limit ${RSS_GROWTH_LIMIT_PERCENT}%)`);
  if (result.shutdown.outcome !== 'clean') reasons.push(`shutdown: ${result.shutdown.detail}`);
  for (const attack of result.attacks) {
    if (attack.sent === 0) reasons.push(`attack class ${attack.klass} (${attack.name}) was never sent`);
    if (attack.problems > 0) reasons.push(`attack class ${attack.klass} (${attack.name}): ${attack.problems} not handled as it should be`);
  }
  return reasons;
}

function print(result: SoakResult, reasons: readonly string[]): void {
  const o = result.options;
  console.log(`\nSoak: concurrency ${o.concurrency}, ${o.warmupSeconds} s warm-up, ${result.windowSeconds.toFixed(1)} s measured; `
    + 'transports rotate per operation over http (binary tensors), http-json and grpc; latency in ms per request (a sequence step is one request); '
    + 'errors over the whole run (preflight, warm-up, window, drain)\n');
  const rows = result.kinds.map((k) => [
    k.kind, k.models, fmtRate(k.requests), TRANSPORTS.map((t) => fmtRate(k.perTransport[t])).join(' / '),
    k.sequences === undefined ? '-' : fmtRate(k.sequences), fmtRate(k.requestsPerSecond), fmtMs(k.p50), fmtMs(k.p99), fmtMs(k.max), String(k.errors),
  ]);
  const all = result.overall;
  rows.push(['all', '', fmtRate(all.requests), '', '', fmtRate(all.requestsPerSecond), fmtMs(all.p50), fmtMs(all.p99), fmtMs(all.max), String(all.errors)]);
  console.log(table(['kind', 'models', 'requests', 'http / json / grpc', 'sequences', 'req/s', 'p50', 'p99', 'max', 'errors'], rows));

  const r = result.rss;
  console.log(`\nServer RSS (VmRSS of the server process, MiB; samples every ${o.rssEverySeconds} s)\n`);
  console.log(table(['idle', 'start (end of warm-up)', 'end', 'max', 'growth', 'target', 'verdict'], [[
    mib(r.idleKiB), mib(r.startKiB), mib(r.endKiB), mib(r.maxKiB),
    r.growthPercent === undefined ? '-' : `${r.growthPercent >= 0 ? '+' : ''}${r.growthPercent.toFixed(1)}%`,
    `< ${RSS_GROWTH_LIMIT_PERCENT}%`, r.growthPercent === undefined ? '-' : r.growthPercent < RSS_GROWTH_LIMIT_PERCENT ? 'meets' : 'ABOVE',
  ]]));
  if (r.samples.length > 0) console.log(`samples (s: MiB): ${r.samples.map((s) => `${s.t.toFixed(0)}: ${mib(s.kib)}`).join(', ')}`);

  const cpu = result.serverCpuCores === undefined ? '-' : result.serverCpuCores.toFixed(2);
  console.log(`\nCPU over the window, in cores: server ${cpu}, load generator ${result.clientCpuCores.toFixed(2)}`);
  const rows2 = Object.entries(result.rowsPerExecution).map(([m, v]) => `${m} ${v.toFixed(1)}`);
  if (rows2.length > 0) console.log(`rows per execution (server statistics, whole run): ${rows2.join(', ')}`);
  const log = result.serverLog;
  console.log(`server log after startup: ${log.errorLines} ERROR, ${log.warnLines} WARN line(s)`
    + (o.attackers > 0 ? ' (the attacks make some: scripts ended by their time limits, dropped log lines)' : ''));
  for (const line of log.firstLines) console.log(`  ${line}`);
  console.log(`shutdown: ${result.shutdown.outcome} (${result.shutdown.detail})`);

  if (result.attacks.length > 0) {
    console.log(`\nAttacks (${o.attackers} attacker(s), one attack at a time each, every class in turn; whole run)\n`);
    console.log(table(['class', 'attack', 'sent', 'not handled', 'slowest answer'], result.attacks.map((a) => [
      String(a.klass), a.name, String(a.sent), String(a.problems), fmtMs(a.maxMs),
    ])));
    for (const a of result.attacks) for (const p of a.firstProblems) console.log(`  class ${a.klass}: ${p}`);
  }

  const failing = result.kinds.filter((k) => k.firstErrors.length > 0);
  if (failing.length > 0) {
    console.log('\nFirst errors per kind:');
    for (const k of failing) for (const e of k.firstErrors) console.log(`  ${k.kind}: ${e}`);
  }
  console.log(reasons.length === 0 ? '\nsoak: PASS' : `\nsoak: FAIL: ${reasons.join('; ')}`);
}

/** The one-line JSON summary. */
export function jsonSummary(result: SoakResult, reasons: readonly string[]): string {
  const round = (v: number | undefined, digits = 3): number | null => (v === undefined || !Number.isFinite(v) ? null : Number(v.toFixed(digits)));
  return JSON.stringify({
    bench: 'soak',
    pass: reasons.length === 0,
    failures: reasons,
    concurrency: result.options.concurrency,
    warmupSeconds: result.options.warmupSeconds,
    windowSeconds: round(result.windowSeconds, 1),
    kinds: Object.fromEntries(result.kinds.map((k) => [k.kind, {
      models: k.models, requests: k.requests, perTransport: k.perTransport, ...(k.sequences !== undefined ? { sequences: k.sequences } : {}),
      errors: k.errors, firstErrors: k.firstErrors, rps: round(k.requestsPerSecond, 1), p50Ms: round(k.p50), p99Ms: round(k.p99), maxMs: round(k.max),
    }])),
    overall: {
      requests: result.overall.requests, errors: result.overall.errors, rps: round(result.overall.requestsPerSecond, 1),
      p50Ms: round(result.overall.p50), p99Ms: round(result.overall.p99), maxMs: round(result.overall.max),
    },
    rssMiB: {
      idle: round(result.rss.idleKiB && result.rss.idleKiB / 1024, 1), start: round(result.rss.startKiB && result.rss.startKiB / 1024, 1),
      end: round(result.rss.endKiB && result.rss.endKiB / 1024, 1), max: round(result.rss.maxKiB && result.rss.maxKiB / 1024, 1),
      growthPercent: round(result.rss.growthPercent, 2), samples: result.rss.samples.map((s) => [s.t, round(s.kib / 1024, 1)]),
    },
    serverCpuCores: round(result.serverCpuCores, 2),
    clientCpuCores: round(result.clientCpuCores, 2),
    rowsPerExecution: Object.fromEntries(Object.entries(result.rowsPerExecution).map(([m, v]) => [m, round(v, 2)])),
    attacks: result.attacks,
    serverLog: result.serverLog,
    shutdown: result.shutdown,
  });
}

async function main(): Promise<void> {
  let flags: Flags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    console.error(`soak: ${(err as Error).message}`);
    process.exit(1);
  }
  const { options } = flags;
  // The hard deadline: startup, references, warm-up, window, the longest drain, shutdown, and a minute of slack.
  const drainMs = options.requestTimeoutMs * (options.sequenceSteps + 1) + 5_000;
  const deadlineMs = options.startTimeoutMs + (options.warmupSeconds + options.durationSeconds) * 1000 + drainMs + options.shutdownGraceMs + 60_000;
  const watchdog = setTimeout(() => {
    console.error(`soak: hard deadline of ${Math.round(deadlineMs / 1000)} s passed; killing the server`);
    killServers();
    process.exit(3);
  }, deadlineMs);
  watchdog.unref();

  let result: SoakResult;
  try {
    result = await runSoak({ ...options, progress: (line) => console.error(`soak: ${line}`) });
  } catch (err) {
    console.error(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    killServers();
    process.exit(1);
  }
  const reasons = failures(result);
  print(result, reasons);
  console.log(jsonSummary(result, reasons));
  if (result.shutdown.outcome === 'hung') process.exit(2);
  process.exit(reasons.length > 0 && !flags.noFail ? 1 : 0);
}

await main();
