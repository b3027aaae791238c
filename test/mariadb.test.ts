/**
 * MariaDB repositories against a real server: a throwaway mariadbd that this file starts
 * (binary logs on, a private socket and a free 127.0.0.1 port; never the machine's own
 * server), dumps checked by the agent's test restore, failures as records.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { deployment, type Deployment, freePort, ids, lastRecord, onFullTarget, ownedTempDir, ownProcesses, sleep, tempDir, verified } from './helpers.js';

const SECRET = `S3cret:with\\odd "chars' #x`;
const sqlString = (s: string) => `'${s.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;

let dir: string;
let sock: string;
let port: number;
let server: ChildProcess;
let passwords: string;

/** Runs SQL as the server's root over its socket; returns the rows, tab-separated. */
function sql(statements: string, db?: string, input?: Buffer): string {
  return execFileSync('mariadb', ['--no-defaults', '--protocol=SOCKET', `--socket=${sock}`, '--user=root', '--default-character-set=utf8mb4', '--batch', '--skip-column-names', ...(db ? [`--database=${db}`] : []), ...(input ? [] : ['-e', statements])], { encoding: 'utf8', ...(input ? { input } : {}) }).trim();
}



beforeAll(async () => {
  // A short folder: the socket path must fit in 108 bytes.
  const mysql = ids('mysql');
  dir = ownedTempDir('respaldo-mysrc-', mysql, 0o700);
  sock = join(dir, 's');
  port = await freePort();
  const { as } = mysql;
  execFileSync(as[0]!, [...as.slice(1), 'mariadb-install-db', '--no-defaults', `--datadir=${join(dir, 'data')}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve'], { stdio: 'ignore' });
  server = spawn(
    as[0]!,
    [...as.slice(1), 'setpriv', '--pdeathsig', 'KILL', '--', '/usr/sbin/mariadbd', '--no-defaults', `--datadir=${join(dir, 'data')}`, `--socket=${sock}`, `--port=${port}`, '--bind-address=127.0.0.1', '--skip-name-resolve', `--log-bin=${join(dir, 'data/binlog')}`, '--server-id=1', `--log-error=${join(dir, 'error.log')}`, `--pid-file=${join(dir, 'pid')}`, '--innodb-flush-log-at-trx-commit=0'],
    { stdio: 'ignore' },
  );
  for (let i = 0; ; i++) {
    if (spawnSync('mariadb-admin', ['--no-defaults', `--socket=${sock}`, '--user=root', 'ping'], { stdio: 'ignore' }).status === 0) break;
    if (server.exitCode !== null || i > 300) throw new Error(`the test's mariadbd did not start: ${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`);
    await sleep(100);
  }
  // The backup user, over the socket and over TCP; one that lacks RELOAD, one that lacks TRIGGER.
  sql(`CREATE USER respaldo@localhost IDENTIFIED BY ${sqlString(SECRET)}; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD ON *.* TO respaldo@localhost;
       CREATE USER respaldo@'127.0.0.1' IDENTIFIED BY ${sqlString(SECRET)}; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD ON *.* TO respaldo@'127.0.0.1';
       CREATE USER weak@localhost IDENTIFIED BY ${sqlString(SECRET)}; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON *.* TO weak@localhost;
       CREATE USER notrig@localhost IDENTIFIED BY ${sqlString(SECRET)}; GRANT SELECT, SHOW VIEW, EVENT, RELOAD ON *.* TO notrig@localhost;`);
  passwords = tempDir();
  writeFileSync(join(passwords, 'good.pass'), `${SECRET}\n`, { mode: 0o600 });
  writeFileSync(join(passwords, 'bad.pass'), 'not-the-password\n', { mode: 0o600 });
});

afterAll(async () => {
  if (!server || server.exitCode !== null) return;
  server.kill('SIGKILL');
  await new Promise((r) => server.once('exit', r));
});

const myRepo = (name: string, databases: string[], extra: Record<string, unknown> = {}) => ({
  name,
  kind: 'database' as const,
  engine: 'mariadb',
  connection: { host: sock, user: 'respaldo', 'password-file': join(passwords, 'good.pass') },
  databases,
  ...extra,
});

/** Every record file and the run's output, to search for what must never appear. */
function everything(d: Deployment, ...outputs: string[]): string {
  return [...d.recordFiles().map((f) => readFileSync(join(d.records, f), 'utf8')), ...outputs].join('\n');
}

const stored = (d: Deployment, repo: string, file: string) => join(d.target, d.host, repo, 'snapshots', d.snapshots(repo).at(-1)!, 'data', file);
const leftovers = () => [...readdirSync('/tmp'), ...readdirSync(tmpdir())].filter((f) => f.startsWith('respaldo-my-') || f.startsWith('respaldo-mycnf-'));

describe('mariadb', () => {
  it('dumps two databases with their routines, triggers and events, records the binary-log position, and proves each dump restores the same rows', async () => {
    sql(`CREATE DATABASE shop; USE shop;
      CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(64) NOT NULL, total DECIMAL(10,2)) ENGINE=InnoDB;
      INSERT INTO orders (item, total) SELECT CONCAT('item ', seq), seq / 100 FROM seq_1_to_2500;
      CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT NOT NULL) ENGINE=InnoDB;
      CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id);
      CREATE PROCEDURE add_order(IN name VARCHAR(64)) INSERT INTO orders (item, total) VALUES (name, 0);
      CREATE FUNCTION order_total() RETURNS DECIMAL(12,2) READS SQL DATA RETURN (SELECT SUM(total) FROM orders);
      CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE id < 0;
      CALL add_order('one more');
      CREATE TABLE hits (n INT) ENGINE=MyISAM; INSERT INTO hits SELECT seq FROM seq_1_to_7;
      CREATE DATABASE \`weird-name ü\`; CREATE TABLE \`weird-name ü\`.\`líneas|x\` (n INT); INSERT INTO \`weird-name ü\`.\`líneas|x\` SELECT seq FROM seq_1_to_7;`);
    const [file, position] = sql('SHOW MASTER STATUS').split('\t');
    const gtid = sql('SELECT @@gtid_binlog_pos');

    const d = await deployment([myRepo('shop-db', ['shop', 'weird-name ü'])], { host: 'db01' });
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    const rec = lastRecord(d);
    const odd = `mariadb/2-${Buffer.from('weird-name ü').toString('hex')}.sql.gz`;
    expect(rec.database).toEqual({
      engine: 'mariadb',
      version: expect.stringMatching(/^1\d\.\d+\.\d+$/),
      server: 'local socket',
      databases: [
        { name: 'shop', file: 'mariadb/shop.sql.gz', format: 'mariadb-dump | gzip', bytes: expect.any(Number), tables: 3, rows: 2501 + 1 + 7, binlog: { file, position: Number(position), gtid, time: expect.any(String) } },
        { name: 'weird-name ü', file: odd, format: 'mariadb-dump | gzip', bytes: expect.any(Number), tables: 1, rows: 7, binlog: { file, position: Number(position), gtid, time: expect.any(String) } },
      ],
    });
    expect(rec.verification).toMatchObject({ level: 'restore', checksum: { files: 2, mismatches: 0 }, restore: { result: 'ok' } });
    expect(rec.warnings).toEqual([]);
    expect(rec.verification.restore.instance).toMatch(/^MariaDB 1\d\.\d+\.\d+ throwaway instance \(mariadb-install-db, private socket\)$/);
    expect(rec.verification.restore.databases).toEqual([
      { name: 'shop', tables: 3, rows: 2509, checks: ['mariadb: ok', 'dump complete: ok', 'CHECK TABLE: ok', 'row counts: match'], mismatches: [] },
      { name: 'weird-name ü', tables: 1, rows: 7, checks: ['mariadb: ok', 'dump complete: ok', 'CHECK TABLE: ok', 'row counts: match'], mismatches: [] },
    ]);

    // The stored dump is plain SQL once gunzipped, routines and all.
    const text = gunzipSync(readFileSync(stored(d, 'shop-db', 'mariadb/shop.sql.gz'))).toString('utf8');
    expect(text).toContain('TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW');
    expect(text).toContain('PROCEDURE `add_order`');
    expect(text).toContain('FUNCTION `order_total`');
    expect(text).toContain('EVENT `nightly_cleanup`');
    expect(text).toContain(`-- CHANGE MASTER TO MASTER_LOG_FILE='${file}', MASTER_LOG_POS=${position};`);
    // What a DBA would do with it: load it into another database and use it.
    sql('CREATE DATABASE shop_copy');
    sql('', 'shop_copy', gunzipSync(readFileSync(stored(d, 'shop-db', 'mariadb/shop.sql.gz'))));
    expect(sql("CALL add_order('after the restore'); SELECT COUNT(*), order_total() FROM orders; SELECT COUNT(*) FROM audit;", 'shop_copy')).toBe('2502\t31262.50\n2');
    sql('CREATE DATABASE odd_copy');
    sql('', 'odd_copy', gunzipSync(readFileSync(stored(d, 'shop-db', odd))));
    expect(sql('SELECT SUM(n) FROM `líneas|x`', 'odd_copy')).toBe('28');

    expect(everything(d, r.stdout, r.stderr)).not.toContain(dir);
    expect(everything(d)).not.toContain(passwords);
    expect(leftovers()).toEqual([]);
    await verified(d);
  });

  it('a backup taken while another connection keeps committing holds every row committed before it started, and its counts match the dump exactly', async () => {
    sql('CREATE DATABASE live');
    sql(`CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(40) NOT NULL, payload VARCHAR(200)) ENGINE=InnoDB;
      INSERT INTO orders (item, payload) SELECT CONCAT('item ', seq), REPEAT('x', 100) FROM seq_1_to_20000;
      CREATE TABLE hits (n INT) ENGINE=MyISAM;
      DELIMITER //
      CREATE PROCEDURE writer() BEGIN LOOP INSERT INTO orders (item, payload) VALUES ('live', REPEAT('y', 100)); INSERT INTO hits VALUES (1); END LOOP; END //`, 'live');
    // A writer that commits one row after another (autocommit) until it is killed.
    const writer = spawn('mariadb', ['--no-defaults', `--socket=${sock}`, '--user=root', '--database=live', '-e', 'CALL writer()'], { stdio: 'ignore' });
    try {
      await sleep(500);
      // Ids have gaps (InnoDB reserves them in blocks for INSERT … SELECT): count below the highest.
      const last = Number(sql('SELECT MAX(id) FROM orders', 'live'));
      const committed = Number(sql(`SELECT COUNT(*) FROM orders WHERE id <= ${last}`, 'live'));
      expect(committed).toBeGreaterThan(20_000);

      const d = await deployment([myRepo('live-db', ['live'])], { host: 'db01' });
      const r = await d.run('run', '--all');
      expect(r.code, r.stderr).toBe(0);
      const rec = lastRecord(d);
      expect(rec.verification.restore).toMatchObject({ result: 'ok', databases: [{ name: 'live', mismatches: [] }] });
      expect(rec.verification.restore.databases[0].checks.slice(0, 4)).toEqual(['mariadb: ok', 'dump complete: ok', 'CHECK TABLE: ok', 'row counts: match']);
      expect(rec.database.databases[0].binlog).toMatchObject({ file: expect.stringMatching(/^binlog\.\d+$/), position: expect.any(Number) });

      sql('CREATE DATABASE live_copy');
      sql('', 'live_copy', gunzipSync(readFileSync(stored(d, 'live-db', 'mariadb/live.sql.gz'))));
      expect(Number(sql(`SELECT COUNT(*) FROM orders WHERE id <= ${last}`, 'live_copy'))).toBe(committed);
      // The writer went on during the backup: the dump is a moment's state, taken after it started.
      const dumped = Number(sql('SELECT COUNT(*) FROM orders', 'live_copy'));
      expect(dumped).toBeGreaterThan(committed);
      expect(Number(sql('SELECT COUNT(*) FROM orders', 'live'))).toBeGreaterThan(dumped);
      expect(writer.exitCode).toBeNull();
      await verified(d);
    } finally {
      for (const id of sql("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'live' AND COMMAND = 'Query' AND ID <> CONNECTION_ID()").split('\n').filter(Boolean)) sql(`KILL ${id}`);
      await new Promise((r) => (writer.exitCode === null ? writer.once('exit', r) : r(undefined)));
    }
  });

  for (const [damage, filter] of [
    ['truncated', 'head -c -3000'],
    ['corrupted', `perl -0777 -pe 'substr($_, int(length($_) * 0.6), 64) = "x" x 64'`],
  ] as const) {
    it(`a ${damage} dump (mariadb-dump exits 0) is caught by the test restore and recorded as a failure; the previous snapshot stays`, async () => {
      const name = `dmg_${damage}`;
      sql(`CREATE DATABASE ${name}`);
      sql('CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item CHAR(32) NOT NULL) ENGINE=InnoDB; INSERT INTO orders (item) SELECT MD5(seq) FROM seq_1_to_20000;', name);
      // The engine's own programs, but for a mariadb-dump whose output is damaged on the way.
      const bindir = tempDir();
      chmodSync(bindir, 0o755); // mariadb-install-db and mariadbd run as the mysql user
      mkdirSync(join(bindir, 'real'));
      for (const program of readdirSync('/usr/bin').filter((p) => p.startsWith('mariadb'))) {
        symlinkSync(join('/usr/bin', program), join(bindir, 'real', program));
        if (program !== 'mariadb-dump') symlinkSync(join('/usr/bin', program), join(bindir, program));
      }
      const d = await deployment([myRepo('dmg-db', [name], { bindir: join(bindir, 'real') })], { host: 'db01' });
      const first = await d.run('run', '--all');
      expect(first.code, first.stderr).toBe(0);
      const [before] = d.snapshots('dmg-db');
      writeFileSync(join(bindir, 'mariadb-dump'), `#!/bin/sh\n/usr/bin/mariadb-dump "$@" | ${filter}\n`, { mode: 0o755 });
      writeFileSync(d.config, readFileSync(d.config, 'utf8').replace(join(bindir, 'real'), bindir));

      const r = await d.run('run', '--all');
      expect(r.code).toBe(3);
      const failure = lastRecord(d);
      expect(failure).toMatchObject({ type: 'failure', repository: 'dmg-db', stage: 'verify', previous_snapshot: before });
      expect(failure.cause).toMatch(/^the test restore failed for dmg_\w+: /);
      expect(failure.cause).toMatch(damage === 'truncated' ? /dump complete: it does not end with mariadb-dump's "-- Dump completed" line|mariadb: failed/ : /mariadb: failed \(ERROR \d+/);
      expect(r.stderr).toContain('test restore failed');
      expect(d.snapshots('dmg-db')).toEqual([before]);
      expect(readdirSync(join(d.target, 'db01/dmg-db/incomplete'))).toEqual([]);
      expect(leftovers()).toEqual([]);
      await verified(d);
    });
  }

  it('a wrong password, a missing privilege, a missing database, an unreachable server and a full target are failure records; no password in any record, output, argv or environment', async () => {
    // Random bytes: a dump of about 8 MiB that gzip cannot shrink, which takes a while to write.
    sql('CREATE DATABASE blobs');
    sql('CREATE TABLE b (id INT AUTO_INCREMENT PRIMARY KEY, data VARBINARY(1024)) ENGINE=InnoDB; INSERT INTO b (data) SELECT RANDOM_BYTES(1024) FROM seq_1_to_8000;', 'blobs');
    const d = await deployment([myRepo('blob-db', ['blobs'], { verify: { restore: false } })], { host: 'db01' });
    const config = readFileSync(d.config, 'utf8');
    const reconfigure = (change: (repo: Record<string, any>) => void) => {
      const c = parse(config);
      change(c.repositories[0]);
      writeFileSync(d.config, stringify(c));
    };

    // Watch every process's argv and environment while the agent runs.
    const seen: string[] = [];
    let exposed = '';
    const watch = setInterval(() => {
      for (const { pid, argv, environ } of ownProcesses()) {
        if (argv.includes('mariadb')) seen.push(argv);
        for (const text of [argv, environ]) if (text.includes('S3cret') || text.includes('not-the-password') || text.includes('MYSQL_PWD')) exposed += `${pid}: ${text}\n`;
      }
    }, 5);
    const good = await d.run('run', '--all', '--json');
    expect(good.code, good.stderr).toBe(0);
    const [before] = d.snapshots('blob-db');
    writeFileSync(d.config, config.replace('good.pass', 'bad.pass'));
    const bad = await d.run('run', '--all', '--json');
    clearInterval(watch);
    expect(bad.code).toBe(3);
    let failure = lastRecord(d);
    expect(failure).toMatchObject({ type: 'failure', stage: 'source', previous_snapshot: before });
    expect(failure.cause).toMatch(/^MariaDB refused the login to local socket \(ERROR 1045 \(28000\): Access denied for user 'respaldo'@'localhost' \(using password: YES\)\)$/);
    expect(failure.hint).toMatch(/connection\.password-file/);
    expect(seen.some((s) => s.includes('mariadb-dump') && s.includes('--defaults-extra-file='))).toBe(true);
    expect(exposed).toBe('');
    const all = everything(d, good.stdout, good.stderr, bad.stdout, bad.stderr, ...seen);
    expect(all).not.toContain('S3cret');
    expect(all).not.toContain('not-the-password');
    expect(everything(d)).not.toContain(passwords);

    reconfigure((repo) => (repo.connection.user = 'weak'));
    let r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    failure = lastRecord(d);
    expect(failure).toMatchObject({ type: 'failure', stage: 'source', previous_snapshot: before });
    expect(failure.cause).toMatch(/^the MariaDB user may not pause commits for a consistent dump \(BACKUP STAGE\): it lacks the RELOAD privilege/);
    expect(failure.hint).toMatch(/^GRANT RELOAD ON \*\.\* TO 'weak'@'localhost'/);

    reconfigure((repo) => (repo.databases = ['no_such_database']));
    r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'source', cause: 'database "no_such_database" does not exist on local socket', previous_snapshot: before });
    expect(lastRecord(d).hint).toMatch(/correct repositories\[blob-db\]\.databases/);

    reconfigure((repo) => (repo.connection = { host: '127.0.0.1', port: 9, user: 'respaldo', 'password-file': join(passwords, 'good.pass') }));
    r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'source', previous_snapshot: before });
    expect(lastRecord(d).cause).toMatch(/^cannot reach the MariaDB server at 127\.0\.0\.1:9 \(ERROR 200[23] \(HY000\): Can't connect to server on '127\.0\.0\.1'/);
    expect(lastRecord(d).hint).toMatch(/mariadb-admin ping/);

    // The same server over TCP works, and the record names it by address and port.
    reconfigure((repo) => (repo.connection = { host: '127.0.0.1', port, user: 'respaldo', 'password-file': join(passwords, 'good.pass') }));
    r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    expect(lastRecord(d).database).toMatchObject({ server: `127.0.0.1:${port}`, databases: [{ name: 'blobs', rows: 8000 }] });
    // A user that may not see triggers: mariadb-dump would leave them out without an error.
    reconfigure((repo) => (repo.connection.user = 'notrig'));
    r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    expect(lastRecord(d).warnings).toEqual([{ code: 'dump-incomplete', message: expect.stringMatching(/^the MariaDB user may lack the TRIGGER privilege on "blobs": .*; GRANT TRIGGER ON \*\.\* TO 'notrig'@'localhost'$/) }]);
    expect(r.stderr).toContain('may lack the TRIGGER privilege');

    const snapshots = d.snapshots('blob-db');

    // A dump larger than the target's free space: a 2 MiB tmpfs.
    await onFullTarget(d, config, async (full) => {
      r = await d.run('run', '--all');
      expect(r.code).toBe(3);
      failure = lastRecord(d);
      expect(failure).toMatchObject({ type: 'failure', stage: 'target' });
      expect(failure.cause).toMatch(/full|ENOSPC|No space left/);
      expect(readdirSync(join(full, 'db01/blob-db/incomplete'))).toEqual([]);
    });
    expect(d.snapshots('blob-db')).toEqual(snapshots);
    expect(leftovers()).toEqual([]);
    await verified(d);
  });
});
