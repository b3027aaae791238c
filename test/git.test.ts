/**
 * The records' way out: commits with simple-git, pushes when the checkout has a remote,
 * and nothing lost when the remote cannot be reached.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deployment, git, tempDir, writeTree } from './helpers.js';

describe('records in git', () => {
  it('commits each run and pushes to the remote', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }], { remote: true });
    expect((await d.run('run', '--all')).code).toBe(0);
    expect(git(d.records, 'status', '--porcelain')).toBe('');
    const remoteLog = git(d.remote!, 'log', '--format=%s', 'main');
    expect(remoteLog).toMatch(/^respaldo web01: records 2–2: app$/m);
    expect(remoteLog).toMatch(/respaldo web01: enrolment \(record 1\)/);
    expect(git(d.remote!, 'ls-tree', '-r', '--name-only', 'main')).toContain('hosts/web01/');
  });

  it('keeps records committed when the push fails, and pushes them with the next run', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }], { remote: true });
    const away = `${d.remote!}.away`;
    renameSync(d.remote!, away); // the git server is unreachable
    const r = await d.run('run', '--all');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/records committed but not pushed .*they go out with the next run/);
    expect(git(d.records, 'status', '--porcelain')).toBe('');
    expect(git(d.records, 'log', '--format=%s', '-1')).toContain('records 2–2');
    const status = await d.run('status');
    expect(status.stdout).toContain('1 commit(s) not pushed yet');

    renameSync(away, d.remote!);
    writeTree(src, { 'b.txt': 'b' });
    expect((await d.run('run', '--all')).code).toBe(0);
    const remoteLog = git(d.remote!, 'log', '--format=%s', 'main');
    expect(remoteLog).toContain('records 2–2');
    expect(remoteLog).toContain('records 3–3');
  });

  it('rebases on another host\'s push: hosts never conflict', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const a = await deployment([{ name: 'app', paths: [src] }], { remote: true, host: 'web01' });
    // A second host with its own clone of the same records repository.
    const b = await deployment([{ name: 'app', paths: [src] }], { host: 'web02', enrol: false });
    const clone = join(tempDir(), 'records');
    git(tempDir(), 'clone', '--quiet', a.remote!, clone);
    writeFileSync(b.config, readFileSync(b.config, 'utf8').replace(b.records, clone));
    expect((await b.run('init')).code).toBe(0);
    // web01 pushes after web02: its push is rejected first, then rebased and pushed.
    const r = await a.run('run', '--all');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const tree = git(a.remote!, 'ls-tree', '-r', '--name-only', 'main');
    expect(tree).toContain('hosts/web01/');
    expect(tree).toContain('hosts/web02/');
  });
});
