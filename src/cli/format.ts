import type { FleetStats, SessionDetails, SessionPage } from './admin.js';

/** A plain-text table: a header row and left-aligned columns two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A duration in ms as `1h 02m`, `3m 05s` or `42s`; `-` for none (no TTL, gone). */
export function duration(ms: number | null): string {
  if (ms === null || ms < 0) return '-';
  const s = Math.round(ms / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** A time as `2026-12-01 11:34:22Z` (UTC, no milliseconds). */
export function time(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/** `sessions list`, for people. */
export function formatPage(page: SessionPage, now = Date.now()): string {
  const rows = page.sessions.map((s) => [
    s.id,
    s.principal,
    s.transport,
    s.owner || '(none)',
    String(s.epoch),
    s.client,
    time(s.createdAt),
    duration(s.expiresAt - now),
  ]);
  const head = ['SESSION', 'PRINCIPAL', 'TRANSPORT', 'OWNER', 'EPOCH', 'CLIENT', 'CREATED', 'EXPIRES IN'];
  const count = `${page.sessions.length} session${page.sessions.length === 1 ? '' : 's'}`;
  const more = page.next === undefined ? '' : `; next page: --cursor ${page.next}`;
  return `${rows.length > 0 ? `${table(head, rows)}\n` : ''}${count}${more}`;
}

/** `sessions show`, for people. */
export function formatDetails(d: SessionDetails): string {
  const r = d.record;
  const info = r.initialize.clientInfo;
  const fields: Array<[string, string]> = [
    ['session', r.id],
    ['principal', r.principal],
    ['transport', r.transport],
    ['protocol', r.protocolVersion],
    ['client', info ? `${info.name} ${info.version}` : '-'],
    [
      'owner',
      r.owner === ''
        ? '(none: the next request claims it)'
        : `${r.owner}${d.ownerAlive ? '' : ' (not alive)'}`,
    ],
    ['epoch', String(r.epoch)],
    ['created', time(r.createdAt)],
    ['expires in', duration(d.ttlMs.session)],
    ['initialized', r.initialized ? 'yes' : 'no'],
    ['log level', r.logLevel ?? '-'],
    ['subscriptions', r.subscriptions && r.subscriptions.length > 0 ? r.subscriptions.join(', ') : '-'],
    [
      'data',
      d.data ? `${d.data.bytes} bytes, version ${d.data.version}, expires in ${duration(d.ttlMs.data)}` : '-',
    ],
    ['redis memory', d.memoryBytes === null ? '- (MEMORY USAGE refused)' : `${d.memoryBytes} bytes`],
  ];
  const width = Math.max(...fields.map(([k]) => k.length));
  const out = fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  out.push('', 'streams held');
  out.push(
    d.streams.length === 0
      ? '  (none)'
      : table(
          ['STREAM', 'HOLDER', 'TRANSPORT', 'SINCE', 'LAST SEEN', 'RECORD EXPIRES IN'],
          d.streams.map((s) => [
            s.streamId,
            s.instanceId,
            s.transport,
            time(s.createdAt),
            time(s.lastSeenAt),
            duration(s.ttlMs),
          ]),
        ),
  );
  out.push('', 'event logs');
  out.push(
    d.logs.length === 0
      ? '  (none)'
      : table(
          ['STREAM', 'EVENTS', 'EXPIRES IN'],
          d.logs.map((l) => [l.streamId, String(l.events), duration(l.ttlMs)]),
        ),
  );
  return out.join('\n');
}

/** `stats`, for people. */
export function formatStats(s: FleetStats, now = Date.now()): string {
  const out = [
    `sessions         ${s.sessions} (streamable-http ${s.byTransport['streamable-http']}, sse ${s.byTransport.sse})`,
    `without owner    ${s.unowned} (claimed by their next request)`,
    `owner not alive  ${s.orphaned} (failed over on their next request)`,
    `streams held     ${s.streams}`,
    `instances alive  ${s.instances.length}`,
  ];
  if (s.instances.length > 0) {
    out.push(
      '',
      table(
        ['INSTANCE', 'UP FOR', 'OWNED', 'STREAMS', 'DRAINING', 'BEATS'],
        s.instances.map((i) => [
          i.instanceId,
          duration(now - i.startedAt),
          String(i.owned),
          String(i.heldStreams),
          i.draining ? 'yes' : 'no',
          String(i.beats),
        ]),
      ),
    );
  }
  return out.join('\n');
}
