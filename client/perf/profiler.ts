/**
 * Measures one load level: keeps the load running, cuts back-to-back
 * measurement windows, reads the server's statistics at every window
 * boundary, and stops once the last 3 windows agree (or after max-trials).
 * The level's result merges those last windows, as perf_analyzer does.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Recorder, type RunningLoad } from './load.ts';
import { add, subtract, summarizeServer, type ServerCounters, type ServerSummary } from './server-stats.ts';
import {
  inferPerSec, isStable, mergeWindows, sequencesPerSec, stabilizingLatencyNs, STABILITY_WINDOW, summarizeLatency, summarizeWindow,
  type ClientWindow, type LatencySummary, type TrialPoint,
} from './stats.ts';

export interface LevelSettings {
  readonly measurementIntervalMs: number;
  readonly maxTrials: number;
  readonly stabilityPercentage: number;
  readonly percentile: number | undefined;
  readonly batchSize: number;
}

export interface TrialProgress {
  readonly trial: number;
  readonly maxTrials: number;
  readonly inferPerSec: number;
  readonly latency: LatencySummary | undefined;
  readonly stabilizingLatencyNs: number | undefined;
  readonly errorCount: number;
}

export interface LevelHooks {
  /** Starts the load; every completed request goes to the recorder. */
  startLoad(recorder: Recorder): RunningLoad;
  /** Reads the server's cumulative counters; undefined when the server has none. */
  readonly readServerStats: (() => Promise<ServerCounters>) | undefined;
  onTrial?(progress: TrialProgress): void;
}

export interface LevelResult {
  readonly stable: boolean;
  readonly trials: number;
  /** The merged last windows. */
  readonly client: ClientWindow;
  readonly latency: LatencySummary | undefined;
  readonly inferPerSec: number;
  readonly sequencesPerSec: number;
  readonly stabilizingLatencyNs: number | undefined;
  readonly server: ServerSummary | undefined;
  /** Set when reading server statistics failed during this level. */
  readonly serverStatsError: string | undefined;
}

/** Every request in a window failed: measuring further is pointless. */
export class AllRequestsFailedError extends Error {
  override readonly name = 'AllRequestsFailedError';
}

export async function profileLevel(settings: LevelSettings, hooks: LevelHooks): Promise<LevelResult> {
  let serverStatsError: string | undefined;
  const readStats = async (): Promise<ServerCounters | undefined> => {
    if (hooks.readServerStats === undefined || serverStatsError !== undefined) return undefined;
    try {
      return await hooks.readServerStats();
    } catch (error) {
      serverStatsError = error instanceof Error ? error.message : String(error);
      return undefined;
    }
  };

  const recorder = new Recorder();
  let before = await readStats();
  const load = hooks.startLoad(recorder);
  let windowStart = process.hrtime.bigint();
  const windows: { client: ClientWindow; server: ServerCounters | undefined }[] = [];
  const points: TrialPoint[] = [];
  let stable = false;
  try {
    for (let trial = 1; trial <= settings.maxTrials; trial++) {
      await sleep(settings.measurementIntervalMs);
      const windowEnd = process.hrtime.bigint();
      const after = await readStats();
      const client = summarizeWindow(recorder.take(windowStart, windowEnd), windowStart, windowEnd);
      windows.push({ client, server: before && after ? subtract(after, before) : undefined });
      windowStart = windowEnd;
      before = after;
      if (client.requestCount === 0 && client.errorCount > 0) {
        throw new AllRequestsFailedError([...client.errors.keys()][0] ?? 'unknown error');
      }
      const latency = summarizeLatency(client.latenciesNs, settings.percentile);
      const point = { inferPerSec: inferPerSec(client, settings.batchSize), latencyNs: stabilizingLatencyNs(latency, settings.percentile) };
      points.push(point);
      hooks.onTrial?.({
        trial, maxTrials: settings.maxTrials, inferPerSec: point.inferPerSec, latency,
        stabilizingLatencyNs: point.latencyNs, errorCount: client.errorCount,
      });
      if (isStable(points, settings.stabilityPercentage)) {
        stable = true;
        break;
      }
    }
  } finally {
    await load.stop();
  }

  const last = windows.slice(-STABILITY_WINDOW);
  const client = mergeWindows(last.map((w) => w.client));
  const latency = summarizeLatency(client.latenciesNs, settings.percentile);
  const serverDeltas = last.map((w) => w.server);
  const server = serverDeltas.every((d): d is ServerCounters => d !== undefined)
    ? summarizeServer(serverDeltas.reduce((a, b) => add(a, b)))
    : undefined;
  return {
    stable,
    trials: windows.length,
    client,
    latency,
    inferPerSec: inferPerSec(client, settings.batchSize),
    sequencesPerSec: sequencesPerSec(client),
    stabilizingLatencyNs: stabilizingLatencyNs(latency, settings.percentile),
    server,
    serverStatsError,
  };
}
