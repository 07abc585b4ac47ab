/**
 * The Grafana dashboard and the prometheus-adapter rules: well-formed, and
 * reading only metrics listed in deploy/metric-names.json, the list a
 * /metrics test checks against what Switchyard really exports.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { manifestOf, readDeployFile, REPO_ROOT } from './deploy-files.ts';
import { metricFamily, promqlMetricNames, variableQueryMetricNames } from './promql-metric-names.ts';

interface Target { expr?: string; refId?: string; datasource?: { type?: string; uid?: string } }
interface Panel { id: number; type: string; title: string; datasource?: { type?: string; uid?: string }; targets?: Target[]; gridPos: { x: number; y: number; w: number; h: number } }
interface Variable { name: string; type: string; query?: string | { query?: string }; definition?: string; datasource?: { uid?: string } }
interface Dashboard { schemaVersion: number; uid: string; title: string; panels: Panel[]; templating: { list: Variable[] } }
interface AdapterRule { seriesQuery: string; metricsQuery: string; name: { matches: string; as: string }; resources: { overrides: Record<string, { resource: string }> } }

const dashboard = JSON.parse(readDeployFile('grafana/switchyard-dashboard.json')) as Dashboard;
const adapter = parse(readDeployFile('kubernetes/prometheus-adapter-rules.yaml')) as { rules: { custom: AdapterRule[] } };
const listed = JSON.parse(readDeployFile('metric-names.json')) as unknown;
const families: ReadonlySet<string> = new Set(Array.isArray(listed) ? listed as string[] : []);
const family = (name: string): string => metricFamily(name, families);
const DS = '${DS_PROMETHEUS}';

function variableQuery(variable: Variable): string {
  return typeof variable.query === 'string' ? variable.query : variable.query?.query ?? variable.definition ?? '';
}

function dashboardExpressions(): { where: string; expr: string }[] {
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel '${p.title}' ${t.refId ?? ''}`, expr: t.expr ?? '' })));
}

/** Every metric family the dashboard and the adapter rules read, with where. */
function referencedFamilies(): Map<string, string> {
  const found = new Map<string, string>();
  const add = (names: string[], where: string): void => { for (const n of names) if (!found.has(family(n))) found.set(family(n), where); };
  for (const { where, expr } of dashboardExpressions()) add(promqlMetricNames(expr), where);
  for (const variable of dashboard.templating.list) add(variableQueryMetricNames(variableQuery(variable)), `variable ${variable.name}`);
  for (const rule of adapter.rules.custom) {
    add(promqlMetricNames(rule.seriesQuery), `adapter rule ${rule.name.as} seriesQuery`);
    add(promqlMetricNames(rule.metricsQuery), `adapter rule ${rule.name.as} metricsQuery`);
  }
  return found;
}

test('deploy/metric-names.json is a list of unique metric family names', () => {
  assert.ok(Array.isArray(listed) && listed.every((n) => typeof n === 'string'), 'an array of strings');
  const names = listed as string[];
  assert.equal(new Set(names).size, names.length, 'no duplicates');
  for (const name of names) {
    assert.match(name, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/, `${name} is a Prometheus metric name`);
    assert.doesNotMatch(name, /_(bucket|sum)$/, `${name}: list the family, without _bucket/_sum`);
  }
});

test('every listed metric is defined in Switchyard\'s sources (the /metrics scrape test checks them live)', () => {
  const sources = ['engine', 'server', 'backends', 'scripts-runtime']
    .flatMap((dir) => readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' }).map((f) => join(REPO_ROOT, dir, f)))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  for (const name of families) {
    assert.ok(sources.includes(`'${name}'`) || sources.includes(`"${name}"`), `${name} is not a metric name in engine/, server/, backends/ or scripts-runtime/`);
  }
});

test('every metric the dashboard and the adapter rules read is in deploy/metric-names.json, and every listed one is read', () => {
  const referenced = referencedFamilies();
  for (const [name, where] of referenced) {
    assert.match(name, /^(nv|switchyard)_/, `${where}: '${name}' does not look like a Switchyard metric (a label taken for a metric?)`);
    assert.ok(families.has(name), `${where} reads ${name}, which deploy/metric-names.json does not list`);
  }
  for (const name of families) assert.ok(referenced.has(name), `deploy/metric-names.json lists ${name}, which nothing reads`);
});

test('the metric-name extraction bites: labels, functions and variables are not metrics; a mangled query throws', () => {
  assert.deepEqual(
    promqlMetricNames('histogram_quantile(0.99, sum by (le, model) (rate(switchyard_batch_size_bucket{model=~"$model", reason!="x"}[$__rate_interval]))) / on(model) group_left(version) nv_inference_count * 1e-9'),
    ['switchyard_batch_size_bucket', 'nv_inference_count'],
  );
  assert.deepEqual(promqlMetricNames('sum by (<<.GroupBy>>) (rate(nv_inference_queue_duration_us{<<.LabelMatchers>>}[1m]))'), ['nv_inference_queue_duration_us']);
  assert.deepEqual(variableQueryMetricNames('label_values(nv_inference_count, model)'), ['nv_inference_count']);
  assert.throws(() => promqlMetricNames('sum(rate(nv_inference_count[1m])'), /unclosed bracket/);
});

test('the dashboard covers what operators need to see', () => {
  const read = new Set(dashboardExpressions().flatMap(({ expr }) => promqlMetricNames(expr).map(family)));
  for (const needed of [
    'nv_inference_request_success', 'nv_inference_request_failure', 'nv_inference_count', 'nv_inference_exec_count',
    'nv_inference_queue_duration_us', 'nv_inference_compute_infer_duration_us', 'nv_inference_pending_request_count',
    'nv_inference_request_summary_us', 'switchyard_batch_size', 'switchyard_batch_close_total', 'switchyard_active_sequences',
    'switchyard_ensemble_step_duration_us', 'switchyard_script_isolate_heap_bytes', 'nv_cache_num_hits_per_model',
    'nv_cache_num_misses_per_model', 'nv_cpu_utilization', 'nv_cpu_memory_used_bytes', 'nv_model_load_duration_secs',
  ]) {
    assert.ok(read.has(needed), `no panel reads ${needed}`);
  }
  const exprs = dashboardExpressions().map((e) => e.expr).join('\n');
  assert.match(exprs, /nv_inference_request_failure\{[^}]*\}\[[^\]]+\]\)\)/, 'failures as a rate');
  assert.match(exprs, /sum by \(model, reason\) \(rate\(nv_inference_request_failure/, 'failures by reason');
  assert.match(exprs, /quantile="0\.5"/);
  assert.match(exprs, /quantile="0\.99"/);
  assert.match(exprs, /sum by \(model, step, step_model, le\)/, 'step durations by step and step model');
});

test('the dashboard: Grafana schema ~39, the datasource and model variables, and every panel with a datasource and a query', () => {
  assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
  assert.ok(dashboard.uid && dashboard.title);
  const variables = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(variables['DS_PROMETHEUS']?.type, 'datasource');
  assert.equal(variables['DS_PROMETHEUS']?.query, 'prometheus');
  assert.equal(variables['model']?.type, 'query');
  assert.equal(variableQuery(variables['model']!), 'label_values(nv_inference_count, model)');
  assert.equal(variables['model']?.datasource?.uid, DS);

  assert.ok(dashboard.panels.length >= 15);
  const ids = new Set<number>();
  for (const panel of dashboard.panels) {
    assert.ok(!ids.has(panel.id), `panel id ${panel.id} is unique`);
    ids.add(panel.id);
    assert.ok(['timeseries', 'stat'].includes(panel.type), `${panel.title}: type ${panel.type}`);
    assert.equal(panel.datasource?.uid, DS, `${panel.title}: datasource`);
    assert.ok(panel.targets && panel.targets.length > 0, `${panel.title}: at least one target`);
    const refIds = new Set<string>();
    for (const target of panel.targets) {
      assert.ok(target.expr && target.expr.trim().length > 0, `${panel.title}: target with an expression`);
      assert.equal(target.datasource?.uid, DS, `${panel.title}: target datasource`);
      assert.ok(target.refId && !refIds.has(target.refId), `${panel.title}: unique refId`);
      refIds.add(target.refId);
      if (/\brate\(/.test(target.expr)) assert.match(target.expr, /\[\$__rate_interval\]/, `${panel.title}: rates over $__rate_interval`);
      // Per-model series follow the model picker; the host gauges have no model label.
      if (!/nv_cpu_/.test(target.expr)) assert.match(target.expr, /model=~"\$model"/, `${panel.title}: filtered by $model`);
    }
  }
});

test('the dashboard\'s panels sit on Grafana\'s 24-column grid without overlapping', () => {
  const cells = new Set<string>();
  for (const { title, gridPos } of dashboard.panels) {
    assert.ok(gridPos.x >= 0 && gridPos.w > 0 && gridPos.x + gridPos.w <= 24, `${title}: within 24 columns`);
    for (let x = gridPos.x; x < gridPos.x + gridPos.w; x++) {
      for (let y = gridPos.y; y < gridPos.y + gridPos.h; y++) {
        const cell = `${x},${y}`;
        assert.ok(!cells.has(cell), `${title} overlaps another panel at ${cell}`);
        cells.add(cell);
      }
    }
  }
});

test('the adapter rule: per-pod queue time per request from Triton\'s counters, named as the HPA asks', () => {
  const hpa = manifestOf('HorizontalPodAutoscaler').object as { spec: { metrics: { type: string; pods?: { metric: { name: string } } }[] } };
  const wanted = hpa.spec.metrics.filter((m) => m.type === 'Pods').map((m) => m.pods!.metric.name);
  const rule = adapter.rules.custom.find((r) => wanted.includes(r.name.as));
  assert.ok(rule, `a rule serving ${wanted.join(', ')}`);
  assert.match(rule.seriesQuery, /^nv_inference_queue_duration_us\{/);
  assert.match(rule.seriesQuery, /namespace!=""/);
  assert.match(rule.seriesQuery, /pod!=""/);
  assert.ok(new RegExp(rule.name.matches).test('nv_inference_queue_duration_us'), 'name.matches matches the series');
  assert.deepEqual(rule.resources.overrides, { namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
  const query = rule.metricsQuery.replace(/\s+/g, ' ');
  assert.match(query, /rate\(nv_inference_queue_duration_us\{<<\.LabelMatchers>>\}\[1m\]\)/);
  assert.match(query, /rate\(nv_inference_request_success\{<<\.LabelMatchers>>\}\[1m\]\)/);
  assert.match(query, /sum by \(<<\.GroupBy>>\) \(rate\(nv_inference_queue_duration_us[^/]*\/ \(sum by \(<<\.GroupBy>>\) \(rate\(nv_inference_request_success/,
    'queue time divided by successful requests, summed per pod over models and versions');
});
