import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/server';
import { pino } from 'pino';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { importServer } from '../../app/servers/import-server.js';
import { createVirusTotalServer } from '../../app/servers/virustotal.js';
import { call, connect, silent, text } from './support/mcp.js';
import { waitFor } from '../helpers/wait.js';

const API_KEY = 'stub-api-key-123';
const EICAR_MD5 = '44d88612fea8a8f36de82e1278abb02f';
const EICAR_SHA256 = '275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f';
const CLEAN_SHA1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
/** Streams an endless report (chunked, no content-length). */
const ENDLESS = '1'.repeat(64);
/** Declares a 50 MB report in content-length. */
const DECLARED_HUGE = '2'.repeat(64);
/** Sends headers at once, then stalls the body. */
const STALLED_BODY = '3'.repeat(64);
/** Sends a report of exactly 1000 bytes. */
const KILOBYTE = '4'.repeat(64);

const eicarReport = {
  data: {
    id: EICAR_SHA256,
    type: 'file',
    attributes: {
      sha256: EICAR_SHA256,
      sha1: '3395856ce81f2b7382dee72602f798b642f14140',
      md5: EICAR_MD5,
      meaningful_name: 'eicar.com',
      type_description: 'DOS COM',
      size: 68,
      reputation: -1500,
      last_analysis_date: 1_700_000_000,
      names: ['eicar.com', 'eicar.txt', 'test.com'],
      last_analysis_stats: {
        malicious: 3,
        suspicious: 1,
        undetected: 2,
        harmless: 0,
        timeout: 1,
        'type-unsupported': 4,
        failure: 0,
      },
      last_analysis_results: {
        Zeta: { category: 'malicious', engine_name: 'Zeta', result: 'EICAR-Test-File' },
        Alpha: { category: 'malicious', engine_name: 'Alpha', result: 'Eicar' },
        Mid: { category: 'suspicious', engine_name: 'Mid', result: null },
        Beta: { category: 'malicious', engine_name: 'Beta', result: 'Test.File' },
        Clean: { category: 'undetected', engine_name: 'Clean', result: null },
      },
      popular_threat_classification: { suggested_threat_label: 'virus.eicar/test' },
    },
  },
};

const cleanReport = {
  data: {
    attributes: {
      sha1: CLEAN_SHA1,
      names: [],
      last_analysis_stats: { malicious: 0, suspicious: 0, undetected: 50, harmless: 10 },
      // An odd shape for one engine must not break the summary.
      last_analysis_results: { Weird: 'not-an-object' },
    },
  },
};

interface Seen {
  path: string;
  apiKey: string | undefined;
}

describe('virustotal sub-server (against a local stub)', () => {
  let stub: Server;
  let baseUrl: string;
  let client: Client;
  let fastClient: Client;
  const seen: Seen[] = [];
  /** Bytes the stub managed to send of the endless report. */
  let endlessBytes = 0;

  /** Answers the hashes whose body is streamed; false for the others. */
  function stream(hash: string, res: import('node:http').ServerResponse): boolean {
    if (hash === ENDLESS) {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      res.write('{"data":');
      const pump = () => {
        // Up to 1 GB, as fast as the reader takes it.
        while (!res.destroyed && endlessBytes < 1e9) {
          endlessBytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return true;
    }
    if (hash === DECLARED_HUGE) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(50_000_000) });
      res.write('{"data":');
      return true; // never finished: the client must give up on the header alone
    }
    if (hash === STALLED_BODY) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"data":');
      setTimeout(() => res.end('{}}'), 2_000).unref();
      return true;
    }
    if (hash === KILOBYTE) {
      const body = JSON.stringify({ data: { attributes: { names: ['x'.repeat(900)] } } });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body.padEnd(1000, ' '));
      return true;
    }
    return false;
  }

  function reply(req: IncomingMessage): {
    status: number;
    body: string;
    delayMs?: number;
    location?: string;
  } {
    const hash = req.url?.split('/').pop() ?? '';
    if (req.headers['x-apikey'] !== API_KEY)
      return { status: 401, body: '{"error":{"code":"WrongCredentialsError"}}' };
    if (hash === EICAR_MD5) return { status: 200, body: JSON.stringify(eicarReport) };
    if (hash === CLEAN_SHA1) return { status: 200, body: JSON.stringify(cleanReport) };
    if (hash === 'a'.repeat(64)) return { status: 429, body: '{"error":{"code":"QuotaExceededError"}}' };
    if (hash === 'b'.repeat(64)) return { status: 200, body: 'not json' };
    if (hash === 'c'.repeat(64)) return { status: 200, body: '{}', delayMs: 2_000 };
    if (hash === 'd'.repeat(64)) return { status: 302, body: '', location: 'http://127.0.0.1:1/elsewhere' };
    if (hash === 'e'.repeat(64)) return { status: 500, body: 'oops' };
    return { status: 404, body: '{"error":{"code":"NotFoundError"}}' };
  }

  before(async () => {
    stub = createServer((req, res) => {
      seen.push({ path: req.url ?? '', apiKey: req.headers['x-apikey'] as string | undefined });
      if (stream(req.url?.split('/').pop() ?? '', res)) return;
      const r = reply(req);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(r.status, {
          'content-type': 'application/json',
          ...(r.location === undefined ? {} : { location: r.location }),
        });
        res.end(r.body);
      };
      if (r.delayMs === undefined) send();
      else setTimeout(send, r.delayMs).unref();
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}/api/v3`;
    const server = new McpServer({ name: 'vt-test', version: '1.0.0' });
    importServer(server, 'virustotal', createVirusTotalServer({ apiKey: API_KEY, baseUrl }), silent);
    client = await connect(server);
    const fast = new McpServer({ name: 'vt-test-fast', version: '1.0.0' });
    importServer(
      fast,
      'virustotal',
      createVirusTotalServer({ apiKey: API_KEY, baseUrl, timeoutMs: 200 }),
      silent,
    );
    fastClient = await connect(fast);
  });

  after(async () => {
    await client.close();
    await fastClient.close();
    stub.closeAllConnections();
    await new Promise((resolve) => stub.close(resolve));
  });

  it('offers virustotal_file_report with an example and a hash schema', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(
      tools.map((t) => t.name),
      ['virustotal_file_report'],
    );
    assert.match(tools[0]?.description ?? '', /Example:/);
    assert.equal(tools[0]?.annotations?.openWorldHint, true);
  });

  it('summarizes a report: counts by category, detections, names, reputation', async () => {
    const result = await call(client, 'virustotal_file_report', { hash: EICAR_MD5.toUpperCase() });
    assert.equal(result.isError, undefined, text(result));
    assert.deepEqual(result.structuredContent, {
      hash: EICAR_MD5,
      sha256: EICAR_SHA256,
      sha1: '3395856ce81f2b7382dee72602f798b642f14140',
      md5: EICAR_MD5,
      verdict: 'malicious',
      stats: {
        malicious: 3,
        suspicious: 1,
        undetected: 2,
        harmless: 0,
        timeout: 1,
        type_unsupported: 4,
        failure: 0,
      },
      engines_total: 11,
      detections: [
        { engine: 'Alpha', category: 'malicious', result: 'Eicar' },
        { engine: 'Beta', category: 'malicious', result: 'Test.File' },
        { engine: 'Mid', category: 'suspicious', result: null },
        { engine: 'Zeta', category: 'malicious', result: 'EICAR-Test-File' },
      ],
      threat_label: 'virus.eicar/test',
      meaningful_name: 'eicar.com',
      names: ['eicar.com', 'eicar.txt', 'test.com'],
      type_description: 'DOS COM',
      size: 68,
      reputation: -1500,
      last_analysis_date: '2023-11-14T22:13:20.000Z',
      link: `https://www.virustotal.com/gui/file/${EICAR_SHA256}`,
    });
    const request = seen.find((s) => s.path.endsWith(EICAR_MD5));
    assert.equal(request?.path, `/api/v3/files/${EICAR_MD5}`);
    assert.equal(request?.apiKey, API_KEY);
  });

  it('tolerates missing and odd fields', async () => {
    const result = await call(client, 'virustotal_file_report', { hash: CLEAN_SHA1 });
    assert.equal(result.isError, undefined, text(result));
    const r = result.structuredContent as {
      verdict: string;
      engines_total: number;
      sha256: null;
      link: null;
    };
    assert.equal(r.verdict, 'clean');
    assert.equal(r.engines_total, 60);
    assert.equal(r.sha256, null);
    assert.equal(r.link, null);
  });

  it('rejects a malformed hash before any request', async () => {
    const before = seen.length;
    for (const hash of ['xyz', 'g'.repeat(32), 'a'.repeat(33), '../../users/me', `${EICAR_MD5}?x=1`]) {
      const result = await call(client, 'virustotal_file_report', { hash });
      assert.equal(result.isError, true, hash);
      assert.match(text(result), /MD5 \(32\), SHA-1 \(40\) or SHA-256 \(64\)/);
    }
    assert.equal(seen.length, before);
  });

  const errors: [string, RegExp][] = [
    ['f'.repeat(64), /has no report for f{64}/],
    ['a'.repeat(64), /quota exceeded/],
    ['b'.repeat(64), /malformed report/],
    ['d'.repeat(64), /could not be reached/],
    ['e'.repeat(64), /HTTP 500/],
  ];
  for (const [hash, message] of errors) {
    it(`answers ${message.source} as an isError result`, async () => {
      const result = await call(client, 'virustotal_file_report', { hash });
      assert.equal(result.isError, true);
      assert.match(text(result), message);
      assert.ok(!text(result).includes(API_KEY));
    });
  }

  it('gives up after the timeout', async () => {
    const started = Date.now();
    const result = await call(fastClient, 'virustotal_file_report', { hash: 'c'.repeat(64) });
    assert.equal(result.isError, true);
    assert.match(text(result), /did not answer within 0.2 s/);
    assert.ok(Date.now() - started < 1_500);
  });

  it('stops reading an endless report at the size cap', async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    const result = await call(client, 'virustotal_file_report', { hash: ENDLESS });
    assert.equal(result.isError, true);
    assert.match(text(result), /response too large to read \(over 5000000 bytes\)/);
    // The download was cut off near the 5 MB cap (plus what socket buffers held), far from the 1 GB offered.
    assert.ok(endlessBytes < 64e6, `stub sent ${endlessBytes} bytes`);
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 100e6);
  });

  it('refuses a declared content-length above the cap without reading the body', async () => {
    const started = Date.now();
    const result = await call(client, 'virustotal_file_report', { hash: DECLARED_HUGE });
    assert.equal(result.isError, true);
    assert.match(text(result), /response too large/);
    assert.ok(Date.now() - started < 2_000);
  });

  it('applies a configured size cap, inclusive', async () => {
    for (const [maxBodyBytes, ok] of [
      [999, false],
      [1000, true],
    ] as const) {
      const server = new McpServer({ name: 'vt-small-cap', version: '1.0.0' });
      importServer(
        server,
        'virustotal',
        createVirusTotalServer({ apiKey: API_KEY, baseUrl, maxBodyBytes }),
        silent,
      );
      const small = await connect(server);
      try {
        const result = await call(small, 'virustotal_file_report', { hash: KILOBYTE });
        if (ok) assert.equal(result.isError, undefined, text(result));
        else assert.match(text(result), /response too large to read \(over 999 bytes\)/);
      } finally {
        await small.close();
      }
    }
  });

  it('applies the timeout to the body too', async () => {
    const result = await call(fastClient, 'virustotal_file_report', { hash: STALLED_BODY });
    assert.equal(result.isError, true);
    assert.match(text(result), /did not answer within 0.2 s/);
  });

  it('treats a cancelled call as expected: logged at debug, no error', async () => {
    const lines: { level: number; msg: string; tool?: string }[] = [];
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    );
    const server = new McpServer({ name: 'vt-cancel', version: '1.0.0' });
    importServer(server, 'virustotal', createVirusTotalServer({ apiKey: API_KEY, baseUrl }), logger);
    const cancelling = await connect(server);
    try {
      for (const hash of ['c'.repeat(64), STALLED_BODY]) {
        lines.length = 0;
        const asked = seen.length;
        const controller = new AbortController();
        const pending = cancelling.callTool(
          { name: 'virustotal_file_report', arguments: { hash } },
          undefined,
          {
            signal: controller.signal,
          },
        );
        // Cancelled while the stub holds the request (it answers the first hash after 2 s and
        // stalls the second one's body for 2 s).
        await waitFor('the request at the stub', () => seen.slice(asked).some((r) => r.path.endsWith(hash)));
        controller.abort();
        await assert.rejects(pending, /abort/i);
        await waitFor(
          'the cancellation logged',
          () => lines.some((l) => l.msg === 'tool call cancelled'),
          1_000,
        );
        const cancelled = lines.find((l) => l.msg === 'tool call cancelled');
        assert.equal(cancelled?.level, 20, JSON.stringify(lines));
        assert.equal(cancelled?.tool, 'virustotal_file_report');
        assert.deepEqual(
          lines.filter((l) => l.level >= 40),
          [],
        );
      }
    } finally {
      await cancelling.close();
    }
  });

  it('reports a rejected API key without echoing it', async () => {
    const server = new McpServer({ name: 'vt-bad-key', version: '1.0.0' });
    importServer(server, 'virustotal', createVirusTotalServer({ apiKey: 'wrong-key', baseUrl }), silent);
    const bad = await connect(server);
    try {
      const result = await call(bad, 'virustotal_file_report', { hash: EICAR_MD5 });
      assert.equal(result.isError, true);
      assert.match(text(result), /rejected this server's API key/);
      assert.ok(!text(result).includes('wrong-key'));
    } finally {
      await bad.close();
    }
  });
});
