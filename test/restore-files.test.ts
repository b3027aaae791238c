/**
 * Restores of files (clause 4.3): a whole snapshot or one file, byte-identical; CSC's copy
 * borrowed (over SSH) when JAA's is missing or damaged, with a media-loan record; never into
 * a folder that is not empty without --force; never outside the destination.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type Deployment, deployment, describeTree, recordsOf, respaldo, tempDir, verified, withoutInodes, writeTree } from './helpers.js';
import { sshd, type Sshd } from './sshd.js';

describe('respaldo restore (files)', () => {
  let server: Sshd;
  let d: Deployment;
  let source: string;
  let csc: string;
  let first: string;
  let second: string;

  beforeAll(async () => {
    server = await sshd();
    d = await deployment([{ name: 'www', paths: ['/placeholder'] }]);
    source = join(d.root, 'www');
    csc = join(d.root, 'csc');
    mkdirSync(csc);
    writeTree(source, { 'index.html': '<h1>hola</h1>\n', 'img/logo.png': Buffer.alloc(300_000, 3), 'img/sub/a b.txt': 'espacio\n', 'docs/manual.pdf': Buffer.from('%PDF-1.4 fake\n') });
    symlinkSync('../index.html', join(source, 'img/home'));
    const config = parse(readFileSync(d.config, 'utf8'));
    config.repositories[0].paths = [source];
    config.targets.secondary = { url: `root@127.0.0.1:${csc}`, port: server.port, identity: server.identity, 'host-key': server.hostKey };
    writeFileSync(d.config, JSON.stringify(config));
    expect((await d.run('run', '--all')).code).toBe(0);
    writeFileSync(join(source, 'index.html'), '<h1>hola, mundo</h1>\n');
    expect((await d.run('run', '--all')).code).toBe(0);
    [first, second] = d.snapshots('www') as [string, string];
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('restores a whole snapshot byte for byte, and records it', async () => {
    const to = join(tempDir(), 'whole');
    const r = await d.run('restore', 'www', '--snapshot', first, '--to', to, '--reason', 'deleted-by-mistake', '--why', 'se borró el sitio', '--json');
    expect(r.code, r.stderr).toBe(0);
    // A new folder, made by the restore under private folders: cp copies it.
    const copiedBy = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!).data.copied_by;
    expect(copiedBy(r.stdout)).toBe('cp');
    expect(withoutInodes(describeTree(to))).toEqual(withoutInodes(describeTree(join(d.target, 'web01/www/snapshots', first, 'data'))));
    expect(readFileSync(join(to, source, 'index.html'), 'utf8')).toBe('<h1>hola</h1>\n');
    const record = recordsOf(d, 'restore').at(-1)!;
    expect(record).toMatchObject({ repository: 'www', snapshot: { id: first, target: 'primary' }, source_copy: 'primary', reason: 'deleted-by-mistake', reason_detail: 'se borró el sitio', paths: [], destination: to, result: 'ok', verification: { mismatches: 0, files: 4 } });
    // Into an empty folder others may write to, or one whose parent others may change, rsync
    // restores instead of cp (it works inside the folder and never follows a link someone
    // could plant there): the same tree.
    const shared = join(tempDir(), 'shared');
    mkdirSync(shared, { mode: 0o777 });
    chmodSync(shared, 0o1777);
    const movable = join(tempDir(), 'open', 'mine');
    mkdirSync(movable, { recursive: true, mode: 0o700 });
    chmodSync(join(movable, '..'), 0o777);
    for (const dest of [shared, movable]) {
      const viaRsync = await d.run('restore', 'www', '--snapshot', first, '--to', dest, '--json');
      expect(viaRsync.code, viaRsync.stderr).toBe(0);
      expect(copiedBy(viaRsync.stdout)).toBe('rsync');
      expect(withoutInodes(describeTree(dest))).toEqual(withoutInodes(describeTree(to)));
    }
  });

  it('restores one file by its original path, and only that file', async () => {
    const to = tempDir();
    const r = await d.run('restore', 'www', '--path', join(source, 'index.html'), '--to', to);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(to, source, 'index.html'), 'utf8')).toBe('<h1>hola, mundo</h1>\n');
    expect(readdirSync(join(to, source))).toEqual(['index.html']);
    expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ snapshot: { id: second }, paths: [join(source, 'index.html')], verification: { files: 1, mismatches: 0 } });
  });

  it('refuses a folder that is not empty, unless --force', async () => {
    const to = tempDir();
    writeFileSync(join(to, 'keep.txt'), 'mine\n');
    const r = await d.run('restore', 'www', '--to', to);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not empty.*--force/s);
    expect(readdirSync(to)).toEqual(['keep.txt']);
    const forced = await d.run('restore', 'www', '--to', to, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(join(to, 'keep.txt'), 'utf8')).toBe('mine\n');
    expect(readFileSync(join(to, source, 'img/sub/a b.txt'), 'utf8')).toBe('espacio\n');
  });

  it('picks the newest snapshot taken by --at, and refuses a --path through a link in the snapshot', async () => {
    const to = tempDir();
    // Just before the second snapshot was taken: the first one.
    const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z/.exec(second)!;
    const before = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - 1000).toISOString();
    const r = await d.run('restore', 'www', '--at', before, '--path', join(source, 'index.html'), '--to', to);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(to, source, 'index.html'), 'utf8')).toBe('<h1>hola</h1>\n');
    // img/home is a link to ../index.html in the snapshot: a path through it would read the live system.
    const through = await d.run('restore', 'www', '--path', join(source, 'img/home/x'), '--to', tempDir());
    expect(through.code).toBe(2);
    expect(through.stderr).toMatch(/goes through .*img\/home, which is a symbolic link in snapshot/);
    const missing = await d.run('restore', 'www', '--path', join(source, 'nope.txt'), '--to', tempDir());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.txt is not in snapshot/);
  });

  it('never writes outside the destination: "..", links on the way, a manifest altered on the disk', async () => {
    const outside = tempDir();
    const to = join(tempDir(), 'dest');
    const up = await d.run('restore', 'www', '--path', `${source}/../../etc/passwd`, '--to', to);
    expect(up.code).toBe(2);
    expect(up.stderr).toMatch(/is not a path inside the snapshot/);
    // A link in the folder where a restored path goes through it.
    mkdirSync(to, { recursive: true });
    symlinkSync(outside, join(to, source.split('/')[1]!));
    const linked = await d.run('restore', 'www', '--path', join(source, 'index.html'), '--to', to, '--force');
    expect(linked.code).toBe(2);
    expect(linked.stderr).toMatch(/is a symbolic link: restoring through it would write outside/);
    expect(readdirSync(outside)).toEqual([]);

    // A manifest edited to name a file above the snapshot: refused, nothing restored from it.
    const copy = tempDir();
    const manifest = join(d.target, 'web01/www/snapshots', second, 'manifest.jsonl');
    const original = readFileSync(manifest);
    try {
      writeFileSync(manifest, Buffer.concat([original, Buffer.from(`${JSON.stringify({ path: '../../../../escape.txt', type: 'f', size: 1, mtime: '2026-01-01T00:00:00.000000000Z', mode: '644', ino: 1, sha256: '0'.repeat(64) })}\n`)]));
      // The record's manifest digest no longer matches: the primary is not believed, CSC's copy is used.
      const r = await d.run('restore', 'www', '--to', copy);
      expect(r.code, r.stderr).toBe(0);
      expect(recordsOf(d, 'media-loan').at(-1)).toMatchObject({ snapshot: second, from: 'secondary' });
      expect(recordsOf(d, 'media-loan').at(-1)!.reason).toMatch(/not the one its backup record names/);
      expect(existsSync(join(copy, '..', 'escape.txt'))).toBe(false);
    } finally {
      writeFileSync(manifest, original);
    }
  });

  it('borrows CSC\'s copy when a file of the primary is damaged, and fixes it in the destination', async () => {
    const file = join(d.target, 'web01/www/snapshots', second, 'data', source, 'img/logo.png');
    const { atime, mtime } = statSync(file);
    const bytes = readFileSync(file);
    bytes[1000] ^= 0xff;
    writeFileSync(file, bytes);
    utimesSync(file, atime, mtime);
    const to = tempDir();
    const r = await d.run('restore', 'www', '--to', to, '--reason', 'physical-damage');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(to, source, 'img/logo.png')).equals(Buffer.alloc(300_000, 3))).toBe(true);
    const loan = recordsOf(d, 'media-loan').at(-1)!;
    expect(loan.reason).toMatch(/do not match the manifest \(first: .*img\/logo\.png/);
    expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ source_copy: 'secondary', snapshot: { target: 'secondary' }, verification: { mismatches: 0 }, result: 'ok' });
    bytes[1000] ^= 0xff;
    writeFileSync(file, bytes);
  });

  it("borrows CSC's copy when a file of the primary cannot be read", async () => {
    const file = join(d.target, 'web01/www/snapshots', second, 'data', source, 'img/logo.png');
    const { mode } = statSync(file);
    // Unreadable to an agent without root's override of file permissions (setpriv drops it).
    chmodSync(file, 0);
    try {
      const to = tempDir();
      const r = await respaldo(['restore', 'www', '--to', to, '--json', '--config', d.config], { prefix: ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--'] });
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(join(to, source, 'img/logo.png')).equals(Buffer.alloc(300_000, 3))).toBe(true);
      expect(recordsOf(d, 'media-loan').at(-1)!.reason).toMatch(/^the primary's copy of snapshot \S+ could not be read: reading the snapshot failed: .*img\/logo\.png/);
      expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ source_copy: 'secondary', verification: { mismatches: 0 }, result: 'ok' });
    } finally {
      chmodSync(file, mode & 0o7777);
    }
  });

  it('restores from CSC when the primary target lost the snapshot', async () => {
    rmSync(join(d.target, 'web01/www/snapshots', first), { recursive: true });
    const to = tempDir();
    const r = await d.run('restore', 'www', '--snapshot', first, '--to', to, '--request', 'REQ-2026-0001');
    expect(r.code, r.stderr).toBe(0);
    expect(withoutInodes(describeTree(to))).toEqual(withoutInodes(describeTree(join(csc, 'web01/www/snapshots', first, 'data'))));
    expect(readFileSync(join(to, source, 'index.html'), 'utf8')).toBe('<h1>hola</h1>\n');
    expect(recordsOf(d, 'media-loan').at(-1)).toMatchObject({ repository: 'www', snapshot: first, from: 'secondary', label: `web01/www/${first}`, request: 'REQ-2026-0001' });
    expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ source_copy: 'secondary', request: 'REQ-2026-0001', result: 'ok' });
    await verified(d);
  });
});

describe('a manifest that names paths outside the snapshot', () => {
  it('is refused before any file is read', async () => {
    const { RepositoryStore } = await import('../dist/agent/target.js');
    const { checkSnapshot } = await import('../dist/agent/manifest.js');
    const { HashPool } = await import('../dist/agent/hashing.js');
    const base = tempDir();
    const dir = join(base, 'snapshots/20261101T030000Z');
    mkdirSync(join(dir, 'data'), { recursive: true });
    const secret = join(base, 'secret.txt');
    writeFileSync(secret, 'not for the restore\n');
    writeFileSync(join(dir, 'manifest.jsonl'), `${JSON.stringify({ path: '../../secret.txt', type: 'f', size: 20, mtime: '2026-11-01T00:00:00.000000000Z', mode: '644', ino: 1, sha256: '0'.repeat(64) })}\n`);
    const pool = new HashPool();
    try {
      await expect(checkSnapshot(new RepositoryStore(base, 'web01/www'), '20261101T030000Z', pool, new AbortController().signal)).rejects.toThrow(/names "\.\.\/\.\.\/secret\.txt", which is not a path inside the snapshot/);
    } finally {
      await pool.close();
    }
  });
});

describe('respaldo restore of a larger tree', () => {
  it('reads the files back while the others are restored, and still names each damaged one', async () => {
    const d = await deployment([{ name: 'data', paths: ['/placeholder'] }]);
    const source = join(d.root, 'data');
    // Enough for rsync to take a while: 3,000 small files and three of 40 MB.
    const files: Record<string, string | Buffer> = {};
    for (let i = 0; i < 3000; i++) files[`d${i % 30}/f${i}.txt`] = `file ${i}\n`.repeat(1 + (i % 50));
    for (let i = 0; i < 3; i++) files[`big/${i}.bin`] = Buffer.alloc(40 << 20, i + 1);
    writeTree(source, files);
    const config = parse(readFileSync(d.config, 'utf8'));
    config.repositories[0].paths = [source];
    writeFileSync(d.config, JSON.stringify(config));
    expect((await d.run('run', '--all')).code).toBe(0);
    const [id] = d.snapshots('data') as [string];
    const data = join(d.target, 'web01/data/snapshots', id, 'data');

    const to = join(tempDir(), 'restored');
    const r = await d.run('restore', 'data', '--to', to);
    expect(r.code, r.stderr).toBe(0);
    expect(withoutInodes(describeTree(to))).toEqual(withoutInodes(describeTree(data)));
    expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ result: 'ok', verification: { files: 3003, mismatches: 0 } });

    // Two files rotted on JAA's disk, size and time kept: one of the first rsync writes, one of the last.
    for (const rel of ['big/0.bin', `d29/f2999.txt`]) {
      const f = join(data, source, rel);
      const bytes = readFileSync(f);
      bytes[1] ^= 1;
      writeFileSync(f, bytes);
      execFileSync('touch', ['-r', join(source, rel), f]);
    }
    const again = await d.run('restore', 'data', '--to', join(tempDir(), 'again'));
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/2 restored file\(s\) from the primary's copy do not match the manifest/);
    expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ result: 'failed', verification: { mismatches: 2 } });
  });
});
