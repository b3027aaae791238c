/**
 * The check of a copy at CSC against the primary's manifest (agent/copy-check.ts): a
 * snapshot the real agent made, copied with `cp -a`, then damaged one way at a time; the
 * check runs through `sh`, GNU find and OpenSSL, or sha256sum where OpenSSL is missing.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, renameSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { checkCopy, type CopyReference, type TargetShell } from '../agent/copy-check.js';
import { runTool } from '../agent/exec.js';
import { RepositoryStore } from '../agent/target.js';
import { digestOf } from '../schemas/record.js';
import { deployment, type Deployment } from './helpers.js';

/** Which tool read each part of the files (the first line of the reads' output), by the last check. */
let readers: string[] = [];

/** `sh` on this machine, with `PATH` as given: the target's shell. */
function shell(path = process.env.PATH!): TargetShell {
  readers = [];
  return async (script, args, signal, input) => {
    const chunks: Buffer[] = [];
    const result = await runTool('sh', ['-c', script, 'sh', ...args], { env: { ...process.env, PATH: path }, onStdout: (c) => chunks.push(c), ...(signal ? { signal } : {}), ...(input ? { input } : {}) });
    const bytes = Buffer.concat(chunks);
    if (input) readers.push(bytes.subarray(0, bytes.indexOf(0x0a)).toString());
    return { result, bytes, unreachable: false };
  };
}

/** A PATH with what the check needs but OpenSSL. */
function withoutOpenssl(root: string): string {
  const bin = join(root, 'bin-no-openssl');
  mkdirSync(bin);
  for (const tool of ['sh', 'find', 'xargs', 'sha256sum', 'cat']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
  return bin;
}

const fail = (what: string) => new Error(`${what} failed`);

describe('a copy checked at the target against the manifest', () => {
  let d: Deployment;
  let store: RepositoryStore;
  let id: string;
  let ref: CopyReference;
  /** The source's folder inside a snapshot's data: its whole path. */
  let docs: string;
  let n = 0;

  /** A fresh exact copy of the snapshot, as rsync -a would leave it at CSC. */
  const copy = () => {
    const dir = join(d.root, 'csc', `copy ${++n}`);
    mkdirSync(join(d.root, 'csc'), { recursive: true });
    execFileSync('cp', ['-a', store.snapshotDir(id), dir]);
    return dir;
  };
  /** One bit of a file of the copy flipped; its size and time (to the nanosecond, from the primary's) kept. */
  const flip = (dir: string, rel: string, at = 0) => {
    const f = join(dir, docs, rel);
    const bytes = readFileSync(f);
    bytes[at] ^= 1;
    writeFileSync(f, bytes);
    execFileSync('touch', ['-h', '-r', join(store.snapshotDir(id), docs, rel), f]);
  };
  const problems = async (dir: string, r: CopyReference = ref, path?: string, older?: string) => (await checkCopy(shell(path), dir, r, undefined, fail, older)).map((p) => `${p.path} | ${p.problem}`).sort();

  beforeAll(async () => {
    d = await deployment([{ name: 'docs', paths: ['/placeholder'] }]);
    const source = join(d.root, 'docs');
    docs = `data${source}`;
    mkdirSync(join(source, 'sub dir'), { recursive: true });
    writeFileSync(join(source, 'a.txt'), 'alpha\n');
    writeFileSync(join(source, 'sub dir/b.bin'), Buffer.alloc(300_000, 7));
    writeFileSync(join(source, 'new\nline.txt'), 'two lines of name\n');
    writeFileSync(join(source, 'back\\slash.txt'), 'backslash\n');
    writeFileSync(Buffer.from(join(source, 'latin-\xe9.txt'), 'latin1'), 'not utf-8\n');
    writeFileSync(join(source, 'empty'), '');
    // Past 64 MiB the files are read in two parts, each by a process of its own.
    execFileSync('truncate', ['-s', '65M', join(source, 'big.img')]);
    writeFileSync(join(source, 'secret.key'), 'k\n', { mode: 0o600 });
    symlinkSync('a.txt', join(source, 'link'));
    const config = parse(readFileSync(d.config, 'utf8'));
    config.repositories[0].paths = [source];
    writeFileSync(d.config, JSON.stringify(config));
    const run = await d.run('run', '--all');
    expect(run.code, run.stderr).toBe(0);
    [id] = d.snapshots('docs') as [string];
    store = new RepositoryStore(join(d.target, d.host, 'docs'), `${d.host}/docs`);
    const { summary, bytes } = await store.readSummary(id);
    ref = { dir: store.snapshotDir(id), entries: () => store.manifestEntries(id), manifest: summary.manifest.replace(/^sha256:/, ''), summary: digestOf(bytes).replace(/^sha256:/, '') };
  });

  it('finds nothing in an exact copy, odd names and all, whether OpenSSL or sha256sum reads it', async () => {
    const dir = copy();
    expect(await problems(dir)).toEqual([]);
    // Two parts; the one with the name that holds a newline is read by sha256sum -z.
    expect(readers.sort()).toEqual(['openssl', 'sha256sum']);
    expect(await problems(dir, ref, withoutOpenssl(d.root))).toEqual([]);
    expect(readers).toEqual(['sha256sum', 'sha256sum']);
    // Without the name that holds a newline, the files go to OpenSSL itself.
    const plain: CopyReference = { ...ref, entries: async function* () {
      for await (const e of ref.entries()) if (!e.path?.includes('\n')) yield e;
    } };
    unlinkSync(join(dir, docs, 'new\nline.txt'));
    execFileSync('touch', ['-r', join(store.snapshotDir(id), docs), join(dir, docs)]);
    expect(await problems(dir, plain)).toEqual([]);
    expect(readers).toEqual(['openssl', 'openssl']);
  });

  it('names each damage: a flipped byte, a missing file, an extra one, permissions, times, a retargeted link, an altered manifest', async () => {
    const dir = copy();
    const at = (rel: string) => join(dir, rel.replace(/^docs\//, `${docs}/`));
    // One byte changed, size and time kept: only reading the bytes finds it.
    flip(dir, 'sub dir/b.bin', 150_000);
    unlinkSync(at('docs/a.txt'));
    writeFileSync(at('docs/stray.txt'), 'not in the snapshot\n');
    chmodSync(at('docs/secret.key'), 0o644);
    utimesSync(at('docs/empty'), new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    unlinkSync(at('docs/link'));
    symlinkSync('elsewhere', at('docs/link'));
    writeFileSync(at('manifest.jsonl'), readFileSync(at('manifest.jsonl'), 'utf8').replace('"a.txt"', '"A.txt"'));
    const found = await problems(dir);
    const problem = (rel: string) => found.find((p) => p.startsWith(`${docs}/${rel} | `))?.split(' | ')[1];
    expect(found.map((p) => p.split(' | ')[0])).toEqual([...['', '/a.txt', '/empty', '/link', '/secret.key', '/stray.txt', '/sub dir/b.bin'].map((f) => `${docs}${f}`), 'manifest.jsonl']);
    // The folder whose files were added and removed has another time.
    expect(found[0]).toMatch(/ \| its modification time differs/);
    expect(problem('sub dir/b.bin')).toMatch(/^its bytes differ from the manifest's/);
    expect(problem('a.txt')).toBe('missing at the secondary target');
    expect(problem('stray.txt')).toBe('at the secondary target but not in the primary snapshot');
    expect(problem('secret.key')).toBe('its permissions differ: 0644 at the secondary target, 0600 in the manifest');
    expect(problem('empty')).toMatch(/^its modification time differs: 2020-01-01T00:00:00\.000000000Z at the secondary target/);
    expect(problem('link')).toBe('the link points elsewhere at the secondary target');
    expect(found.at(-1)).toMatch(/^manifest\.jsonl \| its bytes differ/);
    // The same damage read by sha256sum.
    expect(await problems(dir, ref, withoutOpenssl(join(d.root, 'csc')))).toEqual(found);
  });

  it('reads back the files picked and those that are not links into the older copy, and lists every one', async () => {
    const older = copy();
    const dir = join(d.root, 'csc', `copy ${++n}`);
    execFileSync('cp', ['-al', older, dir]);
    // Damage in a file shared with the older copy (one inode, read when that copy was made): not read again.
    flip(dir, 'sub dir/b.bin');
    // A file stored anew (picked) and one rsync did not link (not picked): both read.
    for (const rel of ['a.txt', 'back\\slash.txt']) {
      const f = join(dir, docs, rel);
      const bytes = readFileSync(f);
      bytes[0] ^= 1;
      unlinkSync(f);
      writeFileSync(f, bytes);
      execFileSync('touch', ['-r', join(store.snapshotDir(id), docs, rel), f]);
    }
    execFileSync('touch', ['-r', join(store.snapshotDir(id), docs), join(dir, docs)]);
    chmodSync(join(dir, docs, 'secret.key'), 0o644);
    const only: CopyReference = { ...ref, reread: (e) => e.path === `${docs.slice('data/'.length)}/a.txt`, linkedFrom: 'older' };
    const found = await problems(dir, only, undefined, older);
    expect(found.map((p) => p.split(' | ')[0])).toEqual([`${docs}/a.txt`, `${docs}/back\\slash.txt`, `${docs}/secret.key`]);
    expect(found[1]).toMatch(/its bytes differ from the manifest's/);
    // Without the older copy to show the links, every file is read.
    expect((await problems(dir, { ...only, linkedFrom: 'gone' }, undefined, join(d.root, 'csc', 'gone'))).map((p) => p.split(' | ')[0])).toContain(`${docs}/sub dir/b.bin`);
  });

  it('does not wait on a fifo where a file should be', async () => {
    const dir = copy();
    const f = join(dir, docs, 'sub dir/b.bin');
    unlinkSync(f);
    execFileSync('mkfifo', [f]);
    execFileSync('touch', ['-r', join(store.snapshotDir(id), docs, 'sub dir'), join(dir, docs, 'sub dir')]);
    expect(await problems(dir)).toEqual([`${docs}/sub dir/b.bin | is a fifo at the secondary target, a file in the snapshot`]);
  });

  it('says a copy is missing when its folder is', async () => {
    const dir = copy();
    renameSync(dir, `${dir} gone`);
    expect(await problems(dir)).toEqual([" | the copy's folder is missing at the secondary target"]);
  });
});
