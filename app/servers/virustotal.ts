import { z } from 'zod';
import type { AppLogger } from '../logger.js';
import { ToolError, defineTool, type SubServer } from './import-server.js';

/** Options of {@link createVirusTotalServer}. */
export interface VirusTotalOptions {
  /** VirusTotal API key (`VIRUSTOTAL_API_KEY`); sent as `x-apikey`, never logged. */
  apiKey: string;
  /** API root without trailing slash (`VIRUSTOTAL_BASE_URL`). @default 'https://www.virustotal.com/api/v3' */
  baseUrl: string;
  /** Per-request timeout, covering the response body too. @default 10000 */
  timeoutMs?: number;
  /** Largest response body read, in bytes; a bigger answer is an error result. @default 5000000 */
  maxBodyBytes?: number;
}

/** An MD5 (32), SHA-1 (40) or SHA-256 (64) hex digest. */
const HASH = /^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/;
/** Default biggest response body read, in bytes; real reports are a few hundred KB. */
const MAX_BODY_BYTES = 5_000_000;
const MAX_LISTED = 20;

const count = z.number().int().nonnegative().catch(0);
const optionalString = z.string().nullish().catch(null);

/** The parts of `GET /files/{id}` this tool reads; anything missing or malformed degrades to null/0. */
const fileReport = z.object({
  data: z.object({
    attributes: z.object({
      sha256: optionalString,
      sha1: optionalString,
      md5: optionalString,
      meaningful_name: optionalString,
      type_description: optionalString,
      size: z.number().nullish().catch(null),
      reputation: z.number().nullish().catch(null),
      last_analysis_date: z.number().nullish().catch(null),
      names: z.array(z.string()).catch([]).default([]),
      last_analysis_stats: z
        .object({
          malicious: count,
          suspicious: count,
          undetected: count,
          harmless: count,
          timeout: count,
          'type-unsupported': count,
          failure: count,
        })
        .partial()
        .catch({})
        .default({}),
      last_analysis_results: z
        .record(
          z.string(),
          z.object({ category: z.string().catch('unknown'), result: z.string().nullish().catch(null) }),
        )
        .catch({})
        .default({}),
      popular_threat_classification: z
        .object({ suggested_threat_label: optionalString })
        .nullish()
        .catch(null),
    }),
  }),
});

const statsShape = z.object({
  malicious: z.number().int(),
  suspicious: z.number().int(),
  undetected: z.number().int(),
  harmless: z.number().int(),
  timeout: z.number().int(),
  type_unsupported: z.number().int(),
  failure: z.number().int(),
});

const outputShape = {
  hash: z.string().describe('The hash that was looked up (lower case).'),
  sha256: z.string().nullable(),
  sha1: z.string().nullable(),
  md5: z.string().nullable(),
  verdict: z
    .enum(['malicious', 'suspicious', 'clean', 'unknown'])
    .describe(
      'malicious if any engine flags it malicious, else suspicious if any flags it suspicious, else clean if engines analysed it, else unknown.',
    ),
  stats: statsShape.describe(
    'How many antivirus engines put the file in each category at the last analysis.',
  ),
  engines_total: z.number().int().describe('Engines in the last analysis.'),
  detections: z
    .array(z.object({ engine: z.string(), category: z.string(), result: z.string().nullable() }))
    .describe(`Engines that flagged the file malicious or suspicious (at most ${MAX_LISTED}).`),
  threat_label: z
    .string()
    .nullable()
    .describe('VirusTotal\'s suggested threat label, e.g. "trojan.emotet/xxx".'),
  meaningful_name: z.string().nullable(),
  names: z.array(z.string()).describe(`File names seen for this file (at most ${MAX_LISTED}).`),
  type_description: z.string().nullable(),
  size: z.number().nullable().describe('File size in bytes.'),
  reputation: z
    .number()
    .nullable()
    .describe('Community reputation score; negative means considered harmful.'),
  last_analysis_date: z.string().nullable().describe('ISO 8601 time of the last analysis.'),
  link: z.string().nullable().describe('VirusTotal web page of the report.'),
};

type Output = z.output<z.ZodObject<typeof outputShape>>;

function summarize(hash: string, report: z.output<typeof fileReport>): Output {
  const a = report.data.attributes;
  const s = a.last_analysis_stats;
  const stats = {
    malicious: s.malicious ?? 0,
    suspicious: s.suspicious ?? 0,
    undetected: s.undetected ?? 0,
    harmless: s.harmless ?? 0,
    timeout: s.timeout ?? 0,
    type_unsupported: s['type-unsupported'] ?? 0,
    failure: s.failure ?? 0,
  };
  const detections = Object.entries(a.last_analysis_results)
    .filter(([, r]) => r.category === 'malicious' || r.category === 'suspicious')
    .sort(([x], [y]) => x.localeCompare(y))
    .slice(0, MAX_LISTED)
    .map(([engine, r]) => ({ engine, category: r.category, result: r.result ?? null }));
  const verdict =
    stats.malicious > 0
      ? 'malicious'
      : stats.suspicious > 0
        ? 'suspicious'
        : stats.harmless + stats.undetected > 0
          ? 'clean'
          : 'unknown';
  const sha256 = a.sha256 ?? null;
  return {
    hash,
    sha256,
    sha1: a.sha1 ?? null,
    md5: a.md5 ?? null,
    verdict,
    stats,
    engines_total: Object.values(stats).reduce((x, y) => x + y, 0),
    detections,
    threat_label: a.popular_threat_classification?.suggested_threat_label ?? null,
    meaningful_name: a.meaningful_name ?? null,
    names: a.names.slice(0, MAX_LISTED),
    type_description: a.type_description ?? null,
    size: a.size ?? null,
    reputation: a.reputation ?? null,
    last_analysis_date:
      a.last_analysis_date == null ? null : new Date(a.last_analysis_date * 1000).toISOString(),
    link: sha256 === null ? null : `https://www.virustotal.com/gui/file/${sha256}`,
  };
}

class BodyTooLarge extends Error {}

/**
 * Reads a response body of at most `maxBytes` bytes as UTF-8 text, never holding more than that: a declared
 * `content-length` above it is refused unread, and a body that grows past it is cancelled mid-stream.
 * @throws BodyTooLarge beyond the cap; the stream's error (abort, timeout, network) otherwise.
 */
async function readCapped(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes || res.body === null) {
    await res.body?.cancel().catch(() => undefined);
    if (declared > maxBytes) throw new BodyTooLarge();
    return '';
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

async function fetchReport(
  options: VirusTotalOptions,
  hash: string,
  signal: AbortSignal,
  logger: AppLogger,
): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
  // The caller cancelling and the timeout both stop the request, including the body download.
  const requestSignal = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  /** Maps a transport failure; a cancellation is rethrown as is (the tool layer handles it). */
  const failed = (err: unknown, what: string): never => {
    if (signal.aborted) throw err; // the caller cancelled: nobody reads the result
    if (err instanceof Error && err.name === 'TimeoutError') {
      throw new ToolError(`VirusTotal did not answer within ${timeoutMs / 1000} s. Try again later.`);
    }
    logger.warn({ err }, what);
    throw new ToolError('VirusTotal could not be reached. Try again later.');
  };
  let res: Response;
  try {
    res = await fetch(`${options.baseUrl}/files/${hash}`, {
      headers: { 'x-apikey': options.apiKey, accept: 'application/json' },
      // A redirect would carry the API key to wherever it points.
      redirect: 'error',
      signal: requestSignal,
    });
  } catch (err) {
    return failed(err, 'VirusTotal request failed');
  }
  if (res.status === 404) {
    await res.body?.cancel().catch(() => undefined);
    throw new ToolError(
      `VirusTotal has no report for ${hash}: the file has never been submitted, so nothing is known about it.`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    logger.warn({ status: res.status }, 'VirusTotal answered with an error');
    if (res.status === 401 || res.status === 403) {
      throw new ToolError(
        "VirusTotal rejected this server's API key. An operator must check VIRUSTOTAL_API_KEY.",
      );
    }
    if (res.status === 429) throw new ToolError('VirusTotal quota exceeded. Try again later.');
    throw new ToolError(`VirusTotal answered with HTTP ${res.status}. Try again later.`);
  }
  let text: string;
  try {
    text = await readCapped(res, maxBodyBytes);
  } catch (err) {
    if (err instanceof BodyTooLarge) {
      logger.warn(
        { maxBodyBytes, contentLength: res.headers.get('content-length') },
        'VirusTotal response too large',
      );
      throw new ToolError(
        `VirusTotal answered with a response too large to read (over ${maxBodyBytes} bytes). Try again later.`,
      );
    }
    return failed(err, 'VirusTotal response could not be read');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ToolError('VirusTotal answered with a malformed report.');
  }
}

/**
 * The VirusTotal sub-server (offered only when an API key is configured): file reputation by hash.
 */
export function createVirusTotalServer(options: VirusTotalOptions): SubServer {
  return [
    defineTool({
      name: 'file_report',
      title: 'VirusTotal file report',
      description: `Looks up a file by its hash on VirusTotal and summarizes the latest antivirus scan: how many engines flagged it malicious or suspicious, which engines and what they called it, the file's known names, type, size and community reputation. Only the hash is sent; no file is uploaded.

Args:
  hash: MD5 (32 hex characters), SHA-1 (40) or SHA-256 (64) of the file.
Returns: { hash, sha256, sha1, md5, verdict: malicious|suspicious|clean|unknown, stats: counts per category, engines_total, detections: [{engine, category, result}], threat_label, meaningful_name, names, type_description, size, reputation, last_analysis_date, link }. A hash VirusTotal has never seen is an error result saying so.
Example: {tool}(hash="44d88612fea8a8f36de82e1278abb02f") (the EICAR test file) → { "verdict": "malicious", "stats": { "malicious": 60, ... }, "threat_label": "virus.eicar/test", ... }`,
      inputSchema: {
        hash: z
          .string()
          .trim()
          .regex(HASH, { error: 'expected an MD5 (32), SHA-1 (40) or SHA-256 (64) hexadecimal hash' })
          .describe('MD5, SHA-1 or SHA-256 of the file, in hexadecimal.'),
      },
      outputSchema: outputShape,
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: true },
      handler: async ({ hash }, { signal, logger }) => {
        const id = hash.toLowerCase();
        const body = await fetchReport(options, id, signal, logger);
        const report = fileReport.safeParse(body);
        if (!report.success) {
          logger.warn({ issues: report.error.issues.slice(0, 5) }, 'unexpected VirusTotal report shape');
          throw new ToolError('VirusTotal answered with a report this server cannot read.');
        }
        return summarize(id, report.data);
      },
    }),
  ];
}
