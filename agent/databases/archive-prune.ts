/**
 * Which files of a point-in-time-recovery archive a prune may delete: only those older than
 * where a replay from the oldest kept snapshot starts. Every kept snapshot's replay reads
 * the archive from its own start onward, so deleting only what lies before the oldest start
 * can never make a gap inside the window the kept snapshots cover.
 *
 * - PostgreSQL: a snapshot's base backup starts at the WAL segment in its `base.json`
 *   (postgresql-pitr.ts). Segments, partial segments and backup history files positioned
 *   before it are deleted on every timeline, as pg_archivecleanup chooses them (by the
 *   segment's log and number, not its timeline: a replay never reads back). Timeline history
 *   files are kept: they are tiny, and a replay needs them to follow any timeline.
 * - MariaDB: each dump records the binary log its replay starts in (mariadb.ts); logs of the
 *   same base name numbered before the earliest such log are deleted. Logs of a base name
 *   no kept snapshot names (log_bin changed) are kept: nothing says what they are for.
 *
 * When the start of a kept snapshot cannot be read, nothing is deleted from the archive.
 */
import type { DatabaseEngine } from '../../schemas/database.js';
import { messageOf } from '../errors.js';
import type { PruneStore } from '../prune.js';
import { BINLOG_NAME_RE } from './mariadb-pitr.js';
import { BASE_META, GZ, WAL_FILE_RE, type BaseMeta } from './postgresql-pitr.js';

export type ArchiveFolder = 'wal' | 'binlog';

export interface ArchivePlan {
  folder: ArchiveFolder;
  /** Where a replay from the oldest kept snapshot starts; undefined when no kept snapshot has a start. */
  neededFrom: string | undefined;
  /** File names in the folder, oldest first. */
  remove: string[];
  /** Why the archive is left whole, when it is for a reason the user should hear. */
  note?: string;
}

const SEGMENT_RE = /^[0-9A-F]{24}$/;

/**
 * PostgreSQL: the archived WAL files (names without `.gz`) that a replay starting at segment
 * `start` never reads, oldest first.
 */
export function walFilesBefore(names: string[], start: string): string[] {
  // A WAL file's log and segment numbers are its characters 8 to 24, in fixed-width upper-case hex.
  const position = (name: string) => name.slice(8, 24);
  return names
    .filter((n) => WAL_FILE_RE.test(n) && !n.endsWith('.history') && position(n) < position(start))
    .sort((a, b) => (position(a) < position(b) ? -1 : position(a) > position(b) ? 1 : a < b ? -1 : 1));
}

/** MariaDB: the archived binary logs numbered before `first` in its base name's sequence, oldest first. */
export function binlogsBefore(names: string[], first: string): string[] {
  const start = BINLOG_NAME_RE.exec(first);
  if (!start) return [];
  const out: { name: string; no: number }[] = [];
  for (const name of names) {
    const m = BINLOG_NAME_RE.exec(name);
    if (m && m[1] === start[1] && Number(m[2]) < Number(start[2])) out.push({ name, no: Number(m[2]) });
  }
  return out.sort((a, b) => a.no - b.no).map((l) => l.name);
}

/** Where each kept snapshot's replay starts, oldest start first; throws when one cannot be read. */
async function starts(engine: 'postgresql' | 'mariadb', store: PruneStore, kept: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of kept) {
    if (engine === 'postgresql') {
      const bytes = await store.readSnapshotFile(id, BASE_META);
      // A snapshot without a base backup (taken before "pitr" was set) starts no replay.
      if (!bytes) continue;
      let meta: BaseMeta;
      try {
        meta = JSON.parse(bytes.toString('utf8')) as BaseMeta;
      } catch (e) {
        throw new Error(`the base backup's ${BASE_META} of snapshot ${id} does not parse (${messageOf(e)})`);
      }
      if (typeof meta.start_segment !== 'string' || !SEGMENT_RE.test(meta.start_segment)) throw new Error(`the base backup's ${BASE_META} of snapshot ${id} names no start segment`);
      out.push(meta.start_segment);
    } else {
      const { summary } = await store.readSummary(id);
      for (const dump of summary.database?.databases ?? []) if (dump.binlog) out.push(dump.binlog.file);
    }
  }
  return out;
}

/** The archive files the kept snapshots do not need. */
export async function planArchive(engine: Exclude<DatabaseEngine, 'sqlite'>, store: PruneStore, kept: string[]): Promise<ArchivePlan> {
  const folder: ArchiveFolder = engine === 'postgresql' ? 'wal' : 'binlog';
  let needed: string[];
  try {
    needed = await starts(engine, store, kept);
  } catch (e) {
    return { folder, neededFrom: undefined, remove: [], note: `the archive is left whole: ${messageOf(e)}, so what the kept snapshots need cannot be told` };
  }
  if (!needed.length) return { folder, neededFrom: undefined, remove: [] };
  const files = await store.archiveFiles(folder);
  if (engine === 'postgresql') {
    const start = needed.reduce((a, b) => (b.slice(8) < a.slice(8) ? b : a));
    const names = files.filter((n) => n.endsWith(GZ)).map((n) => n.slice(0, -GZ.length));
    return { folder, neededFrom: start, remove: walFilesBefore(names, start).map((n) => `${n}${GZ}`) };
  }
  // Per base name, the earliest log a kept dump starts in.
  const first = new Map<string, { name: string; no: number }>();
  for (const name of needed) {
    const m = BINLOG_NAME_RE.exec(name);
    if (!m) continue;
    const at = first.get(m[1]!);
    if (!at || Number(m[2]) < at.no) first.set(m[1]!, { name, no: Number(m[2]) });
  }
  const starting = [...first.values()].map((f) => f.name);
  return { folder, neededFrom: starting.join(', ') || undefined, remove: starting.flatMap((s) => binlogsBefore(files, s)) };
}
