/**
 * Source code in git: what a sysadmin checks about a `source` repository that is a git
 * repository. The stored bundle clones into the same refs, commits and tags as the
 * source, `git fsck` finds it clean, and the record lists those refs; a damaged bundle (on
 * the target, or made from a damaged repository) is caught and never kept as good; a
 * repository owned by www-data backs up under root's cron without git running its
 * config's programs or writing into it; uncommitted work is a warning; plain folders are
 * still copied as files.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BackupFailure } from '../dist/agent/errors.js';
import { bundleName, verifyBundle } from '../dist/agent/sources/git.js';
import { deployment, git, ids, lastRecord, tempDir, verified, writeTree, type Deployment } from './helpers.js';

/** Every ref of a repository with its object, as `git for-each-ref` lists them. */
function refsOf(repo: string): string {
  return git(repo, '-c', 'safe.directory=*', 'for-each-ref', '--format=%(refname) %(objectname) %(objecttype) %(*objectname)');
}

/** A working tree with four commits on two branches, a lightweight and an annotated tag, checked out on main. */
function sourceRepository(): string {
  const src = join(tempDir(), 'portal');
  mkdirSync(src);
  git(src, 'init', '--quiet');
  writeTree(src, { 'index.php': '<?php echo "hola";\n', 'lib/db.php': '<?php // v1\n' });
  git(src, 'add', '.');
  git(src, 'commit', '--quiet', '-m', 'first version');
  git(src, 'tag', 'v0.9'); // lightweight
  writeTree(src, { 'lib/db.php': '<?php // v2\n' });
  git(src, 'commit', '--quiet', '-am', 'second version');
  git(src, 'tag', '-a', '-m', 'release 1.0', 'v1.0'); // annotated
  git(src, 'checkout', '--quiet', '-b', 'feature/forms');
  writeTree(src, { 'forms.php': '<?php // forms\n' });
  git(src, 'add', '.');
  git(src, 'commit', '--quiet', '-m', 'forms, work in progress');
  git(src, 'checkout', '--quiet', 'main');
  writeTree(src, { 'index.php': '<?php echo "hola, mundo";\n' });
  git(src, 'commit', '--quiet', '-am', 'greeting');
  return src;
}

function snapshotData(d: Deployment, repo: string, id: string): string {
  return join(d.target, d.host, repo, 'snapshots', id, 'data');
}

/** One bit flipped near the end of a bundle: inside its pack, which `git bundle verify` does not read. */
function flipByte(bytes: Buffer): Buffer {
  const at = bytes.length - 40;
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
  return bytes;
}

function records(d: Deployment): Record<string, any>[] {
  return d.recordFiles().map((f) => parse(readFileSync(join(d.records, f), 'utf8')));
}

describe('git repositories as bundles', () => {
  it('round-trip through a bundle: every branch, tag and commit, fsck clean, listed in the record', async () => {
    const src = sourceRepository();
    // A bare repository too, as on a git server, with a branch the working tree does not have.
    const bare = join(tempDir(), 'portal.git');
    git(tempDir(), 'clone', '--quiet', '--bare', src, bare);
    git(bare, 'branch', 'hotfix', 'v0.9');
    const d = await deployment([{ name: 'portal', kind: 'source', paths: [src, bare] }]);
    const first = await d.run('run', '--all');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout + first.stderr).toBe('');

    const [id] = d.snapshots('portal');
    const data = snapshotData(d, 'portal', id!);
    expect(readdirSync(data).sort()).toEqual([bundleName(src), bundleName(bare)].sort());
    expect(bundleName(src)).toMatch(/^portal-[0-9a-f]{12}\.bundle$/);

    for (const repo of [src, bare]) {
      // What a restore does: clone the stored bundle, then compare with the source.
      const clone = join(tempDir(), 'clone.git');
      git(tempDir(), 'clone', '--quiet', '--mirror', join(data, bundleName(repo)), clone);
      expect(refsOf(clone)).toBe(refsOf(repo));
      expect(refsOf(clone)).toMatch(/^refs\/tags\/v1\.0 [0-9a-f]{40} tag [0-9a-f]{40}$/m);
      expect(git(clone, 'fsck', '--full', '--no-dangling')).toBe('');
      expect(git(clone, 'rev-list', '--all', '--count')).toBe(git(repo, 'rev-list', '--all', '--count'));
    }
    const work = join(tempDir(), 'work');
    git(tempDir(), 'clone', '--quiet', join(data, bundleName(src)), work);
    expect(git(work, 'rev-parse', 'HEAD')).toBe(git(src, 'rev-parse', 'HEAD'));
    expect(readFileSync(join(work, 'index.php'), 'utf8')).toBe(readFileSync(join(src, 'index.php'), 'utf8'));

    // The record: verified at level restore, every ref with its commit, no local path.
    const record = lastRecord(d);
    expect(record).toMatchObject({ type: 'backup', kind: 'source', verification: { level: 'restore' }, warnings: [] });
    expect(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8')).not.toContain(d.root);
    expect(record.git.repositories.map((r: any) => [r.path, r.bundle, r.bare])).toEqual([
      ['{paths[0]}', bundleName(src), false],
      ['{paths[1]}', bundleName(bare), true],
    ]);
    for (const [i, repo] of [src, bare].entries()) {
      const entry = record.git.repositories[i];
      const listed = entry.refs.map((r: any) => `${r.name} ${r.object} ${r.type} ${r.commit ?? ''}`).join('\n');
      expect(`${listed}\n`).toBe(refsOf(repo));
      expect(entry.head).toEqual({ ref: 'refs/heads/main', commit: git(repo, 'rev-parse', 'HEAD').trim() });
      expect(entry.checks).toEqual(expect.arrayContaining(['git bundle verify: ok', 'git fsck --full: ok']));
      expect(entry.bytes).toBe(statSync(join(data, entry.bundle)).size);
    }
    const tag = record.git.repositories[0].refs.find((r: any) => r.name === 'refs/tags/v1.0');
    expect(tag.commit).toBe(git(src, 'rev-parse', 'v1.0^{commit}').trim());
    expect(tag.object).toBe(git(src, 'rev-parse', 'v1.0').trim());

    // Nothing changed: the same snapshot stands for today, and its record says so, refs included.
    const second = await d.run('run', '--all');
    expect(second.code, second.stderr).toBe(0);
    expect(d.snapshots('portal')).toEqual([id]);
    expect(lastRecord(d)).toMatchObject({ unchanged: true, snapshot: { id }, git: record.git });

    // A new commit on a branch: a new full bundle, with the new ref.
    git(src, 'checkout', '--quiet', 'feature/forms');
    writeTree(src, { 'forms.php': '<?php // forms, done\n' });
    git(src, 'commit', '--quiet', '-am', 'forms done');
    const third = await d.run('run', '--all');
    expect(third.code, third.stderr).toBe(0);
    expect(d.snapshots('portal')).toHaveLength(2);
    const latest = lastRecord(d);
    expect(latest.unchanged).toBeUndefined();
    expect(latest.git.repositories[0].head.ref).toBe('refs/heads/feature/forms');
    expect(latest.git.repositories[0].refs.find((r: any) => r.name === 'refs/heads/feature/forms').object).toBe(git(src, 'rev-parse', 'HEAD').trim());
    await verified(d);
  });

  it('catches a damaged bundle: on the target, when the verify function reads it, and when a damaged repository makes one', async () => {
    const src = sourceRepository();
    const d = await deployment([{ name: 'portal', kind: 'source', paths: [src] }]);
    expect((await d.run('run', '--all')).code).toBe(0);
    const [id] = d.snapshots('portal');
    const stored = join(snapshotData(d, 'portal', id!), bundleName(src));
    const good = join(tempDir(), 'good.bundle');
    copyFileSync(stored, good);

    // The verify function itself: a truncated bundle and a bundle with one byte flipped in its pack.
    const truncated = join(tempDir(), 'truncated.bundle');
    copyFileSync(good, truncated);
    truncateSync(truncated, Math.floor(statSync(good).size / 2));
    const flipped = join(tempDir(), 'flipped.bundle');
    writeFileSync(flipped, flipByte(readFileSync(good)));
    const check = (bundle: string) => verifyBundle({ bundle, scratch: join(tempDir(), 'scratch'), env: process.env, signal: new AbortController().signal });
    await expect(check(good)).resolves.toMatchObject({ checks: expect.arrayContaining(['git fsck --full: ok']) });
    for (const bad of [truncated, flipped]) {
      const error = await check(bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(BackupFailure);
      expect((error as BackupFailure).stage).toBe('verify');
      expect((error as BackupFailure).message).toMatch(new RegExp(`^the bundle ${bad} (cannot be cloned|fails git bundle verify|clones into a repository that fails git fsck)`));
    }

    // One byte flipped in the stored bundle: a full verification of the (unchanged) snapshot fails.
    writeFileSync(stored, flipByte(readFileSync(stored)));
    const full = await d.run('run', '--all', '--verify=full');
    expect(full.code).toBe(3);
    expect(full.stderr).toContain(`no longer matches its manifest`);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'verify', previous_snapshot: id });
    expect(lastRecord(d).cause).toContain(bundleName(src));

    // A damaged object in the repository (its bytes replaced, as a bad disk would): git bundle
    // create copies it without noticing, and the clone of the bundle catches it.
    writeTree(src, { 'lib/mail.php': '<?php // mail\n' });
    git(src, 'add', '.');
    git(src, 'commit', '--quiet', '-m', 'mail');
    const blob = git(src, 'rev-parse', 'HEAD:lib/mail.php').trim();
    const object = join(src, '.git/objects', blob.slice(0, 2), blob.slice(2));
    chmodSync(object, 0o644);
    writeFileSync(object, deflateSync(Buffer.from('blob 14\0<?php // MAIL\n')));
    const damaged = await d.run('run', '--all');
    expect(damaged.code).toBe(3);
    const failure = lastRecord(d);
    expect(failure).toMatchObject({ type: 'failure', stage: 'verify', previous_snapshot: id });
    expect(failure.cause).toMatch(new RegExp(`^the bundle ${bundleName(src)} of \\{paths\\[0\\]\\} (cannot be cloned|clones into a repository that fails git fsck)`));
    expect(failure.cause).toContain(blob);
    expect(d.snapshots('portal')).toEqual([id]); // the previous snapshot is intact, no damaged one kept
    expect(readdirSync(join(d.target, d.host, 'portal', 'incomplete'))).toEqual([]);
    await verified(d);
  });

  it('backs up a repository owned by www-data under root without running its config\'s programs or writing into it', async () => {
    const src = sourceRepository();
    // What a developer (or whoever took over the web user) could put in the repository's own config.
    const marks = tempDir();
    git(src, 'config', 'core.fsmonitor', `touch ${join(marks, 'fsmonitor')}; false`);
    git(src, 'config', 'filter.evil.clean', `sh -c 'touch ${join(marks, 'filter')}; cat'`);
    git(src, 'config', 'filter.evil.required', 'true');
    writeFileSync(join(src, '.git/info/attributes'), '* filter=evil\n');
    writeTree(src, { 'index.php': readFileSync(join(src, 'index.php')) }); // same bytes, new mtime: status must look at it
    const www = ids('www-data');
    execFileSync('chown', ['-R', `${www.uid}:${www.gid}`, src]);

    const d = await deployment([{ name: 'portal', kind: 'source', paths: [src] }]);
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    expect(lastRecord(d)).toMatchObject({ type: 'backup', warnings: [], verification: { level: 'restore' } });
    expect(readdirSync(marks)).toEqual([]);
    // Nothing in the repository became root's (a refreshed index would have).
    expect(execFileSync('find', [src, '-not', '-user', 'www-data'], { encoding: 'utf8' })).toBe('');
    const clone = join(tempDir(), 'clone.git');
    git(tempDir(), 'clone', '--quiet', '--mirror', join(snapshotData(d, 'portal', d.snapshots('portal')[0]!), bundleName(src)), clone);
    expect(refsOf(clone)).toBe(refsOf(src));
  });

  it('warns about uncommitted work and Git LFS files, which no bundle holds, on every backup', async () => {
    const src = sourceRepository();
    writeTree(src, { 'index.php': '<?php echo "sin guardar";\n', 'notes.txt': 'todo\n' });
    mkdirSync(join(src, '.git/lfs/objects'), { recursive: true });
    const d = await deployment([{ name: 'portal', kind: 'source', paths: [src] }]);
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${src} has uncommitted work that the bundle does not hold: 1 changed and 1 untracked`);
    const record = lastRecord(d);
    expect(record.type).toBe('backup');
    const uncommitted = record.warnings.find((w: any) => w.code === 'git-uncommitted-changes');
    expect(uncommitted.message).toMatch(/^\{paths\[0\]\} has uncommitted work that the bundle does not hold: 1 changed and 1 untracked file\(s\) or folder\(s\), such as index\.php, notes\.txt/);
    expect(record.warnings.map((w: any) => w.code)).toContain('git-lfs-not-bundled');
    // Still uncommitted at the next run: not "unchanged", a new snapshot and the warning again.
    const again = await d.run('run', '--all');
    expect(again.code).toBe(0);
    expect(d.snapshots('portal')).toHaveLength(2);
    expect(lastRecord(d).warnings.map((w: any) => w.code)).toContain('git-uncommitted-changes');
  });

  it('copies plain folders as files (a folder inside a working tree too), and refuses to mix them with git repositories', async () => {
    const repo = sourceRepository();
    const plain = tempDir();
    writeTree(plain, { 'site/index.html': '<h1>hola</h1>\n' });
    const d = await deployment([
      { name: 'static', kind: 'source', paths: [plain, join(repo, 'lib')] },
      { name: 'mixed', kind: 'source', paths: [repo, plain] },
    ]);
    const r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    const backup = records(d).find((x) => x.repository === 'static');
    const failure = records(d).find((x) => x.repository === 'mixed');
    // Plain folders: an rsync snapshot of their files, as before.
    expect(backup).toMatchObject({ type: 'backup', repository: 'static', verification: { level: 'checksum' } });
    expect(backup!.git).toBeUndefined();
    const data = snapshotData(d, 'static', d.snapshots('static')[0]!);
    expect(readFileSync(join(data, plain, 'site/index.html'), 'utf8')).toBe('<h1>hola</h1>\n');
    expect(readFileSync(join(data, repo, 'lib/db.php'), 'utf8')).toBe('<?php // v2\n');
    expect(existsSync(join(data, repo, '.git'))).toBe(false);
    // Mixed: a failure that names both and says what to do.
    expect(failure).toMatchObject({ type: 'failure', repository: 'mixed', stage: 'source' });
    expect(failure!.cause).toBe('repository mixed mixes git repositories ({paths[0]}) and plain folders or files ({paths[1]}): a source repository is stored either as git bundles or as copied files, not both');
    expect(failure!.hint).toMatch(/^split it in the host config/);
    expect(d.snapshots('mixed')).toEqual([]);
  });

  it('refuses a repository with no commits: there is nothing to bundle', async () => {
    const src = join(tempDir(), 'new');
    mkdirSync(src);
    git(src, 'init', '--quiet');
    writeTree(src, { 'index.php': '<?php\n' });
    const d = await deployment([{ name: 'new', kind: 'source', paths: [src] }]);
    const r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${src} is a git repository with no commits yet`);
    expect(lastRecord(d)).toMatchObject({ type: 'failure', stage: 'source', cause: '{paths[0]} is a git repository with no commits yet: there is nothing to bundle' });
  });
});
