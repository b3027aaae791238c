/** The manifest builder's verification, on real files: what it reuses, what it re-reads, what it rejects. */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { xxhash128 } from 'hash-wasm';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { HashPool } from '../dist/agent/hashing.js';
import { buildManifest, EarlyHasher } from '../dist/agent/manifest.js';
import { RepositoryStore } from '../dist/agent/target.js';
import { TransferLog } from '../dist/agent/transfers.js';
import { entryPath, type ManifestEntry } from '../dist/schemas/manifest.js';
import { tempDir } from './helpers.js';

const pool = new HashPool(2);
afterAll(() => pool.close());

function partial(files: Record<string, string>): { store: RepositoryStore; id: string } {
  const store = new RepositoryStore(tempDir(), 'web01/app');
  const id = '20261122T000000Z';
  for (const [rel, text] of Object.entries(files)) {
    const path = join(store.partialDir(id), 'data', rel);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text);
  }
  return { store, id };
}

/** The manifest of a partial snapshot whose files have no transfer checksum: each is compared with its original in `originals`. */
function againstOriginals(store: RepositoryStore, id: string, originals: string) {
  return buildManifest({
    store,
    id,
    previous: undefined,
    transferred: new TransferLog(),
    origin: (rel) => Buffer.from(join(originals, rel.toString())),
    scope: 'changed',
    pool,
    signal: new AbortController().signal,
    progress: () => {},
  });
}

const sums = {
  sha1: async (text: string) => createHash('sha1').update(text).digest('hex'),
  // As rsync's --checksum-choice=xxh128 prints it with %C.
  xxh128: (text: string) => xxhash128(text),
};

describe('manifest verification', () => {
  for (const algorithm of ['xxh128', 'sha1'] as const) {
    it(`accepts stored copies whose ${algorithm} matches what rsync read, and rejects one that does not`, async () => {
      const { store, id } = partial({ 'a.txt': 'alpha', 'b.txt': 'bravo' });
      const transferred = new TransferLog();
      transferred.algorithm = algorithm;
      transferred.add(Buffer.from('a.txt'), await sums[algorithm]('alpha'));
      transferred.add(Buffer.from('b.txt'), await sums[algorithm]('bravo, as it was read'));
      const result = await buildManifest({ store, id, previous: undefined, transferred, origin: undefined, scope: 'changed', pool, signal: new AbortController().signal, progress: () => {} });
      expect(result.checksum).toEqual({ scope: 'changed', files: 2, bytes: 10, mismatches: 1 });
      expect(result.problems).toEqual([{ path: '/b.txt', problem: 'the stored copy differs from what rsync read at the source' }]);
    });
  }

  it('compares a new file without a transfer checksum with its original, and tells a changed original from a bad copy', async () => {
    const { store, id } = partial({ 'same.txt': 'same', 'moved.txt': 'copy', 'bad.txt': 'copy' });
    const originals = tempDir();
    const when = new Date('2026-11-01T00:00:00Z');
    for (const [name, text] of [['same.txt', 'same'], ['moved.txt', 'orig'], ['bad.txt', 'orig']] as const) writeFileSync(join(originals, name), text);
    // The original of moved.txt has another mtime than its copy: it changed after it was copied.
    utimesSync(join(originals, 'moved.txt'), when, when);
    // bad.txt's original has the copy's size and mtime, yet other bytes: the copy is bad.
    const storedBad = join(store.partialDir(id), 'data', 'bad.txt');
    utimesSync(storedBad, when, when);
    utimesSync(join(originals, 'bad.txt'), when, when);
    const result = await againstOriginals(store, id, originals);
    expect(result.checksum.mismatches).toBe(1);
    expect(result.problems).toEqual([{ path: '/bad.txt', problem: 'the stored copy differs from the original, which did not change since it was copied' }]);
    expect(result.warnings.map((w) => w.code)).toEqual(['changed-during-backup']);
    expect(result.warnings[0]!.message).toContain('/moved.txt');
  });

  it('never follows a link at the original, blocks on a fifo or reads a device', async () => {
    const { store, id } = partial({ 'fifo.txt': 'copy', 'zero.txt': 'copy', 'grown.txt': 'copy' });
    const originals = tempDir();
    execFileSync('mkfifo', [join(originals, 'fifo.txt')]);
    symlinkSync('/dev/zero', join(originals, 'zero.txt'));
    writeFileSync(join(originals, 'grown.txt'), 'copy and much more since then');
    const result = await againstOriginals(store, id, originals);
    expect(result.checksum.mismatches).toBe(0);
    expect(result.warnings.map((w) => w.code).sort()).toEqual(['changed-during-backup', 'original-unreadable']);
    const unreadable = result.warnings.find((w) => w.code === 'original-unreadable')!.message;
    expect(unreadable).toContain('fifo.txt (not a regular file)');
    expect(unreadable).toContain('zero.txt (ELOOP)');
    expect(result.warnings.find((w) => w.code === 'changed-during-backup')!.message).toContain('grown.txt');
  }, 10_000);

  it('writes each entry as the filesystem has it, from find\'s stat or from the read of each file: any name, link targets, modes, and times before 1970 and after 9999', async () => {
    // tmpfs keeps any time; ext4 stops at 1901 and 2446.
    const shm = mkdtempSync('/dev/shm/respaldo-manifest-');
    onTestFinished(() => rmSync(shm, { recursive: true, force: true }));
    const store = new RepositoryStore(shm, 'web01/app');
    const id = '20261122T000000Z';
    const data = join(store.partialDir(id), 'data');
    const names = { space: 'a b/c "d"\\e', accent: 'año/acentó', latin1: Buffer.from([0x63, 0xf1, 0x6f]), newline: 'new\nline' };
    mkdirSync(join(data, 'a b'), { recursive: true });
    mkdirSync(join(data, 'año'));
    writeFileSync(join(data, names.space), 'space');
    writeFileSync(join(data, names.accent), 'accent');
    writeFileSync(Buffer.concat([Buffer.from(`${data}/`), names.latin1]), 'latin1');
    writeFileSync(join(data, names.newline), 'newline');
    symlinkSync(Buffer.from([0x2f, 0xff]) as unknown as string, join(data, 'link'));
    writeFileSync(join(data, 'old'), 'old');
    writeFileSync(join(data, 'far'), 'far');
    chmodSync(join(data, 'old'), 0o4750);
    // Set with touch: its reading of a date does not go through a float.
    execFileSync('touch', ['-d', '1900-01-01 00:00:00.5', join(data, 'old')], { env: { ...process.env, TZ: 'UTC' } });
    execFileSync('touch', ['-d', '@253402300800.25', join(data, 'far')]);
    // Year 500: find prints %TY as 500, not four digits.
    writeFileSync(join(data, 'ancient'), 'ancient');
    execFileSync('touch', ['-d', '@-46388678399.75', join(data, 'ancient')]);
    execFileSync('touch', ['-d', '2026-11-22 03:15:07.123456789', join(data, names.space)], { env: { ...process.env, TZ: 'UTC' } });
    // Once from find's stat of each entry, once from the stat taken where each file is read.
    const build = (light: boolean) => buildManifest({ store, id, previous: undefined, transferred: new TransferLog(), origin: undefined, scope: 'changed', light, pool, signal: new AbortController().signal, progress: () => {} });
    const manifest = join(store.partialDir(id), 'manifest.jsonl');
    const full = await build(false);
    renameSync(manifest, `${manifest}.full`);
    const light = await build(true);
    expect(light).toEqual(full);
    expect(full.checksum.mismatches).toBe(0);
    const lines = readFileSync(manifest, 'utf8').trimEnd().split('\n');
    expect([...lines].sort()).toEqual(readFileSync(`${manifest}.full`, 'utf8').trimEnd().split('\n').sort());
    const entries = new Map(lines.map((line) => JSON.parse(line) as ManifestEntry).map((e) => [entryPath(e).toString('latin1'), e]));
    const at = (name: string | Buffer) => entries.get(Buffer.from(name).toString('latin1'))!;
    expect(entries.size).toBe(10);
    expect(at('ancient')).toMatchObject({ mtime: '0500-01-01T00:00:00.250000000Z' });
    expect(at('old')).toMatchObject({ type: 'f', size: 3, mode: '4750', mtime: '1900-01-01T00:00:00.500000000Z', sha256: createHash('sha256').update('old').digest('hex') });
    expect(at('far')).toMatchObject({ mtime: '+010000-01-01T00:00:00.250000000Z', mode: '0644' });
    expect(at(names.space)).toMatchObject({ path: names.space, size: 5, mtime: '2026-11-22T03:15:07.123456789Z' });
    expect(at(names.accent)).toMatchObject({ path: names.accent, sha256: createHash('sha256').update('accent').digest('hex') });
    expect(at(names.latin1)).toMatchObject({ path_b64: names.latin1.toString('base64'), size: 6 });
    expect(at(names.newline)).toMatchObject({ path: names.newline, size: 7 });
    expect(at('link')).toMatchObject({ type: 'l', target_b64: Buffer.from([0x2f, 0xff]).toString('base64') });
    expect(at('año')).toMatchObject({ type: 'd' });
  });

  it('hashes a copy while rsync goes on once enough newer data was reported, and the rest when it is drained', async () => {
    const dir = tempDir();
    const files = ['a', 'b', 'c'].map((name) => join(dir, name));
    // 40 MB each, sparse: as rsync reports them, with their sizes.
    for (const f of files) {
      writeFileSync(f, '');
      truncateSync(f, 40 << 20);
    }
    const log = new TransferLog();
    log.algorithm = 'xxh128';
    const early = new EarlyHasher(pool, log, (rel) => Buffer.from(join(dir, rel.toString())));
    const zeros = await xxhash128(new Uint8Array(40 << 20));
    log.add(Buffer.from('a'), zeros, 40 << 20);
    expect(log.get(Buffer.from('a'))!.stored).toBeUndefined();
    // 40 MB reported after a: the receiver has read past it, and that is a batch's worth.
    log.add(Buffer.from('b'), zeros, 40 << 20);
    for (let i = 0; i < 100 && !log.get(Buffer.from('a'))!.stored; i++) await new Promise((r) => setTimeout(r, 20));
    expect(log.get(Buffer.from('a'))!.stored).toMatchObject({ matches: true, size: 40 << 20 });
    expect(log.get(Buffer.from('b'))!.stored).toBeUndefined();
    log.add(Buffer.from('c'), '00'.repeat(16), 40 << 20);
    await early.drain(true);
    expect(log.get(Buffer.from('b'))!.stored).toMatchObject({ matches: true });
    // c's copy does not match what the sender read: recorded so, for buildManifest to report.
    expect(log.get(Buffer.from('c'))!.stored).toMatchObject({ matches: false });
  });
});
