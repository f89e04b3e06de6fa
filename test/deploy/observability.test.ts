// The Grafana dashboard and the alert rules name only metrics and labels the library exports: read from
// a real prom-client registry after createFleet, not from a list kept by hand. A renamed metric or
// label fails here instead of silently emptying a panel or muting an alert.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Registry } from 'prom-client';
import { parse } from 'yaml';
import { createFleet } from '../../src/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MONITORING = join(ROOT, 'deploy', 'monitoring');
/** Labels Prometheus adds to every scraped series (Kubernetes service discovery, Prometheus Operator). */
const TARGET_LABELS = new Set(['namespace', 'pod', 'instance', 'job', 'service', 'container', 'endpoint']);
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

interface Exported {
  type: string;
  labels: Set<string>;
}

/** A PromQL expression and where it comes from (for the failure message). */
interface Query {
  where: string;
  expr: string;
  /** Labels the query's result is expected to carry (legend `{{x}}`, annotation `$labels.x`). */
  uses: string[];
}

function dashboardQueries(): Query[] {
  const dashboard = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string; legendFormat?: string }> }>;
    templating: { list: Array<{ name: string; definition?: string }> };
  };
  const queries: Query[] = [];
  for (const panel of dashboard.panels) {
    for (const t of panel.targets ?? []) {
      const uses = [...(t.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
      queries.push({ where: `dashboard panel "${panel.title}"`, expr: t.expr, uses });
    }
  }
  for (const v of dashboard.templating.list) {
    const m = /^label_values\((.*),\s*(\w+)\)$/.exec(v.definition ?? '');
    if (m) queries.push({ where: `dashboard variable $${v.name}`, expr: m[1]!, uses: [m[2]!] });
  }
  return queries;
}

function ruleQueries(): Query[] {
  const rule = parse(readFileSync(join(MONITORING, 'prometheus-rule.yaml'), 'utf8')) as {
    spec: {
      groups: Array<{ rules: Array<{ alert: string; expr: string; annotations?: Record<string, string> }> }>;
    };
  };
  return rule.spec.groups.flatMap((g) =>
    g.rules.map((r) => ({
      where: `alert ${r.alert}`,
      expr: r.expr,
      uses: Object.values(r.annotations ?? {}).flatMap((a) =>
        [...a.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]!),
      ),
    })),
  );
}

describe('dashboard and alert rules against the exported metrics', () => {
  const exported = new Map<string, Exported>();

  before(async () => {
    const registry = new Registry();
    const fleet = createFleet({
      server: () => new McpServer({ name: 'm', version: '1' }),
      metrics: registry,
    });
    for (const m of await registry.getMetricsAsJSON()) {
      // prom-client keeps each metric's label names on the metric object (not in its typings).
      const metric = registry.getSingleMetric(m.name) as unknown as { labelNames?: readonly string[] };
      exported.set(m.name, { type: String(m.type), labels: new Set(metric.labelNames ?? []) });
    }
    await fleet.close();
    assert.ok(exported.size >= 13, [...exported.keys()].join(', '));
  });

  /** The exported metric a series name belongs to (histogram series end in _bucket, _sum, _count). */
  function metricOf(series: string): { name: string; info: Exported; bucket: boolean } | undefined {
    const direct = exported.get(series);
    if (direct) return { name: series, info: direct, bucket: false };
    for (const suffix of HISTOGRAM_SUFFIXES) {
      const base = series.endsWith(suffix) ? exported.get(series.slice(0, -suffix.length)) : undefined;
      if (base?.type === 'histogram')
        return { name: series.slice(0, -suffix.length), info: base, bucket: suffix === '_bucket' };
    }
    return undefined;
  }

  function check(q: Query): string[] {
    const problems: string[] = [];
    const allowed = new Set(TARGET_LABELS);
    const series = [...q.expr.matchAll(/\bmcp_fleet_\w+/g)].map((m) => m[0]);
    if (series.length === 0) problems.push(`${q.where}: names no mcp_fleet_ metric`);
    for (const s of series) {
      const m = metricOf(s);
      if (!m) {
        problems.push(`${q.where}: ${s} is not exported`);
        continue;
      }
      for (const l of m.info.labels) allowed.add(l);
      if (m.bucket) allowed.add('le');
    }
    // Matchers right after a series name: every label must be one of that metric's (or a target label).
    for (const [, s, body] of q.expr.matchAll(/\b(mcp_fleet_\w+)\s*\{([^}]*)\}/g)) {
      const m = metricOf(s!);
      if (!m) continue;
      for (const [, label] of body!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) {
        const ok = m.info.labels.has(label!) || TARGET_LABELS.has(label!) || (m.bucket && label === 'le');
        if (!ok) problems.push(`${q.where}: ${s} has no label ${label}`);
      }
    }
    // Grouping labels and the labels the legend or annotations print.
    const grouped = [...q.expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
      m[1]!
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean),
    );
    for (const label of [...grouped, ...q.uses]) {
      if (!allowed.has(label))
        problems.push(`${q.where}: label ${label} is not exported by ${series.join(', ')}`);
    }
    // What an aggregation keeps is all a legend or annotation can show.
    const outer =
      /^\s*(?:sum|max|min|avg|count)\s+by\s*\(([^)]*)\)/.exec(q.expr) ??
      /^\s*histogram_quantile\([^,]+,\s*sum\s+by\s*\(([^)]*)\)/.exec(q.expr);
    if (outer) {
      const kept = new Set(outer[1]!.split(',').map((l) => l.trim()));
      for (const label of q.uses)
        if (!kept.has(label)) problems.push(`${q.where}: shows ${label}, which the aggregation drops`);
    }
    return problems;
  }

  it('every dashboard query names exported metrics and labels', () => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 15, `${queries.length} queries`);
    assert.deepEqual(queries.flatMap(check), []);
  });

  it('every alert rule names exported metrics and labels', () => {
    const queries = ruleQueries();
    assert.ok(queries.length >= 5, `${queries.length} rules`);
    assert.deepEqual(queries.flatMap(check), []);
  });

  it('the dashboard shows every metric the library exports', () => {
    const shown = new Set(
      dashboardQueries().flatMap((q) =>
        [...q.expr.matchAll(/\bmcp_fleet_\w+/g)].map((m) => metricOf(m[0])?.name),
      ),
    );
    assert.deepEqual(
      [...exported.keys()].filter((name) => !shown.has(name)),
      [],
    );
  });

  it('fails a query that names a metric or label the library does not export', () => {
    assert.deepEqual(check({ where: 'q', expr: 'sum(rate(mcp_fleet_requests_total[5m]))', uses: [] }), [
      'q: mcp_fleet_requests_total is not exported',
    ]);
    assert.deepEqual(
      check({
        where: 'q',
        expr: 'sum by (route) (rate(mcp_fleet_routed_posts_total{kind="local"}[5m]))',
        uses: ['route'],
      }),
      ['q: mcp_fleet_routed_posts_total has no label kind'],
    );
    assert.deepEqual(check({ where: 'q', expr: 'sum(mcp_fleet_owned_sessions)', uses: ['reason'] }), [
      'q: label reason is not exported by mcp_fleet_owned_sessions',
    ]);
  });
});
