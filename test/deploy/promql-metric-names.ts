/**
 * The metric names a PromQL expression reads, for checking dashboards and
 * adapter rules against the list of metrics Switchyard exports. Handles
 * what our expressions use: functions, aggregations with by/without,
 * binary operators with on/ignoring/group_*, label matchers, range
 * selectors, numbers, Grafana variables ($model, $__rate_interval) and
 * prometheus-adapter templates (<<.LabelMatchers>>).
 */

const KEYWORDS = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2',
  'inf', 'nan', 'start', 'end',
]);

/**
 * The family a series belongs to: histogram and summary series add
 * _bucket, _sum and _count to it. Some families end in _count themselves
 * (nv_inference_count), so a name that is a known family stays whole.
 */
export function metricFamily(name: string, families: ReadonlySet<string>): string {
  return families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
}

/**
 * The series names `expr` selects, as written (e.g. switchyard_batch_size_bucket).
 * Throws on unbalanced brackets, so a mangled expression does not pass
 * silently with fewer names.
 */
export function promqlMetricNames(expr: string): string[] {
  let text = expr
    .replace(/<<[^>]*>>/g, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{?\w+\}?/g, ' ');
  const pairs: Record<string, string> = { '(': ')', '[': ']', '{': '}' };
  const stack: string[] = [];
  for (const c of text) {
    if (pairs[c]) stack.push(pairs[c]!);
    else if (c === ')' || c === ']' || c === '}') {
      if (stack.pop() !== c) throw new Error(`unbalanced '${c}' in PromQL: ${expr}`);
    }
  }
  if (stack.length > 0) throw new Error(`unclosed bracket in PromQL: ${expr}`);
  text = text
    .replace(/\{[^{}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  const identifier = /(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?/g;
  for (const match of text.matchAll(identifier)) {
    const [, name, call] = match;
    // A name right after a digit is a number's exponent (1e-9): the lookbehind skips it.
    if (call || KEYWORDS.has(name!.toLowerCase())) continue;
    names.push(name!);
  }
  return names;
}

/** Grafana's label_values(metric, label) / metrics(...) variable queries. */
export function variableQueryMetricNames(query: string): string[] {
  const labelValues = /label_values\(\s*([^,)]+?)\s*(?:,|\))/.exec(query);
  if (labelValues) return promqlMetricNames(labelValues[1]!);
  const queryResult = /query_result\((.*)\)\s*$/.exec(query);
  if (queryResult) return promqlMetricNames(queryResult[1]!);
  return [];
}
