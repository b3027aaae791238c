/**
 * What a sysadmin checks about snapshots: unchanged files cost nothing (hard links), and a
 * snapshot copied back is the source, byte for byte, with modes, times and links.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deployment, describeTree, tempDir, writeTree } from './helpers.js';

describe('snapshots', () => {
  it('hard-links unchanged files and copies back byte-identical, with modes, mtimes and symlinks', async () => {
    const src = tempDir();
    writeTree(src, {
      'etc/app.conf': 'a = 1\n',
      'docs/informe anual (2026) $HOME.txt': 'parentheses, spaces and a dollar sign\n',
      'bin/run.sh': '#!/bin/sh\necho hola\n',
      'data/blob.bin': Buffer.alloc(300_000, 7),
      'empty-dir/.keep': '',
    });
    chmodSync(join(src, 'bin/run.sh'), 0o750);
    chmodSync(join(src, 'etc/app.conf'), 0o600);
    utimesSync(join(src, 'data/blob.bin'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
    symlinkSync('../etc/app.conf', join(src, 'docs/config-link'));
    symlinkSync('/etc/passwd', join(src, 'docs/outside-link'));
    // Names that are not text: a newline, and bytes that are not UTF-8.
    writeFileSync(join(src, 'docs/line\nbreak.txt'), 'newline in the name\n');
    writeFileSync(Buffer.concat([Buffer.from(`${src}/docs/latin1-`), Buffer.from([0xe9, 0xff]), Buffer.from('.txt')]), 'not utf-8\n');

    const d = await deployment([{ name: 'app', paths: [src] }]);
    const first = await d.run('run', '--all');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout + first.stderr).toBe(''); // cron: silence on success

    writeFileSync(join(src, 'etc/app.conf'), 'a = 2\n');
    writeFileSync(join(src, 'docs/new.txt'), 'new file\n');
    const second = await d.run('run', '--all');
    expect(second.code, second.stderr).toBe(0);

    const [s1, s2] = d.snapshots('app');
    expect(s1).toBeDefined();
    expect(s2).toBeDefined();
    const data = (id: string) => join(d.target, 'web01/app/snapshots', id, 'data', src);
    // Every unchanged file (and link) shares its inode with the first snapshot, whatever its
    // name; the changed and the new ones do not.
    const before = describeTree(data(s1!));
    const after = describeTree(data(s2!));
    const changed = new Set(['etc/app.conf', 'docs/new.txt']);
    let shared = 0;
    for (const [path, entry] of after) {
      if (entry.type === 'd') continue;
      if (changed.has(path)) expect(entry.ino, path).not.toBe(before.get(path)?.ino);
      else {
        expect(entry.ino, path).toBe(before.get(path)!.ino);
        shared++;
      }
    }
    expect(shared).toBe(before.size - [...before.values()].filter((e) => e.type === 'd').length - 1);
    expect(after.has(`docs/latin1-${Buffer.from([0xe9, 0xff]).toString('latin1')}.txt`)).toBe(true);

    // Copy the second snapshot back out, as a restore would, and compare with the source.
    const restored = join(tempDir(), 'restored');
    execFileSync('rsync', ['-a', '--modify-window=-1', `${data(s2!)}/`, `${restored}/`]);
    const want = describeTree(src);
    const got = describeTree(restored);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [path, entry] of want) {
      const other = got.get(path)!;
      expect(other.type, path).toBe(entry.type);
      expect(other.mode, path).toBe(entry.mode);
      expect(`${path} ${other.mtimeNs}`).toBe(`${path} ${entry.mtimeNs}`);
      expect(other.sha256, path).toBe(entry.sha256);
      expect(other.link, path).toBe(entry.link);
    }
    expect(got.get('docs/outside-link')!.link).toBe('/etc/passwd'); // kept as a link, never followed

    // The manifest names every file with its hash; non-UTF-8 names are kept exactly (base64).
    const manifest = readFileSync(join(d.target, 'web01/app/snapshots', s2!, 'manifest.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { path?: string; path_b64?: string; sha256?: string; type: string; target?: string });
    const conf = manifest.find((e) => e.path?.endsWith('etc/app.conf'))!;
    expect(conf.sha256).toBe(createHash('sha256').update('a = 2\n').digest('hex'));
    expect(manifest.some((e) => e.path?.endsWith('docs/line\nbreak.txt'))).toBe(true);
    const odd = manifest.find((e) => e.path_b64 && Buffer.from(e.path_b64, 'base64').includes(Buffer.from([0xe9, 0xff])));
    expect(odd).toBeDefined();
    expect(manifest.find((e) => e.path?.endsWith('docs/outside-link'))!.target).toBe('/etc/passwd');

    // The backup records say what a paper log would: files, size, what changed, verification.
    const rec = parse(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8'));
    expect(rec.type).toBe('backup');
    expect(rec.snapshot.id).toBe(s2);
    expect(rec.previous.id).toBe(s1);
    expect(rec.changed.files).toBe(2);
    expect(rec.verification.level).toBe('checksum');
    expect(rec.verification.checksum).toMatchObject({ scope: 'changed', files: 2, mismatches: 0 });
    expect(rec.verification.size.result).toBe('ok');
  });

  it('verifies every stored file with --verify=full and catches a damaged stored copy', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'alpha\n', 'b.txt': 'bravo\n' });
    const when = new Date('2026-01-01T00:00:00Z');
    utimesSync(join(src, 'a.txt'), when, when);
    const d = await deployment([{ name: 'app', paths: [src] }]);
    expect((await d.run('run', '--all')).code).toBe(0);
    const [s1] = d.snapshots('app');
    // Damage the stored copy behind respaldo's back, as bit rot would: same size, same mtime.
    const stored = join(d.target, 'web01/app/snapshots', s1!, 'data', src, 'a.txt');
    writeFileSync(stored, 'alphA\n');
    utimesSync(stored, when, when);
    // A quick run trusts the stored copy (same size and mtime as the source) and its recorded hash ...
    expect((await d.run('run', '--all')).code).toBe(0);
    // ... a full run re-reads every stored file, and says which one is damaged.
    const full = await d.run('run', '--all', '--verify=full');
    expect(full.code).toBe(3);
    expect(full.stderr).toMatch(/a\.txt: the stored copy no longer matches/);
    expect(full.stderr).toMatch(/move it aside \(mv .*\/damaged-/);
    expect(d.snapshots('app')).toEqual([s1]);
    const failure = parse(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8'));
    expect(failure).toMatchObject({ type: 'failure', stage: 'verify', repository: 'app' });
    // Once the sysadmin moves it aside, the next run makes a fresh full copy.
    renameSync(join(d.target, 'web01/app/snapshots', s1!), join(d.target, 'web01/app/damaged'));
    const fresh = await d.run('run', '--all', '--verify=full');
    expect(fresh.code, fresh.stderr).toBe(0);
    const [s2] = d.snapshots('app');
    expect(readFileSync(join(d.target, 'web01/app/snapshots', s2!, 'data', src, 'a.txt'), 'utf8')).toBe('alpha\n');

  });

  it('keeps an empty source as an empty snapshot with a warning', async () => {
    const src = tempDir();
    mkdirSync(join(src, 'nothing'));
    const d = await deployment([{ name: 'empty', paths: [join(src, 'nothing')] }]);
    const r = await d.run('run', '--all');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/empty/);
    const rec = parse(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8'));
    expect(rec.size.files).toBe(0);
    expect(rec.warnings.map((w: { code: string }) => w.code)).toContain('empty-source');
    expect(existsSync(join(d.target, 'web01/empty/snapshots', d.snapshots('empty')[0]!, 'manifest.jsonl'))).toBe(true);
  });
});

describe('size comparison (clause 4.2.1)', () => {
  it('warns when the total size shrinks past the threshold, and records it', async () => {
    const src = tempDir();
    writeTree(src, { 'a.bin': Buffer.alloc(100_000, 1), 'b.bin': Buffer.alloc(100_000, 2) });
    const d = await deployment([{ name: 'app', paths: [src], verify: { 'shrink-warning': '30%' } }]);
    expect((await d.run('run', '--all')).code).toBe(0);
    rmSync(join(src, 'b.bin'));
    const r = await d.run('run', '--all');
    expect(r.code).toBe(0); // a warning, not a failure: the snapshot is good
    expect(r.stderr).toMatch(/warning: app: total size went from 195\.3 KiB to 97\.7 KiB \(-50%\), past the shrink warning of 30%/);
    const rec = parse(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8'));
    expect(rec.verification.size).toEqual({ result: 'warning', bytes: 100_000, previous_bytes: 200_000, change_percent: -50, shrink_warning: 30, growth_warning: 100 });
    expect(rec.warnings.map((w: { code: string }) => w.code)).toEqual(['size-shrank']);
  });

  it('stores a file rewritten within the same second with the same size anew', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'one\n' });
    utimesSync(join(src, 'a.txt'), 1_790_000_000.1, 1_790_000_000.1);
    const d = await deployment([{ name: 'app', paths: [src] }]);
    expect((await d.run('run', '--all')).code).toBe(0);
    // Same size, and an mtime in the same second: rsync's default whole-second check would call it unchanged.
    writeFileSync(join(src, 'a.txt'), 'two\n');
    utimesSync(join(src, 'a.txt'), 1_790_000_000.9, 1_790_000_000.9);
    expect((await d.run('run', '--all')).code).toBe(0);
    const [, s2] = d.snapshots('app');
    expect(readFileSync(join(d.target, 'web01/app/snapshots', s2!, 'data', src, 'a.txt'), 'utf8')).toBe('two\n');
  });
});

describe('a backup when nothing changed', () => {
  it('records the previous snapshot instead of making a new one, and notices any change', async () => {
    const parent = tempDir();
    const src = join(parent, 'site');
    writeTree(src, { 'a.txt': 'a\n', 'sub/b.txt': 'b\n' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    expect((await d.run('run', '--all')).code).toBe(0);
    const [s1] = d.snapshots('app');
    const stored = describeTree(join(d.target, 'web01/app/snapshots', s1!));

    // Nothing changed but the folder above the source (not part of the backup).
    writeFileSync(join(parent, 'unrelated.txt'), 'x');
    expect((await d.run('run', '--all')).code).toBe(0);
    expect(d.snapshots('app')).toEqual([s1]);
    const rec = parse(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8'));
    expect(rec).toMatchObject({ type: 'backup', unchanged: true, snapshot: { id: s1 }, previous: { id: s1 }, changed: { files: 0, bytes: 0 } });
    expect(rec.verification.size.result).toBe('ok');
    // The comparison changed nothing in the stored snapshot.
    expect(describeTree(join(d.target, 'web01/app/snapshots', s1!))).toEqual(stored);

    // Each kind of change makes a new snapshot.
    const changes: [string, () => void][] = [
      ['content', () => writeFileSync(join(src, 'a.txt'), 'A\n')],
      ['permissions', () => chmodSync(join(src, 'sub/b.txt'), 0o600)],
      ['a deleted file', () => rmSync(join(src, 'sub/b.txt'))],
      ['a new empty folder', () => mkdirSync(join(src, 'empty'))],
    ];
    for (const [what, change] of changes) {
      const before = d.snapshots('app').length;
      change();
      expect((await d.run('run', '--all')).code).toBe(0);
      expect(d.snapshots('app'), what).toHaveLength(before + 1);
      expect(parse(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8')).unchanged, what).toBeUndefined();
    }
  });
});
