/**
 * A copy at CSC checked against the primary snapshot's manifest, where it lies: GNU find
 * lists the copy's folder at the target (name, type, size, time to the nanosecond, mode,
 * link target) and OpenSSL (or coreutils' sha256sum where OpenSSL is missing) re-reads its
 * files there, in two processes; the agent compares both with the manifest. The transfer
 * is not trusted, and neither is the primary's disk: a file that decayed on JAA's disk
 * before it was sent fails its copy's check instead of reaching CSC under an "ok" record.
 * Only the listing, the digests and the list of files to read cross the connection.
 */
import { posix } from 'node:path';
import { entryPath, insideSnapshot, sameMtime, type ManifestEntry } from '../schemas/manifest.js';
import { nulList, runTool, type ToolResult } from './exec.js';
import { WALK_FORMAT, WalkBatch } from './target.js';

/** What a copy must match: the primary's snapshot. */
export interface CopyReference {
  /** The primary snapshot's folder: rsync's source, for a target compared by rsync. */
  dir: string;
  /** Its manifest's entries, read afresh on each call. */
  entries: () => AsyncIterable<ManifestEntry>;
  /** SHA-256 of its `manifest.jsonl` and of its `snapshot.yaml`. */
  manifest: string;
  summary: string;
  /**
   * Which files are read back; undefined: all. The others are compared by listing, and must
   * be hard links to the same path in the older copy `linkedFrom` (a snapshot id at the
   * target), read when it was made: one that is not (rsync could not link it) is read too.
   */
  reread?: (entry: ManifestEntry) => boolean;
  linkedFrom?: string;
}

/** One way in which a copy differs from its snapshot. */
export interface Difference {
  /** Relative to the snapshot's folder (`data/…`, `manifest.jsonl`); empty for the whole copy. */
  path: string;
  problem: string;
}

/** How a target's failure to run a check becomes an error: `what` it was doing, the result, whether it was unreachable. */
export type Fail = (what: string, result: ToolResult, unreachable: boolean) => Error;

const SECONDARY = 'at the secondary target';

/** Runs a fixed `sh -c` script at the target with `args` as $1, $2…, `input` on its stdin; `onStdout` sees the output as it comes. */
export type TargetShell = (script: string, args: string[], signal?: AbortSignal, input?: Buffer, onStdout?: (chunk: Buffer) => void) => Promise<{ result: ToolResult; bytes: Buffer; unreachable: boolean }>;

/** The copy's folder listed: one find over the whole folder, paths relative to it. */
const LIST = 'cd "$1" 2>/dev/null || exit 3; TZ=UTC LC_ALL=C exec find . -mindepth 1 -printf "$2"';
/**
 * SHA-256 of the files named on stdin (NUL-separated, relative to the folder), in order.
 * The first line says which tool printed them: OpenSSL is four times faster than
 * sha256sum, which is used where OpenSSL is missing, or forced by $2 for a name holding a
 * newline, which OpenSSL escapes (3.0) or prints as it is (1.1), where sha256sum -z ends
 * each line with a NUL and leaves names alone.
 */
const HASH = 'cd "$1" 2>/dev/null || exit 3; if [ "$2" != z ] && command -v openssl >/dev/null 2>&1; then echo openssl; exec xargs -0 -r openssl dgst -sha256 -r; else echo sha256sum; exec xargs -0 -r sha256sum -z; fi';
/** How many processes read the files at once; one for fewer bytes than ONE_READER_BYTES. */
const READERS = 2;
const ONE_READER_BYTES = 64 << 20;

const TYPES: Record<string, string> = { f: 'a file', d: 'a folder', l: 'a symbolic link', p: 'a fifo', s: 'a socket', c: 'a character device', b: 'a block device' };

/** Where a top-level entry of a snapshot's folder is compared: not from the manifest. */
const OWN = new Set(['data', 'manifest.jsonl', 'snapshot.yaml']);

/**
 * How the copy in folder `dir` at the target differs from `ref`; empty when it matches.
 * `what` names the copy in messages. Throws (from `fail`) when the target cannot be asked.
 * `early`: digests already read at the target (paths as latin1 keys, see EarlyReader); a
 * file whose digest there is the manifest's is compared by listing only.
 */
export async function checkCopy(sh: TargetShell, dir: string, ref: CopyReference, signal: AbortSignal | undefined, fail: Fail, olderDir?: string, early?: ReadonlyMap<string, string>): Promise<Difference[]> {
  const listed = sh(LIST, [dir, WALK_FORMAT], signal);
  listed.catch(() => {});
  // The older copy the files not read back must be hard links into.
  const olderListed = ref.reread && olderDir ? sh(LIST, [olderDir, WALK_FORMAT], signal) : undefined;
  olderListed?.catch(() => {});
  const skipped: Read[] = [];
  // What to read: the files of the manifest (or those `reread` picks), with the two files
  // that describe the snapshot.
  const reads: Read[] = [
    { rel: Buffer.from('manifest.jsonl'), sha256: ref.manifest, size: 0 },
    { rel: Buffer.from('snapshot.yaml'), sha256: ref.summary, size: 0 },
  ];
  // The manifest is read twice, for the files to read now and for the comparison with the
  // listing later, rather than held: 200,000 entries as objects take 40 MB and more.
  for await (const e of ref.entries()) {
    if (e.type !== 'f' || !e.sha256) continue;
    const read = { rel: Buffer.concat([DATA, entryPath(e)]), sha256: e.sha256, size: e.size };
    // Read back while the transfer went on (EarlyReader), with the manifest's bytes: the
    // file at that path is the one rsync renamed into place, which nothing writes again.
    if (early?.get(read.rel.toString('latin1')) === e.sha256) continue;
    (!ref.reread || ref.reread(e) ? reads : skipped).push(read);
  }
  // The reading stops when the listing fails, or shows a file that is not one: OpenSSL
  // would wait forever on a fifo where a file should be.
  const reading = new AbortController();
  const stop = () => reading.abort();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return await compare();
  } finally {
    signal?.removeEventListener('abort', stop);
  }

  async function compare(): Promise<Difference[]> {
    const hashed = Promise.all(split(reads).map((part) => hashPart(sh, dir, part, SECONDARY, reading.signal, fail)));
    // Awaited below, after the listing; until then its failure must not go unhandled.
    hashed.catch(() => {});

    const problems = new Map<string, string>();
    const add = (path: string, problem: string) => {
      if (!problems.has(path)) problems.set(path, problem);
    };
    const list = await listed;
    if (list.result.code !== 0 || list.unreachable) {
      stop();
      await hashed.catch(() => {});
      if (list.result.code === 3) return [{ path: '', problem: "the copy's folder is missing at the secondary target" }];
      throw fail('listing the copy', list.result, list.unreachable);
    }
    const { batch } = WalkBatch.parse(list.bytes);
    let notFile = false;
    const index = listingIndex(batch);
    await compareListing(batch, index, ref.entries(), SECONDARY, 'the primary snapshot', add, (e, i) => {
      if (e.type === 'f' && batch.type(i) !== 'f') notFile = true;
    });
    // The copy differs already: reading its files would add nothing but a wait.
    if (notFile) stop();

    // A file not read back must share its inode with the same path in the older copy; one
    // that does not (the older copy lacks it, or rsync could not link it) is read back too.
    const unlinked: typeof skipped = [];
    if (skipped.length) {
      const older = olderListed ? await olderListed : undefined;
      const inodes = new Map<string, number>();
      if (older && !older.unreachable && older.result.code === 0) {
        const o = WalkBatch.parse(older.bytes).batch;
        for (let i = 0; i < o.length; i++) if (o.isFile(i)) inodes.set(o.rel(i).toString('latin1'), o.ino[i]!);
      }
      for (const r of skipped) {
        const key = r.rel.toString('latin1');
        const i = index.get(key);
        if (i !== undefined && batch.isFile(i) && inodes.get(key) !== batch.ino[i]) unlinked.push(r);
      }
    }
    if (notFile) {
      await hashed.catch(() => {});
      if (signal?.aborted) throw signal.reason;
    } else {
      const parts = [...(await hashed), ...(unlinked.length ? await Promise.all(split(unlinked).map((part) => hashPart(sh, dir, part, SECONDARY, reading.signal, fail))) : [])];
      for (const part of parts) for (const { read, problem } of part) add(read.rel.toString('utf8'), problem);
    }
    return [...problems].map(([path, problem]) => ({ path, problem }));
  }
}

const DATA = Buffer.from('data/');

/** A file to read back: its path in the copy's folder, its manifest digest and size. */
interface Read {
  rel: Buffer;
  sha256: string;
  size: number;
  /** What differing bytes mean, when not "its bytes differ from the manifest's". */
  mismatch?: string;
}

/**
 * What differs between entry `i` of the listing and its manifest entry, as rsync -a would
 * carry it; undefined when nothing. `where` names the target in messages ("at the secondary target").
 */
function metadataDifference(batch: WalkBatch, i: number, e: ManifestEntry, where: string): string | undefined {
  const type = batch.type(i);
  if (type !== e.type) return `is ${TYPES[type]} ${where}, ${TYPES[e.type]} in the snapshot`;
  if (type === 'f' && batch.size[i] !== e.size) return `its size differs: ${batch.size[i]} bytes ${where}, ${e.size} in the manifest`;
  if (type === 'l') {
    const [s, t] = batch.span(i, 'target');
    const want = e.target !== undefined ? Buffer.from(e.target) : Buffer.from(e.target_b64 ?? '', 'base64');
    // A link's own time and mode are not a file's content: a link is its target.
    return batch.buf.subarray(s, t).equals(want) ? undefined : `the link points elsewhere ${where}`;
  }
  if (batch.mode(i) !== parseInt(e.mode, 8)) return `its permissions differ: ${batch.mode(i).toString(8).padStart(4, '0')} ${where}, ${e.mode} in the manifest`;
  // A manifest made on an rsync daemon has times to the second (daemon-primary.ts).
  const mtime = batch.mtime(i);
  if (!sameMtime(e.mtime, mtime)) return `its modification time differs: ${mtime} ${where}, ${e.mtime} in the manifest`;
  return undefined;
}

/** A listing's places by path (latin1, so that any byte name is a key). */
function listingIndex(batch: WalkBatch): Map<string, number> {
  const index = new Map<string, number>();
  for (let i = 0; i < batch.length; i++) index.set(batch.rel(i).toString('latin1'), i);
  return index;
}

/**
 * Compares the listing of a snapshot's folder (`index` from listingIndex) with its manifest,
 * calling `add(path, problem)` for each difference: the folder's own entries (data/,
 * manifest.jsonl, snapshot.yaml), every entry of the manifest (`where` names the target; a
 * path that leaves the snapshot is named as an altered manifest), and nothing more
 * (`manifestName` names what lacks an entry). `found` sees each entry that is in the
 * listing, with its place there and its path in the folder. Throws when the manifest cannot
 * be read.
 */
async function compareListing(batch: WalkBatch, index: Map<string, number>, entries: AsyncIterable<ManifestEntry>, where: string, manifestName: string, add: (path: string, problem: string) => void, found?: (e: ManifestEntry, i: number, path: string) => void): Promise<void> {
  const seen = new Uint8Array(batch.length);
  for (const name of OWN) {
    const i = index.get(name);
    if (i === undefined) add(name, `missing ${where}`);
    else {
      seen[i] = 1;
      if (batch.type(i) !== (name === 'data' ? 'd' : 'f')) add(name, `is ${TYPES[batch.type(i)]} ${where}`);
    }
  }
  for await (const e of entries) {
    const rel = entryPath(e);
    const path = `data/${rel.toString('utf8')}`;
    // A manifest that names a path above the snapshot was not written by respaldo: reading
    // it would read some other file.
    if (!insideSnapshot(rel)) {
      add(path, 'the manifest names a path outside the snapshot: it was altered');
      continue;
    }
    const i = index.get(Buffer.concat([DATA, rel]).toString('latin1'));
    if (i === undefined) {
      add(path, `missing ${where}`);
      continue;
    }
    seen[i] = 1;
    const problem = metadataDifference(batch, i, e, where);
    if (problem) add(path, problem);
    found?.(e, i, path);
  }
  for (let i = 0; i < batch.length; i++) if (!seen[i]) add(batch.rel(i).toString('utf8'), `${where} but not in ${manifestName}`);
}

/** The reads in READERS parts of about the same number of bytes, each in manifest order; one part when they are few. */
export function split<T extends { size: number }>(reads: T[]): T[][] {
  const total = reads.reduce((n, r) => n + r.size, 0);
  const count = total < ONE_READER_BYTES ? 1 : READERS;
  const parts: T[][] = Array.from({ length: count }, () => []);
  const bytes = new Array<number>(count).fill(0);
  for (const r of reads) {
    const k = bytes.indexOf(Math.min(...bytes));
    parts[k]!.push(r);
    bytes[k]! += r.size + 4096;
  }
  return parts.filter((p) => p.length);
}

/** Reads one part's files at the target; the problems found. */
async function hashPart<T extends { rel: Buffer; sha256: string; mismatch?: string }>(sh: TargetShell, dir: string, part: T[], where: string, signal: AbortSignal | undefined, fail: Fail): Promise<{ read: T; problem: string }[]> {
  const digests = await digestsAt(sh, dir, part.map((r) => r.rel), signal, fail);
  const problems: { read: T; problem: string }[] = [];
  part.forEach((r, k) => {
    const digest = digests[k];
    if (digest === undefined) problems.push({ read: r, problem: `could not be read ${where}` });
    else if (digest !== r.sha256) problems.push({ read: r, problem: `${r.mismatch ?? "its bytes differ from the manifest's"} (SHA-256 ${digest.slice(0, 12)}… ${where})` });
  });
  return problems;
}

/**
 * SHA-256 (hex) of the files `rels` (relative to `dir`) read at the target, in the order
 * given; undefined for a file that could not be read. Throws (from `fail`) when the
 * target could not run the reading at all.
 */
export async function digestsAt(sh: TargetShell, dir: string, rels: Buffer[], signal: AbortSignal | undefined, fail: Fail): Promise<(string | undefined)[]> {
  const digests = new Array<string | undefined>(rels.length);
  await streamDigestsAt(sh, dir, rels, signal, fail, (k, digest) => (digests[k] = digest));
  return digests;
}

/**
 * `digestsAt`, each file's digest given to `found(k, digest)` as the target prints it (in
 * the order given; undefined for a file that could not be read), so that what needs the
 * first files need not wait for the last.
 */
export async function streamDigestsAt(sh: TargetShell, dir: string, rels: Buffer[], signal: AbortSignal | undefined, fail: Fail, found: (k: number, digest: string | undefined) => void): Promise<void> {
  const newline = rels.some((r) => r.includes(0x0a));
  const input = nulList(rels);
  let pending: Buffer = Buffer.alloc(0);
  let tool: string | undefined;
  let k = 0;
  // One record per file read, in the order given; a file that could not be read has none.
  const take = (record: Buffer) => {
    const parsed = parseDigest(record, tool!);
    if (!parsed) return;
    let j = k;
    while (j < rels.length && !rels[j]!.equals(parsed.name)) j++;
    if (j === rels.length) return;
    for (; k < j; k++) found(k, undefined);
    found(k++, parsed.digest);
  };
  let streamed = false;
  const feed = (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    if (tool === undefined) {
      const nl = pending.indexOf(0x0a);
      if (nl < 0) return;
      tool = pending.toString('latin1', 0, nl);
      pending = pending.subarray(nl + 1);
    }
    const end = tool === 'openssl' ? 0x0a : 0x00;
    let start = 0;
    for (let e = pending.indexOf(end); e >= 0; e = pending.indexOf(end, start)) {
      take(pending.subarray(start, e));
      start = e + 1;
    }
    pending = pending.subarray(start);
  };
  const { result, bytes, unreachable } = await sh(HASH, [dir, newline ? 'z' : ''], signal, input, (chunk) => {
    streamed = true;
    feed(chunk);
  });
  // A shell that does not stream gives all of it at the end.
  if (!streamed && bytes.length) feed(bytes);
  // xargs exits 123 when a file could not be read: the output then lacks its line, which
  // counts as unread above. Anything else is the target failing to run the check.
  if (unreachable || result.code === 3 || (result.code !== 0 && result.code !== 123)) throw fail('reading files back', result, unreachable);
  for (; k < rels.length; k++) found(k, undefined);
}

/** `<hex> *<name>` (openssl -r; no name holds a newline) or `<hex>  <name>` (sha256sum -z). */
export function parseDigest(body: Buffer, tool: string): { digest: string; name: Buffer } | undefined {
  const digest = body.toString('latin1', 0, 64);
  if (!/^[0-9a-f]{64}$/.test(digest)) return undefined;
  const sep = body.toString('latin1', 64, 66);
  if (sep !== (tool === 'openssl' ? ' *' : '  ')) return undefined;
  return { digest, name: body.subarray(66) };
}

/** `TargetShell` on this machine: the primary target, a secondary on a local path. */
export const localShell: TargetShell = async (script, args, signal, input, onStdout) => {
  const chunks: Buffer[] = [];
  const result = await runTool('sh', ['-c', script, 'sh', ...args], { onStdout: (c) => (chunks.push(c), onStdout?.(c)), ...(signal ? { signal } : {}), ...(input ? { input } : {}) });
  return { result, bytes: Buffer.concat(chunks), unreachable: false };
};

/** A stored snapshot to check where it lies (`checkStored`). */
export interface StoredSnapshot {
  id: string;
  /** The manifest's entries: the target's own, or the primary's when its digest is the record's. */
  entries: () => AsyncIterable<ManifestEntry>;
  /** SHA-256 (hex) of `manifest.jsonl` and of `snapshot.yaml` that the records carry; undefined when no record names the snapshot. */
  manifest: string | undefined;
  summary: string | undefined;
}

/** What `checkStored` found: each snapshot's problems (by id, in the order given), and what it read. */
export interface StoredCheck {
  problems: Map<string, Difference[]>;
  /** Snapshots the target could not check, and why (neither good nor bad). */
  unchecked: Map<string, string>;
  files: number;
  bytes: number;
}

/** A file `checkStored` reads: relative to the repository's folder, with the other snapshots that hold it (hard links) and their paths. */
interface StoredRead extends Read {
  snapshot: number;
  path: string;
  sharers?: [number, string][];
}

/**
 * Checks stored snapshots where they lie, in the repository's folder `base` at a target
 * (verify at rest): each snapshot's folder is listed and compared with its manifest (every
 * name, type, size, time, mode and link target; nothing missing, nothing more), its
 * `manifest.jsonl` and `snapshot.yaml` are read back and matched against the digests the
 * records carry, and the files `pick` selects are read back and matched against the
 * manifest. A file hard-linked into several snapshots is one inode: it is read once, and a
 * damaged one counts against every snapshot that holds it. `where` names the target in
 * messages ("on the primary target").
 */
export async function checkStored(sh: TargetShell, base: string, snapshots: StoredSnapshot[], pick: (e: ManifestEntry) => boolean, where: string, signal: AbortSignal | undefined, fail: Fail): Promise<StoredCheck> {
  const problems = new Map<string, Map<string, string>>(snapshots.map((s) => [s.id, new Map()]));
  const add = (k: number, path: string, problem: string) => {
    const found = problems.get(snapshots[k]!.id)!;
    if (!found.has(path)) found.set(path, problem);
  };
  // Inode → the read of that stored file, claimed by the first snapshot that lists it.
  const claimed = new Map<number, StoredRead>();
  const reads: StoredRead[] = [];
  for (let k = 0; k < snapshots.length; k++) {
    if (signal?.aborted) throw signal.reason;
    const snap = snapshots[k]!;
    const dir = posix.join('snapshots', snap.id);
    const list = await sh(LIST, [posix.join(base, dir), WALK_FORMAT], signal);
    if (list.result.code === 3) {
      add(k, '', `the snapshot's folder is missing ${where}`);
      continue;
    }
    if (list.result.code !== 0 || list.unreachable) throw fail(`listing snapshot ${snap.id}`, list.result, list.unreachable);
    const { batch } = WalkBatch.parse(list.bytes);
    const here = (path: string, problem: string) => add(k, path, problem);
    const pickRead = (e: ManifestEntry, i: number, path: string) => {
      if (e.type !== 'f' || !batch.isFile(i) || !pick(e)) return;
      if (!e.sha256) return here(path, 'the manifest gives no SHA-256 for this file: it cannot be checked');
      const ino = batch.ino[i]!;
      const read = claimed.get(ino);
      if (!read) {
        const r: StoredRead = { rel: Buffer.from(`${dir}/${path}`), sha256: e.sha256, size: batch.size[i]!, snapshot: k, path };
        claimed.set(ino, r);
        reads.push(r);
      } else if (read.sha256 !== e.sha256) here(path, `it is the same stored file as ${read.path} of snapshot ${snapshots[read.snapshot]!.id} (a hard link), whose manifest gives it other bytes: one of the two manifests is wrong`);
      else (read.sharers ??= []).push([k, path]);
    };
    const index = listingIndex(batch);
    for (const [name, sha256] of [['manifest.jsonl', snap.manifest], ['snapshot.yaml', snap.summary]] as const) {
      const i = index.get(name);
      if (sha256 === undefined) here(name, 'no backup or copy record of this host names this snapshot: there is no signed digest to check it against (respaldo run records a snapshot an interrupted run left unrecorded)');
      else if (i !== undefined && batch.isFile(i)) reads.push({ rel: Buffer.from(`${dir}/${name}`), sha256, size: batch.size[i]!, snapshot: k, path: name, mismatch: 'its digest is not the one the backup record carries: it was altered or damaged' });
    }
    await compareListing(batch, index, snap.entries(), where, "the snapshot's manifest", here, pickRead).catch((e: unknown) => {
      if (signal?.aborted) throw e;
      here('manifest.jsonl', `cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    });
  }
  const parts = await Promise.all(split(reads).map((part) => hashPart(sh, base, part, where, signal, fail)));
  for (const part of parts)
    for (const { read, problem } of part) {
      add(read.snapshot, read.path, problem);
      for (const [k, path] of read.sharers ?? []) add(k, path, problem);
    }
  return {
    problems: new Map([...problems].map(([id, found]) => [id, [...found].map(([path, problem]) => ({ path, problem }))])),
    unchecked: new Map(),
    // What was read of the data: manifest.jsonl and snapshot.yaml are read for every snapshot.
    files: reads.filter((r) => r.path.startsWith('data/')).length,
    bytes: reads.reduce((n, r) => n + (r.path.startsWith('data/') ? r.size : 0), 0),
  };
}
