/**
 * MariaDB point-in-time recovery against a real server: a throwaway mariadbd that this file
 * starts (a private socket, no TCP port; never the machine's own server), its binary logs
 * archived by every backup and by `respaldo db archive-binlogs`, and `respaldo restore --at`
 * bringing a deleted row back in a new instance.
 */
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployment, type Deployment, ids, lastRecord, sleep, tempDir, verified, wallClock } from './helpers.js';
import { MariadbServer } from './servers.js';

const ZONE = 'America/Mexico_City';
const PASSWORD = 'pitr-S3cret';

const my = ids('mysql');



/** The binary log's times are whole seconds: a window opens at the second after the dump began. */
const nextSecond = (iso: string) => new Date(Math.ceil(Date.parse(iso) / 1000) * 1000).toISOString();
const leftovers = () => [...readdirSync('/tmp'), ...readdirSync(tmpdir())].filter((f) => f.startsWith('respaldo-my-') || f.startsWith('respaldo-mycnf-'));
const binlogs = (dir: string) => readdirSync(dir).filter((n) => /^binlog\.\d+$/.test(n)).sort();

describe('MariaDB point-in-time recovery', () => {
  const servers: MariadbServer[] = [];
  let server: MariadbServer;
  let passwords: string;
  const repo = (name: string, user = 'respaldo') => ({ name, kind: 'database', engine: 'mariadb', connection: { host: server.sock, user, 'password-file': join(passwords, 'pass') }, databases: ['shop', 'crm'], pitr: true });

  beforeAll(async () => {
    server = MariadbServer.init();
    servers.push(server);
    await server.start(false);
    server.sql(`CREATE USER respaldo@localhost IDENTIFIED BY '${PASSWORD}';
      GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD, BINLOG MONITOR, REPLICATION SLAVE ON *.* TO respaldo@localhost;
      CREATE USER dumponly@localhost IDENTIFIED BY '${PASSWORD}';
      GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD ON *.* TO dumponly@localhost;
      CREATE DATABASE shop; CREATE DATABASE crm; USE shop;
      CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40) NOT NULL) ENGINE=InnoDB;
      INSERT INTO shop.orders SELECT seq, CONCAT('order ', seq) FROM seq_1_to_100;
      CREATE TABLE crm.notes (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40) NOT NULL) ENGINE=InnoDB;
      INSERT INTO crm.notes (note) VALUES ('first call');`);
    passwords = tempDir();
    writeFileSync(join(passwords, 'pass'), `${PASSWORD}\n`, { mode: 0o600 });
  }, 60_000);
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it('refuses a pitr backup of a server without binary logs, or of a user that may not read them, saying how to fix it', async () => {
    const d = await deployment([repo('shop-db')], { host: 'db01' });
    const off = await d.run('run', '--all');
    expect(off.code).toBe(3);
    const failure = lastRecord(d);
    expect(failure).toMatchObject({ type: 'failure', repository: 'shop-db', stage: 'source' });
    expect(failure.cause).toMatch(/writes no binary log \(log_bin is OFF\)/);
    expect(failure.hint).toMatch(/log_bin = mariadb-bin, binlog_format = ROW .*restart the server/);

    await server.stop();
    await server.start(true);
    const weak = await deployment([repo('shop-db', 'dumponly')], { host: 'db01' });
    const denied = await weak.run('run', '--all');
    expect(denied.code).toBe(3);
    expect(lastRecord(weak)).toMatchObject({ type: 'failure', stage: 'source' });
    expect(lastRecord(weak).cause).toMatch(/may not list the binary logs \(SHOW BINARY LOGS\).*BINLOG MONITOR/);
    expect(lastRecord(weak).hint).toMatch(/^GRANT RELOAD, BINLOG MONITOR, REPLICATION SLAVE ON \*\.\* TO 'dumponly'@'localhost'/);
    expect(weak.snapshots('shop-db')).toEqual([]);
    await verified(d);
  }, 60_000);

  it('brings a deleted row back as it was at a noted time, in a new instance, without the rows written after it', async () => {
    const d: Deployment = await deployment([repo('shop-db')], { host: 'db01', extra: { timezone: ZONE } });
    const cron = await d.run('cron');
    expect(cron.stdout).toMatch(new RegExp(`^\\*/5 \\* \\* \\* \\* root \\S+ .*main\\.js db archive-binlogs --config ${d.config} --repo shop-db$`, 'm'));

    const backup = await d.run('run', '--all', '--json');
    expect(backup.code, backup.stderr + backup.stdout).toBe(0);
    const record = lastRecord(d);
    expect(record.type).toBe('backup');
    expect(record.verification.restore.result).toBe('ok');
    expect(record.warnings).toEqual([]);
    for (const dump of record.database.databases) expect(dump.binlog).toMatchObject({ file: expect.stringMatching(/^binlog\.\d{6}$/), position: expect.any(Number), time: expect.any(String) });
    const archiveDir = join(d.target, 'db01/shop-db/archive/binlog');
    expect(record.database.pitr).toEqual({
      archive: { location: 'db01/shop-db/archive/binlog', files: binlogs(archiveDir).length, bytes: expect.any(Number), first: 'binlog.000001', last: binlogs(archiveDir).at(-1), gaps: [], window: { from: expect.any(String), to: expect.any(String) } },
    });
    // The binary log holding the dumps' coordinates is archived: the window opens with the last dump's second.
    expect(binlogs(archiveDir)).toContain(record.database.databases[1].binlog.file);
    expect(record.database.pitr.archive.window.from).toBe(nextSecond(record.database.databases[1].binlog.time));

    server.sql("INSERT INTO shop.orders SELECT seq, CONCAT('order ', seq) FROM seq_101_to_110; INSERT INTO crm.notes (note) VALUES ('before the mistake');", 'shop');
    await sleep(1500);
    const noted = wallClock(new Date(), ZONE);
    await sleep(1500);
    server.sql("DELETE FROM shop.orders WHERE id = 42; INSERT INTO shop.orders SELECT seq, CONCAT('late ', seq) FROM seq_200_to_210; INSERT INTO crm.notes (note) VALUES ('after the mistake');", 'shop');
    server.sql('FLUSH BINARY LOGS');
    const archived = await d.run('db', 'archive-binlogs', '--repo', 'shop-db');
    expect(archived.code, archived.stderr).toBe(0);
    expect(archived.stdout + archived.stderr).toBe('');

    const window = await d.run('restore', 'shop-db', '--list-window', '--json');
    expect(window.code, window.stderr).toBe(0);
    const shown = JSON.parse(window.stdout.trim().split('\n').at(-1)!).data;
    expect(shown).toMatchObject({ engine: 'mariadb', timezone: ZONE, starts: [{ snapshot: d.snapshots('shop-db')[0] }] });
    expect(new Date(shown.window.to).getTime()).toBeGreaterThan(Date.now() - 60_000);
    const text = await d.run('restore', 'shop-db', '--list-window');
    expect(text.stdout).toMatch(/^shop-db: recoverable from 20\d\d-.* America\/Mexico_City \(UTC−06:00\) to /);
    expect(text.stdout).toMatch(/dumps in snapshot \d{8}T\d{6}Z: restores from /);

    // Outside the window: refused, with the window stated.
    const early = await d.run('restore', 'shop-db', '--at', '2020-01-01 00:00', '--to', join(d.root, 'nope'));
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/outside the recoverable window of shop-db, from 20\d\d-.* America\/Mexico_City \(UTC−06:00\) to [\s\S]*archive-binlogs/);
    expect(existsSync(join(d.root, 'nope'))).toBe(false);
    // Never into a running server's folder.
    const running = await d.run('restore', 'shop-db', '--at', noted, '--to', server.data);
    expect(running.code).toBe(2);
    expect(running.stderr).toMatch(/data folder of a running MariaDB server \(pid \d+\)/);

    const parent = tempDir('respaldo-mypitr-to-');
    chmodSync(parent, 0o755); // the mysql user keeps the new instance's data there
    const into = join(parent, 'restored');
    const restored = await d.run('restore', 'shop-db', '--at', noted, '--to', into, '--reason', 'deleted-by-mistake', '--why', 'order 42 deleted at the counter');
    expect(restored.code, restored.stderr + restored.stdout).toBe(0);
    expect(restored.stdout).toContain(`restored shop-db to ${noted} America/Mexico_City (UTC−06:00)`);
    expect(restored.stdout).toMatch(/replayed the transactions committed before .*: shop [1-9]\d* transaction\(s\), crm [1-9]\d* transaction\(s\)/);
    expect(restored.stdout).toMatch(/the last transaction replayed committed at 20\d\d-.* America\/Mexico_City/);
    expect(leftovers()).toEqual([]);

    // The restored folder, started as a new instance: order 42 is back, the later rows are not.
    const run = tempDir('respaldo-mypitr-');
    chownSync(run, my.uid, my.gid);
    const clone = new MariadbServer(into, join(run, 's'));
    servers.push(clone);
    await clone.start(false);
    expect(clone.sql('SELECT item FROM orders WHERE id = 42', 'shop')).toBe('order 42');
    expect(clone.sql('SELECT COUNT(*) FROM orders WHERE id BETWEEN 101 AND 110', 'shop')).toBe('10');
    expect(clone.sql('SELECT COUNT(*) FROM orders WHERE id >= 200', 'shop')).toBe('0');
    expect(clone.sql('SELECT GROUP_CONCAT(note ORDER BY id) FROM notes', 'crm')).toBe('first call,before the mistake');
    await clone.stop();
    // The production server still has the deletion and the later rows: nothing was written into it.
    expect(server.sql('SELECT COUNT(*) FROM orders WHERE id = 42', 'shop')).toBe('0');
    expect(server.sql('SELECT COUNT(*) FROM orders WHERE id >= 200', 'shop')).toBe('11');

    const rec = lastRecord(d);
    expect(rec).toMatchObject({ type: 'restore', repository: 'shop-db', reason: 'deleted-by-mistake', reason_detail: 'order 42 deleted at the counter', result: 'ok', source_copy: 'primary', destination: into });
    expect(rec.snapshot.id).toBe(d.snapshots('shop-db')[0]);
    expect(rec.point_in_time).toBe(new Date(`${noted.replace(' ', 'T')}-06:00`).toISOString());
    expect(rec.verification).toMatchObject({ scope: 'full', files: 2, mismatches: 0 });
    // A non-empty folder is refused.
    const again = await d.run('restore', 'shop-db', '--at', noted, '--to', into);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/is not empty/);

    // Into production: only with the server stopped and the name confirmed; the old folder is kept aside, the accounts stay.
    await server.stop();
    const unconfirmed = await d.run('restore', 'shop-db', '--at', noted, '--to', server.data, '--into-production');
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/--confirm shop-db/);
    const production = await d.run('restore', 'shop-db', '--at', noted, '--to', server.data, '--into-production', '--confirm', 'shop-db', '--reason', 'logical-damage');
    expect(production.code, production.stderr + production.stdout).toBe(0);
    expect(production.stdout).toMatch(/the previous data folder is kept in .*data\.before-restore-\d{8}T\d{6}Z; take a backup/);
    const aside = readdirSync(join(server.data, '..')).filter((n) => n.startsWith('data.before-restore-'));
    expect(aside).toHaveLength(1);
    await server.start(true);
    expect(server.sql('SELECT item FROM orders WHERE id = 42', 'shop')).toBe('order 42');
    expect(server.sql('SELECT COUNT(*) FROM orders WHERE id >= 200', 'shop')).toBe('0');
    expect(server.sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'respaldo'")).toBe('1');
    await verified(d);
  }, 120_000);

  it('archives each closed binary log once, however often it runs, reports a log purged before it was archived, and refuses a server whose logs started again', async () => {
    const d = await deployment([repo('gap-db')], { host: 'db01' });
    const archive = join(d.target, 'db01/gap-db/archive/binlog');
    const first = await d.run('db', 'archive-binlogs', '--repo', 'gap-db', '--json');
    expect(first.code, first.stderr).toBe(0);
    const names = binlogs(archive);
    expect(names.length).toBeGreaterThan(1);
    const inodes = names.map((n) => statSync(join(archive, n)).ino);
    const second = await d.run('db', 'archive-binlogs', '--repo', 'gap-db');
    expect(second.code, second.stderr).toBe(0);
    const after = binlogs(archive);
    // The one log closed by the second run is added; the others are the same files, stored once.
    expect(after).toEqual([...names, after.at(-1)]);
    expect(names.map((n) => statSync(join(archive, n)).ino)).toEqual(inodes);
    expect(readdirSync(archive).filter((n) => n.startsWith('.'))).toEqual([]);
    for (const n of after) expect(readFileSync(join(archive, n)).equals(readFileSync(join(server.data, n)))).toBe(true);

    // Two logs closed and purged before any archiving saw them.
    server.sql("INSERT INTO crm.notes (note) VALUES ('lost 1'); FLUSH BINARY LOGS; INSERT INTO crm.notes (note) VALUES ('lost 2'); FLUSH BINARY LOGS;");
    const current = server.sql('SHOW MASTER STATUS').split('\t')[0]!;
    // The server keeps a log until InnoDB's checkpoint has passed it: purge until it has let both go.
    for (let i = 0; server.sql('SHOW BINARY LOGS').split('\n')[0]!.split('\t')[0] !== current; i++) {
      expect(i).toBeLessThan(100);
      server.sql(`PURGE BINARY LOGS TO '${current}'`);
      await sleep(100);
    }
    const gap = await d.run('db', 'archive-binlogs', '--repo', 'gap-db');
    expect(gap.code, gap.stderr).toBe(0);
    const no = Number(after.at(-1)!.split('.')[1]);
    const lost = [no + 1, no + 2].map((n) => `binlog.${String(n).padStart(6, '0')}`);
    expect(gap.stderr).toContain(`warning: gap-db: pitr-archive-gap: the binary-log archive is missing ${lost.join(', ')}: purged from the server before they were archived`);
    const backup = await d.run('run', '--all');
    expect(backup.code, backup.stderr).toBe(0);
    const record = lastRecord(d);
    expect(record.warnings).toEqual([{ code: 'pitr-archive-gap', message: expect.stringContaining(lost.join(', ')) }]);
    expect(record.database.pitr.archive.gaps).toEqual(lost);
    // The window starts after the gap: with this backup's dumps.
    expect(record.database.pitr.archive.window.from).toBe(nextSecond(record.database.databases[1].binlog.time));

    // The server's logs start again at binlog.000001 (RESET MASTER): refused, the archived one kept.
    const kept = readFileSync(join(archive, 'binlog.000001'));
    server.sql('RESET MASTER');
    const reset = await d.run('db', 'archive-binlogs', '--repo', 'gap-db');
    expect(reset.code).toBe(4);
    expect(reset.stderr).toMatch(/the archive holds binary log binlog\.\d+, but the server at local socket is writing binlog\.000002, an earlier one/);
    expect(reset.stderr).toMatch(/RESET MASTER/);
    expect(readFileSync(join(archive, 'binlog.000001')).equals(kept)).toBe(true);
    await verified(d);
  }, 60_000);
});
