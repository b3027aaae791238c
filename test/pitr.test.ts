/**
 * PostgreSQL point-in-time recovery against a real server: a throwaway PostgreSQL 15 set
 * up by `respaldo db setup-pitr --apply`, archiving through `respaldo wal-push`, nightly
 * base backups, and `respaldo restore --at` bringing a deleted row back in a new instance.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployment, type Deployment, ids, lastRecord, letOthersReach, MAIN, respaldo, sleep, tempDir, verified, wallClock } from './helpers.js';
import { PgServer, switchAndArchive } from './servers.js';

const ZONE = 'America/Mexico_City';

const pg = ids('postgres');


describe('PostgreSQL point-in-time recovery', () => {
  const servers: PgServer[] = [];
  let server: PgServer;
  let d: Deployment;
  beforeAll(async () => {
    letOthersReach(MAIN);
    server = PgServer.init();
    servers.push(server);
    await server.start();
    server.sql('CREATE DATABASE shop');
    server.sql("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL); INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 100) g", 'shop');
    d = await deployment(
      [{ name: 'shop-db', kind: 'database', engine: 'postgresql', connection: { host: server.socket, user: 'postgres' }, databases: ['shop'], pitr: true }],
      { host: 'db01', extra: { timezone: ZONE } },
    );
    // The server's user runs wal-push: it reads the host config and writes the archive.
    chmodSync(d.root, 0o755);
    chmodSync(d.config, 0o644);
  }, 120_000);
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it('setup-pitr prints the settings, and --apply sets them and says a restart is needed', async () => {
    const printed = await d.run('db', 'setup-pitr', '--repo', 'shop-db');
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/^wal_level = replica$/m);
    expect(printed.stdout).toMatch(/^archive_mode = on$/m);
    expect(printed.stdout).toContain(`wal-push --config ${d.config} --repo shop-db %p %f'`);
    expect(printed.stdout).toMatch(/restart/);

    // A config the server's user cannot read would make every archive_command fail: said at once.
    chmodSync(d.config, 0o600);
    const unreadable = await d.run('db', 'setup-pitr', '--repo', 'shop-db', '--apply');
    expect(unreadable.code, unreadable.stderr).toBe(0);
    expect(unreadable.stdout).toMatch(/WARNING: the server's user \(uid \d+\) cannot run respaldo with this config .*EACCES|WARNING: the server's user \(uid \d+\) cannot run respaldo with this config .*permission denied/i);
    chmodSync(d.config, 0o644);
    const applied = await d.run('db', 'setup-pitr', '--repo', 'shop-db', '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/RESTART NEEDED: archive_mode/);
    // The server's user can run the agent with this config (setup-pitr tries it and warns otherwise).
    expect(applied.stdout).not.toMatch(/WARNING/);
    expect(readFileSync(join(server.data, 'postgresql.auto.conf'), 'utf8')).toMatch(/archive_command = '.*wal-push/);
    const archive = join(d.target, 'db01/shop-db/archive/wal');
    expect(existsSync(archive)).toBe(true);
    await server.stop();
    await server.start();
    expect(server.sql('SHOW archive_mode')).toBe('on');
    const closed = await switchAndArchive(server);
    expect(readdirSync(archive)).toContain(`${closed}.gz`);
  }, 120_000);

  it('brings a deleted row back as it was at a noted time, in a new instance, without the rows written after it', async () => {
    const backup = await d.run('run', '--all', '--json');
    expect(backup.code, backup.stderr + backup.stdout).toBe(0);
    const record = lastRecord(d);
    expect(record.type).toBe('backup');
    expect(record.database.pitr.base).toMatchObject({ file: 'postgresql/base', format: 'pg_basebackup -Fp -X stream', timeline: 1, checks: ['pg_verifybackup: ok'] });
    expect(record.database.pitr.archive.location).toBe('db01/shop-db/archive/wal');
    expect(record.database.pitr.archive.files).toBeGreaterThan(0);
    expect(record.verification.restore.result).toBe('ok');
    // The segment that ends the base backup reached the archive while the backup waited for it.
    expect(record.warnings.map((w: { code: string }) => w.code)).toEqual([]);
    expect(record.database.pitr.archive.window).not.toBeNull();

    server.sql("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(101, 110) g", 'shop');
    await sleep(1500);
    const noted = wallClock(new Date(), ZONE);
    await sleep(1500);
    server.sql('DELETE FROM orders WHERE id = 42', 'shop');
    server.sql("INSERT INTO orders SELECT g, 'late ' || g FROM generate_series(200, 210) g", 'shop');
    await switchAndArchive(server);

    const window = await d.run('restore', 'shop-db', '--list-window', '--json');
    expect(window.code, window.stderr).toBe(0);
    const shown = JSON.parse(window.stdout.trim().split('\n').at(-1)!).data;
    expect(shown.timezone).toBe(ZONE);
    expect(new Date(shown.window.to).getTime()).toBeGreaterThan(Date.now() - 60_000);

    // Outside the window: refused, with the window stated.
    const early = await d.run('restore', 'shop-db', '--at', '2020-01-01 00:00', '--to', join(d.root, 'nope'));
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/outside the recoverable window of shop-db, from 20\d\d-.* America\/Mexico_City \(UTC−06:00\) to /);
    expect(existsSync(join(d.root, 'nope'))).toBe(false);
    // Never into a running server's folder.
    const running = await d.run('restore', 'shop-db', '--at', noted, '--to', server.data);
    expect(running.code).toBe(2);
    expect(running.stderr).toMatch(/data folder of a running PostgreSQL server/);

    const parent = tempDir('respaldo-pitr-to-');
    chmodSync(parent, 0o755); // the postgres user replays the WAL there
    const into = join(parent, 'restored');
    const restored = await d.run('restore', 'shop-db', '--at', noted, '--to', into, '--reason', 'deleted-by-mistake', '--why', 'order 42 deleted at the counter');
    expect(restored.code, restored.stderr + restored.stdout).toBe(0);
    expect(restored.stdout).toContain(`restored shop-db to ${noted} America/Mexico_City (UTC−06:00)`);
    expect(restored.stdout).toMatch(/recovery stopping before commit of transaction \d+/);

    // The restored copy, started as a new instance: order 42 is back, the later rows are not.
    chownSync(parent, pg.uid, pg.gid);
    const clone = new PgServer(into, parent);
    servers.push(clone);
    await clone.start();
    expect(clone.sql('SELECT item FROM orders WHERE id = 42', 'shop')).toBe('order 42');
    expect(clone.sql('SELECT count(*) FROM orders WHERE id BETWEEN 101 AND 110', 'shop')).toBe('10');
    expect(clone.sql('SELECT count(*) FROM orders WHERE id >= 200', 'shop')).toBe('0');
    expect(clone.sql('SHOW archive_mode')).toBe('off');
    await clone.stop();
    // The production server still has the deletion and the later rows: nothing was written into it.
    expect(server.sql('SELECT count(*) FROM orders WHERE id = 42', 'shop')).toBe('0');
    expect(server.sql('SELECT count(*) FROM orders WHERE id >= 200', 'shop')).toBe('11');

    const rec = lastRecord(d);
    expect(rec).toMatchObject({ type: 'restore', repository: 'shop-db', reason: 'deleted-by-mistake', reason_detail: 'order 42 deleted at the counter', result: 'ok', source_copy: 'primary', destination: into });
    expect(rec.point_in_time).toBe(new Date(`${noted.replace(' ', 'T')}-06:00`).toISOString());
    expect(rec.verification.files).toBeGreaterThan(100);
    expect(rec.verification.mismatches).toBe(0);
    // A non-empty folder is refused.
    const again = await d.run('restore', 'shop-db', '--at', noted, '--to', into);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/is not empty/);

    // Into production: only with the server stopped and the repository's name confirmed; the old folder is kept aside.
    const unconfirmed = await d.run('restore', 'shop-db', '--at', noted, '--to', server.data, '--into-production');
    expect(unconfirmed.code).toBe(2);
    await server.stop();
    const stillUnconfirmed = await d.run('restore', 'shop-db', '--at', noted, '--to', server.data, '--into-production');
    expect(stillUnconfirmed.code).toBe(2);
    expect(stillUnconfirmed.stderr).toMatch(/--confirm shop-db/);
    const production = await d.run('restore', 'shop-db', '--at', noted, '--to', server.data, '--into-production', '--confirm', 'shop-db', '--reason', 'logical-damage');
    expect(production.code, production.stderr + production.stdout).toBe(0);
    const aside = readdirSync(join(server.data, '..')).filter((n) => n.startsWith('data.before-restore-'));
    expect(aside).toHaveLength(1);
    expect(existsSync(join(server.data, '..', aside[0]!, 'PG_VERSION'))).toBe(true);
    await server.start();
    expect(server.sql('SELECT item FROM orders WHERE id = 42', 'shop')).toBe('order 42');
    expect(server.sql('SELECT count(*) FROM orders WHERE id >= 200', 'shop')).toBe('0');
    // Production keeps archiving, on a new timeline that cannot overwrite the old one's WAL.
    expect(server.sql('SHOW archive_mode')).toBe('on');
    expect(server.sql('SELECT timeline_id FROM pg_control_checkpoint()')).toBe('2');
    const closed = await switchAndArchive(server);
    expect(closed.startsWith('00000002')).toBe(true);
    await verified(d);
  }, 240_000);
});

describe('wal-push', () => {
  async function pitrDeployment(): Promise<{ d: Deployment; archive: string }> {
    const d = await deployment([{ name: 'shop-db', kind: 'database', engine: 'postgresql', databases: ['shop'], pitr: true }], { host: 'db01' });
    return { d, archive: join(d.target, 'db01/shop-db/archive/wal') };
  }
  const NAME = '000000010000000000000003';

  it('refuses to write when the archive folder is missing (an unmounted disk) and says what to do', async () => {
    const { d } = await pitrDeployment();
    const wal = join(d.root, 'segment');
    writeFileSync(wal, 'x');
    const r = await d.run('wal-push', '--repo', 'shop-db', wal, NAME);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/the WAL archive .*archive\/wal does not exist/);
    expect(r.stderr).toMatch(/setup-pitr --apply/);
  });

  it('the same segment pushed twice is stored once; another file under its name is refused and the archived one kept', async () => {
    const { d, archive } = await pitrDeployment();
    mkdirSync(archive, { recursive: true });
    const wal = join(d.root, 'segment');
    const bytes = Buffer.alloc(16 << 20, 7);
    bytes.write('first', 1000);
    writeFileSync(wal, bytes);
    for (let i = 0; i < 2; i++) {
      const r = await d.run('wal-push', '--repo', 'shop-db', wal, NAME);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toBe('');
    }
    expect(readdirSync(archive)).toEqual([`${NAME}.gz`]);
    expect(gunzipSync(readFileSync(join(archive, `${NAME}.gz`))).equals(bytes)).toBe(true);
    const other = Buffer.from(bytes);
    other.write('other', 1000);
    writeFileSync(wal, other);
    const r = await d.run('wal-push', '--repo', 'shop-db', wal, NAME);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/already archived with different contents/);
    expect(gunzipSync(readFileSync(join(archive, `${NAME}.gz`))).equals(bytes)).toBe(true);
    const bad = await d.run('wal-push', '--repo', 'shop-db', wal, '../../escape');
    expect(bad.code).toBe(2);
  }, 60_000);

  it('killed in the middle, again and again, leaves either no segment or the whole one; the next push completes it', async () => {
    const { d, archive } = await pitrDeployment();
    mkdirSync(archive, { recursive: true });
    const wal = join(d.root, 'segment');
    const bytes = Buffer.alloc(16 << 20);
    for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32LE(i, i);
    writeFileSync(wal, bytes);
    let caught = 0;
    for (let k = 0; k < 8; k++) {
      const name = `00000001000000000000001${k}`;
      const child = spawn(process.execPath, [MAIN, 'wal-push', '--config', d.config, '--repo', 'shop-db', wal, name], { stdio: 'ignore' });
      const gone = new Promise((r) => child.once('exit', r));
      // Kill it the moment its temporary file appears (while it writes or syncs), or, every
      // other time, a few milliseconds later (around the link into place).
      let seen = false;
      while (child.exitCode === null && child.signalCode === null && !seen) {
        seen = readdirSync(archive).some((n) => n.startsWith(`.${name}.`));
        if (!seen) await sleep(1);
      }
      if (seen) caught++;
      if (k % 2) await sleep(k * 3);
      child.kill('SIGKILL');
      await gone;
      // Whatever the moment, a segment under its real name is whole.
      for (const n of readdirSync(archive).filter((x) => !x.startsWith('.'))) expect(gunzipSync(readFileSync(join(archive, n))).equals(bytes)).toBe(true);
    }
    // The kills did land in the middle: pushes left temporary files and no segment under the real name.
    expect(caught).toBeGreaterThan(0);
    expect(readdirSync(archive).filter((n) => !n.startsWith('.')).length).toBeLessThan(8);
    for (let k = 0; k < 8; k++) {
      const r = await respaldo(['wal-push', '--config', d.config, '--repo', 'shop-db', wal, `00000001000000000000001${k}`]);
      expect(r.code, r.stderr).toBe(0);
    }
    const names = readdirSync(archive);
    expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
    expect(names).toHaveLength(8);
    for (const name of names) expect(gunzipSync(readFileSync(join(archive, name))).equals(bytes)).toBe(true);
  }, 120_000);
});
