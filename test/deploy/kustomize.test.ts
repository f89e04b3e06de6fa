// The Kubernetes kit renders and is valid: every overlay under deploy/overlays rendered with
// `kubectl kustomize` (offline), every object checked against the Kubernetes (and Prometheus Operator)
// schemas of kubernetes-models — values, types, required fields — and, since those schemas let unknown
// fields through, type-checked against the same package's TypeScript types (a misspelt field is an
// excess property); then what the rollout relies on (drain budget, probes, resources, security).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../app/config.js';
import { SHUTDOWN_TIMEOUT_MS } from '../../app/main.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OVERLAYS = join(ROOT, 'deploy', 'overlays');
const KUBECTL_HINT =
  'kubectl is required to render deploy/ (`kubectl kustomize`): apt-get install kubernetes-client (Debian/Ubuntu)';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Where kubernetes-models keeps the model of an apiVersion/kind (module path, and the type's name). */
function modelOf(o: K8sObject): { module: string; type: string } {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  if (group === 'monitoring.coreos.com') {
    return { module: `@kubernetes-models/prometheus-operator/${o.apiVersion}/${o.kind}`, type: `I${o.kind}` };
  }
  return { module: `kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}`, type: `I${o.kind}` };
}

function render(dir: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  if (r.error) throw new Error(KUBECTL_HINT);
  assert.equal(r.status, 0, `kubectl kustomize ${dir}:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
}

function fromFile(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as K8sObject);
}

const overlays = readdirSync(OVERLAYS).sort();
const rendered = new Map<string, K8sObject[]>();

describe('deploy/: the Kubernetes kit', () => {
  before(() => {
    for (const o of overlays) rendered.set(o, render(join(OVERLAYS, o)));
    rendered.set('secret.template.yaml', fromFile(join(ROOT, 'deploy', 'secret.template.yaml')));
  });

  it('has the overlays the operations guide describes', () => {
    assert.deepEqual(overlays, ['external-redis', 'redis-cluster', 'redis-sentinel', 'single-redis']);
  });

  it('every rendered object passes its Kubernetes schema', async () => {
    for (const [source, objects] of rendered) {
      assert.ok(objects.length > 0, `${source} renders objects`);
      for (const o of objects) {
        const { module } = modelOf(o);
        const exports = (await import(module).catch(() => {
          throw new Error(`${source}: no schema for ${o.apiVersion} ${o.kind} (${module})`);
        })) as Record<string, new (data: unknown) => { validate(): void }>;
        const Model = exports[o.kind];
        assert.ok(Model, `${module} exports ${o.kind}`);
        assert.doesNotThrow(() => new Model(o).validate(), `${source}: ${o.kind}/${o.metadata.name}`);
      }
    }
  });

  describe('every rendered object type-checks against the Kubernetes types (no unknown field)', () => {
    const dir = join(ROOT, '.tmp', `k8s-types-${process.pid}`);
    before(() => mkdirSync(dir, { recursive: true }));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('compiles', () => {
      const imports = new Map<string, string>();
      const lines: string[] = [];
      let n = 0;
      for (const [source, objects] of rendered) {
        for (const o of objects) {
          const { module } = modelOf(o);
          const alias = `T${imports.size}`;
          if (!imports.has(module)) imports.set(module, alias);
          lines.push(`// ${source}: ${o.kind}/${o.metadata.name}`);
          lines.push(`export const o${n++}: ${imports.get(module)} = ${JSON.stringify(o, null, 2)};`);
        }
      }
      const head = [...imports].map(([module, alias]) => {
        const type = `I${module.slice(module.lastIndexOf('/') + 1)}`;
        return `import type { ${type} as ${alias} } from '${module}';`;
      });
      writeFileSync(join(dir, 'objects.ts'), [...head, ...lines].join('\n'));
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: [],
          },
          files: ['objects.ts'],
        }),
      );
      const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], {
        encoding: 'utf8',
      });
      assert.equal(tsc.status, 0, `unknown or mistyped fields:\n${tsc.stdout}${tsc.stderr}`);
    });
  });

  it('aligns the drain: preStop + the server shutdown fit the termination grace period', () => {
    for (const overlay of overlays) {
      const deployment = rendered
        .get(overlay)!
        .find((o) => o.kind === 'Deployment' && o.metadata.name === 'mcp-fleet');
      assert.ok(deployment, `${overlay} has the Deployment`);
      const pod = (deployment.spec as { template: { spec: PodSpec } }).template.spec;
      const server = pod.containers.find((c) => c.name === 'server')!;
      const preStop = server.lifecycle?.preStop?.exec?.command ?? [];
      assert.equal(preStop[0], 'sleep', 'preStop waits for the endpoint removal');
      const preStopSeconds = Number(preStop[1]);
      assert.ok(preStopSeconds >= 3, 'long enough for kube-proxy and load balancers to see it');
      assert.ok(
        pod.terminationGracePeriodSeconds >= preStopSeconds + SHUTDOWN_TIMEOUT_MS / 1000 + 2,
        `grace ${pod.terminationGracePeriodSeconds} s < preStop ${preStopSeconds} s + shutdown ${SHUTDOWN_TIMEOUT_MS / 1000} s + slack`,
      );
      // Probes, resources and the hardening every production pod needs.
      assert.equal(server.startupProbe?.httpGet?.path, '/livez');
      assert.equal(server.readinessProbe?.httpGet?.path, '/readyz');
      assert.equal(server.livenessProbe?.httpGet?.path, '/livez');
      assert.ok(server.resources?.requests?.cpu && server.resources.requests.memory);
      assert.ok(server.resources?.limits?.memory);
      assert.equal(server.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(server.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(server.securityContext?.capabilities?.drop, ['ALL']);
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      const env = new Map(server.env.map((e) => [e.name, e]));
      assert.equal(env.get('ENVIRONMENT')?.value, 'production');
      // The reference server accepts the pod's environment (secrets filled in with placeholders).
      const values = Object.fromEntries(
        server.env.map((e) => [
          e.name,
          e.value ??
            (e.name === 'REDIS_URL'
              ? 'rediss://u:p@redis:6379'
              : 'a-placeholder-secret-of-more-than-32-characters'),
        ]),
      );
      const config = parseConfig(values);
      assert.ok(config.redis, `${overlay} says where Redis is`);
      assert.equal(env.get('JWT_SECRET_KEY')?.valueFrom?.secretKeyRef?.name, 'mcp-fleet-secrets');
      assert.ok(!env.has('INSTANCE_ID'), 'instance ids stay unique per process');
      // The heap cap leaves room below the memory limit.
      const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(env.get('NODE_OPTIONS')?.value ?? '')?.[1]);
      assert.ok(heapMiB > 0 && heapMiB < mebibytes(server.resources.limits.memory) * 0.8);

      const kinds = new Set(rendered.get(overlay)!.map((o) => o.kind));
      for (const kind of [
        'Service',
        'PodDisruptionBudget',
        'HorizontalPodAutoscaler',
        'ServiceMonitor',
        'PrometheusRule',
      ]) {
        assert.ok(kinds.has(kind), `${overlay} has a ${kind}`);
      }
      const pdb = rendered.get(overlay)!.find((o) => o.kind === 'PodDisruptionBudget')!;
      assert.deepEqual(
        (pdb.spec as { selector: { matchLabels: unknown } }).selector.matchLabels,
        (deployment.spec as { selector: { matchLabels: unknown } }).selector.matchLabels,
        'the budget covers the server pods only',
      );
    }
    const hpa = rendered.get('external-redis')!.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
    const metrics = (hpa.spec as { metrics: Array<{ type: string }> }).metrics.map((m) => m.type);
    assert.deepEqual(metrics, ['Resource', 'Pods'], 'CPU plus the custom metric example');
  });
});

interface Probe {
  httpGet?: { path?: string };
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  securityContext?: { runAsNonRoot?: boolean };
  containers: Array<{
    name: string;
    env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string } } }>;
    lifecycle?: { preStop?: { exec?: { command?: string[] } } };
    startupProbe?: Probe;
    readinessProbe?: Probe;
    livenessProbe?: Probe;
    resources: { requests?: { cpu?: string; memory?: string }; limits: { memory: string } };
    securityContext?: {
      readOnlyRootFilesystem?: boolean;
      allowPrivilegeEscalation?: boolean;
      capabilities?: { drop?: string[] };
    };
  }>;
}

function mebibytes(quantity: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(quantity);
  assert.ok(m, `memory quantity ${quantity} in Mi or Gi`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}
