/**
 * The new snapshot's tree is hard-linked from the previous one but for what changed. A file
 * that changes after that comparison must not be written through its hard link: the
 * previous snapshot would change with it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rsyncCompare } from '../dist/agent/rsync.js';
import { filesSource } from '../dist/agent/sources/files.js';
import { LocalTarget } from '../dist/agent/target.js';
import { TransferLog } from '../dist/agent/transfers.js';
import { deployment, describeTree, tempDir, verified, writeTree } from './helpers.js';

const signal = new AbortController().signal;

async function snapshot(store: ReturnType<LocalTarget['repository']>, id: string, src: string, linkDest: string | undefined, keepExisting: boolean): Promise<void> {
  await store.begin(id);
  await filesSource.snapshot({
    repository: { name: 'app', kind: 'files', paths: [src] },
    dest: store.dataDest(id),
    store,
    id,
    rsh: [],
    linkDest,
    keepExisting,
    signal,
    env: process.env,
    progress: undefined,
    transferred: new TransferLog(),
  });
  mkdirSync(join(store.base, 'snapshots'), { recursive: true });
  execFileSync('mv', [store.partialDir(id), store.snapshotDir(id)]);
}

describe('linking the previous snapshot', () => {
  it('never writes through a link when a file changes after the comparison', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'alpha\n', 'b.txt': 'bravo\n', 'c.txt': 'charlie\n', 'sub/d.txt': 'delta\n' });
    const target = tempDir();
    const store = new LocalTarget('primary', target).repository('web01', 'app');
    await store.prepare();
    await snapshot(store, '20261101T000000Z', src, undefined, false);
    const first = join(store.snapshotDir('20261101T000000Z'), 'data', src);
    const before = describeTree(first);

    // c.txt changes before the comparison; a.txt (content) and b.txt (permissions only) after it.
    writeFileSync(join(src, 'c.txt'), 'charlie, changed\n');
    const comparison = await rsyncCompare({ sources: [src], exclude: [], snapshotData: store.linkDest('20261101T000000Z'), rsh: [], limit: 1000, signal, env: process.env });
    expect(comparison.unchanged).toBe(false);
    expect(comparison.stale!.map((b: Buffer) => b.toString())).toEqual([`${src.slice(1)}/c.txt`]);
    writeFileSync(join(src, 'a.txt'), 'ALPHA\n');
    utimesSync(join(src, 'a.txt'), new Date('2026-01-01'), new Date('2026-01-01'));
    chmodSync(join(src, 'b.txt'), 0o600);

    const id = '20261102T000000Z';
    await store.begin(id);
    expect(await store.linkPrevious('20261101T000000Z', id, comparison.stale!, signal)).toBe(true);
    await filesSource.snapshot({
      repository: { name: 'app', kind: 'files', paths: [src] },
      dest: store.dataDest(id),
      store,
      id,
      rsh: [],
      linkDest: undefined,
      keepExisting: true,
      signal,
      env: process.env,
      progress: undefined,
      transferred: new TransferLog(),
    });
    const second = join(store.partialDir(id), 'data', src);

    // The previous snapshot is exactly as it was: contents, modes, times, inodes.
    expect(describeTree(first)).toEqual(before);
    // The new one holds c.txt as compared, and a.txt and b.txt as they were when compared.
    expect(readFileSync(join(second, 'c.txt'), 'utf8')).toBe('charlie, changed\n');
    expect(statSync(join(second, 'c.txt')).ino).not.toBe(statSync(join(first, 'c.txt')).ino);
    for (const name of ['a.txt', 'b.txt', 'sub/d.txt']) expect(statSync(join(second, name)).ino, name).toBe(statSync(join(first, name)).ino);
    expect(readFileSync(join(second, 'a.txt'), 'utf8')).toBe('alpha\n');
  });

  it('gives up, leaving an empty data folder, when the list names something outside the tree', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'alpha\n' });
    const store = new LocalTarget('primary', tempDir()).repository('web01', 'app');
    await store.prepare();
    await snapshot(store, '20261101T000000Z', src, undefined, false);
    const id = '20261102T000000Z';
    await store.begin(id);
    mkdirSync(join(store.partialDir(id), 'data', 'leftover'), { recursive: true });
    expect(await store.linkPrevious('20261101T000000Z', id, [Buffer.from('../../snapshots')], signal)).toBe(false);
    expect(readdirSync(join(store.partialDir(id), 'data'))).toEqual([]);
    expect(readdirSync(store.snapshotDir('20261101T000000Z'))).toContain('data');
  });

  it('a link or a file that became a folder is replaced, never followed out of the snapshot', async () => {
    // A deploy link to a folder elsewhere on the server, and a file; later both become folders.
    const live = tempDir();
    writeTree(live, { 'photo.jpg': 'the live photo\n', 'keep/doc.txt': 'keep me\n' });
    const src = tempDir();
    writeTree(src, { 'index.html': 'hello\n', notes: 'a file for now\n' });
    for (let i = 0; i < 10; i++) writeTree(src, { [`more/f${i}.txt`]: `${i}\n` });
    symlinkSync(live, join(src, 'uploads'));
    const d = await deployment([{ name: 'app', paths: [src] }]);
    expect((await d.run('run', '--all')).code).toBe(0);

    rmSync(join(src, 'uploads'));
    rmSync(join(src, 'notes'));
    writeTree(src, { 'uploads/photo.jpg': 'a new photo\n', 'uploads/keep/doc.txt': 'new doc\n', 'notes/today.txt': 'now a folder\n' });
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    // Nothing outside the source was touched.
    expect(readFileSync(join(live, 'photo.jpg'), 'utf8')).toBe('the live photo\n');
    expect(readFileSync(join(live, 'keep/doc.txt'), 'utf8')).toBe('keep me\n');
    const [first, second] = d.snapshots('app');
    const data = (id: string) => join(d.target, 'web01/app/snapshots', id, 'data', src);
    expect(readlinkSync(join(data(first!), 'uploads'))).toBe(live);
    expect(readFileSync(join(data(first!), 'notes'), 'utf8')).toBe('a file for now\n');
    expect(lstatSync(join(data(second!), 'uploads')).isDirectory()).toBe(true);
    expect(readFileSync(join(data(second!), 'uploads/photo.jpg'), 'utf8')).toBe('a new photo\n');
    expect(readFileSync(join(data(second!), 'notes/today.txt'), 'utf8')).toBe('now a folder\n');
    expect(statSync(join(data(second!), 'more/f3.txt')).ino).toBe(statSync(join(data(first!), 'more/f3.txt')).ino);
    // And the next run finds nothing changed.
    expect((await d.run('run', '--all')).code).toBe(0);
    expect(d.snapshots('app')).toEqual([first, second]);
    await verified(d);
  });
});
