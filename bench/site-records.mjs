/**
 * Generates a realistic respaldo records folder for the site benchmark (bench/site.mjs):
 * many hosts, each with its enrolment, daily database backups, weekly source backups,
 * config and files backups every 60 days, a copy to CSC after each new snapshot, CSC's
 * receipts (host csc-01), rotation checks, monthly prunes, a few failures, restores and
 * media loans; the backup requests and JAA's approvals they name; the trust policy.
 *
 *   node bench/site-records.mjs --records 50000 --out DIR [--days N | --hosts N] [--end ISO]
 *   node bench/site-records.mjs --append-day DIR
 *
 * Every record is made with the agent's own functions, imported from the compiled tree
 * (`--dist`, default dist/): serializeRecord, checked with parseRecord (the generator stops
 * at the first record that does not parse), placed at recordPath, chained by digestOf and
 * signed with signSshsig, as RecordStore.append does (without its fsyncs). Everything is a
 * pure function of the seed, the host and the day (the keys too), so that `--append-day`
 * continues every chain: the host configurations, chain heads and keys are kept beside the
 * folder, in DIR.gen.json and DIR.keys.json (never inside it).
 *
 * Hosts write in worker threads, one share of the hosts each; CSC's receipts, which name
 * the copy records they answer by seq and digest, are written by the main thread as each
 * day's copies come in.
 */
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

export const FORMAT = 2; // bump when the generated records change shape: bench/site.mjs then regenerates
const DAY_MS = 86_400_000;
const CSC = 'csc-01';
const TZ = 'America/Mexico_City';
const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, '..');

// ---------------------------------------------------------------------------------------
// Deterministic randomness: integer hashes of (seed, day, purpose), so that any day of any
// repository can be computed on its own (and again, by --append-day).

function fnv(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
function mix(a, b, c) {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b) ^ Math.imul(c + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
/** A number in [0, 1) for (seed, day, purpose). */
const rnd = (seed, day, purpose) => mix(seed, day, purpose) / 4294967296;
const P = { fail: 1, unchanged: 2, receipt: 3, noise: 4, spike: 5, jitter: 6, manual: 7, verifyFail: 8, mismatch: 9, restore: 10, stage: 11, dur: 12 };
const hex = (text, n = 64) => createHash('sha256').update(text).digest('hex').slice(0, n);
/** A sequence of numbers in [0, 1) from a text seed, for choices made once (host configs). */
function stream(text) {
  const s = fnv(text);
  let i = 0;
  return () => rnd(s, i++, 0);
}
const logUniform = (r, lo, hi) => Math.exp(Math.log(lo) + r * (Math.log(hi) - Math.log(lo)));

const pad = (n, w) => String(n).padStart(w, '0');
const iso = (ms) => new Date(ms).toISOString();
const snapshotIdAt = (ms) => `${iso(ms).replace(/[-:]/g, '').slice(0, 15)}Z`;
const dayOf = (ms) => Math.floor(ms / DAY_MS);
const dateOf = (day) => iso(day * DAY_MS).slice(0, 10);


// ---------------------------------------------------------------------------------------
// The site: hosts and their repositories (chosen once, kept in DIR.gen.json)

const APPS = ['portal', 'nomina', 'biblioteca', 'tramites', 'correo', 'inventario', 'encuestas', 'agenda', 'becas', 'transparencia', 'servicios', 'archivo', 'egresados', 'titulacion', 'admisiones', 'cursos', 'eventos', 'repositorio', 'revistas', 'congresos', 'padron', 'compras', 'viaticos', 'citas', 'posgrado', 'laboratorios', 'deportes', 'radio', 'bolsa', 'quejas', 'actas', 'convenios'];
const PEOPLE = [
  ['Ana López', 'Desarrollo web'],
  ['Carlos Méndez', 'Sistemas escolares'],
  ['María Fernanda Ruiz', 'Desarrollo web'],
  ['Jorge Ramírez', 'Administración'],
  ['Lucía Hernández', 'Servicios bibliotecarios'],
  ['Roberto Díaz', 'Sistemas escolares'],
];
const DB_RETENTION = { 'keep-daily': 14, 'keep-weekly': 8, 'keep-monthly': 12 };

function hostConfigs(seed, count, startDay, days) {
  const width = Math.max(2, String(count).length);
  const hosts = [];
  for (let i = 0; i < count; i++) {
    const name = `srv-${pad(i + 1, width)}`;
    const r = stream(`${seed}/host/${name}`);
    const app1 = APPS[(2 * i) % APPS.length];
    const app2 = APPS[(2 * i + 1) % APPS.length];
    const suffix = i >= APPS.length / 2 ? `${Math.floor((2 * i) / APPS.length) + 1}` : '';
    const a1 = `${app1}${suffix}`;
    const a2 = `${app2}${suffix}`;
    // Every tenth host joins later, so that the site has hosts with a shorter history.
    const enrolDay = i % 10 === 9 ? startDay + Math.floor(r() * days * 0.4) : startDay;
    const repos = [];
    const repo = (name, kind, extra) => repos.push({ name, kind, seed: fnv(`${seed}/${name}/${kind}/${i}`), ...extra });
    const dbRepo = (app, engine) => {
      const names = r() < 0.4 ? [app.replace(/-/g, '_'), `${app.replace(/-/g, '_')}_hist`] : [app.replace(/-/g, '_')];
      repo(`${app}-db`, 'database', {
        interval: 1,
        phase: 0,
        engine,
        pitr: engine === 'postgresql' && r() < 0.35,
        dbs: names.map((n, k) => ({ name: n, tables: 20 + Math.floor(r() * 160), share: names.length === 1 ? 1 : k === 0 ? 0.8 : 0.2 })),
        base: logUniform(r(), 50e6, 8e9),
        growth: 0.0005 + r() * 0.0025,
        retention: DB_RETENTION,
      });
    };
    dbRepo(a1, 'postgresql');
    dbRepo(a2, i % 3 === 2 ? 'postgresql' : 'mariadb');
    const weekday = Math.floor(r() * 7);
    repo(a1, 'source', { interval: 7, phase: weekday, base: logUniform(r(), 20e6, 600e6), growth: 0.0001 + r() * 0.0007, branches: 1 + Math.floor(r() * 3) });
    if (r() < 0.5) repo(a2, 'source', { interval: 7, phase: (weekday + 3) % 7, base: logUniform(r(), 20e6, 300e6), growth: 0.0001 + r() * 0.0007, branches: 1 + Math.floor(r() * 3) });
    const phase60 = Math.floor(r() * 60);
    repo('server-config', 'config', { interval: 60, phase: phase60, base: logUniform(r(), 2e6, 12e6), growth: 0.00002, fileSize: 9000 });
    repo(`${a1}-uploads`, 'files', { interval: 60, phase: (phase60 + 30) % 60, base: logUniform(r(), 2e9, 150e9), growth: 0.0003 + r() * 0.0017, fileSize: logUniform(r(), 0.4e6, 3e6) });
    hosts.push({ name, index: i, enrolDay, baseMinute: Math.floor(r() * 180), verifyOffset: Math.floor(r() * 3), pruneDom: 1 + Math.floor(r() * 28), person: i % PEOPLE.length, repos });
  }
  return hosts;
}

// ---------------------------------------------------------------------------------------
// What happens to a repository on a day: pure functions of (host, repository, day)

const isDue = (repo, day) => repo.interval === 1 || (((day - repo.phase) % repo.interval) + repo.interval) % repo.interval === 0;
/** The newest day at or before `day` when the repository is due. */
const dueAtOrBefore = (repo, day) => (repo.interval === 1 ? day : day - ((((day - repo.phase) % repo.interval) + repo.interval) % repo.interval));
/** The repository's first backup: its first due day from the host's enrolment on. */
const firstDue = (host, repo) => (repo.interval === 1 ? host.enrolDay : host.enrolDay + ((((repo.phase - host.enrolDay) % repo.interval) + repo.interval) % repo.interval));
const UNCHANGED = { database: 0, source: 0.15, config: 0.3, files: 0.1 };
/** null (not due), 'new' (snapshot and copy), 'copy-failed' (snapshot, its copy failed), 'unchanged', 'failed'. */
function outcome(host, repo, day) {
  if (day < host.enrolDay || !isDue(repo, day)) return null;
  if (day === firstDue(host, repo)) return 'new';
  const u = rnd(repo.seed, day, P.fail);
  if (u < 0.025) return 'failed';
  if (u < 0.03) return 'copy-failed';
  if (rnd(repo.seed, day, P.unchanged) < UNCHANGED[repo.kind]) return 'unchanged';
  return 'new';
}
const madeSnapshot = (o) => o === 'new' || o === 'copy-failed';
/** The newest day before `day` whose backup made a snapshot; null before the first. */
function previousSnapshotDay(host, repo, day) {
  const first = firstDue(host, repo);
  for (let d = dueAtOrBefore(repo, day - 1); d >= first; d -= repo.interval) if (madeSnapshot(outcome(host, repo, d))) return d;
  return null;
}
/** Days whose backup put a snapshot on the target, up to and including `upTo`. */
function snapshotDays(host, repo, target, upTo) {
  const out = [];
  for (let d = firstDue(host, repo); d <= upTo; d += repo.interval) {
    const o = outcome(host, repo, d);
    if (o === 'new' || (o === 'copy-failed' && target === 'primary')) out.push(d);
  }
  return out;
}
function sizeOn(repo, startDay, day) {
  const noise = repo.kind === 'database' ? (rnd(repo.seed, day, P.noise) - 0.5) * 0.01 : (rnd(repo.seed, day, P.noise) - 0.5) * 0.002;
  let bytes = repo.base * Math.exp(repo.growth * (day - startDay)) * (1 + noise);
  // Now and then, a size warning (clause 4.2.1): a dump left in a folder, a truncated dump.
  if (rnd(repo.seed, day, P.spike) < 0.004) bytes *= repo.kind === 'database' ? 0.55 : 2.3;
  bytes = Math.round(bytes);
  const files = repo.kind === 'database' ? repo.dbs.length : repo.kind === 'source' ? 1 : Math.max(1, Math.round(bytes / repo.fileSize));
  const dirs = repo.kind === 'database' ? 1 : repo.kind === 'source' ? 1 : Math.max(2, Math.round(files / 40));
  return { bytes, files, dirs, symlinks: repo.kind === 'config' ? 6 : 0, others: 0 };
}
function backupSeconds(repo, size) {
  if (repo.kind === 'database') return 2 + size.bytes / 60e6 + 3 + size.bytes / 40e6;
  if (repo.kind === 'source') return 3 + size.bytes / 80e6;
  if (repo.kind === 'config') return 1.5;
  return 5 + size.files / 3000 + (size.bytes * 0.02) / 150e6;
}
/** The day's run on a host: each due repository's outcome and backup times, one after the other. */
function runPlan(ctx, host, day) {
  const cache = (ctx.plans ??= new Map());
  const key = `${host.name}/${day}`;
  let run = cache.get(key);
  if (run) return run;
  let t = day * DAY_MS + 7 * 3_600_000 + host.baseMinute * 60_000 + Math.floor(rnd(fnv(host.name), day, P.jitter) * 59_000);
  const steps = [];
  for (const repo of host.repos) {
    const o = outcome(host, repo, day);
    if (!o) continue;
    const size = madeSnapshot(o) ? sizeOn(repo, ctx.startDay, day) : undefined;
    const started = t;
    t += o === 'failed' ? 4000 : o === 'unchanged' ? 2000 : Math.round(backupSeconds(repo, size) * 1000);
    steps.push({ repo, o, size, started, finished: t });
    t += 1500;
  }
  run = { steps, end: t };
  cache.set(key, run);
  if (cache.size > 8192) cache.delete(cache.keys().next().value);
  return run;
}
/** The snapshot a repository's backup made on `day` (which must have made one): id, place, digests, size. */
function snapshotOnDay(ctx, host, repo, day) {
  const step = runPlan(ctx, host, day).steps.find((s) => s.repo.name === repo.name);
  if (!step?.size) throw new Error(`generator bug: ${host.name}/${repo.name} made no snapshot on ${dateOf(day)}`);
  const id = snapshotIdAt(step.started);
  const key = `${ctx.seed}/${host.name}/${repo.name}/${id}`;
  return { id, location: `${host.name}/${repo.name}/snapshots/${id}`, digest: `sha256:${hex(`${key}/summary`)}`, manifest: `sha256:${hex(`${key}/manifest`)}`, size: step.size };
}
/** The host's latest prune day (its day of the month) on or before `day`, after its enrolment. */
function lastPruneDay(host, day) {
  const d = new Date(day * DAY_MS);
  for (let m = 0; m < 2; m++) {
    const pd = dayOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - m, host.pruneDom));
    if (pd <= day) return pd > host.enrolDay ? pd : undefined;
  }
  return undefined;
}
const isPruneDay = (host, day) => new Date(day * DAY_MS).getUTCDate() === host.pruneDom && day > host.enrolDay;
/** Days of the snapshots on a target on `day` (before that day's prune): what each earlier prune kept, and what came since. */
function existingOn(ctx, host, repo, target, day) {
  const days = snapshotDays(host, repo, target, day);
  if (!repo.retention) return days;
  const last = lastPruneDay(host, day - 1);
  if (last === undefined) return days;
  return [...keptAt(ctx, host, repo, target, last).keep, ...days.filter((d) => d > last)];
}
/** The retention plan of the prune on `pruneDay`, with the agent's own applyRetention. */
function keptAt(ctx, host, repo, target, pruneDay) {
  const cache = (ctx.kept ??= new Map());
  const key = `${host.name}/${repo.name}/${target}/${pruneDay}`;
  let plan = cache.get(key);
  if (plan) return plan;
  const byId = new Map(existingOn(ctx, host, repo, target, pruneDay).map((d) => [snapshotOnDay(ctx, host, repo, d).id, d]));
  const applied = ctx.applyRetention([...byId.keys()], repo.retention, TZ, new Date((pruneDay + 1) * DAY_MS));
  plan = { keep: applied.keep.map((k) => byId.get(k.id)), reasons: applied.keep, remove: applied.remove };
  cache.set(key, plan);
  return plan;
}
/** A WAL segment's file name. */
const walSegment = (n) => `00000001${pad((n >>> 8).toString(16).toUpperCase(), 8)}${pad((n & 0xff).toString(16).toUpperCase(), 8)}`;

// ---------------------------------------------------------------------------------------
// Record bodies

function runBy(repo, day) {
  return rnd(repo.seed, day, P.manual) < 0.01 ? { trigger: 'manual', operator: 'jaa' } : { trigger: 'scheduled' };
}
function about(repo) {
  return { repository: repo.name, kind: repo.kind, request: repo.request };
}
function compareSize(bytes, previous, shrink = 20, growth = 100) {
  if (previous === undefined) return { result: 'first', bytes, previous_bytes: null, change_percent: null, shrink_warning: shrink, growth_warning: growth };
  const change = previous === 0 ? (bytes === 0 ? 0 : null) : Math.round(((bytes - previous) / previous) * 10000) / 100;
  const warn = change !== null && (change <= -shrink || change >= growth);
  return { result: warn ? 'warning' : 'ok', bytes, previous_bytes: previous, change_percent: change, shrink_warning: shrink, growth_warning: growth };
}
const sha1 = (text) => createHash('sha1').update(text).digest('hex');

function gitInfo(ctx, host, repo, day, bytes) {
  const weeks = Math.floor((day - ctx.startDay) / 7);
  const commit = sha1(`${repo.seed}/head/${weeks}`);
  const refs = [{ name: 'refs/heads/main', object: commit, type: 'commit' }];
  for (let b = 1; b <= repo.branches; b++) refs.push({ name: `refs/heads/${['develop', 'staging', 'hotfix'][b - 1]}`, object: sha1(`${repo.seed}/b${b}/${weeks}`), type: 'commit' });
  const tags = 2 + Math.floor((day - ctx.startDay) / 28);
  for (let t = 1; t <= tags; t++) refs.push({ name: `refs/tags/v1.${t}.0`, object: sha1(`${repo.seed}/tag/${t}`), type: 'tag', commit: sha1(`${repo.seed}/tagc/${t}`) });
  return {
    version: '2.39.5',
    repositories: [
      {
        path: '{paths[0]}',
        bundle: `${repo.name}-${hex(`${repo.seed}`, 12)}.bundle`,
        bare: true,
        bytes,
        head: { ref: 'refs/heads/main', commit },
        refs,
        checks: ['git bundle verify: ok', 'git clone --mirror: ok', 'git fsck --full: ok', `refs of the clone: ${refs.length} match`],
      },
    ],
  };
}

function databaseParts(ctx, host, repo, day, snap, startMs, finishMs) {
  const pg = repo.engine === 'postgresql';
  const version = pg ? '15.10' : '10.11.6';
  const databases = repo.dbs.map((db) => {
    const bytes = Math.round(snap.size.bytes * db.share);
    const dump = { name: db.name, file: pg ? `postgresql/${db.name}.dump` : `mariadb/${db.name}.sql.gz`, format: pg ? 'pg_dump -Fc' : 'mariadb-dump | gzip', bytes, tables: db.tables, rows: Math.round(bytes / 180) };
    if (!pg) dump.binlog = { file: `mysql-bin.${pad(100 + (day % 900), 6)}`, position: 4 + (mix(repo.seed, day, 99) % 90_000_000), gtid: `0-1-${(day - ctx.startDay + 1) * 48_211 + (mix(repo.seed, day, 98) % 40_000)}`, time: iso(startMs + 800) };
    return dump;
  });
  const info = { engine: repo.engine, version, server: pg ? 'local socket, port 5432' : 'local socket', databases };
  if (repo.pitr) {
    const at = (day - ctx.startDay) * 96 + 4096;
    info.pitr = {
      base: { file: 'base', format: 'pg_basebackup -Fp -X stream', bytes: Math.round(snap.size.bytes * 1.6), start_lsn: `${(at >>> 8).toString(16).toUpperCase()}/${((at & 0xff) << 24).toString(16).toUpperCase()}`, timeline: 1, started: iso(startMs + 500), finished: iso(finishMs - 3000), checks: ['pg_verifybackup: ok'] },
      archive: { location: `${host.name}/${repo.name}/archive/wal`, files: 96 * 45, bytes: 96 * 45 * 16 * 1024 * 1024, first: walSegment(at - 96 * 45), last: walSegment(at + 12), gaps: [], window: { from: iso((day - 44) * DAY_MS + 8 * 3_600_000), to: iso(finishMs - 60_000) } },
    };
  }
  const restore = {
    result: 'ok',
    instance: pg ? `PostgreSQL ${version} throwaway instance (initdb, private socket)` : `MariaDB ${version} throwaway instance (mariadb-install-db, private socket)`,
    databases: databases.map((d) => ({ name: d.name, tables: d.tables, rows: d.rows, checks: pg ? ['pg_restore: ok', 'row counts: match'] : ['mariadb: ok', 'dump complete: ok', 'CHECK TABLE: ok', 'row counts: match'], mismatches: [] })),
    seconds: Math.round((snap.size.bytes / 40e6 + 3) * 1000) / 1000,
  };
  return { info, restore };
}

const FAILURES = {
  database: [
    ['source', (r) => (r.engine === 'postgresql' ? `pg_dump exited with code 1: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: FATAL:  the database system is in recovery mode` : 'mariadb-dump exited with code 2: Lost connection to server during query when dumping table `bitacora` at row: 182344'), 'check that the database server is up and accepts connections, then run again; the previous snapshot is intact', 1],
    ['target', () => 'the target is full while writing the snapshot (ENOSPC)', 'free space on the target (or prune old snapshots) and run again; the previous snapshot is intact'],
    ['verify', (r) => `the test restore failed in the throwaway ${r.engine === 'postgresql' ? 'PostgreSQL' : 'MariaDB'} instance: could not extend file "base/16384/2619": No space left on device`, 'free space in the scratch folder (state/scratch) and run again'],
  ],
  other: [
    ['source', () => 'rsync exited with code 23: some files could not be read (permission denied)', 'read the detail, give the agent read access to those files (or exclude them), then run again'],
    ['transfer', () => 'rsync exited with code 12: error in rsync protocol data stream', 'check the target and the network, then run again; the previous snapshot is intact', 12],
    ['target', () => 'the target is full while writing the snapshot (ENOSPC)', 'free space on the target (or prune old snapshots) and run again; the previous snapshot is intact'],
  ],
};

// ---------------------------------------------------------------------------------------
// One host's day: its records in time order, each written by `emit`

function hostDay(ctx, host, day, emit, restoresByDay) {
  const copiesOut = [];
  if (day === host.enrolDay) emit('enrolment', day * DAY_MS + 6 * 3_600_000 + host.index * 7000, ctx.enrolmentBody(host));
  if (day < host.enrolDay) return copiesOut;
  const run = runPlan(ctx, host, day);
  const copies = [];
  for (const { repo, o, started, finished } of run.steps) {
    const who = runBy(repo, day);
    const prevDay = previousSnapshotDay(host, repo, day);
    const prev = prevDay === null ? undefined : snapshotOnDay(ctx, host, repo, prevDay);
    if (o === 'failed') {
      const kinds = FAILURES[repo.kind === 'database' ? 'database' : 'other'];
      const [stage, cause, hint, exit] = kinds[Math.floor(rnd(repo.seed, day, P.stage) * kinds.length)];
      emit('failure', finished + 40, { ...about(repo), ...who, stage, cause: cause(repo), ...(exit ? { exit_code: exit } : {}), hint, previous_snapshot: prev?.id ?? null });
      continue;
    }
    if (o === 'unchanged') {
      const size = prev.size;
      emit('backup', finished + 40, {
        ...about(repo),
        ...who,
        started: iso(started),
        finished: iso(finished),
        snapshot: { id: prev.id, target: 'primary', location: prev.location, digest: prev.digest, manifest: prev.manifest },
        previous: { id: prev.id, bytes: size.bytes },
        size,
        changed: { files: 0, bytes: 0 },
        verification: { level: 'checksum', size: compareSize(size.bytes, size.bytes), checksum: { scope: 'changed', files: 0, bytes: 0, mismatches: 0 } },
        ...(repo.kind === 'source' ? { git: gitInfo(ctx, host, repo, prevDay, size.bytes) } : {}),
        warnings: [],
        unchanged: true,
      });
      continue;
    }
    const snap = snapshotOnDay(ctx, host, repo, day);
    const size = snap.size;
    const check = compareSize(size.bytes, prev?.size.bytes);
    const warnings = [];
    if (check.result === 'warning')
      warnings.push({
        code: check.change_percent < 0 ? 'size-shrank' : 'size-grew',
        message: `total size went from ${ctx.formatBytes(check.previous_bytes)} to ${ctx.formatBytes(check.bytes)} (${check.change_percent > 0 ? '+' : ''}${check.change_percent}%), past the ${
          check.change_percent < 0 ? `shrink warning of 20%: check that nothing was deleted by mistake (clause 4.2.1)` : `growth warning of 100%: check that nothing unexpected was added, such as a dump or a log left in the folder (clause 4.2.1)`
        }`,
      });
    let changed;
    if (repo.kind === 'database' || repo.kind === 'source' || !prev) changed = { files: size.files, bytes: size.bytes };
    else {
      const frac = 0.002 + rnd(repo.seed, day, P.dur) * 0.02;
      changed = { files: Math.max(1, Math.round(size.files * frac)), bytes: Math.min(size.bytes, Math.max(0, size.bytes - prev.size.bytes) + Math.round(size.bytes * frac * 0.5)) };
    }
    const db = repo.kind === 'database' ? databaseParts(ctx, host, repo, day, snap, started, finished) : undefined;
    emit('backup', finished + 40, {
      ...about(repo),
      ...who,
      started: iso(started),
      finished: iso(finished),
      snapshot: { id: snap.id, target: 'primary', location: snap.location, digest: snap.digest, manifest: snap.manifest },
      previous: prev ? { id: prev.id, bytes: prev.size.bytes } : null,
      size,
      changed,
      verification: {
        level: db || repo.kind === 'source' ? 'restore' : 'checksum',
        size: check,
        checksum: { scope: 'changed', files: changed.files, bytes: changed.bytes, mismatches: 0 },
        ...(db ? { restore: db.restore } : {}),
      },
      ...(db ? { database: db.info } : {}),
      ...(repo.kind === 'source' ? { git: gitInfo(ctx, host, repo, day, size.bytes) } : {}),
      warnings,
    });
    copies.push({ repo, o, snap, changed, who });
  }
  let t = run.end;
  // Then the copies to CSC, in the same run.
  for (const { repo, o, snap, changed, who } of copies) {
    const started = t;
    if (o === 'copy-failed') {
      t += 30_000;
      emit('failure', t, {
        ...about(repo),
        ...who,
        stage: 'copy',
        cause: `the copy of snapshot ${snap.id} to the secondary target failed: ssh: connect to host ${CSC} port 22: Connection timed out`,
        exit_code: 255,
        hint: 'check that CSC is reachable (network, sshd) and run again: the next run copies it',
        previous_snapshot: snap.id,
      });
      t += 1000;
      continue;
    }
    t += Math.round((2 + changed.bytes / 50e6) * 1000);
    const rec = emit('copy', t + 30, {
      ...about(repo),
      ...who,
      started: iso(started),
      finished: iso(t),
      snapshot: { id: snap.id, target: 'secondary', location: snap.location, digest: snap.digest, manifest: snap.manifest },
      from: 'primary',
      to: 'secondary',
      label: `${host.name}/${repo.name}/${snap.id}`,
      bytes: snap.size.bytes,
      files: snap.size.files,
      verified: { method: 'rehash', scope: repo.kind === 'database' ? 'full' : 'changed', result: 'ok', manifest: snap.manifest },
    });
    t += 1000;
    if (rnd(repo.seed, day, P.receipt) >= 0.03)
      copiesOut.push({ origin: host.name, repository: repo.name, snapshot: snap.id, seq: rec.seq, digest: rec.digest, manifest: snap.manifest, files: snap.size.files, bytes: snap.size.bytes, at: t, mismatch: rnd(repo.seed, day, P.mismatch) < 0.002 });
  }

  // Every third day, the rotation re-reads a share of one repository's stored files.
  if ((day + host.verifyOffset) % 3 === 0 && day > host.enrolDay) {
    const k = Math.floor(day / 3);
    const repo = host.repos[(k + host.index) % host.repos.length];
    const target = k % 4 === 3 ? 'secondary' : 'primary';
    const days = existingOn(ctx, host, repo, target, day);
    if (days.length) {
      const snaps = days.map((d) => snapshotOnDay(ctx, host, repo, d));
      const failed = rnd(repo.seed, day, P.verifyFail) < 0.002 ? snaps.length - 1 : -1;
      const share = 0.1;
      const from = Math.round(((k * share) % 1) * 10000) / 10000;
      const to = Math.round(((from + share) % 1) * 10000) / 10000;
      const total = repo.kind === 'database' ? snaps.reduce((s, x) => s + x.size.bytes, 0) : Math.round(snaps[snaps.length - 1].size.bytes * 1.1);
      const files = repo.kind === 'database' ? snaps.reduce((s, x) => s + x.size.files, 0) : snaps[snaps.length - 1].size.files;
      const started = t + 600_000;
      t = started + Math.round((3 + (total * share) / 200e6) * 1000);
      emit('verify', t, {
        ...about(repo),
        trigger: 'scheduled',
        started: iso(started),
        finished: iso(t),
        reason: 'rotation',
        target,
        method: 'rehash',
        read: { data: 'subset', subset: { from, to }, files: Math.round(files * share), bytes: Math.round(total * share) },
        snapshots: snaps.map((s, i) => ({ id: s.id, location: s.location, digest: s.digest, manifest: s.manifest, result: i === failed ? 'failed' : 'ok', problems: i === failed ? 1 : 0 })),
        result: failed >= 0 ? 'failed' : 'ok',
        problems: failed >= 0 ? [{ snapshot: snaps[failed].id, path: repo.kind === 'database' ? `data/${repo.engine}/${repo.dbs[0].name}${repo.engine === 'postgresql' ? '.dump' : '.sql.gz'}` : 'data/srv/www/index.php', problem: 'its sha256 is not the one the manifest holds: the file changed on the disk (bit rot?)' }] : [],
      });
      t += 1000;
    }
  }

  // Once a month, each database repository's snapshots are pruned on both targets.
  if (isPruneDay(host, day)) {
    t += 300_000;
    for (const repo of host.repos) {
      if (!repo.retention) continue;
      for (const target of ['primary', 'secondary']) {
        const plan = keptAt(ctx, host, repo, target, day);
        t += 2000;
        emit('prune', t, {
          ...about(repo),
          trigger: 'scheduled',
          target,
          rules: { ...repo.retention },
          kept: plan.reasons,
          deleted: plan.remove,
          archive_segments_deleted: repo.pitr && target === 'primary' ? 96 * plan.remove.length : 0,
          ...(repo.pitr && target === 'primary' && plan.keep.length ? { archive_needed_from: walSegment((plan.keep[0] - ctx.startDay) * 96 + 4096) } : {}),
        });
      }
    }
  }

  // Restores asked for and approved (clause 4.3), done by the agent's next run.
  for (const r of restoresByDay.get(`${host.name}/${day}`) ?? []) {
    const repo = host.repos.find((x) => x.name === r.repository);
    const snap = snapshotOnDay(ctx, host, repo, r.snapshotDay);
    const started = day * DAY_MS + 16 * 3_600_000 + (mix(repo.seed, day, 77) % 3_600_000);
    if (r.mediaLoan)
      emit('media-loan', started + 2500, {
        repository: repo.name,
        kind: repo.kind,
        trigger: 'scheduled',
        snapshot: snap.id,
        from: 'secondary',
        label: `${host.name}/${repo.name}/${snap.id}`,
        reason: `the primary's copy of snapshot ${snap.id} could not be read: Input/output error (the backup disk reports bad sectors)`,
        request: r.id,
      });
    const files = r.paths.length;
    const bytes = files * 850_000;
    emit('restore', started + 9000, {
      repository: repo.name,
      kind: repo.kind,
      trigger: 'scheduled',
      started: iso(started),
      finished: iso(started + 8000),
      snapshot: { id: snap.id, target: r.mediaLoan ? 'secondary' : 'primary', location: snap.location, digest: snap.digest, manifest: snap.manifest },
      point_in_time: null,
      paths: r.paths,
      destination: r.destination,
      reason: r.reason,
      reason_detail: r.detail,
      request: r.id,
      source_copy: r.mediaLoan ? 'secondary' : 'primary',
      verification: { scope: 'full', files, bytes, mismatches: 0 },
      result: 'ok',
    });
  }
  return copiesOut;
}

/** How many records a host writes on a day, with no record made: for sizing the site to --records. */
function countHostDay(host, day) {
  if (day < host.enrolDay) return { records: 0, receipts: 0 };
  let records = day === host.enrolDay ? 1 : 0;
  let receipts = 0;
  for (const repo of host.repos) {
    const o = outcome(host, repo, day);
    if (o === 'failed' || o === 'unchanged') records += 1;
    else if (o === 'copy-failed') records += 2;
    else if (o === 'new') {
      records += 2;
      if (rnd(repo.seed, day, P.receipt) >= 0.03) receipts++;
    }
  }
  if ((day + host.verifyOffset) % 3 === 0 && day > host.enrolDay) records += 1;
  if (isPruneDay(host, day)) records += 2 * host.repos.filter((r) => r.retention).length;
  return { records, receipts };
}
function countSite(hosts, d0, d1) {
  let n = 1; // CSC's enrolment
  for (const h of hosts)
    for (let d = d0; d <= d1; d++) {
      const c = countHostDay(h, d);
      n += c.records + c.receipts;
    }
  return n;
}

// ---------------------------------------------------------------------------------------
// Writing records: the agent's functions, without the fsyncs

async function loadDist(dist) {
  const url = (p) => pathToFileURL(join(dist, p)).href;
  const record = await import(url('schemas/record.js'));
  const sshsig = await import(url('schemas/sshsig.js'));
  const retention = await import(url('schemas/retention.js'));
  const request = await import(url('schemas/request.js'));
  const keys = await import(url('agent/keys.js'));
  const common = await import(url('schemas/common.js'));
  let version = '0.1.0';
  try {
    version = (await import(url('agent/version.js'))).VERSION ?? version;
  } catch {
    // a dist tree outside a package: the version is only a field of the enrolments
  }
  return { ...record, ...sshsig, formatBytes: common.formatBytes, applyRetention: retention.applyRetention, request, allowedSignersLine: keys.allowedSignersLine, VERSION: version };
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
/** A deterministic Ed25519 key from the seed (so that a folder can be made again byte for byte). */
function seededKey(seed, name) {
  const der = Buffer.concat([PKCS8_ED25519, createHash('sha256').update(`${seed}/key/${name}`).digest()]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}
function describeKey(lib, privateKey) {
  const pub = createPublicKey(privateKey);
  return { privateKey, publicLine: lib.publicKeyLine(pub), fingerprint: lib.fingerprint(lib.publicKeyBlob(pub)) };
}

/** The writer of one host's chain: serialize, check (fail loudly), place, chain, sign, write. */
function chainWriter(lib, out, host, key, head, counts) {
  const made = new Set();
  return (type, atMs, body) => {
    const at = iso(atMs);
    if (head.at && at < head.at) throw new Error(`generator bug: ${host} record ${head.seq + 1} (${type}) at ${at} is before record ${head.seq} at ${head.at}`);
    const header = { schema: 'respaldo/v1', type, host, seq: head.seq + 1, prev: head.digest ?? null, at };
    const text = lib.serializeRecord(header, body);
    // As RecordStore.append: never sign what verification would reject.
    const check = lib.parseRecord(text);
    if (!check.ok) throw new Error(`generated an invalid ${type} record (${host} seq ${header.seq}): ${check.error}\n${text}`);
    const rel = lib.recordPath(header);
    const path = join(out, rel);
    const dir = dirname(path);
    if (!made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    const bytes = Buffer.from(text);
    writeFileSync(`${path}.sig`, lib.signSshsig(bytes, key.privateKey, lib.RECORD_NAMESPACE));
    writeFileSync(path, bytes);
    head.seq = header.seq;
    head.digest = lib.digestOf(bytes);
    head.rel = rel;
    head.at = at;
    counts[type] = (counts[type] ?? 0) + 1;
    return { seq: head.seq, digest: head.digest };
  };
}

function enrolmentBodyFor(lib, keys) {
  return (host) => {
    const key = keys.get(host.name);
    return {
      key: { public: key.publicLine, fingerprint: key.fingerprint },
      agent: { version: lib.VERSION, node: 'v20.18.1', rsync: host.name === CSC ? '3.2.7' : ['3.2.7', '3.2.3', '3.2.7'][host.index % 3] },
      system: { hostname: `${host.name}.cgti.example`, platform: 'linux', release: host.name === CSC ? '6.1.0-28-amd64' : ['6.1.0-28-amd64', '5.10.0-33-amd64', '6.1.0-31-amd64'][host.index % 3] },
    };
  };
}

// ---------------------------------------------------------------------------------------
// Worker: a share of the hosts, day after day; each day's copies go to the main thread

async function workerMain() {
  const { dist, out, seed, startDay, d0, d1, hosts, pems, heads, restores } = workerData;
  const lib = await loadDist(dist);
  const keys = new Map(Object.entries(pems).map(([name, pem]) => [name, describeKey(lib, createPrivateKey(pem))]));
  const ctx = { seed, startDay, applyRetention: lib.applyRetention, formatBytes: lib.formatBytes, enrolmentBody: enrolmentBodyFor(lib, keys) };
  const counts = {};
  const writers = new Map(hosts.map((h) => [h.name, chainWriter(lib, out, h.name, keys.get(h.name), heads[h.name], counts)]));
  const restoresByDay = new Map();
  for (const r of restores) restoresByDay.set(`${r.host}/${r.day}`, [...(restoresByDay.get(`${r.host}/${r.day}`) ?? []), r]);
  for (let day = d0; day <= d1; day++) {
    const copies = [];
    for (const h of hosts) copies.push(...hostDay(ctx, h, day, writers.get(h.name), restoresByDay));
    parentPort.postMessage({ type: 'day', day, copies });
  }
  parentPort.postMessage({ type: 'done', heads, counts });
}

// ---------------------------------------------------------------------------------------
// Main

function log(message) {
  process.stderr.write(`site-records: ${message}\n`);
}
function die(message) {
  process.stderr.write(`site-records: ${message}\n`);
  process.exit(2);
}
const sidecars = (out) => ({ gen: join(dirname(out), `${basename(out)}.gen.json`), keys: join(dirname(out), `${basename(out)}.keys.json`) });
/** Writes by rename: the harness hard-links generated folders, and a rename never changes the other link. */
function writeAtomic(path, text, mode) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, mode ? { mode } : undefined);
  renameSync(tmp, path);
}

/** Restores (and one media loan) over days [d0, d1]: which host, repository, snapshot; with their requests. */
function planRestores(ctx, hosts, d0, d1, first) {
  const out = [];
  const add = (host, day, mediaLoan) => {
    const repo = host.repos.find((r) => r.kind === 'files');
    if (!repo || day <= firstDue(host, repo) || day < d0 || day > d1) return false;
    const snapshotDay = previousSnapshotDay(host, repo, day);
    // A media loan borrows CSC's copy: the snapshot must have one.
    if (snapshotDay === null || (mediaLoan && outcome(host, repo, snapshotDay) !== 'new')) return false;
    if (out.some((r) => r.host === host.name && r.day === day)) return false;
    const year = dateOf(day).slice(0, 4);
    const n = mix(repo.seed, day, 55);
    const app = repo.name.replace(/-uploads$/, '');
    const paths = Array.from({ length: 1 + (n % 3) }, (_, i) => `/srv/${app}/uploads/${year}/oficio-${1000 + ((n >>> 4) % 8000) + i}.pdf`);
    const reason = ['deleted-by-mistake', 'logical-damage', 'physical-damage'][(n >>> 8) % 3];
    out.push({ host: host.name, day, repository: repo.name, snapshotDay, mediaLoan, paths, destination: `/srv/restaurado/${app}-${dateOf(day)}`, reason, detail: { 'deleted-by-mistake': 'oficios borrados por error al depurar la carpeta', 'logical-damage': 'archivos sobrescritos por una importación fallida', 'physical-damage': 'el disco del servidor reporta sectores dañados' }[reason] });
    return true;
  };
  if (first) {
    // At least a few restores and a media loan, whatever the size.
    const span = d1 - d0 + 1;
    for (const [host, at, loan] of [[hosts[0], 0.55, false], [hosts[Math.min(1, hosts.length - 1)], 0.8, true], [hosts[Math.min(2, hosts.length - 1)], 0.3, false]])
      for (let d = d0 + Math.floor(span * at); d <= d1 && !add(host, d, loan); d++);
  }
  for (const h of hosts)
    for (let d = d0; d <= d1; d++) {
      const u = rnd(fnv(`${ctx.seed}/restore/${h.name}`), d, P.restore);
      if (u < 1 / 1500) add(h, d, u < 1 / 1500 / 25);
    }
  return out.sort((a, b) => a.day - b.day || a.host.localeCompare(b.host));
}

function requestText(lib, req) {
  const text = lib.request.serializeFile(req);
  const parsed = lib.request.parseFile(`requests/${req.id}.yaml`, text, lib.request.request);
  if (!parsed.ok) throw new Error(`generated an invalid request ${req.id}: ${parsed.problems.map(lib.request.problemText).join('; ')}`);
  return text;
}
function writeRequest(lib, out, req, approvedAt) {
  const text = requestText(lib, req);
  writeFileSync(join(out, lib.request.requestPath(req.id)), text);
  const approval = { schema: 'respaldo/v1', type: 'approval', request: req.id, request_digest: lib.digestOf(text), decision: 'approved', approver: 'jaa', at: iso(approvedAt) };
  const atext = lib.request.serializeFile(approval);
  const parsed = lib.request.parseFile(`approvals/${req.id}.yaml`, atext, lib.request.approval);
  if (!parsed.ok) throw new Error(`generated an invalid approval ${req.id}: ${parsed.problems.map(lib.request.problemText).join('; ')}`);
  writeFileSync(join(out, lib.request.approvalPath(req.id)), atext);
}
function nextRequestId(state, day) {
  const year = dateOf(day).slice(0, 4);
  state.requestCounters[year] = (state.requestCounters[year] ?? 0) + 1;
  return `REQ-${year}-${pad(state.requestCounters[year], 4)}`;
}
function backupRequest(state, host, repo) {
  const day = host.enrolDay - 10 + (repo.seed % 6);
  const [name, area] = PEOPLE[(host.person + (repo.seed % 2)) % PEOPLE.length];
  const app = repo.name.replace(/-(db|uploads)$/, '');
  const what =
    repo.kind === 'database' ? { database: repo.dbs[0].name, server: repo.engine === 'postgresql' ? 'main-pg' : 'main-mariadb' } : repo.kind === 'source' ? { git: `/srv/git/${app}.git` } : repo.kind === 'config' ? { paths: ['/etc/nginx', `/etc/${app}`] } : { paths: [`/srv/${app}/uploads`] };
  return {
    day,
    req: {
      schema: 'respaldo/v1',
      form: 'FOR 7.5 DSE 05',
      id: nextRequestId(state, day),
      date: dateOf(day),
      requester: { name, area },
      host: host.name,
      repository: repo.name,
      type: 'backup',
      kind: repo.kind,
      what,
      ...(repo.retention ? { retention: { ...repo.retention } } : {}),
    },
  };
}

async function generate(opts) {
  const started = performance.now();
  const lib = await loadDist(opts.dist);
  const out = resolve(opts.out);
  const side = sidecars(out);
  let state;
  let keys;
  let d0;
  let d1;
  const append = opts.append;

  if (append) {
    if (!existsSync(side.gen) || !existsSync(side.keys)) die(`${side.gen} or ${side.keys} is missing: --append-day needs a folder made by this script`);
    state = JSON.parse(readFileSync(side.gen, 'utf8'));
    if (state.format !== FORMAT) die(`${out} was made by another version of this script (format ${state.format}, not ${FORMAT}): make it again`);
    const pems = JSON.parse(readFileSync(side.keys, 'utf8'));
    keys = new Map(Object.entries(pems).map(([n, pem]) => [n, describeKey(lib, createPrivateKey(pem))]));
    // The chains must still end where this script left them.
    for (const [host, head] of Object.entries(state.heads)) {
      const bytes = readFileSync(join(out, head.rel));
      if (lib.digestOf(bytes) !== head.digest) die(`${head.rel} is not the record this script wrote last for ${host}: the folder changed since it was generated`);
    }
    d0 = d1 = state.lastDay + 1;
  } else {
    if (existsSync(out) && readdirSync(out).length) {
      if (!existsSync(side.gen)) die(`${out} exists and was not made by this script (no ${side.gen}); remove it or pick another --out`);
      rmSync(out, { recursive: true, force: true });
    }
    const endDay = dayOf(opts.end.getTime()); // the days generated end the day before --end's
    const target = opts.records;
    let days = opts.days;
    let hostCount = opts.hosts;
    const sizeFor = (h, d) => countSite(hostConfigs(opts.seed, h, endDay - d, d), endDay - d, endDay - 1);
    if (!days && !hostCount) hostCount = Math.max(1, Math.round(target / 1000));
    if (!days) {
      // Days for --records with the hosts given: a first guess, then corrected twice.
      days = 140;
      for (let i = 0; i < 3; i++) days = Math.max(8, Math.round((days * target) / sizeFor(hostCount, days)));
    } else if (!hostCount) {
      const sample = Math.min(20, Math.max(1, Math.round(target / 1000)));
      hostCount = Math.max(1, Math.round((target * sample) / sizeFor(sample, days)));
    }
    d0 = endDay - days;
    d1 = endDay - 1;
    const hosts = hostConfigs(opts.seed, hostCount, d0, days);
    state = { format: FORMAT, seed: opts.seed, asked: { records: opts.records, days: opts.days ?? null, hosts: opts.hosts ?? null, end: opts.end.toISOString() }, startDay: d0, lastDay: d1, generatedLastDay: d1, hosts, heads: {}, requestCounters: {}, restores: [], records: 0, counts: {} };
    keys = new Map([...hosts.map((h) => h.name), CSC, 'jaa'].map((n) => [n, describeKey(lib, seededKey(opts.seed, n))]));
    mkdirSync(join(out, 'policy'), { recursive: true });
    mkdirSync(join(out, 'requests'), { recursive: true });
    mkdirSync(join(out, 'approvals'), { recursive: true });
    const signers = [
      '# Who may sign what: agents under namespace "respaldo-record", approvers under "git".',
      `jaa namespaces="git" ${keys.get('jaa').publicLine} JAA`,
      lib.allowedSignersLine(CSC, keys.get(CSC)),
      ...hosts.map((h) => lib.allowedSignersLine(h.name, keys.get(h.name))),
      '',
    ];
    writeFileSync(join(out, 'policy/allowed_signers'), signers.join('\n'));
    copyFileSync(join(REPO_ROOT, 'records/policy/procedure.yaml'), join(out, 'policy/procedure.yaml'));
    writeFileSync(join(out, '.gitattributes'), '# respaldo: records are signed byte for byte\n* -text\n');
    // JAA approved a backup request for every repository but two, which stay "unrequested".
    const wanted = [];
    for (const h of hosts) for (const repo of h.repos) if (!((h.index === 0 && repo.kind === 'config') || (h.index === Math.min(2, hosts.length - 1) && repo.kind === 'files'))) wanted.push([h, repo]);
    const made = wanted.map(([h, repo]) => ({ h, repo, ...backupRequest({ requestCounters: {} }, h, repo) }));
    made.sort((a, b) => a.day - b.day || a.h.index - b.h.index || a.repo.name.localeCompare(b.repo.name));
    for (const m of made) {
      m.req.id = nextRequestId(state, m.day);
      m.repo.request = m.req.id;
      writeRequest(lib, out, m.req, m.day * DAY_MS + DAY_MS + 17 * 3_600_000 + (m.repo.seed % 3_600_000));
    }
    for (const h of hosts) for (const repo of h.repos) repo.request ??= 'unrequested';
    state.heads[CSC] = { seq: 0, digest: null, rel: null, at: null };
    for (const h of hosts) state.heads[h.name] = { seq: 0, digest: null, rel: null, at: null };
  }

  const hosts = state.hosts;
  const ctx = { seed: state.seed, startDay: state.startDay, applyRetention: lib.applyRetention, formatBytes: lib.formatBytes };
  // Restores and their requests (asked the day before, approved the same day).
  const restores = planRestores(ctx, hosts, d0, d1, !append);
  for (const r of restores) {
    const host = hosts.find((h) => h.name === r.host);
    const repo = host.repos.find((x) => x.name === r.repository);
    const [name, area] = PEOPLE[host.person];
    r.id = nextRequestId(state, r.day - 1);
    r.snapshot = snapshotOnDay(ctx, host, repo, r.snapshotDay).id;
    writeRequest(lib, out, { schema: 'respaldo/v1', form: 'FOR 7.5 DSE 05', id: r.id, date: dateOf(r.day - 1), requester: { name, area }, host: host.name, repository: repo.name, type: 'restore', snapshot: r.snapshot, paths: r.paths, destination: r.destination, reason: r.reason, reason_detail: r.detail }, (r.day - 1) * DAY_MS + 18 * 3_600_000);
    state.restores.push({ host: r.host, day: r.day, id: r.id, mediaLoan: r.mediaLoan });
  }

  // CSC writes here; the hosts in workers.
  const counts = {};
  const cscWriter = chainWriter(lib, out, CSC, keys.get(CSC), state.heads[CSC], counts);
  if (!append) cscWriter('enrolment', d0 * DAY_MS + 5 * 3_600_000, enrolmentBodyFor(lib, keys)({ name: CSC, index: 0 }));
  const receipts = (day, copies) => {
    copies.sort((a, b) => a.at - b.at || a.origin.localeCompare(b.origin) || a.repository.localeCompare(b.repository));
    let t = day * DAY_MS + 13 * 3_600_000;
    for (const c of copies) {
      t = Math.max(t + 2000 + (mix(fnv(c.origin), day, c.seq) % 4000), c.at + 60_000);
      cscWriter('receipt', t, {
        origin: c.origin,
        repository: c.repository,
        snapshot: c.snapshot,
        copy: { host: c.origin, seq: c.seq, digest: c.digest },
        manifest: c.manifest,
        files: c.mismatch ? c.files - 1 : c.files,
        bytes: c.bytes,
        result: c.mismatch ? 'mismatch' : 'ok',
        problems: c.mismatch ? [{ path: `data/${c.snapshot}`, problem: 'one file is missing at CSC: the copy is incomplete' }] : [],
        received_by: 'csc',
      });
    }
  };

  const nWorkers = Math.max(1, Math.min(opts.workers, hosts.length));
  const shares = Array.from({ length: nWorkers }, () => []);
  hosts.forEach((h, i) => shares[i % nWorkers].push(h));
  const pems = Object.fromEntries([...keys].map(([n, k]) => [n, k.privateKey.export({ type: 'pkcs8', format: 'pem' })]));
  const pending = new Map();
  let nextDay = d0;
  const total = d1 - d0 + 1;
  let lastReport = performance.now();
  await Promise.all(
    shares.map(
      (share) =>
        new Promise((resolveWorker, reject) => {
          const mine = new Set(share.map((h) => h.name));
          const w = new Worker(fileURLToPath(import.meta.url), {
            workerData: {
              dist: opts.dist,
              out,
              seed: state.seed,
              startDay: state.startDay,
              d0,
              d1,
              hosts: share,
              pems: Object.fromEntries(Object.entries(pems).filter(([n]) => mine.has(n))),
              heads: Object.fromEntries(share.map((h) => [h.name, state.heads[h.name]])),
              restores: restores.filter((r) => mine.has(r.host)),
            },
            // A larger young generation: fewer scavenges of the many short-lived YAML nodes.
            resourceLimits: { maxYoungGenerationSizeMb: 64 },
          });
          w.on('message', (m) => {
            try {
              if (m.type === 'day') {
                const p = pending.get(m.day) ?? { got: 0, copies: [] };
                p.got++;
                p.copies.push(...m.copies);
                pending.set(m.day, p);
                while (pending.get(nextDay)?.got === nWorkers) {
                  receipts(nextDay, pending.get(nextDay).copies);
                  pending.delete(nextDay);
                  nextDay++;
                  if (!opts.quiet && performance.now() - lastReport > 5000) {
                    lastReport = performance.now();
                    log(`${nextDay - d0}/${total} days`);
                  }
                }
              } else if (m.type === 'done') {
                if (process.env.SITE_RECORDS_DEBUG) log(`worker done at ${((performance.now() - started) / 1000).toFixed(1)} s; receipts up to day ${nextDay - d0}/${total}`);
                Object.assign(state.heads, m.heads);
                for (const [t, n] of Object.entries(m.counts)) counts[t] = (counts[t] ?? 0) + n;
              }
            } catch (e) {
              reject(e);
              w.terminate();
            }
          });
          w.on('error', reject);
          w.on('exit', (code) => (code === 0 ? resolveWorker() : reject(new Error(`a worker exited with code ${code}`))));
        }),
    ),
  );
  if (nextDay !== d1 + 1) throw new Error(`generator bug: receipts written up to day ${nextDay}, not ${d1 + 1}`);

  const written = Object.values(counts).reduce((a, b) => a + b, 0);
  state.lastDay = d1;
  state.records += written;
  for (const [t, n] of Object.entries(counts)) state.counts[t] = (state.counts[t] ?? 0) + n;
  if (!append) writeAtomic(side.keys, `${JSON.stringify(pems, null, 1)}\n`, 0o600);
  writeAtomic(side.gen, `${JSON.stringify(state)}\n`);
  const seconds = (performance.now() - started) / 1000;
  const summary = {
    out,
    records: written,
    total: state.records,
    hosts: hosts.length + 1,
    days: append ? 1 : d1 - d0 + 1,
    from: dateOf(append ? d0 : state.startDay),
    to: dateOf(d1),
    requests: Object.values(state.requestCounters).reduce((a, b) => a + b, 0),
    counts,
    seconds: Math.round(seconds * 100) / 100,
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stdout.write(
      `${append ? `appended ${dateOf(d1)}: ` : ''}${written} records written (${Object.entries(counts)
        .sort((a, b) => b[1] - a[1])
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}) for ${hosts.length} hosts + ${CSC}, ${summary.from} to ${summary.to}${append ? `; ${state.records} in all` : ''}, in ${seconds.toFixed(1)} s\n`,
    );
  if (opts.verify) {
    const t = performance.now();
    const fs = await import('node:fs');
    const { verifyRecordsFolder } = await import(pathToFileURL(join(opts.dist, 'schemas/chain.js')).href);
    const report = verifyRecordsFolder(out, fs);
    process.stdout.write(`verified: ${report.total} records, ${report.broken} broken, ${report.errors} errors (${((performance.now() - t) / 1000).toFixed(1)} s)\n`);
    if (report.broken || report.errors) {
      for (const r of report.reports) for (const p of r.problems.slice(0, 5)) process.stdout.write(`  ${p.path}: ${p.code}: ${p.message}\n`);
      process.exit(3);
    }
  }
  return summary;
}

const USAGE = `usage: node bench/site-records.mjs --records N --out DIR [--days N | --hosts N] [--end ISO] [--seed TEXT]
       node bench/site-records.mjs --append-day DIR
options: --dist DIR (compiled respaldo, default dist/), --workers N (default: the CPUs), --verify (check the folder
         afterwards with verifyRecordsFolder), --json (summary as JSON), --quiet`;

if (!isMainThread && workerData?.hosts) {
  await workerMain();
} else if (isMainThread && process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      records: { type: 'string' },
      out: { type: 'string' },
      days: { type: 'string' },
      hosts: { type: 'string' },
      end: { type: 'string' },
      seed: { type: 'string', default: 'respaldo-site' },
      dist: { type: 'string', default: 'dist' },
      workers: { type: 'string' },
      'append-day': { type: 'string' },
      verify: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const dist = resolve(values.dist);
  if (!existsSync(join(dist, 'schemas/record.js'))) die(`${dist}/schemas/record.js not found: build first (npx tsc -p .) or pass --dist`);
  const int = (name, v) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) die(`--${name} must be a whole number above 0`);
    return n;
  };
  const common = { dist, workers: int('workers', values.workers) ?? availableParallelism(), verify: values.verify, json: values.json, quiet: values.quiet };
  try {
    if (values['append-day']) {
      const out = resolve(values['append-day']);
      if (!statSync(out, { throwIfNoEntry: false })?.isDirectory()) die(`${out} is not a folder`);
      await generate({ ...common, out, append: true });
    } else {
      if (!values.records || !values.out) die(USAGE);
      const end = values.end ? new Date(values.end) : new Date();
      if (Number.isNaN(end.getTime())) die(`--end ${values.end} is not a time (e.g. 2026-11-01T00:00:00Z)`);
      await generate({ ...common, out: values.out, records: int('records', values.records), days: int('days', values.days), hosts: int('hosts', values.hosts), end, seed: values.seed, append: false });
    }
  } catch (e) {
    process.stderr.write(`site-records: ${e.stack ?? e}\n`);
    process.exit(1);
  }
}
