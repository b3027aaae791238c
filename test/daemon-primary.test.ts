/**
 * A primary target in a module of a real rsync daemon (a NAS that offers rsync alone):
 * snapshots sent there with --link-dest, read back by the daemon (SHA-1 by rsync's
 * --checksum) and matched with the originals read here; verify at rest, restore and prune
 * against it; copies to CSC fetched through this machine; the daemon down or the password
 * wrong, recorded as failures that leave the previous snapshot as it was.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Deployment, deployment, describeTree, eventOf, flipBit, inodeOf, lastRecord, manifestOf, recordsOf, refusedConfig, setMtimeNs, tempDir, usePrimary, withoutInodes, writeTree } from './helpers.js';
import { asStored, rsyncd, type Rsyncd } from './rsyncd.js';
import { DaemonPrimaryTarget } from '../dist/agent/daemon-primary.js';
import { HashPool } from '../dist/agent/hashing.js';
import { TransferLog } from '../dist/agent/transfers.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const sha1 = (file: string) => createHash('sha1').update(readFileSync(file)).digest('hex');

/** A tree in the module as the daemon's clients see it (asStored), times to the second. */
function toSecond(tree: ReturnType<typeof describeTree>) {
  return new Map([...asStored(tree)].map(([k, v]) => [k, { ...v, mtimeNs: v.mtimeNs / 1_000_000_000n }]));
}

describe('a primary target in an rsync daemon', () => {
  let daemon: Rsyncd;

  beforeAll(async () => {
    daemon = await rsyncd();
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  /** Points the deployment's primary target at `folder` of the daemon's module; returns where its snapshots of `repo` are. */
  function daemonPrimary(dep: Deployment, folder: string, edit?: (config: any) => void): (repo: string) => string {
    mkdirSync(join(daemon.module, folder), { recursive: true });
    usePrimary(dep, { url: daemon.url(`csc/${folder}`), 'password-file': daemon.passwordFile }, edit);
    return (repo) => join(daemon.module, folder, dep.host, repo, 'snapshots');
  }

  it('backs up into it, sends only what changed, has the daemon read it back, and verifies, restores and prunes there', async () => {
    const d = await deployment([{ name: 'docs', paths: ['/placeholder'], retention: { 'keep-last': 2 } } as any]);
    const source = join(d.root, 'docs');
    writeTree(source, { 'a.txt': 'alpha\n', 'sub/b.bin': Buffer.alloc(300_000, 7), 'gone.txt': 'to be deleted\n', 'odd name $HOME ñ.txt': 'odd\n', 'back\\slash.txt': 'escape\n', 'star*[1]?.txt': 'wild\n', 'same.txt': 'aaaa\n' });
    symlinkSync('a.txt', join(source, 'link -> a'));
    setMtimeNs(join(source, 'same.txt'), 1_700_000_000_100_000_000n);
    const at = daemonPrimary(d, 'nas-1', (c) => (c.repositories[0].paths = [source]));

    const first = await d.run('run', '--all');
    expect(first.code, first.stderr).toBe(0);
    const [id1] = readdirSync(at('docs'));
    const snap1 = join(at('docs'), id1!);
    const data1 = join(snap1, 'data', source);
    expect(toSecond(describeTree(data1))).toEqual(toSecond(describeTree(source)));
    expect(existsSync(d.target)).toBe(false);
    const b1 = lastRecord(d);
    expect(b1).toMatchObject({ type: 'backup', repository: 'docs', snapshot: { id: id1, target: 'primary', location: `web01/docs/snapshots/${id1}` }, verification: { checksum: { files: 7, mismatches: 0 } } });
    // Each file: the SHA-256 and SHA-1 of its original; times to the second; the link's target.
    const m1 = manifestOf(snap1);
    for (const e of m1.filter((e) => e.type === 'f')) {
      expect(e.sha256, e.path).toBe(sha256(join('/', e.path)));
      expect(e.sha1, e.path).toBe(sha1(join('/', e.path)));
      expect(e.mtime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    expect(m1.find((e) => e.type === 'l')).toMatchObject({ path: `${source.slice(1)}/link -> a`, target: 'a.txt' });
    expect(`sha256:${sha256(join(snap1, 'manifest.jsonl'))}`).toBe(b1.snapshot.manifest);
    expect(`sha256:${sha256(join(snap1, 'snapshot.yaml'))}`).toBe(b1.snapshot.digest);

    // A change: one file rewritten, one added, one deleted, and one rewritten with its size
    // and within the same second, which the daemon's listing cannot tell from the old one.
    writeFileSync(join(source, 'same.txt'), 'bbbb\n');
    setMtimeNs(join(source, 'same.txt'), 1_700_000_000_200_000_000n);
    writeFileSync(join(source, 'a.txt'), 'alpha, second version\n');
    writeFileSync(join(source, 'new.txt'), 'new\n');
    rmSync(join(source, 'gone.txt'));
    const second = await d.run('run', '--all');
    expect(second.code, second.stderr).toBe(0);
    const id2 = readdirSync(at('docs')).sort()[1]!;
    const snap2 = join(at('docs'), id2);
    const data2 = join(snap2, 'data', source);
    expect(toSecond(describeTree(data2))).toEqual(toSecond(describeTree(source)));
    // What did not change is the previous snapshot's file (one inode in the module), the rest is new.
    expect(inodeOf(join(data2, 'sub/b.bin'))).toBe(inodeOf(join(data1, 'sub/b.bin')));
    expect(inodeOf(join(data2, 'a.txt'))).not.toBe(inodeOf(join(data1, 'a.txt')));
    expect(readFileSync(join(data1, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(lastRecord(d)).toMatchObject({ type: 'backup', snapshot: { id: id2 }, previous: { id: id1 }, changed: { files: 3 }, verification: { checksum: { files: 3, mismatches: 0 } } });
    const m2 = manifestOf(snap2);
    for (const e of m2.filter((e) => e.type === 'f')) expect([e.sha256, e.sha1], e.path).toEqual([sha256(join('/', e.path)), sha1(join('/', e.path))]);
    // The linked file keeps the number that stands for its inode; the rewritten one has a new one.
    const ino = (m: any[], name: string) => m.find((e) => e.path === `${source.slice(1)}/${name}`).ino;
    expect(ino(m2, 'sub/b.bin')).toBe(ino(m1, 'sub/b.bin'));
    expect(ino(m2, 'a.txt')).not.toBe(ino(m1, 'a.txt'));
    expect(ino(m2, 'same.txt')).not.toBe(ino(m1, 'same.txt'));
    expect(readFileSync(join(data2, 'same.txt'), 'utf8')).toBe('bbbb\n');

    // Nothing changed: the comparison runs against the daemon and records the same snapshot;
    // with --verify=full the daemon reads every file back against the manifest.
    const same = await d.run('run', '--all', '--verify=full');
    expect(same.code, same.stderr).toBe(0);
    expect(lastRecord(d)).toMatchObject({ type: 'backup', snapshot: { id: id2 }, unchanged: true, verification: { checksum: { scope: 'full', files: 7, mismatches: 0 } } });

    // A restore from the daemon, byte for byte.
    const into = join(tempDir(), 'restored');
    const restored = await d.run('restore', 'docs', '--to', into);
    expect(restored.code, restored.stderr).toBe(0);
    expect(toSecond(describeTree(join(into, source)))).toEqual(toSecond(describeTree(source)));
    expect(lastRecord(d)).toMatchObject({ type: 'restore', repository: 'docs', snapshot: { id: id2, target: 'primary' }, verification: { files: 7, mismatches: 0 } });
    expect(recordsOf(d, 'media-loan')).toHaveLength(0);
    // One file and one folder asked for by path, each at its place.
    const some = join(tempDir(), 'some');
    const picked = await d.run('restore', 'docs', '--path', `${source}/a.txt`, '--path', `${source}/sub`, '--path', `${source}/back\\slash.txt`, '--path', `${source}/star*[1]?.txt`, '--to', some);
    expect(picked.code, picked.stderr).toBe(0);
    expect([...describeTree(join(some, source)).keys()].sort()).toEqual(['a.txt', 'back\\slash.txt', 'star*[1]?.txt', 'sub', 'sub/b.bin']);
    expect(sha256(join(some, source, 'sub/b.bin'))).toBe(sha256(join(source, 'sub/b.bin')));
    expect(lastRecord(d)).toMatchObject({ type: 'restore', verification: { files: 4, mismatches: 0 } });

    // Verify at rest: the daemon reads the files; one flipped bit there is found, and named.
    const clean = await d.run('verify', '--all', '--read-data');
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(lastRecord(d)).toMatchObject({ type: 'verify', target: 'primary', result: 'ok' });
    flipBit(join(data2, 'new.txt'));
    const damaged = await d.run('verify', '--all', '--read-data');
    expect(damaged.code).not.toBe(0);
    const v = lastRecord(d);
    expect(v).toMatchObject({ type: 'verify', target: 'primary', result: 'failed' });
    expect(v.problems.map((p: { path: string }) => p.path)).toEqual([`data${source}/new.txt`]);
    // A full backup run finds it too, and says what to do where the snapshot is.
    const full = await d.run('run', '--all', '--verify=full');
    expect(full.code).toBe(3);
    expect(full.stderr).toMatch(/new\.txt: the stored copy no longer matches/);
    expect(full.stderr).toMatch(/have it moved aside in the module \(to web01\/docs\/damaged-/);
    flipBit(join(data2, 'new.txt'));

    // Prune in the module: keep-last 2 of three snapshots, and nothing else there touched.
    writeFileSync(join(source, 'a.txt'), 'alpha, third version\n');
    expect((await d.run('run', '--all')).code).toBe(0);
    expect(readdirSync(at('docs'))).toHaveLength(3);
    const pruned = await d.run('prune', '--apply');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(readdirSync(at('docs')).sort()).not.toContain(id1);
    expect(readdirSync(at('docs'))).toHaveLength(2);
    expect(recordsOf(d, 'prune').at(-1)).toMatchObject({ repository: 'docs', target: 'primary' });
    const status = await d.run('status');
    expect(status.stdout).toMatch(/docs/);

    // The label reads the snapshot's files on this machine: refused, with what to do.
    const label = await d.run('label', 'docs');
    expect(label.code).toBe(2);
    expect(label.stderr).toMatch(/"respaldo label" needs the primary target on this machine, and .* keeps it at rsync:\/\/respaldo@127\.0\.0\.1:\d+\/csc\/nas-1/);
    // The module's password is in no record and no output.
    const all = readdirSync(d.records, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => readFileSync(join(d.records, f), 'utf8'))
      .join('\n');
    for (const text of [all, first.stdout, first.stderr, second.stdout, damaged.stdout, damaged.stderr]) expect(text).not.toContain(daemon.password);
  }, 180_000);

  it('sends a database dump made here, checked by a test restore before it is sent', async () => {
    const dbFile = join(tempDir(), 'shop.db');
    const db = new Database(dbFile);
    db.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)');
    for (let i = 0; i < 50; i++) db.prepare('INSERT INTO orders (item) VALUES (?)').run(`item ${i}`);
    db.close();
    const d = await deployment([{ name: 'shop-db', kind: 'database', engine: 'sqlite', paths: [dbFile] } as any]);
    const at = daemonPrimary(d, 'nas-db');
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    const [id] = readdirSync(at('shop-db'));
    const stored = join(at('shop-db'), id!, 'data/sqlite/1-shop.db');
    const copy = new Database(stored, { readonly: true });
    expect(copy.prepare('SELECT count(*) FROM orders').pluck().get()).toBe(50);
    copy.close();
    expect(lastRecord(d)).toMatchObject({ type: 'backup', repository: 'shop-db', verification: { level: 'restore', restore: { result: 'ok' }, checksum: { mismatches: 0 } } });
    expect(manifestOf(join(at('shop-db'), id!)).find((e) => e.path === 'sqlite/1-shop.db')).toMatchObject({ sha256: sha256(stored), sha1: sha1(stored) });
    // The dump comes back from the daemon as it was stored, checked against the manifest.
    const into = join(tempDir(), 'dump');
    const restored = await d.run('restore', 'shop-db', '--to', into);
    expect(restored.code, restored.stderr).toBe(0);
    expect(sha256(join(into, 'sqlite/1-shop.db'))).toBe(sha256(stored));
    expect(readdirSync(join(d.root, 'state/staging/web01/shop-db'))).toEqual([]);
  }, 120_000);

  it('copies from it to CSC through this machine, a later copy linked at CSC, and restores from CSC when its copy is gone', async () => {
    const d = await deployment([{ name: 'tree', paths: ['/placeholder'] }]);
    const source = join(d.root, 'tree');
    writeTree(source, { 'keep.txt': 'keep\n', 'change.txt': 'v1\n', 'gone.txt': 'gone\n', 'sub/big.bin': Buffer.alloc(200_000, 3), 'odd name $x.txt': 'odd\n', 'file-to-dir': 'file\n' });
    symlinkSync('keep.txt', join(source, 'link'));
    const csc = join(d.root, 'csc');
    mkdirSync(csc);
    const at = daemonPrimary(d, 'nas-2', (c) => {
      c.repositories[0].paths = [source];
      c.targets.secondary = csc;
    });
    const atCsc = (id: string) => join(csc, 'web01/tree/snapshots', id);
    const first = await d.run('run', '--all');
    expect(first.code, first.stderr).toBe(0);
    const [id1] = readdirSync(at('tree'));
    // CSC's copy is the primary's snapshot entry for entry: modes, times, links.
    expect(withoutInodes(describeTree(atCsc(id1!)))).toEqual(asStored(describeTree(join(at('tree'), id1!))));
    expect(recordsOf(d, 'copy')[0]).toMatchObject({ snapshot: { id: id1, target: 'secondary' }, verified: { method: 'rehash', result: 'ok', scope: 'full' } });
    // Nothing fetched stays here.
    expect(existsSync(join(d.root, 'state/relay/web01/tree'))).toBe(false);

    writeFileSync(join(source, 'change.txt'), 'v2\n');
    rmSync(join(source, 'gone.txt'));
    rmSync(join(source, 'file-to-dir'));
    writeTree(join(source, 'file-to-dir'), { 'inside.txt': 'now a folder\n' });
    writeFileSync(join(source, 'new.txt'), 'new\n');
    // Names the daemon would take as wildcards or escapes, in what the later copy fetches.
    writeFileSync(join(source, 'back\\slash.txt'), 'b\n');
    writeFileSync(join(source, 'star*[1]?.txt'), 's\n');
    const olderAtCsc = describeTree(atCsc(id1!));
    const second = await d.run('run', '--all', '--json');
    expect(second.code, second.stderr + second.stdout).toBe(0);
    const id2 = readdirSync(at('tree')).sort()[1]!;
    expect(withoutInodes(describeTree(atCsc(id2)))).toEqual(asStored(describeTree(join(at('tree'), id2))));
    const copied = eventOf(second.stdout, 'copied');
    expect(copied).toMatchObject({ snapshot: id2, seconds: { link: expect.any(Number), transfer: expect.any(Number) } });
    expect(copied.seconds.again).toBeUndefined();
    expect(recordsOf(d, 'copy').map((c) => c.verified.scope)).toEqual(['full', 'changed']);
    const data = (id: string) => join(atCsc(id), 'data', source);
    expect(inodeOf(join(data(id2), 'sub/big.bin'))).toBe(inodeOf(join(data(id1!), 'sub/big.bin')));
    expect(inodeOf(join(data(id2), 'change.txt'))).not.toBe(inodeOf(join(data(id1!), 'change.txt')));
    expect(describeTree(atCsc(id1!))).toEqual(olderAtCsc);
    expect(existsSync(join(d.root, 'state/relay/web01/tree'))).toBe(false);

    // The daemon's copy of the newest snapshot is gone: the restore borrows CSC's, and says so.
    rmSync(join(at('tree'), id2), { recursive: true });
    const into = join(tempDir(), 'restored');
    const restored = await d.run('restore', 'tree', '--snapshot', id2, '--to', into);
    expect(restored.code, restored.stderr).toBe(0);
    expect(withoutInodes(describeTree(join(into, source)))).toEqual(withoutInodes(describeTree(source)));
    expect(recordsOf(d, 'media-loan').at(-1)).toMatchObject({ snapshot: id2, from: 'secondary' });
  }, 180_000);

  it('keeps what was sent of a file that changed since, and fails a stored copy that is not what was sent', async () => {
    // The store's own manifest step, against a snapshot put in the module as rsync would
    // have sent it, with originals here that changed since and a transfer log that says what was sent.
    const root = tempDir();
    const nas = join(daemon.module, 'nas-race');
    mkdirSync(nas);
    const id = '20261102T000000Z';
    const stored = join(nas, 'web01/docs/snapshots', id, 'data');
    writeTree(stored, { 'log.txt': 'line 1\n', 'same.txt': 'same\n', 'bad.txt': 'what the NAS holds\n' });
    const originals = join(root, 'originals');
    writeTree(originals, { 'log.txt': 'line 1\nline 2\n', 'same.txt': 'same\n', 'bad.txt': 'what was sent\n' });
    const target = new DaemonPrimaryTarget({ kind: 'rsync', user: daemon.user, host: '127.0.0.1', port: daemon.port, module: 'csc', path: '/csc/nas-race', passwordFile: daemon.passwordFile }, join(root, 'state'));
    const store = target.repository('web01', 'docs');
    const transferred = new TransferLog();
    transferred.algorithm = 'sha1';
    const digest = (text: string) => createHash('sha1').update(text).digest('hex');
    transferred.add(Buffer.from('log.txt'), digest('line 1\n'));
    transferred.add(Buffer.from('same.txt'), digest('same\n'));
    transferred.add(Buffer.from('bad.txt'), digest('what was sent\n'));
    const pool = new HashPool();
    try {
      // Not `begin`, which would clear the snapshot as one an interrupted run left.
      mkdirSync(join(root, 'state/staging/web01/docs', id), { recursive: true });
      const m = await store.buildManifest({ store, id, previous: undefined, transferred, origin: (rel: Buffer) => Buffer.concat([Buffer.from(`${originals}/`), rel]), scope: 'changed', pool, signal: new AbortController().signal, progress: () => {} });
      // The log grew after it was sent: a warning, and the manifest holds what the NAS holds.
      expect(m.warnings).toEqual([expect.objectContaining({ code: 'changed-during-backup' })]);
      expect(m.warnings[0].message).toContain('/log.txt');
      // The NAS holds other bytes than were sent: a verification failure, named.
      expect(m.checksum).toMatchObject({ files: 3, mismatches: 1 });
      expect(m.problems).toEqual([{ path: 'bad.txt', problem: expect.stringMatching(/differs from what rsync sent/) }]);
      const entries = manifestOf(join(root, 'state/staging/web01/docs', id));
      expect(entries.find((e) => e.path === 'log.txt')).toMatchObject({ sha256: sha256(join(stored, 'log.txt')), sha1: sha1(join(stored, 'log.txt')) });
      expect(entries.find((e) => e.path === 'same.txt')).toMatchObject({ sha256: sha256(join(originals, 'same.txt')) });
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('records a failure when the daemon is down or refuses the password, and the previous snapshot stays as it was', async () => {
    const d = await deployment([{ name: 'docs', paths: ['/placeholder'] }]);
    const source = join(d.root, 'docs');
    writeTree(source, { 'a.txt': 'alpha\n' });
    const at = daemonPrimary(d, 'nas-3', (c) => (c.repositories[0].paths = [source]));
    expect((await d.run('run', '--all')).code).toBe(0);
    const before = describeTree(at('docs'));

    writeFileSync(join(source, 'a.txt'), 'changed\n');
    await daemon.stop();
    try {
      const down = await d.run('run', '--all');
      expect(down.code).toBe(3);
      expect(down.stderr).toMatch(/the primary target rsync:\/\/respaldo@127\.0\.0\.1:\d+\/csc\/nas-3 cannot be reached/);
      expect(lastRecord(d)).toMatchObject({ type: 'failure', repository: 'docs', stage: 'target' });
    } finally {
      await daemon.start();
    }
    expect(describeTree(at('docs'))).toEqual(before);

    const wrong = join(d.root, 'wrong.pass');
    writeFileSync(wrong, 'not-the-password\n', { mode: 0o600 });
    usePrimary(d, { url: daemon.url('csc/nas-3'), 'password-file': wrong });
    const refused = await d.run('run', '--all');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/the primary target's rsync daemon refused the password of user respaldo for module "csc"/);
    expect(refused.stderr).toMatch(/targets\.primary\.password-file/);
    expect(describeTree(at('docs'))).toEqual(before);

    usePrimary(d, { url: daemon.url('csc/nas-3'), 'password-file': daemon.passwordFile });
    // The NAS's disk not mounted under the module: the host's folder is missing, and the run says where to look.
    const nas = join(daemon.module, 'nas-3');
    renameSync(join(nas, 'web01'), join(nas, 'elsewhere'));
    const unmounted = await d.run('run', '--all');
    expect(unmounted.code).toBe(3);
    expect(unmounted.stderr).toMatch(/has no folder for host web01, yet record \d+ keeps snapshot .* there/);
    expect(unmounted.stderr).toMatch(/check that the NAS's disk is mounted under the module's path there/);
    expect(existsSync(join(nas, 'web01'))).toBe(false);
    renameSync(join(nas, 'elsewhere'), join(nas, 'web01'));
    const back = await d.run('run', '--all');
    expect(back.code, back.stderr).toBe(0);
    expect(readdirSync(at('docs'))).toHaveLength(2);
  }, 120_000);
});

describe('a primary target in an rsync daemon: what the config refuses', () => {
  const base = 'host: web01\nkey: /k\nrecords: /r\nstate: /tmp/respaldo-state\n';
  const check = refusedConfig;

  it('refuses SSH options on it, an rsync daemon as CSC after it, and point-in-time recovery on it', async () => {
    const repo = 'repositories:\n  - name: a\n    kind: files\n    paths: [/a]\n';
    expect(await check('port.yaml', `${base}targets:\n  primary: { url: "rsync://nas.example/backups", port: 8873 }\n${repo}`)).toMatch(/port\.yaml:6: targets\.primary: "port" is for SSH targets .*rsync:\/\/host:8873\/module/);
    const daemon = 'targets:\n  primary: { url: "rsync://jaa@nas.example/backups", password-file: /etc/respaldo/nas.pass }\n';
    expect(await check('daemon-csc.yaml', `${base}${daemon}  secondary: rsync://csc.example/respaldos\n${repo}`)).toMatch(/daemon-csc\.yaml:7: targets\.secondary: the primary target is remote \(rsync:\/\/jaa@nas\.example\/backups\), and an rsync daemon's copies are compared with the primary's snapshot on this machine/);
    expect(await check('pitr.yaml', `${base}${daemon}repositories:\n  - name: pg\n    kind: database\n    engine: postgresql\n    pitr: true\n    databases: [shop]\n`)).toMatch(/pitr\.yaml:\d+: repositories\[0\]\.pitr: point-in-time recovery needs the primary target on this machine/);
  });
});
