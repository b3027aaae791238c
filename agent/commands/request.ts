/**
 * `respaldo request new`: a developer's request on form FOR 7.5 DSE 05 (clause 4.1.1: what
 * to back up; clause 4.3: what to restore), written as `requests/REQ-YYYY-NNNN.yaml` in
 * their clone of the records repository, committed and pushed. The number is the next
 * after every request of the year in the shared repository: the push is what reserves it,
 * and when another clone pushed the same number first, the request is renumbered and
 * pushed again. Fields not given as flags are asked for on a terminal.
 */
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { join } from 'node:path';
import { parseDuration, REQUEST_ID_RE } from '../../schemas/common.js';
import { request, requestPath, serializeFile, type Request } from '../../schemas/request.js';
import type { Context } from '../context.js';
import { Exit, usageError, type ExitCode } from '../errors.js';
import { PeopleGit } from '../people-git.js';
import { knownHosts } from '../trust.js';
import { assertPlainPath } from '../approver.js';
import { peopleRecords } from './approve.js';

export interface RequestNewOptions {
  records: string | undefined;
  type: string | undefined;
  name: string | undefined;
  area: string | undefined;
  host: string | undefined;
  repository: string | undefined;
  kind: string | undefined;
  paths: string[];
  git: string | undefined;
  database: string | undefined;
  server: string | undefined;
  schedule: string | undefined;
  retention: string | undefined;
  snapshot: string | undefined;
  at: string | undefined;
  to: string | undefined;
  intoProduction: boolean;
  reason: string | undefined;
  why: string | undefined;
  notes: string | undefined;
  date: string | undefined;
  /** Ask for missing fields (a terminal). */
  interactive: boolean;
}

/** Which flag sets each field, for messages. */
const FLAGS: Record<string, string> = {
  'requester.name': '--name',
  'requester.area': '--area',
  type: '--type',
  host: '--host',
  repository: '--repository',
  kind: '--kind',
  what: '--path, --git or --database with --server',
  'what.paths': '--path',
  'what.git': '--git',
  'what.database': '--database',
  'what.server': '--server',
  schedule: '--schedule',
  retention: '--retention',
  snapshot: '--snapshot',
  at: '--at',
  paths: '--path',
  destination: '--to',
  reason: '--reason',
  date: '--date',
};

function scheduleOf(text: string): { every: string } | { cron: string } {
  return parseDuration(text) !== undefined || !text.includes(' ') ? { every: text } : { cron: text };
}

/** "keep-daily=7,keep-weekly=4,keep-within=30d" → the retention rules. */
function retentionOf(text: string): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [name, value = ''] = part.split('=');
    out[name!.trim()] = /^\d+$/.test(value.trim()) ? Number(value) : value.trim();
  }
  return out;
}

async function ask(opts: RequestNewOptions): Promise<RequestNewOptions> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const q = async (label: string, current: string | undefined, example: string) => current ?? ((await rl.question(`${label} (${example}): `)).trim() || undefined);
    const o = { ...opts };
    o.name = await q('Who asks, name', o.name, 'Ana López');
    o.area = await q('Area', o.area, 'Desarrollo web');
    o.type = await q('Type: backup or restore', o.type, 'backup');
    o.host = await q('Host', o.host, 'web01');
    o.repository = await q('Repository', o.repository, 'portal');
    if (o.type === 'restore') {
      o.to = await q('Restore into (a folder on the host)', o.to, '/srv/restaurados/portal');
      o.reason = await q('Reason: deleted-by-mistake, physical-damage, logical-damage or other', o.reason, 'deleted-by-mistake');
    } else {
      o.kind = await q('Kind: config, files, source or database', o.kind, 'source');
      if (!o.paths.length && !o.git && !o.database) {
        if (o.kind === 'database') {
          o.database = await q('Database', o.database, 'portal');
          o.server = await q('Server, as the host configuration names it', o.server, 'main-pg');
        } else {
          const paths = await q('Paths, separated by spaces', undefined, '/var/www/portal');
          o.paths = (paths ?? '').split(/\s+/).filter(Boolean);
        }
      }
    }
    return o;
  } finally {
    rl.close();
  }
}

/** The request as the flags describe it, before it has a number. */
function draft(opts: RequestNewOptions, date: string): Record<string, unknown> {
  const common = { schema: 'respaldo/v1', form: 'FOR 7.5 DSE 05', id: 'REQ-0000-0000', date, requester: { name: opts.name, area: opts.area }, host: opts.host, repository: opts.repository };
  const notes = opts.notes ? { notes: opts.notes } : {};
  if (opts.type === 'restore')
    return {
      ...common,
      type: 'restore',
      ...(opts.snapshot ? { snapshot: opts.snapshot } : {}),
      ...(opts.at ? { at: opts.at } : {}),
      ...(opts.paths.length ? { paths: opts.paths } : {}),
      destination: opts.to,
      ...(opts.intoProduction ? { 'into-production': true } : {}),
      reason: opts.reason,
      ...(opts.why ? { reason_detail: opts.why } : {}),
      ...notes,
    };
  const what = opts.git ? { git: opts.git } : opts.database || opts.server ? { database: opts.database, server: opts.server } : { paths: opts.paths };
  return {
    ...common,
    type: opts.type,
    kind: opts.kind,
    what,
    ...(opts.schedule ? { schedule: scheduleOf(opts.schedule) } : {}),
    ...(opts.retention ? { retention: retentionOf(opts.retention) } : {}),
    ...notes,
  };
}

export async function runRequestNew(ctx: Context, opts: RequestNewOptions): Promise<ExitCode> {
  const dir = await peopleRecords(ctx, opts.records);
  const git = await PeopleGit.open(dir, ctx.env);
  const filled = opts.interactive ? await ask(opts) : opts;
  const now = ctx.now();
  const date = filled.date ?? `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;

  const checked = request.safeParse(draft(filled, date));
  if (!checked.success) {
    const lines = checked.error.issues.map((i) => {
      const field = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
      const flag = FLAGS[field] ?? FLAGS[field.replace(/\[\d+\]$/, '')] ?? FLAGS[field.split('.')[0]!];
      return `  ${field || 'request'}${flag ? ` (${flag})` : ''}: ${i.message}`;
    });
    throw usageError(`the request is not complete or not valid:\n${lines.join('\n')}`, 'see: respaldo request new --help');
  }
  const hosts = await knownHosts(dir, await readFile(join(dir, 'policy/allowed_signers'), 'utf8').catch(() => ''));
  if (!hosts.includes(checked.data.host))
    throw usageError(`host (--host): "${checked.data.host}" is not a host of the records in ${dir} (known: ${hosts.join(', ') || 'none'})`, 'name a host whose agent is enrolled (respaldo init); JAA adds new hosts');

  // The number comes from the shared repository: bring it up to date first.
  await git.sync();
  const year = date.slice(0, 4);
  let written: { id: string; path: string } | undefined;
  const write = async () => {
    // Brought up to date just before, HEAD holds every number the shared repository gave out.
    const taken = (await git.names('HEAD', 'requests'))
      .map((n) => REQUEST_ID_RE.exec(n.replace(/\.yaml$/, '')))
      .filter((m) => m && m[1] === year)
      .map((m) => Number(m![2]));
    const id = `REQ-${year}-${String(Math.max(0, ...taken) + 1).padStart(4, '0')}`;
    const value: Request = { ...checked.data, id };
    const path = requestPath(id);
    await assertPlainPath(dir, path);
    await mkdir(join(dir, 'requests'), { recursive: true });
    await writeFile(join(dir, path), serializeFile(value), { flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'EEXIST' ? usageError(`${join(dir, path)} already exists but is not committed`, 'commit or remove it (git status), then try again') : e;
    });
    await git.commit([path], `request ${id}: ${value.type} of ${value.repository} on ${value.host}`, false);
    written = { id, path };
  };
  await write();
  const renumbered: string[] = [];
  // Another clone pushed first: if it took this number, this request takes the next one.
  const pushed = await git.push(async () => {
    const before = written!;
    await git.undoLastCommit();
    await unlink(join(dir, before.path));
    await git.sync();
    await write();
    if (written!.id !== before.id) renumbered.push(`${before.id} → ${written!.id}`);
  });
  const { id, path } = written!;
  ctx.reporter.result(
    [
      `${id}: ${checked.data.type} request for ${checked.data.repository} on ${checked.data.host}, written to ${join(dir, path)}`,
      ...(renumbered.length ? [`  another clone took the number first: renumbered ${renumbered.join(', ')}`] : []),
      `  ${pushed ? 'committed and pushed' : 'committed (this repository has no upstream to push to)'}; JAA decides with: respaldo approve ${id}`,
    ].join('\n'),
    { id, path, pushed, renumbered },
  );
  return Exit.ok;
}
