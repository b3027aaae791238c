/**
 * `respaldo label <repository> [<snapshot-id> | latest] [--svg FILE] [--pdf FILE]`: a
 * snapshot's label (clause 4.2.2) as text, and as a 100 × 60 mm sticker for the disk;
 * `respaldo label --devices`: the inventory of storage devices in the host config.
 *
 * A label vouches for what it names, so it is checked before it is made: the stored
 * manifest's sha256 against the one in snapshot.yaml, and both digests against the backup
 * record that recorded the snapshot. A snapshot changed after it was recorded gets no label.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { repositoryName } from '../../schemas/common.js';
import { digestOf, parseRecord } from '../../schemas/record.js';
import type { SnapshotSummary } from '../../schemas/snapshot.js';
import { loadConfig, requireLocalPrimary, targetDisplay, type Config } from '../config.js';
import type { Context } from '../context.js';
import { BackupFailure, Exit, messageOf, RespaldoError, usageError, type ExitCode } from '../errors.js';
import { sha256File, writeFileAtomic } from '../fsutil.js';
import { labelOf, labelPdf, labelSvg, labelText, STICKER_MM } from '../label.js';
import { RecordStore } from '../records.js';
import { openSecondary } from '../secondary-rsyncd.js';
import { LocalTarget, type RepositoryStore } from '../target.js';
import { hostZone } from '../../schemas/zoned.js';

export interface LabelOptions {
  config: string;
  repo: string | undefined;
  /** A snapshot id, or "latest" (the default). */
  snapshot: string | undefined;
  svg: string | undefined;
  pdf: string | undefined;
  /** List the device inventory instead. */
  devices: boolean;
}

/** The repositories of the config, then any other that has a folder on the target (a retired one whose disks still need labels). */
async function repositoryNames(config: Config, target: LocalTarget): Promise<string[]> {
  const names = config.repositories.map((r) => r.name);
  const stored = await readdir(target.hostDir(config.host), { withFileTypes: true }).catch(() => []);
  for (const entry of stored.filter((e) => e.isDirectory()).map((e) => e.name).sort()) if (!names.includes(entry) && repositoryName.safeParse(entry).success) names.push(entry);
  return names;
}

/** "a, b, c" with at most the ten newest, saying how many older ones there are. */
function listIds(ids: string[]): string {
  const shown = ids.slice(-10);
  return `${ids.length > shown.length ? `(${ids.length - shown.length} older) ` : ''}${shown.join(', ')}`;
}

/** The hint for a snapshot whose own files no longer say what they said when it was made. */
const moveAside = (store: RepositoryStore, repo: string, id: string) =>
  `do not label it as a good backup: check the disk (dmesg, smartctl), move it aside (mv ${store.snapshotDir(id)} ${join(store.base, `damaged-${id}`)}) and make a new one (respaldo run --repo ${repo} --manual)`;

/** The oldest backup record of the snapshot on the primary target: the one that made it (later ones found nothing changed). */
async function recordOf(records: RecordStore, summary: SnapshotSummary): Promise<{ seq: number; path: string; digest: string; manifest: string } | undefined> {
  let found: { seq: number; path: string; digest: string; manifest: string } | undefined;
  const year = Number(summary.started.slice(0, 4));
  for (const file of await records.list()) {
    if (file.type !== 'backup' || Number(file.rel.split('/')[2]) < year) continue;
    const text = await readFile(file.path, 'utf8');
    // Most records name other snapshots: skip them without parsing their YAML.
    if (!text.includes(summary.id)) continue;
    const parsed = parseRecord(text);
    if (!parsed.ok || parsed.record.type !== 'backup') continue;
    const r = parsed.record;
    if (r.repository === summary.repository && r.snapshot.id === summary.id && r.snapshot.target === 'primary') found = { seq: r.seq, path: file.rel, digest: r.snapshot.digest, manifest: r.snapshot.manifest };
  }
  return found;
}

function listDevices(ctx: Context, config: Config): ExitCode {
  const devices = config.devices ?? [];
  const secondary = config.targets.secondary;
  const targets: Record<string, string | undefined> = { primary: targetDisplay(config.targets.primary), secondary: secondary && openSecondary(secondary, config.state).display };
  const rows = devices.map((d) => ({ ...d, target: d.target ?? null, path: d.target ? (targets[d.target] ?? null) : null }));
  if (rows.length === 0) {
    ctx.reporter.result(`no devices listed in ${config.file}; list them under "devices:" (label, location, capacity, target), see "Labels" in the README`, { host: config.host, devices: [] });
    return Exit.ok;
  }
  const table = [['LABEL', 'LOCATION', 'CAPACITY', 'TARGET'], ...rows.map((d) => [d.label, d.location, d.capacity, d.target ? `${d.target}${d.path ? `: ${d.path}` : ''}` : '-'])];
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  const lines = [`devices of ${config.host} (${config.file}):`, ...table.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '))];
  ctx.reporter.result(lines.join('\n'), { host: config.host, devices: rows });
  return Exit.ok;
}

export async function runLabel(ctx: Context, opts: LabelOptions): Promise<ExitCode> {
  const config = await loadConfig(opts.config, ctx.cwd);
  if (opts.devices) {
    if (opts.repo || opts.snapshot || opts.svg || opts.pdf) throw usageError('--devices lists the device inventory: it takes no repository, snapshot, --svg or --pdf', 'respaldo label --devices; or a snapshot\'s label: respaldo label REPOSITORY [SNAPSHOT] --svg FILE');
    return listDevices(ctx, config);
  }
  const root = requireLocalPrimary(config, '"respaldo label"');
  const target = new LocalTarget('primary', root);
  const names = await repositoryNames(config, target);
  if (!opts.repo) throw usageError('"respaldo label" needs a repository', `e.g. respaldo label ${names[0]} latest --pdf ${names[0]}.pdf; repositories: ${names.join(', ')}`);
  if (!names.includes(opts.repo)) throw usageError(`no repository named "${opts.repo}" in ${config.file} or on the primary target ${root}`, `repositories: ${names.join(', ')}`);
  const store = target.repository(config.host, opts.repo);
  const ids = await store.snapshots();
  if (ids.length === 0)
    throw usageError(`repository "${opts.repo}" has no snapshot on the primary target ${root}`, `is the backup disk mounted? make one with: respaldo run --repo ${opts.repo} --manual`);
  const wanted = opts.snapshot ?? 'latest';
  const id = wanted === 'latest' ? ids.at(-1)! : ids.find((i) => i === wanted);
  if (!id) throw usageError(`no snapshot "${wanted}" of repository "${opts.repo}" on the primary target ${root}`, `snapshots there, oldest first: ${listIds(ids)}; or "latest"`);

  let summary: SnapshotSummary;
  let summaryBytes: Buffer;
  try {
    ({ summary, bytes: summaryBytes } = await store.readSummary(id));
  } catch (e) {
    if (e instanceof BackupFailure) throw new RespaldoError(e.message, { exitCode: Exit.nothing, hint: e.hint });
    throw e;
  }
  const summaryFile = join(store.snapshotDir(id), 'snapshot.yaml');
  if (summary.host !== config.host || summary.repository !== opts.repo || summary.id !== id)
    throw new RespaldoError(`${summaryFile} describes snapshot ${summary.id} of ${summary.host}/${summary.repository}, not ${id} of ${config.host}/${opts.repo}`, { exitCode: Exit.nothing, hint: moveAside(store, opts.repo, id) });
  const manifestFile = join(store.snapshotDir(id), 'manifest.jsonl');
  let manifestDigest: string;
  try {
    manifestDigest = await sha256File(manifestFile);
  } catch (e) {
    throw new RespaldoError(`cannot read ${manifestFile}: ${messageOf(e)}`, { exitCode: Exit.nothing, hint: moveAside(store, opts.repo, id) });
  }
  if (manifestDigest !== summary.manifest)
    throw new RespaldoError(`${manifestFile} has changed since the backup: its sha256 is ${manifestDigest}, snapshot.yaml says ${summary.manifest}`, { exitCode: Exit.nothing, hint: moveAside(store, opts.repo, id) });
  const summaryDigest = digestOf(summaryBytes);

  const record = await recordOf(new RecordStore(config.records, config.host, undefined, ctx.now), summary);
  if (record && (record.digest !== summaryDigest || record.manifest !== manifestDigest)) {
    const what = record.digest !== summaryDigest ? `snapshot.yaml's sha256 is ${summaryDigest}, the record says ${record.digest}` : `the manifest's sha256 is ${manifestDigest}, the record says ${record.manifest}`;
    throw new RespaldoError(`snapshot ${id} of ${opts.repo} is not what backup record ${record.seq} (${record.path}) recorded: ${what}`, { exitCode: Exit.nothing, hint: moveAside(store, opts.repo, id) });
  }
  if (!record)
    ctx.reporter.event({
      type: 'warning',
      repository: opts.repo,
      message: `no backup record of snapshot ${id} in ${config.records}: the label says so; the next run records a snapshot left unrecorded, or this checkout is behind (git pull)`,
    });

  const label = labelOf({
    summary,
    summaryDigest,
    manifestDigest,
    target: 'primary',
    record: record ? { seq: record.seq, path: record.path } : undefined,
    device: config.devices?.find((d) => d.target === 'primary'),
    timeZone: hostZone(config.timezone),
  });
  const written: string[] = [];
  const write = async (format: 'SVG' | 'PDF', file: string, data: string | Buffer) => {
    const path = resolve(ctx.cwd, file);
    try {
      await writeFileAtomic(path, data);
    } catch (e) {
      throw new RespaldoError(`cannot write the ${format} sticker to ${path}: ${messageOf(e)}`, { exitCode: Exit.nothing, hint: 'name a file in an existing folder you can write to' });
    }
    written.push(`${format} sticker (${STICKER_MM.width} × ${STICKER_MM.height} mm): ${path}`);
    return path;
  };
  const svg = opts.svg ? await write('SVG', opts.svg, labelSvg(label)) : null;
  const pdf = opts.pdf ? await write('PDF', opts.pdf, labelPdf(label)) : null;
  ctx.reporter.result([labelText(label), ...(written.length ? ['', ...written] : [])].join('\n'), { ...label, stickers: { svg, pdf } });
  return Exit.ok;
}
