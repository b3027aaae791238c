/**
 * Pruning database repositories with point-in-time recovery, against real servers: a
 * PostgreSQL that archives its WAL through `respaldo wal-push`, and a MariaDB whose binary
 * logs respaldo archives. The prune deletes only the archive files that the oldest kept
 * snapshot does not need, the window of the kept snapshot has no gap, and a restore from
 * it still reaches a time inside it.
 */
import { chmodSync, chownSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deployment, ids, lastRecord, letOthersReach, MAIN, sleep, tempDir, verified, wallClock } from './helpers.js';
import { MariadbServer, PgServer, switchAndArchive } from './servers.js';

const pg = ids('postgres');

describe('prune with PostgreSQL point-in-time recovery', () => {
  const servers: PgServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it('deletes only the WAL older than the oldest kept base backup, and a restore from it still reaches a time in its window', async () => {
    letOthersReach(MAIN);
    const server = PgServer.init('respaldo-prune-pg-');
    servers.push(server);
    await server.start();
    server.sql('CREATE DATABASE shop');
    server.sql("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL); INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 100) g", 'shop');
    const d = await deployment(
      [{ name: 'shop-db', kind: 'database', engine: 'postgresql', connection: { host: server.socket, user: 'postgres' }, databases: ['shop'], pitr: true, verify: { restore: false }, retention: { 'keep-last': 1 } }],
      { host: 'db01', extra: { timezone: 'UTC' } },
    );
    // The server's user runs wal-push: it reads the host config and writes the archive.
    chmodSync(d.root, 0o755);
    chmodSync(d.config, 0o644);
    const setup = await d.run('db', 'setup-pitr', '--repo', 'shop-db', '--apply');
    expect(setup.code, setup.stderr).toBe(0);
    await server.stop();
    await server.start();

    // Three nightly backups, each with its base backup, and writes (and closed segments) between them.
    for (let n = 0; n < 3; n++) {
      server.sql(`INSERT INTO orders SELECT g, 'night ${n}' FROM generate_series(${1000 + n * 100}, ${1099 + n * 100}) g`, 'shop');
      await switchAndArchive(server);
      const run = await d.run('run', '--all');
      expect(run.code, run.stderr).toBe(0);
    }
    const snapshots = readdirSync(join(d.target, 'db01/shop-db/snapshots')).sort();
    expect(snapshots).toHaveLength(3);
    const newest = snapshots.at(-1)!;
    const base = JSON.parse(readFileSync(join(d.target, 'db01/shop-db/snapshots', newest, 'data/postgresql/base.json'), 'utf8')) as { start_segment: string; finished: string };
    const archive = join(d.target, 'db01/shop-db/archive/wal');
    const before = readdirSync(archive).filter((n) => !n.startsWith('.'));
    // What the kept base backup never reads: the segments (and backup history files) before its start.
    const older = before.filter((n) => /^[0-9A-F]{24}/.test(n) && n.slice(8, 24) < base.start_segment.slice(8, 24));
    expect(older.length).toBeGreaterThan(2);

    const pruned = await d.run('prune', '--apply');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(readdirSync(join(d.target, 'db01/shop-db/snapshots'))).toEqual([newest]);
    expect(readdirSync(archive).filter((n) => !n.startsWith('.')).sort()).toEqual(before.filter((n) => !older.includes(n)).sort());
    expect(readdirSync(archive)).toContain(`${base.start_segment}.gz`);
    expect(lastRecord(d)).toMatchObject({ type: 'prune', repository: 'shop-db', kind: 'database', deleted: snapshots.slice(0, 2), archive_segments_deleted: older.length, archive_needed_from: base.start_segment });

    // After the prune: the window starts at the kept base backup, with no gap, and a restore inside it works.
    server.sql("INSERT INTO orders VALUES (5000, 'kept')", 'shop');
    await sleep(1500);
    const noted = wallClock(new Date(), 'UTC');
    await sleep(1500);
    server.sql("INSERT INTO orders VALUES (5001, 'too late')", 'shop');
    await switchAndArchive(server);
    const window = await d.run('restore', 'shop-db', '--list-window', '--json');
    expect(window.code, window.stderr).toBe(0);
    const shown = JSON.parse(window.stdout.trim().split('\n').at(-1)!).data;
    expect(shown.window.from).toBe(base.finished);
    expect(shown.archive.gaps).toEqual([]);
    expect(shown.archive.first).toBe(base.start_segment);

    const parent = tempDir('respaldo-prune-pg-to-');
    chmodSync(parent, 0o755); // the postgres user replays the WAL there
    const into = join(parent, 'restored');
    const restored = await d.run('restore', 'shop-db', '--at', noted, '--to', into);
    expect(restored.code, restored.stderr + restored.stdout).toBe(0);
    chownSync(parent, pg.uid, pg.gid);
    const clone = new PgServer(into, parent);
    servers.push(clone);
    await clone.start();
    expect(clone.sql("SELECT count(*) FROM orders WHERE item LIKE 'night %'", 'shop')).toBe('300');
    expect(clone.sql('SELECT item FROM orders WHERE id >= 5000 ORDER BY id', 'shop')).toBe('kept');
    await clone.stop();
    await verified(d);
  }, 240_000);
});


describe('prune with MariaDB point-in-time recovery', () => {
  let server: MariadbServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('deletes only the binary logs older than the oldest kept dumps, and archiving does not fetch them again', async () => {
    server = MariadbServer.init('respaldo-prune-my-');
    await server.start(true);
    server.sql("CREATE DATABASE shop; USE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40) NOT NULL) ENGINE=InnoDB; INSERT INTO shop.orders SELECT seq, CONCAT('order ', seq) FROM seq_1_to_100;");
    const d = await deployment([{ name: 'shop-db', kind: 'database', engine: 'mariadb', connection: { host: server.sock, user: 'root' }, databases: ['shop'], pitr: true, verify: { restore: false }, retention: { 'keep-last': 1 } }], { host: 'db01', extra: { timezone: 'UTC' } });
    for (let n = 0; n < 3; n++) {
      server.sql(`USE shop; INSERT INTO shop.orders SELECT seq, 'night ${n}' FROM seq_${1000 + n * 100}_to_${1099 + n * 100}; FLUSH BINARY LOGS;`);
      // Right after the rotation: MariaDB writes a checkpoint event into the new log a moment
      // later, which a dump started meanwhile sees as the log moving on; the backup tries again.
      const run = await d.run('run', '--all');
      expect(run.code, run.stderr).toBe(0);
    }
    const snapshots = readdirSync(join(d.target, 'db01/shop-db/snapshots')).sort();
    expect(snapshots).toHaveLength(3);
    const kept = lastRecord(d);
    expect(kept.snapshot.id).toBe(snapshots[2]);
    const start = kept.database.databases[0].binlog.file as string;
    const archive = join(d.target, 'db01/shop-db/archive/binlog');
    const logs = () => readdirSync(archive).filter((n) => /^binlog\.\d+$/.test(n)).sort();
    const before = logs();
    const older = before.filter((n) => n < start);
    expect(older.length).toBeGreaterThan(2);
    // The server still has every one of them: nothing purges its binary logs here.
    expect(server.sql('SHOW BINARY LOGS').split('\n').map((l) => l.split('\t')[0])).toEqual(expect.arrayContaining(before));

    const pruned = await d.run('prune', '--apply');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(readdirSync(join(d.target, 'db01/shop-db/snapshots'))).toEqual([snapshots[2]]);
    expect(logs()).toEqual(before.filter((n) => !older.includes(n)));
    expect(lastRecord(d)).toMatchObject({ type: 'prune', deleted: snapshots.slice(0, 2), archive_segments_deleted: older.length, archive_needed_from: start });

    // Archiving again stores the new logs only: the pruned ones, still on the server, stay deleted.
    server.sql("INSERT INTO shop.orders VALUES (5000, 'after the prune')");
    const archived = await d.run('db', 'archive-binlogs', '--repo', 'shop-db');
    expect(archived.code, archived.stderr).toBe(0);
    const after = logs();
    expect(after.filter((n) => n < start)).toEqual([]);
    expect(after.length).toBeGreaterThan(before.length - older.length);
    const window = await d.run('restore', 'shop-db', '--list-window', '--json');
    expect(window.code, window.stderr).toBe(0);
    const shown = JSON.parse(window.stdout.trim().split('\n').at(-1)!).data;
    expect(shown.archive.gaps).toEqual([]);
    expect(shown.archive.first).toBe(start);
    expect(shown.starts.map((s: { snapshot: string }) => s.snapshot)).toEqual([snapshots[2]]);
    await verified(d);
  }, 240_000);
});
