/**
 * The dashboard and the autoscaler's adapter rules read the metrics listed
 * in deploy/metric-names.json. This scrapes a real server, the bundled
 * pipelines plus a model with the response cache on, after a little
 * traffic, and checks that every listed metric is there with samples.
 * So a renamed series breaks this test rather than a dashboard in
 * production.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import { startMetricsServer } from '../../server/metrics/metrics-server.ts';
import { int32Tensor, range16 } from '../helpers/ensemble-fixtures.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../helpers/fixture-repository.ts';
import { scrape } from '../helpers/prometheus-text.ts';

const PIPELINES = fileURLToPath(new URL('../../pipelines', import.meta.url));
const NAMES = fileURLToPath(new URL('../../deploy/metric-names.json', import.meta.url));

test('every metric the dashboard and the HPA read is exported by a real server', async () => {
  const names = JSON.parse(await readFile(NAMES, 'utf8')) as string[];
  const extra = await makeRepository({
    cached_add_sub: { config: addSubConfig('cached_add_sub', 'response_cache { enable: true }\n'), versions: { 1: addSubModel() } },
  });
  const engine = await startEngine(PIPELINES, { modelRepositories: [PIPELINES, extra], responseCache: { sizeBytes: 1 << 20 } });
  const metrics = await startMetricsServer(engine, { port: 0, address: '127.0.0.1', summaryLatencies: true });
  try {
    assert.deepEqual(engine.loadFailures(), []);
    const pair = () => [int32Tensor('INPUT0', range16((i) => i)), int32Tensor('INPUT1', range16(() => 1))];
    await engine.infer({ modelName: 'add_sub', inputs: pair() });
    await engine.infer({ modelName: 'cached_add_sub', inputs: pair() });
    await engine.infer({ modelName: 'cached_add_sub', inputs: pair() });
    await engine.infer({ modelName: 'add_sub_twice', inputs: [int32Tensor('A', range16((i) => i)), int32Tensor('B', range16(() => 1))] });
    const result = await scrape(metrics.url);
    const sampled = new Set(result.samples.map((s) => s.name));
    const missing = names.filter((name) => !['', '_bucket', '_sum', '_count'].some((suffix) => sampled.has(`${name}${suffix}`)));
    assert.deepEqual(missing, [], `listed in deploy/metric-names.json but not exported: ${missing.join(', ')}`);
  } finally {
    await metrics.close();
    await engine.close();
    await removeRepository(extra);
  }
});
