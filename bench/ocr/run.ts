/**
 * OCR benchmark (issue 22): the bundled `ocr` pipeline (PaddleOCR's PP-OCRv4
 * detection, angle classification and recognition, with the script's pre-
 * and post-processing) against the same work done in-process.
 *
 *   in-process   pipelines/ocr/lib and the three ONNX models run by
 *                onnxruntime-node in this process, one image after another
 *                (PNG decode included): the limit
 *   batching     Switchyard serving the bundled configs: dynamic batching
 *                on ocr_det, ocr_cls and ocr_rec, padded on the widths
 *   no batching  the same with dynamic_batching taken out of those three
 *
 * Each served mode runs in a child process over a copy of the four model
 * folders, under closed-loop HTTP load at each concurrency: a client posts
 * a PNG (binary-data extension) and posts the next as soon as the answer is
 * read. The images are the accuracy test's set (11 rendered images, 37
 * lines), taken in turn. It prints images/s, p50 and p99 and the ratios
 * against the in-process limit and batching against none; before loading
 * it checks that the server reads every image as in-process does.
 *
 *   npm run bench:ocr
 *
 * Environment:
 *   BENCH_SECONDS       measured seconds per cell (default 20)
 *   BENCH_WARMUP        seconds of load before measuring (default 4)
 *   BENCH_CONCURRENCY   comma-separated client counts (default 1,8)
 *
 * It never asserts: it prints tables and whether each ratio meets its target.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng, renderText } from '../../generator/text-image.ts';
import { PIPELINES_DIR } from '../../pipelines/generate.ts';
import { decodeImage } from '../../pipelines/ocr/lib/image.ts';
import { OCR_TEST_SET } from '../../test/helpers/ocr-test-set.ts';
import { runCallLoop } from '../call-loop.ts';
import type { LoadResult } from '../load-generator.ts';
import { envIntegers, envNumber, fmtMs, table } from '../report.ts';
import { childRole, serveAsChild, ServerChild, startSwitchyardHttp } from '../server-child.ts';
import { openInProcessOcr } from './in-process.ts';

const OCR_MODELS = ['ocr', 'ocr_det', 'ocr_cls', 'ocr_rec', 'ocr_ctc', 'ocr_recognize'] as const;
const BATCHED_MODELS = ['ocr_det', 'ocr_cls', 'ocr_rec'] as const;
const TARGET_C1_OVER_IN_PROCESS = 0.8;

interface ChildInit {
  readonly repository: string;
}

const fmtRate = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');

/** A copy of the OCR model folders; without batching, dynamic_batching and the padding parameters are taken out. */
async function repositoryCopy(batching: boolean): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), `switchyard-bench-ocr-${batching ? 'batching' : 'none'}-`));
  for (const model of OCR_MODELS) await cp(join(PIPELINES_DIR, model), join(root, model), { recursive: true });
  if (!batching) {
    for (const model of BATCHED_MODELS) {
      const file = join(root, model, 'config.pbtxt');
      const config = (await readFile(file, 'utf8')).split('\n')
        .filter((line) => !line.startsWith('dynamic_batching') && !line.includes('"padded_batching'))
        .join('\n');
      await writeFile(file, config);
    }
  }
  return root;
}

/** One image's request: the binary-data extension, the PNG as one BYTES element. */
function requestOf(png: Uint8Array): { readonly headers: Record<string, string>; readonly body: Buffer } {
  const element = Buffer.concat([Buffer.from(Uint32Array.of(png.length).buffer), Buffer.from(png)]);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: element.length } }] }));
  return {
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length), 'content-length': String(header.length + element.length) },
    body: Buffer.concat([header, element]),
  };
}

/** POSTs on a keep-alive agent; resolves with the status and body. */
function post(agent: http.Agent, port: number, request: { headers: Record<string, string>; body: Buffer }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: '127.0.0.1', port, path: '/v2/models/ocr/infer', method: 'POST', headers: request.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(request.body);
  });
}

const textsOf = (body: string): string[] => {
  const parsed = JSON.parse(body) as { outputs: { name: string; data: string[] }[] };
  return parsed.outputs.find((o) => o.name === 'text')!.data;
};

interface Cell {
  readonly mode: string;
  readonly concurrency: number;
  readonly result: LoadResult;
  /** CPU time (all threads) per image read, in milliseconds: the process's, over warmup and measurement alike. */
  readonly cpuMsPerImage: number;
}

async function main(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 20);
  const warmup = envNumber('BENCH_WARMUP', 4);
  const concurrencies = envIntegers('BENCH_CONCURRENCY', '1,8');
  const pngs = OCR_TEST_SET.map((item) => encodePng(renderText(item.options)));
  const lines = OCR_TEST_SET.reduce((n, item) => n + item.expected.length, 0);
  console.log(`OCR benchmark: ${pngs.length} images (${lines} lines), ${seconds} s measured per cell after ${warmup} s of warmup\n`);

  // The limit first, alone on the machine.
  const ocr = await openInProcessOcr();
  const expected: string[][] = [];
  for (const png of pngs) expected.push((await ocr.read(decodeImage(png))).map((l) => l.text));
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const inProcess = await runCallLoop({ concurrency: 1, warmupMs: warmup * 1000, durationMs: seconds * 1000 }, async () => {
    await ocr.read(decodeImage(pngs[next++ % pngs.length]!));
    return undefined;
  });
  const cpu = process.cpuUsage(cpuBefore);
  await ocr.close();
  const cells: Cell[] = [{ mode: 'in-process, one after another', concurrency: 1, result: inProcess, cpuMsPerImage: (cpu.user + cpu.system) / 1000 / next }];

  const requests = pngs.map(requestOf);
  for (const batching of [true, false]) {
    const repository = await repositoryCopy(batching);
    const child = await ServerChild.start<ChildInit>(fileURLToPath(import.meta.url), 'switchyard', { repository });
    const mode = batching ? 'Switchyard, batching' : 'Switchyard, no batching';
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(...concurrencies) });
      // Same reading as in-process, image by image, before any load.
      let differing = 0;
      const examples: string[] = [];
      for (const [i, request] of requests.entries()) {
        const answer = await post(agent, child.port, request);
        if (answer.status !== 200) throw new Error(`${mode}: image ${i} answered ${answer.status}: ${answer.body.slice(0, 300)}`);
        const served = textsOf(answer.body);
        if (JSON.stringify(served) !== JSON.stringify(expected[i])) {
          differing++;
          // What differs, first line only: padding in other company can move a space or a character.
          const at = served.findIndex((t, k) => t !== expected[i]![k]);
          examples.push(`'${expected[i]![at] ?? '(none)'}' in-process, '${served[at] ?? '(none)'}' served`);
        }
      }
      console.log(`${mode}: ${requests.length - differing} of ${requests.length} images read exactly as in-process`);
      for (const example of examples.slice(0, 4)) console.log(`  ${example}`);
      for (const concurrency of concurrencies) {
        let sent = 0;
        let answered = 0;
        const cpuStart = await child.cpuMicros();
        const result = await runCallLoop({ concurrency, warmupMs: warmup * 1000, durationMs: seconds * 1000 }, async () => {
          const answer = await post(agent, child.port, requests[sent++ % requests.length]!);
          answered++;
          return answer.status === 200 ? undefined : `status ${answer.status}: ${answer.body.slice(0, 200)}`;
        });
        const cpuMsPerImage = (await child.cpuMicros() - cpuStart) / 1000 / answered;
        cells.push({ mode, concurrency, result, cpuMsPerImage });
      }
      agent.destroy();
    } finally {
      await child.stop();
      await rm(repository, { recursive: true, force: true });
    }
  }

  const limit = inProcess.requestsPerSecond;
  console.log(`\n${table(['mode', 'clients', 'images/s', 'p50 ms', 'p99 ms', 'CPU ms/image', 'errors', 'vs in-process'], cells.map((c) => [
    c.mode, String(c.concurrency), fmtRate(c.result.requestsPerSecond), fmtMs(c.result.p50), fmtMs(c.result.p99),
    c.cpuMsPerImage.toFixed(1), String(c.result.errors), (c.result.requestsPerSecond / limit).toFixed(2),
  ]))}`);
  for (const c of cells) if (c.result.firstError) console.log(`first error (${c.mode}, c=${c.concurrency}): ${c.result.firstError}`);

  const rate = (mode: string, concurrency: number): number => cells.find((c) => c.mode === mode && c.concurrency === concurrency)?.result.requestsPerSecond ?? NaN;
  console.log('');
  if (concurrencies.includes(1)) {
    const ratio = rate('Switchyard, batching', 1) / limit;
    console.log(`served (batching) / in-process at c=1: ${ratio.toFixed(2)} (target >= ${TARGET_C1_OVER_IN_PROCESS}: ${ratio >= TARGET_C1_OVER_IN_PROCESS ? 'met' : 'missed'})`);
  }
  for (const c of concurrencies.filter((n) => n > 1)) {
    const gain = rate('Switchyard, batching', c) / rate('Switchyard, no batching', c);
    console.log(`batching / no batching at c=${c}: ${gain.toFixed(2)} (target > 1: ${gain > 1 ? 'met' : 'missed'})`);
  }
}

if (childRole() === 'switchyard') {
  await serveAsChild<ChildInit>((init) => startSwitchyardHttp(init.repository, [...OCR_MODELS]));
} else {
  await main();
}
