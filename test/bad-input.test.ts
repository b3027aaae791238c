/**
 * Bad input and hostile conditions. Each gets a clear message, and nothing is lost: the
 * previous snapshot, the chain of records and the other repositories stay intact.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deployment, lastRecord, MAIN, respaldo, tempDir, verified, writeTree } from './helpers.js';

describe('configuration errors', () => {
  const configDir = tempDir();
  const check = async (name: string, text: string) => {
    const file = join(configDir, name);
    writeFileSync(file, text);
    const r = await respaldo(['run', '--config', file]);
    expect(r.code).toBe(2);
    return r.stderr;
  };
  const base = 'host: web01\nkey: /tmp/k\nrecords: /tmp/r\ntargets:\n  primary: /mnt/x\n';

  it('names the file and line of a YAML syntax error', async () => {
    const err = await check('syntax.yaml', `${base}repositories:\n  - name: a\n    paths: [/etc\n`);
    expect(err).toMatch(/syntax\.yaml:\d+:\d+: /);
    expect(err).toContain('not valid YAML');
    expect(err).toContain('a minimal configuration looks like this');
  });

  it('names an unknown field, its line, a suggestion and an example', async () => {
    const err = await check('unknown.yaml', `${base}repositories:\n  - name: portal\n    kind: source\n    paths: [/var/www]\n    shedule: { every: 7d }\n`);
    expect(err).toContain('unknown.yaml:10: repositories[0].shedule: unknown field "shedule"; did you mean "schedule"?');
    expect(err).toContain('schedule: { every: 7d }');
  });

  it('names a field of the wrong type with an example of the right form', async () => {
    const err = await check('type.yaml', `${base}repositories:\n  - name: portal\n    kind: files\n    paths: /var/www\n`);
    expect(err).toMatch(/type\.yaml:9: repositories\[0\]\.paths: Expected array, received string/);
    expect(err).toContain('paths: [/var/www/portal, /etc/portal.conf]');
  });

  it('lists several errors at once: a bad host, kind and schedule, and a missing field', async () => {
    const err = await check(
      'many.yaml',
      `host: Web 01\nkey: /k\nrecords: /r\ntargets:\n  primary: /t\nrepositories:\n  - name: a\n    kind: databse\n    paths: [/a]\n  - name: b\n    paths: [/b]\n    kind: files\n    schedule: { every: soon }\n  - name: c\n    kind: files\n`,
    );
    expect(err).toContain('the configuration has 4 errors');
    expect(err).toMatch(/many\.yaml:1: host: a host name is lowercase/);
    expect(err).toMatch(/many\.yaml:8: repositories\[0\]\.kind: Invalid discriminator value\. Expected 'config' \| 'files' \| 'source'/);
    expect(err).toMatch(/many\.yaml:13: repositories\[1\]\.schedule\.every: a duration is a number and a unit/);
    expect(err).toMatch(/many\.yaml:14: repositories\[2\]\.paths: is required/);
  });

  it('rejects a repository name used twice, and features this version does not have', async () => {
    const twice = await check('twice.yaml', `${base}repositories:\n  - name: b\n    kind: files\n    paths: [/b]\n  - name: b\n    kind: files\n    paths: [/c]\n`);
    expect(twice).toMatch(/twice\.yaml:10: repositories\[1\]\.name: repository name "b" is used twice/);
    const remote = await check('remote.yaml', `host: web01\nkey: /k\nrecords: /r\ntargets:\n  primary: csc@respaldos.example:/srv\nrepositories:\n  - name: a\n    kind: files\n    paths: [/a]\n`);
    expect(remote).toMatch(/remote\.yaml:5: targets\.primary: pin the target's host key: write the target as \{ url: csc@respaldos\.example:\/srv, host-key: /);
    const daemon = await check('daemon.yaml', `host: web01\nkey: /k\nrecords: /r\ntargets:\n  primary: /mnt/b\n  secondary: rsync://csc\nrepositories:\n  - name: a\n    kind: files\n    paths: [/a]\n`);
    expect(daemon).toMatch(/daemon\.yaml:6: targets\.secondary: "rsync:\/\/csc" is not an rsync daemon target: write it as rsync:\/\/user@host\/module\/path/);
    // MariaDB: a port written into the host, a socket without its path.
    const maria = await check('maria.yaml', `${base}repositories:\n  - name: d\n    kind: database\n    engine: mariadb\n    connection: { host: "db01.example:3307" }\n    databases: [shop]\n  - name: e\n    kind: database\n    engine: mariadb\n    connection: { host: mysqld.sock }\n    databases: [shop]\n`);
    expect(maria).toMatch(/maria\.yaml:10: repositories\[0\]\.connection: give the port in connection\.port, not in connection\.host: \{ host: db01\.example, port: 3307 \}/);
    expect(maria).toMatch(/maria\.yaml:\d+: repositories\[1\]\.connection: a Unix socket is named by its absolute path/);
    // Point-in-time recovery needs a log of changes, which SQLite does not keep.
    const pitr = await check('pitr.yaml', `${base}repositories:\n  - name: d\n    kind: database\n    engine: sqlite\n    paths: [/srv/app.db]\n    pitr: true\n`);
    expect(pitr).toMatch(/pitr\.yaml:11: repositories\[0\]\.pitr: SQLite keeps no log of changes to archive; remove "pitr"/);
    // A database repository that lacks what its engine needs, or has what it cannot use.
    const db = await check('db.yaml', `${base}repositories:\n  - name: d\n    kind: database\n    engine: postgresql\n    paths: [/srv/db]\n  - name: e\n    kind: database\n    engine: sqlite\n    databases: [x]\n`);
    expect(db).toMatch(/db\.yaml:\d+: repositories\[0\]\.databases: a postgresql repository names the databases to dump in "databases"/);
    expect(db).toMatch(/db\.yaml:10: repositories\[0\]\.paths: a postgresql repository names databases in "databases"/);
    expect(db).toMatch(/db\.yaml:\d+: repositories\[1\]\.paths: an sqlite repository lists its database files in "paths"/);
    expect(db).toMatch(/db\.yaml:14: repositories\[1\]\.databases: an sqlite repository names its database files in "paths"/);
  });

  it('says which config file is missing', async () => {
    const r = await respaldo(['status', '--config', join(configDir, 'nope.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nope.yaml: no such file');
  });

  it('rejects unknown options and unknown repositories', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const typo = await d.run('run', '--verfy=full');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('unknown option --verfy for "respaldo run"');
    const unknown = await d.run('run', '--repo', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no repository named "nope"');
    expect(unknown.stderr).toContain('repositories there: app');
    expect(d.recordFiles()).toHaveLength(1);
  });
});

describe('failures are facts', () => {
  it('records never hold the local paths of the host config; the terminal shows them', async () => {
    const src = tempDir();
    writeTree(src, { 'ok/a.txt': 'a' });
    symlinkSync(join(src, 'ok'), join(src, 'link'));
    const d = await deployment([
      { name: 'gone', paths: [join(src, 'gone')] },
      { name: 'ok', paths: [join(src, 'ok'), join(src, 'link')] },
    ]);
    const r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(join(src, 'gone'));
    const texts = d.recordFiles().map((f) => readFileSync(join(d.records, f), 'utf8'));
    for (const text of texts) {
      expect(text).not.toContain(src);
      expect(text).not.toContain(d.root);
    }
    const failure = parse(texts.find((t) => t.includes('type: failure'))!);
    expect(failure.cause).toBe('the source {paths[0]} does not exist');
    const backup = parse(texts.find((t) => t.includes('type: backup'))!);
    expect(backup.snapshot.location).toBe(`web01/ok/snapshots/${d.snapshots('ok')[0]}`);
    expect(backup.warnings[0].message).toMatch(/^\{paths\[1\]\} is a symbolic link/);
    expect(r.stderr).toContain(`${join(src, 'link')} is a symbolic link`);
  });

  it('a missing source is a failure record; the other repositories still run; exit 3', async () => {
    const src = tempDir();
    writeTree(src, { 'ok/a.txt': 'a', 'gone/b.txt': 'b' });
    const d = await deployment([
      { name: 'gone', paths: [join(src, 'gone')] },
      { name: 'ok', paths: [join(src, 'ok')] },
    ]);
    expect((await d.run('run', '--all')).code).toBe(0);
    const [before] = d.snapshots('gone');
    rmSync(join(src, 'gone'), { recursive: true });
    const r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`gone: FAILED: the source ${join(src, 'gone')} does not exist`);
    const failure = parse(readFileSync(join(d.records, d.recordFiles().at(-2)!), 'utf8'));
    expect(failure).toMatchObject({ type: 'failure', repository: 'gone', stage: 'source', previous_snapshot: before });
    expect(failure.hint).toContain('the previous snapshot is intact');
    expect(lastRecord(d)).toMatchObject({ type: 'backup', repository: 'ok', unchanged: true });
    expect(d.snapshots('gone')).toEqual([before]);
    await verified(d);
  });

  it('an unreadable file fails the backup with rsync code 23 and the cause', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a', 'secret.txt': 'no' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    expect((await d.run('run', '--all')).code).toBe(0);
    const [before] = d.snapshots('app');
    // Changed since the last backup (so rsync must read it) and unreadable.
    writeFileSync(join(src, 'secret.txt'), 'changed\n');
    chmodSync(join(src, 'secret.txt'), 0o000);
    // The agent runs as root, which reads anything: drop the capability that lets it.
    const r = await respaldo(['run', '--all', '--config', d.config], { prefix: ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--'] });
    expect(r.code).toBe(3);
    const failure = lastRecord(d);
    expect(failure).toMatchObject({ type: 'failure', stage: 'transfer', exit_code: 23, previous_snapshot: before });
    expect(failure.cause).toMatch(/rsync exited with code 23 \(partial transfer due to error\).*secret\.txt.*Permission denied/);
    expect(failure.detail).toContain('Permission denied');
    expect(failure.hint).toMatch(/permissions/);
    expect(d.snapshots('app')).toEqual([before]);
    expect(readdirSync(join(d.target, 'web01/app/incomplete'))).toEqual([]);
    await verified(d);
  });

  it('files that vanish while rsync copies them fail the backup with code 24', async () => {
    const src = tempDir();
    // rsync lists the folder first, then spends a while on the big file before it reaches z.txt.
    writeTree(src, { 'a-big.bin': Buffer.alloc(400 * 1024 * 1024, 6), 'z.txt': 'going away\n' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const run = d.run('run', '--all');
    const incomplete = join(d.target, 'web01/app/incomplete');
    for (let i = 0; i < 400; i++) {
      await new Promise((r) => setTimeout(r, 10));
      // The big file is being written: the file list is built, z.txt is in it.
      if (existsSync(incomplete) && execFileSync('find', [incomplete, '-name', '*a-big.bin*'], { encoding: 'utf8' }).trim()) break;
    }
    rmSync(join(src, 'z.txt'));
    const r = await run;
    expect(r.code).toBe(3);
    const failure = lastRecord(d);
    expect(failure).toMatchObject({ type: 'failure', stage: 'transfer', exit_code: 24, previous_snapshot: null });
    expect(failure.cause).toContain('rsync exited with code 24 (partial transfer due to vanished source files)');
    expect(failure.hint).toContain('vanished');
    expect(d.snapshots('app')).toEqual([]);
    await verified(d);
  });

  it('an empty mount point where the backup disk should be is a failure, and nothing is written into it', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    expect((await d.run('run', '--all')).code).toBe(0);
    // The disk is unmounted: the mount point is there, empty.
    const disk = `${d.target}.disk`;
    execFileSync('mv', [d.target, disk]);
    mkdirSync(d.target);
    writeFileSync(join(src, 'b.txt'), 'b');
    const r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('is the backup disk mounted?');
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'target', repository: 'app' });
    expect(readdirSync(d.target)).toEqual([]);
    // Mounted again, the next run backs up as usual.
    rmSync(d.target, { recursive: true });
    execFileSync('mv', [disk, d.target]);
    expect((await d.run('run', '--all')).code).toBe(0);
    expect(d.snapshots('app')).toHaveLength(2);
    await verified(d);
  });

  it('a target that is not there (an unmounted disk) is a failure, never a new folder on the system disk', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    rmSync(d.target, { recursive: true });
    const r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'target' });
    expect(r.stderr).toContain('is the backup disk mounted?');
    expect(existsSync(d.target)).toBe(false);
  });

  it('a full target fails the backup and keeps the previous snapshot', async () => {
    const src = tempDir();
    writeTree(src, { 'small.txt': 'small\n' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    // A 2 MiB tmpfs as the target where the machine allows mounts; else a file size limit.
    let prefix: string[] | undefined;
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', d.target]).status === 0;
    if (!mounted) prefix = ['sh', '-c', 'ulimit -f 1024; exec "$@"', 'sh'];
    try {
      expect((await respaldo(['run', '--all', '--config', d.config], prefix ? { prefix } : {})).code).toBe(0);
      const [before] = d.snapshots('app');
      writeFileSync(join(src, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 1));
      const r = await respaldo(['run', '--all', '--config', d.config], prefix ? { prefix } : {});
      expect(r.code).toBe(3);
      const failure = lastRecord(d);
      expect(failure).toMatchObject({ type: 'failure', repository: 'app', previous_snapshot: before });
      expect(`${failure.cause} ${failure.detail ?? ''}`).toMatch(/No space left on device|File too large|full/);
      expect(failure.hint).toMatch(/free space|full/);
      expect(d.snapshots('app')).toEqual([before]);
      expect(readFileSync(join(d.target, 'web01/app/snapshots', before!, 'data', src, 'small.txt'), 'utf8')).toBe('small\n');
      expect(readdirSync(join(d.target, 'web01/app/incomplete'))).toEqual([]);
      await verified(d);
    } finally {
      if (mounted) execFileSync('umount', [d.target]);
    }
  });

  it('rsync killed by a signal is a failure record naming the signal', async () => {
    const src = tempDir();
    writeTree(src, { 'big.bin': Buffer.alloc(400 * 1024 * 1024, 3) });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const run = d.run('run', '--all');
    // Find the rsync of this run and kill it, as the out-of-memory killer would.
    let killed = false;
    for (let i = 0; i < 200 && !killed; i++) {
      await new Promise((r) => setTimeout(r, 25));
      const pids = spawnSync('pgrep', ['-f', `rsync .*${d.target}`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      for (const pid of pids) killed = spawnSync('kill', ['-9', pid]).status === 0 || killed;
    }
    expect(killed).toBe(true);
    const r = await run;
    expect(r.code).toBe(3);
    const failure = lastRecord(d);
    expect(failure.type).toBe('failure');
    expect(failure.stage).toBe('transfer');
    expect(failure.signal ?? `exit ${failure.exit_code}`).toMatch(/SIGKILL|exit (12|20|23)/);
    expect(d.snapshots('app')).toEqual([]);
    await verified(d);
  });

  it('SIGTERM stops the run, records the interruption and exits 130', async () => {
    const src = tempDir();
    writeTree(src, { 'big.bin': Buffer.alloc(400 * 1024 * 1024, 4) });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const child = spawn(process.execPath, [MAIN, 'run', '--all', '--config', d.config], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 400));
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(130);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'interrupted', repository: 'app' });
    expect(d.snapshots('app')).toEqual([]);
    await verified(d);
  });
});

describe('the lock', () => {
  let stale: string | undefined;
  afterEach(() => {
    if (stale) rmSync(stale, { force: true });
  });

  it('a second run at once exits 11 and names the holder', async () => {
    const src = tempDir();
    writeTree(src, { 'big.bin': Buffer.alloc(300 * 1024 * 1024, 5) });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const first = d.run('run', '--all');
    let second;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 30));
      if (existsSync(join(d.root, 'state/run.lock'))) {
        second = await d.run('run', '--all');
        break;
      }
    }
    expect(second).toBeDefined();
    expect(second!.code).toBe(11);
    const holder = JSON.parse(readFileSync(join(d.root, 'state/run.lock'), 'utf8').trim() || '{}');
    expect(second!.stderr).toContain(`another respaldo run holds the lock: pid ${holder.pid}`);
    expect(second!.stderr).toMatch(/started \d{4}-\d\d-\d\dT/);
    expect((await first).code).toBe(0);
    expect(d.snapshots('app')).toHaveLength(1);
    await verified(d);
  });

  it('takes over a lock file left empty by a power cut', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    mkdirSync(join(d.root, 'state'), { recursive: true });
    stale = join(d.root, 'state/run.lock');
    writeFileSync(stale, '');
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('took over an unreadable lock file');
    const takeover = parse(readFileSync(join(d.records, d.recordFiles().at(-2)!), 'utf8'));
    expect(takeover).toMatchObject({ type: 'failure', stage: 'interrupted' });
    expect(takeover.interrupted).toBeUndefined();
    await verified(d);
  });

  it('takes over the stale lock of a dead run and records the takeover', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    mkdirSync(join(d.root, 'state'), { recursive: true });
    // A pid that is not running (a short-lived process that has exited).
    const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
    stale = join(d.root, 'state/run.lock');
    writeFileSync(stale, JSON.stringify({ pid: Number(dead), started: '2026-11-21T03:00:00.000Z', command: 'respaldo run', token: 'dead', procStart: '1', boot: undefined }));
    const r = await d.run('run', '--all');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`took over the lock of an interrupted run (pid ${dead}`);
    const files = d.recordFiles();
    const takeover = parse(readFileSync(join(d.records, files.at(-2)!), 'utf8'));
    expect(takeover).toMatchObject({ type: 'failure', stage: 'interrupted', interrupted: { pid: Number(dead), started: '2026-11-21T03:00:00.000Z' } });
    expect(existsSync(stale)).toBe(false);
    await verified(d);
  });
});

describe('a target inside a source', () => {
  it('is refused before anything runs', async () => {
    const dir = tempDir();
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, `host: web01\nkey: k\nrecords: r\ntargets:\n  primary: ${dir}/srv/backups\nrepositories:\n  - name: all\n    kind: files\n    paths:\n      - /etc\n      - ${dir}/srv\n`);
    const r = await respaldo(['run', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`agent.yaml:11: repositories[0].paths[1]: ${dir}/srv contains the primary target ${dir}/srv/backups`);
  });
});
