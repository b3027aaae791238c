import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { RepositoryStore } from '../target.js';
import { binlogsBefore, planArchive, walFilesBefore } from './archive-prune.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A repository folder on disk as backups leave it: snapshots with the given data files, and archive files. */
function repository(snapshots: Record<string, Record<string, string>>, archive: Record<'wal' | 'binlog', string[]>): RepositoryStore {
  const base = mkdtempSync(join(tmpdir(), 'respaldo-archive-prune-'));
  dirs.push(base);
  for (const [id, files] of Object.entries(snapshots))
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(join(base, 'snapshots', id, rel, '..'), { recursive: true });
      writeFileSync(join(base, 'snapshots', id, rel), text);
    }
  for (const folder of ['wal', 'binlog'] as const) {
    mkdirSync(join(base, 'archive', folder), { recursive: true });
    for (const name of archive[folder]) writeFileSync(join(base, 'archive', folder, name), '');
  }
  return new RepositoryStore(base, 'db01/shop-db');
}

const seg = (timeline: number, log: number, no: number) => [timeline, log, no].map((n) => n.toString(16).toUpperCase().padStart(8, '0')).join('');
const baseJson = (start: string) => JSON.stringify({ start_lsn: '0/5000028', start_segment: start, timeline: 1, started: '2026-11-22T03:00:00.000Z', finished: '2026-11-22T03:00:05.000Z' });

describe('PostgreSQL WAL files a prune may delete', () => {
  it('deletes segments, partial segments and backup history files before the start, on every timeline, and keeps timeline history', () => {
    const names = [
      seg(1, 0, 3),
      seg(1, 0, 4),
      `${seg(1, 0, 4)}.00000028.backup`,
      seg(1, 0, 5),
      seg(1, 0, 6),
      `${seg(2, 0, 4)}.partial`,
      seg(2, 0, 7),
      seg(1, 1, 0), // log 1, segment 0: after log 0's segments
      '00000002.history',
    ];
    expect(walFilesBefore(names, seg(1, 0, 5))).toEqual([seg(1, 0, 3), seg(1, 0, 4), `${seg(1, 0, 4)}.00000028.backup`, `${seg(2, 0, 4)}.partial`]);
    expect(walFilesBefore(names, seg(1, 0, 3))).toEqual([]);
  });

  it('keeps what the oldest kept base backup needs and every file after it: no gap inside the kept window', async () => {
    const wal = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `${seg(1, 0, n)}.gz`);
    const store = repository(
      {
        '20261120T030000Z': { 'data/postgresql/base.json': baseJson(seg(1, 0, 2)) },
        '20261121T030000Z': { 'data/postgresql/base.json': baseJson(seg(1, 0, 5)) },
        '20261122T030000Z': { 'data/postgresql/base.json': baseJson(seg(1, 0, 8)) },
      },
      { wal: [...wal, '00000001.history.gz', `.${seg(1, 0, 10)}.gztmp`], binlog: [] },
    );
    // The oldest snapshot goes: its segments before the next base backup's start go with it.
    const plan = await planArchive('postgresql', store, ['20261121T030000Z', '20261122T030000Z']);
    expect(plan).toEqual({ folder: 'wal', neededFrom: seg(1, 0, 5), remove: wal.slice(0, 4) });
    // Keeping every snapshot still deletes what lies before the oldest base backup's start.
    expect((await planArchive('postgresql', store, ['20261120T030000Z', '20261121T030000Z', '20261122T030000Z'])).remove).toEqual([seg(1, 0, 1)].map((n) => `${n}.gz`));
  });

  it('ignores kept snapshots without a base backup, and leaves the archive whole when a base backup cannot be read', async () => {
    const wal = [1, 2, 3].map((n) => `${seg(1, 0, n)}.gz`);
    const store = repository(
      {
        '20261119T030000Z': { 'data/postgresql/portal.dump': 'taken before pitr was set' },
        '20261120T030000Z': { 'data/postgresql/base.json': baseJson(seg(1, 0, 3)) },
        '20261121T030000Z': { 'data/postgresql/base.json': '{ not json' },
      },
      { wal, binlog: [] },
    );
    expect((await planArchive('postgresql', store, ['20261119T030000Z', '20261120T030000Z'])).remove).toEqual(wal.slice(0, 2));
    const whole = await planArchive('postgresql', store, ['20261120T030000Z', '20261121T030000Z']);
    expect(whole.remove).toEqual([]);
    expect(whole.note).toMatch(/the archive is left whole: the base backup's postgresql\/base\.json of snapshot 20261121T030000Z does not parse/);
    // No kept snapshot with a base backup: nothing says what the archive is for.
    expect(await planArchive('postgresql', store, ['20261119T030000Z'])).toEqual({ folder: 'wal', neededFrom: undefined, remove: [] });
  });
});

describe('MariaDB binary logs a prune may delete', () => {
  it('deletes the logs of the same base name numbered before the start, and nothing else', () => {
    const names = ['mariadb-bin.000001', 'mariadb-bin.000002', 'mariadb-bin.000009', 'mariadb-bin.000010', 'mariadb-bin.000011', 'other.000001', 'mariadb-bin.index', '.fetch-123-abc'];
    expect(binlogsBefore(names, 'mariadb-bin.000010')).toEqual(['mariadb-bin.000001', 'mariadb-bin.000002', 'mariadb-bin.000009']);
  });

  it('starts from the earliest log any dump of a kept snapshot names', async () => {
    // A snapshot's summary as a MariaDB backup writes it: each dump with the binary log its replay starts in.
    const summary = (id: string, logs: string[]) =>
      stringify({
        schema: 'respaldo/v1',
        host: 'db01',
        repository: 'shop-db',
        kind: 'database',
        id,
        started: '2026-11-22T03:00:00.000Z',
        finished: '2026-11-22T03:00:09.000Z',
        paths: [],
        exclude: [],
        manifest: `sha256:${'0'.repeat(64)}`,
        previous: null,
        size: { bytes: 1, files: 1, dirs: 1, symlinks: 0, others: 0 },
        changed: { files: 1, bytes: 1 },
        verification: { level: 'checksum' },
        database: { engine: 'mariadb', version: '10.11.6', server: 'local socket', databases: logs.map((file, i) => ({ name: `db${i}`, file: `mariadb/db${i}.sql.gz`, format: 'mariadb-dump | gzip', bytes: 1, tables: 1, rows: 1, binlog: { file, position: 4 } })) },
        warnings: [],
        trigger: 'scheduled',
      });
    const logs = [1, 2, 3, 4, 5, 6].map((n) => `mariadb-bin.00000${n}`);
    const store = repository(
      {
        '20261120T030000Z': { 'snapshot.yaml': summary('20261120T030000Z', ['mariadb-bin.000002']) },
        '20261121T030000Z': { 'snapshot.yaml': summary('20261121T030000Z', ['mariadb-bin.000004', 'mariadb-bin.000003']) },
        '20261122T030000Z': { 'snapshot.yaml': summary('20261122T030000Z', ['mariadb-bin.000006']) },
      },
      { wal: [], binlog: logs },
    );
    expect(await planArchive('mariadb', store, ['20261121T030000Z', '20261122T030000Z'])).toEqual({ folder: 'binlog', neededFrom: 'mariadb-bin.000003', remove: logs.slice(0, 2) });
  });
});
