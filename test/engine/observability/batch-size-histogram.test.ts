/** switchyard_batch_size's own text: per-model buckets from batch_stats, in Prometheus' text format. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderBatchSizeHistogram } from '../../../engine/observability/batch-size-histogram.ts';
import type { BatchStatisticsJson } from '../../../engine/observability/model-stats.ts';

const d = { count: 0, ns: 0 };
/** `executions` runs of `size` inferences each. */
const ran = (size: number, executions: number): BatchStatisticsJson => ({
  batch_size: size, compute_input: d, compute_infer: { count: executions, ns: 0 }, compute_output: d,
});

test('each model gets buckets up to its own max_batch_size, with cumulative counts, sum and count', () => {
  const text = renderBatchSizeHistogram([
    { labels: { model: 'a', version: '1' }, maxBatchSize: 4, batchStats: [ran(1, 3), ran(3, 2)] },
    { labels: { model: 'b', version: '2' }, maxBatchSize: 0, batchStats: [] },
  ]);
  assert.equal(text, [
    '# HELP switchyard_batch_size Batch sizes the model ran: one observation per successful execution, of the inferences it held.',
    '# TYPE switchyard_batch_size histogram',
    'switchyard_batch_size_bucket{model="a",version="1",le="1"} 3',
    'switchyard_batch_size_bucket{model="a",version="1",le="2"} 3',
    'switchyard_batch_size_bucket{model="a",version="1",le="4"} 5',
    'switchyard_batch_size_bucket{model="a",version="1",le="+Inf"} 5',
    'switchyard_batch_size_sum{model="a",version="1"} 9',
    'switchyard_batch_size_count{model="a",version="1"} 5',
    'switchyard_batch_size_bucket{model="b",version="2",le="1"} 0',
    'switchyard_batch_size_bucket{model="b",version="2",le="+Inf"} 0',
    'switchyard_batch_size_sum{model="b",version="2"} 0',
    'switchyard_batch_size_count{model="b",version="2"} 0',
  ].join('\n'));
});

test('label values are escaped as the text format wants; no versions leaves HELP and TYPE alone', () => {
  const text = renderBatchSizeHistogram([{ labels: { model: 'q"\\\n', version: '1' }, maxBatchSize: 1, batchStats: [] }]);
  assert.ok(text.includes('switchyard_batch_size_count{model="q\\"\\\\\\n",version="1"} 0'), text);
  assert.equal(renderBatchSizeHistogram([]).split('\n').length, 2);
});
