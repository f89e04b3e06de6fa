import { spawn, type ChildProcess } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

/** Project root: the child runs there, so `--import tsx` resolves from the project's node_modules. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUTPUT_LINES = 200;

/** How to start one app instance (see {@link startInstance}). */
export interface InstanceOptions {
  /** Path of the .ts entry file (relative paths are resolved from the project root). */
  entry: string;
  /** Extra environment, on top of the parent's; PORT is always set by the helper. */
  env?: Record<string, string>;
  /** Label for errors and echoed output; defaults to the entry's file name. */
  name?: string;
  /** Time allowed until `/livez` answers; default 20 s. */
  readyTimeoutMs?: number;
  /** Copy the child's output to our stderr as it comes (also enabled by env TEST_INSTANCE_OUTPUT=1). */
  echo?: boolean;
}

/** How a child process ended. */
export interface InstanceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** An app instance running as a separate OS process. */
export interface Instance {
  readonly name: string;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<InstanceExit>;
  /** False once the process has exited. */
  readonly running: boolean;
  /** The last ~200 lines the process wrote to stdout and stderr (print it when a test fails). */
  output(): string;
  /** Sends `signal` (default SIGKILL) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<InstanceExit>;
  /** Graceful stop: SIGTERM, then SIGKILL if still running after 5 s; waits for exit. */
  stop(): Promise<InstanceExit>;
}

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAll();
    // Keep the default behaviour (terminate) unless someone else handles the signal.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  });
}

/** Keeps the last `max` lines of a few streams, interleaved in arrival order. */
class RingBuffer {
  private lines: string[] = [];
  private partial = new Map<Readable, string>();
  constructor(
    private readonly max: number,
    private readonly echo: ((line: string) => void) | undefined,
  ) {}

  attach(stream: Readable | null): void {
    if (!stream) return;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = ((this.partial.get(stream) ?? '') + chunk).split('\n');
      this.partial.set(stream, parts.pop() ?? '');
      for (const line of parts) this.push(line);
    });
    stream.on('end', () => {
      const rest = this.partial.get(stream);
      if (rest) this.push(rest);
      this.partial.delete(stream);
    });
  }

  private push(line: string): void {
    this.echo?.(line);
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  text(): string {
    return [...this.lines, ...[...this.partial.values()].filter(Boolean)].join('\n');
  }
}

function probe(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startOnce(opts: InstanceOptions, name: string, entry: string): Promise<Instance> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, PORT: String(port) };
  // Set by `node --test` for its own children; an app must not think it is a test file.
  delete env.NODE_TEST_CONTEXT;
  const echoOn = opts.echo ?? process.env.TEST_INSTANCE_OUTPUT === '1';
  const buf = new RingBuffer(
    OUTPUT_LINES,
    echoOn ? (line) => process.stderr.write(`[${name}] ${line}\n`) : undefined,
  );

  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  buf.attach(child.stdout);
  buf.attach(child.stderr);
  children.add(child);
  // 'close' comes after 'exit' once stdout/stderr are drained: wait for it to report the last lines.
  const drained = new Promise<void>((r) => child.once('close', () => r()));

  let exit: InstanceExit | undefined;
  const exited = new Promise<InstanceExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      children.delete(child);
      resolve(exit);
    });
    child.once('error', (err) => {
      exit = { code: null, signal: null };
      children.delete(child);
      process.stderr.write(`[${name}] spawn failed: ${err.message}\n`);
      resolve(exit);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (exit) {
      await Promise.race([drained, sleep(1000)]);
      const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
      throw Object.assign(
        new Error(
          `instance ${name} (${entry}) exited with ${how} before /livez answered. Output:\n${buf.text()}`,
        ),
        { output: buf.text() },
      );
    }
    if (await probe(`${url}/livez`)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(
        `instance ${name} (${entry}) did not answer /livez on ${url} in time. Output:\n${buf.text()}`,
      );
    }
    await Promise.race([sleep(50), exited]);
  }

  // Don't let a forgotten instance keep the test process alive: the exit hook kills it.
  const unref = () => {
    child.unref();
    for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  };
  const ref = () => {
    child.ref();
    for (const s of [child.stdout, child.stderr]) (s as unknown as { ref?: () => void } | null)?.ref?.();
  };
  unref();

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<InstanceExit> => {
    if (exit) return exit;
    ref();
    child.kill(signal);
    return exited;
  };

  return {
    name,
    url,
    port,
    pid: child.pid!,
    exited,
    get running() {
      return exit === undefined;
    },
    output: () => buf.text(),
    kill,
    async stop() {
      if (exit) return exit;
      ref();
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), 5000)));
      const first = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (first === 'late') return kill('SIGKILL');
      return first;
    },
  };
}

/**
 * Spawns `node --import tsx <entry>` with PORT=<a free port> (plus `opts.env` and the parent's environment) and
 * resolves once `GET /livez` answers with any status. Rejects, with the child's output in the message, if the
 * process exits first or nothing answers within 20 s. Every spawned child is SIGKILLed when the test process exits.
 */
export async function startInstance(opts: InstanceOptions): Promise<Instance> {
  const entry = resolvePath(ROOT, opts.entry);
  const name = opts.name ?? entry.replace(/^.*\//, '').replace(/\.[cm]?[jt]s$/, '');
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts, name, entry);
    } catch (err) {
      // freePort() is racy: another process may grab the port before the child binds it.
      const lost = /EADDRINUSE/.test((err as { output?: string }).output ?? '');
      if (!lost || attempt >= 3) throw err;
    }
  }
}

/** Starts `n` instances in parallel, named `<name>-0` … `<name>-(n-1)`; if one fails the others are killed. */
export async function startCluster(n: number, opts: InstanceOptions): Promise<Instance[]> {
  const base = opts.name ?? opts.entry.replace(/^.*\//, '').replace(/\.[cm]?[jt]s$/, '');
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => startInstance({ ...opts, name: `${base}-${i}` })),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.kill() : undefined)));
    throw failed.reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<Instance>).value);
}
