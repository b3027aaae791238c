/**
 * Database repositories against real engines: SQLite through better-sqlite3 under a
 * steady writer, PostgreSQL 15 (the machine's server, and throwaway instances where a
 * test needs other settings), dumps checked by a test restore, failures as records.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { deployment, type Deployment, ids, lastRecord, onFullTarget, respaldo, ROOT, ownedTempDir, ownProcesses, sleep, tempDir, verified } from './helpers.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const psql = (db: string, sql: string, env: NodeJS.ProcessEnv = {}) =>
  execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', db, '-c', sql], { encoding: 'utf8', env: { ...process.env, ...env } }).trim();

/** Every record file and the run's output, to search for what must never appear. */
function everything(d: Deployment, ...outputs: string[]): string {
  return [...d.recordFiles().map((f) => readFileSync(join(d.records, f), 'utf8')), ...outputs].join('\n');
}

const databases: string[] = [];
function newDatabase(): string {
  const name = `respaldo_t_${process.pid}_${databases.length}`;
  psql('postgres', `DROP DATABASE IF EXISTS ${name}`);
  psql('postgres', `CREATE DATABASE ${name}`);
  databases.push(name);
  return name;
}
afterAll(() => {
  for (const name of databases) spawnSync('psql', ['-X', '-q', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
});

const pgRepo = (name: string, dbs: string[], extra: Record<string, unknown> = {}) => ({
  name,
  kind: 'database' as const,
  engine: 'postgresql',
  connection: { host: '/var/run/postgresql', user: 'postgres' },
  databases: dbs,
  ...extra,
});

describe('sqlite', () => {
  it('a backup taken while another process writes continuously finishes, passes integrity_check and holds every row committed before it started', async () => {
    const dir = tempDir();
    const file = join(dir, 'shop.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, payload BLOB)');
    const insert = db.prepare('INSERT INTO orders (item, payload) VALUES (?, randomblob(1000))');
    db.transaction(() => {
      for (let i = 0; i < 30_000; i++) insert.run(`item ${i}`);
    })();
    db.close();
    // A writer that commits small transactions without pause until it is told to stop.
    const writer: ChildProcess = spawn(
      process.execPath,
      [
        '-e',
        `const D = require(${JSON.stringify(join(ROOT, 'node_modules/better-sqlite3'))});
         const db = new D(process.argv[1], { timeout: 10000 });
         const ins = db.prepare("INSERT INTO orders (item, payload) VALUES ('live', randomblob(1000))");
         const tx = db.transaction(() => { for (let i = 0; i < 20; i++) ins.run(); });
         let stop = false; process.on('SIGTERM', () => { stop = true; });
         (function loop() { for (let k = 0; k < 5; k++) tx(); if (stop) { console.log(db.prepare('SELECT max(id) FROM orders').pluck().get()); process.exit(0); } setImmediate(loop); })();`,
        file,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let writerOut = '';
    writer.stdout!.on('data', (c) => (writerOut += c));
    try {
      await sleep(500);
      const reader = new Database(file, { readonly: true });
      const committed = Number(reader.prepare('SELECT max(id) FROM orders').pluck().get());
      reader.close();
      expect(committed).toBeGreaterThan(30_000);

      const d = await deployment([{ name: 'shop-db', kind: 'database', engine: 'sqlite', paths: [file] }], { host: 'db01' });
      const r = await d.run('run', '--all');
      expect(r.code, r.stderr).toBe(0);
      expect(writer.exitCode).toBeNull(); // still writing

      const [id] = d.snapshots('shop-db');
      const stored = join(d.target, 'db01/shop-db/snapshots', id!, 'data/sqlite/1-shop.db');
      const copy = new Database(stored, { readonly: true });
      expect(copy.prepare('PRAGMA integrity_check').pluck().get()).toBe('ok');
      expect(copy.prepare('SELECT count(*) FROM orders WHERE id <= ?').pluck().get(committed)).toBe(committed);
      const rows = Number(copy.prepare('SELECT count(*) FROM orders').pluck().get());
      copy.close();

      const rec = lastRecord(d);
      expect(rec).toMatchObject({ type: 'backup', kind: 'database', verification: { level: 'restore', restore: { result: 'ok' } } });
      expect(rec.database).toMatchObject({ engine: 'sqlite', server: 'file', databases: [{ name: 'shop.db', file: 'sqlite/1-shop.db', format: 'online backup (one read transaction)', tables: 1, rows }] });
      expect(rec.verification.restore.databases[0].checks).toEqual(['integrity_check: ok', 'foreign_key_check: ok', 'row counts: match']);
      expect(everything(d)).not.toContain(dir);
      await verified(d);
    } finally {
      writer.kill('SIGTERM');
      await new Promise((r) => writer.once('exit', r));
    }
    // The writer went on after the backup: the copy is a moment's state, not the end.
    expect(Number(writerOut.trim())).toBeGreaterThan(30_000);
  }, 120_000);
});

describe('sqlite, two files of one name', () => {
  it('checks each copy against its own rows when two databases share a file name', async () => {
    const dir = tempDir();
    const files = [join(dir, 'a/app.db'), join(dir, 'b/app.db')];
    files.forEach((file, i) => {
      mkdirSync(join(file, '..'));
      const db = new Database(file);
      db.exec(`CREATE TABLE t${i} (n INTEGER)`);
      const insert = db.prepare(`INSERT INTO t${i} VALUES (?)`);
      for (let k = 0; k < 10 * (i + 1); k++) insert.run(k);
      db.close();
    });
    const d = await deployment([{ name: 'apps', kind: 'database', engine: 'sqlite', paths: files }], { host: 'db01' });
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    const rec = lastRecord(d);
    expect(rec.database.databases.map((x: { file: string; rows: number }) => [x.file, x.rows])).toEqual([
      ['sqlite/1-app.db', 10],
      ['sqlite/2-app.db', 20],
    ]);
    expect(rec.verification.restore.databases.map((x: { mismatches: string[] }) => x.mismatches)).toEqual([[], []]);
  }, 60_000);
});

describe('postgresql', () => {
  it('dumps each database in one snapshot with its rows counted, and proves the dump restores the same rows', async () => {
    const name = newDatabase();
    psql(name, `CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);
      INSERT INTO orders (item) SELECT 'item ' || g FROM generate_series(1, 2500) g;
      CREATE SCHEMA "Ventas 2026"; CREATE TABLE "Ventas 2026"."líneas|x" (n int); INSERT INTO "Ventas 2026"."líneas|x" SELECT generate_series(1, 7);`);
    const d = await deployment([pgRepo('shop-db', [name])], { host: 'db01' });
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    const rec = lastRecord(d);
    expect(rec.verification).toMatchObject({ level: 'restore', checksum: { files: 1, mismatches: 0 }, restore: { result: 'ok', databases: [{ name, tables: 2, rows: 2507, mismatches: [] }] } });
    expect(rec.verification.restore.instance).toMatch(/^PostgreSQL 15\.\d+ throwaway instance/);
    expect(rec.database).toMatchObject({ engine: 'postgresql', version: expect.stringMatching(/^15\.\d+$/), server: 'local socket, port 5432', databases: [{ name, file: `postgresql/${name}.dump`, format: 'pg_dump -Fc', tables: 2, rows: 2507 }] });
    expect(everything(d)).not.toContain('/var/run/postgresql');

    // What a DBA would do with the stored dump: restore it elsewhere and find the rows.
    const [id] = d.snapshots('shop-db');
    const clone = newDatabase();
    execFileSync('pg_restore', ['--no-owner', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', clone, join(d.target, 'db01/shop-db/snapshots', id!, `data/postgresql/${name}.dump`)]);
    expect(psql(clone, 'SELECT count(*), max(item) FROM orders')).toBe('2500|item 999');
    expect(psql(clone, 'SELECT sum(n) FROM "Ventas 2026"."líneas|x"')).toBe('28');
    // No throwaway instance is left running or on disk.
    expect(readdirSync('/tmp').filter((f) => f.startsWith('respaldo-pg-'))).toEqual([]);
    await verified(d);
  }, 120_000);

  for (const [damage, filter] of [
    ['truncated', 'head -c -3000'],
    ['corrupted', `perl -0777 -pe 'substr($_, int(length($_) * 0.6), 64) = "x" x 64'`],
  ] as const) {
    it(`a ${damage} dump (pg_dump exits 0) is caught by the test restore and recorded as a failure; the previous snapshot stays`, async () => {
      const name = newDatabase();
      psql(name, `CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL); INSERT INTO orders (item) SELECT md5(g::text) FROM generate_series(1, 20000) g;`);
      // The engine's own programs, but for a pg_dump whose output is damaged on the way.
      const bindir = tempDir();
      chmodSync(bindir, 0o755); // initdb and postgres run as the postgres user
      for (const program of readdirSync(PG_BIN)) if (program !== 'pg_dump') symlinkSync(join(PG_BIN, program), join(bindir, program));
      const d = await deployment([pgRepo('shop-db', [name], { bindir: join(bindir, 'real') })], { host: 'db01' });
      // First a good backup, with the real tools.
      mkdirSync(join(bindir, 'real'));
      for (const program of readdirSync(PG_BIN)) symlinkSync(join(PG_BIN, program), join(bindir, 'real', program));
      expect((await d.run('run', '--all')).code).toBe(0);
      const [before] = d.snapshots('shop-db');
      writeFileSync(join(bindir, 'pg_dump'), `#!/bin/sh\n"${PG_BIN}/pg_dump" "$@" | ${filter}\n`, { mode: 0o755 });
      writeFileSync(d.config, readFileSync(d.config, 'utf8').replace(join(bindir, 'real'), bindir));

      const r = await d.run('run', '--all');
      expect(r.code).toBe(3);
      const failure = lastRecord(d);
      expect(failure).toMatchObject({ type: 'failure', repository: 'shop-db', stage: 'verify', previous_snapshot: before });
      expect(failure.cause).toMatch(/test restore failed/);
      expect(failure.cause).toMatch(/pg_restore: failed/);
      expect(r.stderr).toContain('test restore failed');
      expect(d.snapshots('shop-db')).toEqual([before]);
      expect(readdirSync(join(d.target, 'db01/shop-db/incomplete'))).toEqual([]);
      await verified(d);
    }, 120_000);
  }

  it('a missing database, an unreachable server and a full target are failure records, and the previous backups stay', async () => {
    const name = newDatabase();
    psql(name, `CREATE TABLE blobs (id serial PRIMARY KEY, data bytea); INSERT INTO blobs (data) SELECT decode(md5(g::text), 'hex') FROM generate_series(1, 10) g;`);
    const d = await deployment([pgRepo('shop-db', [name])], { host: 'db01' });
    expect((await d.run('run', '--all')).code).toBe(0);
    const [before] = d.snapshots('shop-db');
    const config = readFileSync(d.config, 'utf8');

    writeFileSync(d.config, config.replace(`- ${name}`, '- no_such_database'));
    let r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'source', cause: 'database "no_such_database" does not exist on local socket, port 5432', previous_snapshot: before });
    expect(lastRecord(d).hint).toMatch(/correct repositories\[shop-db\]\.databases/);

    const unreachable = parse(config);
    unreachable.repositories[0].connection = { host: '127.0.0.1', port: 9, user: 'postgres' };
    writeFileSync(d.config, stringify(unreachable));
    r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'source', previous_snapshot: before });
    expect(lastRecord(d).cause).toMatch(/^cannot reach the PostgreSQL server at 127\.0\.0\.1:9/);
    expect(lastRecord(d).hint).toMatch(/pg_isready/);

    // A dump larger than the target's free space: a 2 MiB tmpfs.
    writeFileSync(d.config, config);
    psql(name, `INSERT INTO blobs (data) SELECT decode(string_agg(md5(g::text || random()::text), ''), 'hex') FROM generate_series(1, 300000) g GROUP BY g % 20;`);
    await onFullTarget(d, config, async (full) => {
      r = await d.run('run', '--all');
      expect(r.code).toBe(3);
      const failure = lastRecord(d);
      expect(failure).toMatchObject({ type: 'failure', stage: 'target' });
      expect(failure.cause).toMatch(/full|ENOSPC|No space left/);
      expect(readdirSync(join(full, 'db01/shop-db/incomplete'))).toEqual([]);
    });
    expect(d.snapshots('shop-db')).toEqual([before]);
    await verified(d);
  }, 120_000);

  it('a wrong password is a failure record, and no password appears in any record, output or argv', async () => {
    // A throwaway server that asks for a password (the machine's own trusts local users).
    const { uid, gid, as } = ids('postgres');
    const dir = ownedTempDir('respaldo-pgpw-', { uid, gid }, 0o700);
    const secret = 'S3cret:with\\odd chars';
    writeFileSync(join(dir, 'pw'), secret);
    chownSync(join(dir, 'pw'), uid, gid);
    execFileSync(as[0]!, [...as.slice(1), join(PG_BIN, 'initdb'), '-D', join(dir, 'data'), '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${join(dir, 'pw')}`, '--no-sync', '--no-instructions'], { stdio: 'ignore' });
    const server = spawn(as[0]!, [...as.slice(1), join(PG_BIN, 'postgres'), '-D', join(dir, 'data'), '-k', dir, '-c', 'listen_addresses=', '-p', '5432'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && spawnSync(join(PG_BIN, 'pg_isready'), ['-q', '-h', dir]).status !== 0; i++) await sleep(100);
      const passwords = tempDir();
      writeFileSync(join(passwords, 'good.pass'), `${secret}\n`, { mode: 0o600 });
      writeFileSync(join(passwords, 'bad.pass'), 'not-the-password\n', { mode: 0o600 });
      const repo = pgRepo('shop-db', ['postgres'], { connection: { host: dir, user: 'postgres', 'password-file': join(passwords, 'good.pass') } });
      const d = await deployment([repo], { host: 'db01' });
      // Watch every process's argv while the agent runs.
      const seen: string[] = [];
      const watch = setInterval(() => seen.push(ownProcesses().map((p) => p.argv).join('\n')), 20);
      const good = await d.run('run', '--all', '--json');
      expect(good.code, good.stderr).toBe(0);
      const [before] = d.snapshots('shop-db');
      writeFileSync(d.config, readFileSync(d.config, 'utf8').replace('good.pass', 'bad.pass'));
      const bad = await d.run('run', '--all', '--json');
      clearInterval(watch);
      expect(bad.code).toBe(3);
      const failure = lastRecord(d);
      expect(failure).toMatchObject({ type: 'failure', stage: 'source', previous_snapshot: before });
      expect(failure.cause).toMatch(/^PostgreSQL refused the login to local socket, port 5432/);
      expect(failure.hint).toMatch(/password-file/);
      expect(d.snapshots('shop-db')).toEqual([before]);
      const all = everything(d, good.stdout, good.stderr, bad.stdout, bad.stderr, ...seen);
      expect(seen.some((s) => s.includes('pg_dump'))).toBe(true);
      expect(all).not.toContain(secret);
      expect(all).not.toContain('S3cret');
      expect(all).not.toContain('not-the-password');
      expect(everything(d)).not.toContain(passwords);
      await verified(d);
    } finally {
      server.kill('SIGINT');
      await new Promise((r) => server.once('exit', r));
    }
  }, 120_000);
});

