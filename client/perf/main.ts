/**
 * `switchyard perf`: perf_analyzer for Switchyard and Triton servers.
 * Reads the model's metadata and config, builds the request data, then
 * measures each load level of the range until it is stable and reports
 * as perf_analyzer does (text, CSV) or as JSON.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { InferenceClient, InferenceServerError } from '../index.ts';
import { DEFAULTS, loadLevels, parseArgs, usage, UsageError, type PerfOptions } from './args.ts';
import {
  buildPayloads, checkBatchSize, checkShapeNames, describeModel, generatedStep, parseInputData,
  type DataStream, type ModelSpec,
} from './data.ts';
import {
  RequestPlanner, startConcurrencyLoad, startRateLoad, warmUp,
  type PayloadStream, type Recorder, type RunningLoad, type Sender, type SequenceSettings,
} from './load.ts';
import { AllRequestsFailedError, profileLevel, type LevelResult } from './profiler.ts';
import {
  buildJsonReport, formatCsv, formatLevel, formatPass, formatProgress, formatSettings, formatSummary, Progress,
  type LevelReport, type RunReport, type ServerStatsStatus, type TextSink,
} from './report.ts';
import { streamingSender, unarySender } from './sender.ts';
import { readCounters, type ServerCounters } from './server-stats.ts';

export interface PerfIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function loadStreams(options: PerfOptions, model: ModelSpec, sequenceModel: boolean): Promise<DataStream[]> {
  const input = options.inputData;
  if (input.kind !== 'files') {
    return [[generatedStep(model, options.shapes, { kind: input.kind, stringLength: options.stringLength, stringData: options.stringData })]];
  }
  const streams: DataStream[] = [];
  for (const path of input.paths) {
    let document: unknown;
    try {
      document = JSON.parse(await readFile(path, 'utf8'));
    } catch (error) {
      throw new UsageError(`--input-data ${path}: ${messageOf(error)}`);
    }
    streams.push(...parseInputData(model, document, options.shapes, path));
  }
  // Only sequences keep streams apart; other models walk all the data in order.
  return sequenceModel ? streams : [streams.flat()];
}

function checkSequenceIds(options: PerfOptions, concurrentSequences: number): void {
  const { idStart, idEnd } = options.sequence;
  if (idEnd !== undefined && idEnd - idStart < concurrentSequences) {
    throw new UsageError(
      `--sequence-id-range ${idStart}:${idEnd} holds ${idEnd - idStart} ids but up to ${concurrentSequences} sequences run at once; widen the range`,
    );
  }
}

/** Asks for statistics once; any failure (a server without the statistics extension) means the run goes on without them. */
async function probeServerStats(client: InferenceClient, options: PerfOptions): Promise<ServerStatsStatus> {
  try {
    readCounters(await client.modelStatistics(options.model, options.modelVersion), options.model, options.modelVersion);
    return { available: true, message: undefined };
  } catch (error) {
    return { available: false, message: messageOf(error) };
  }
}

async function run(options: PerfOptions, client: InferenceClient, io: PerfIo): Promise<number> {
  const metadata = await client.modelMetadata(options.model, options.modelVersion);
  const config = await client.modelConfig(options.model, options.modelVersion);
  const model = describeModel(metadata, config);
  checkBatchSize(model, options.batchSize);
  checkShapeNames(model, options.shapes);
  const sequenceModel = model.isSequence;
  if (!sequenceModel && options.sequenceLengthGiven) {
    io.stderr.write(`warning: model '${model.name}' has no sequence_batching; sequence options are ignored\n`);
  }

  const streams = await loadStreams(options, model, sequenceModel);
  const payloadStreams: PayloadStream[] = streams.map((stream) => ({
    payloads: buildPayloads(model, stream, options.batchSize),
    requestsPerPass: Math.max(1, Math.ceil(stream.length / options.batchSize)),
  }));
  const sequence: SequenceSettings | undefined = sequenceModel
    ? {
        baseLength: options.sequence.length ?? (options.inputData.kind === 'files' ? undefined : DEFAULTS.sequenceLength),
        lengthVariation: options.sequence.lengthVariation,
        idStart: options.sequence.idStart,
        idEnd: options.sequence.idEnd,
      }
    : undefined;
  // Fail before any load for a bounded range; an open-ended one is checked level by level below.
  const concurrentSequences = (level: number): number => (options.load.kind === 'concurrency' ? level : options.sequence.numSequences);
  if (sequenceModel) checkSequenceIds(options, concurrentSequences(options.load.end === 0 ? options.load.start : options.load.end));
  const planner = new RequestPlanner(payloadStreams, sequence);

  const target = { model: options.model, modelVersion: options.modelVersion };
  const streaming = options.streaming ? streamingSender(client, target) : undefined;
  const send: Sender = streaming?.send ?? unarySender(client, target);

  try {
    const serverStats = await probeServerStats(client, options);
    const readServerStats = serverStats.available
      ? async (): Promise<ServerCounters> =>
          readCounters(await client.modelStatistics(options.model, options.modelVersion), options.model, options.modelVersion)
      : undefined;
    if (!options.json) io.stdout.write(formatSettings(options, sequenceModel, serverStats));

    if (options.warmupRequests > 0) {
      const first = options.load.kind === 'concurrency' ? options.load.start : 1;
      await warmUp(options.warmupRequests, first, planner, send);
    }

    const progress = new Progress(io.stderr);
    const levels: LevelReport[] = [];
    let statsWarned = false;
    for (const level of loadLevels(options.load)) {
      if (sequenceModel) checkSequenceIds(options, concurrentSequences(level));
      const startLoad = (recorder: Recorder): RunningLoad =>
        options.load.kind === 'concurrency'
          ? startConcurrencyLoad(level, planner, send, recorder)
          : startRateLoad(
              { rate: level, distribution: options.load.distribution, sequences: options.sequence.numSequences },
              planner, send, recorder,
            );
      let result: LevelResult;
      try {
        result = await profileLevel(
          {
            measurementIntervalMs: options.measurementIntervalMs,
            maxTrials: options.maxTrials,
            stabilityPercentage: options.stabilityPercentage,
            percentile: options.percentile,
            batchSize: options.batchSize,
          },
          {
            startLoad,
            readServerStats: statsWarned ? undefined : readServerStats,
            onTrial(trial) {
              progress.update(formatProgress(options, level, trial));
              if (options.verbose && !options.json) {
                progress.clear();
                io.stdout.write(formatPass(options, trial));
              }
            },
          },
        );
      } finally {
        progress.clear();
      }
      if (result.serverStatsError !== undefined && !statsWarned) {
        statsWarned = true;
        io.stderr.write(`warning: server-side statistics stopped working (${result.serverStatsError}); going on without them\n`);
      }
      const name = options.load.kind === 'concurrency' ? `concurrency ${level}` : `request rate ${level}`;
      if (result.latency === undefined) {
        throw new Error(`no request completed within the measurement windows at ${name}; use a larger --measurement-interval`);
      }
      if (!result.stable) {
        io.stderr.write(
          `warning: ${name} did not stabilise within ${options.maxTrials} trials (throughput or latency varied by more than ${options.stabilityPercentage}%); reporting the last windows anyway\n`,
        );
      }
      const report = { level, result };
      levels.push(report);
      if (!options.json) io.stdout.write(formatLevel(options, report, sequenceModel));
      const latencyMs = (result.stabilizingLatencyNs ?? 0) / 1e6;
      if (options.latencyThresholdMs > 0 && latencyMs >= options.latencyThresholdMs) {
        io.stderr.write(`Measured latency went over the set limit of ${options.latencyThresholdMs} msec.\n`);
        break;
      }
    }

    const report: RunReport = { options, sequenceModel, serverStats, levels };
    if (options.csvFile !== undefined) await writeFile(options.csvFile, formatCsv(report));
    io.stdout.write(options.json ? `${JSON.stringify(buildJsonReport(report), null, 2)}\n` : formatSummary(report));
    return 0;
  } finally {
    streaming?.close();
  }
}

/** Runs `switchyard perf <argv>`; resolves to the exit code (0 done, 1 bad usage or a failed run). */
export async function runPerf(argv: string[], io: PerfIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let options: PerfOptions;
  try {
    const command = parseArgs(argv);
    if (command.kind === 'help') {
      io.stdout.write(usage());
      return 0;
    }
    options = command.options;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    throw error;
  }

  const client = new InferenceClient({
    url: options.url,
    protocol: options.protocol,
    binary: options.binaryTensors,
    headers: options.headers,
  });
  try {
    return await run(options, client, io);
  } catch (error) {
    if (error instanceof AllRequestsFailedError) io.stderr.write(`error: every request failed: ${error.message}\n`);
    else if (error instanceof UsageError || error instanceof InferenceServerError) io.stderr.write(`error: ${error.message}\n`);
    else io.stderr.write(`error: ${messageOf(error)}\n`);
    return 1;
  } finally {
    client.close();
  }
}
