/**
 * A primary target in a module of an rsync daemon: `targets.primary: { url:
 * rsync://[user@]host[:port]/module/path, password-file: … }`, a NAS that offers rsync and
 * nothing else. A daemon runs no command for its clients, so what the other targets do
 * where the snapshots lie (list them with find, read them back with OpenSSL, rename a
 * finished snapshot into place) is done here with rsync alone:
 *
 * - a snapshot is sent straight into `snapshots/<id>/data/`, with `--link-dest` to the
 *   previous one and `--fsync`; its `manifest.jsonl` follows, and its `snapshot.yaml` goes
 *   last: a folder without one is an incomplete snapshot, never listed, cleared by the next
 *   run (the layout of CSC's copies in a daemon, secondary-rsyncd.ts);
 * - the stored files are read back by the daemon itself: a dry run with `--checksum
 *   --checksum-choice=sha1` makes it read each file and send its SHA-1. A file stored anew
 *   must have the SHA-1 of its original, read here (whose SHA-256 goes in the manifest), and
 *   of what rsync sent (the transfer's own checksum, SHA-1 too). The manifest keeps both
 *   digests: the SHA-1 is what verify at rest can ask the daemon for later;
 * - the daemon lists entries with times to the second: the manifest's times are to the
 *   second on such a target, and every comparison of times is made to the precision the
 *   manifest gives;
 * - a daemon shows no inodes. A file linked from the previous snapshot (same path, size,
 *   time and mode, not sent) keeps the previous manifest's `ino`; one stored anew gets a
 *   number made from the snapshot's id and its path. Copies to CSC tell what changed by
 *   these numbers, as they do by inodes.
 *
 * Copies to CSC go through a folder here (`<state>/relay`): rsync cannot copy from a daemon
 * to another host. Only what changed since CSC's older copy is fetched, the whole snapshot
 * for a first copy.
 */
import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { encodeName, entryPath, insideSnapshot, secondOf, type ManifestEntry } from '../schemas/manifest.js';
import type { SnapshotSummary } from '../schemas/snapshot.js';
import type { SecondaryLocation } from './config.js';
import type { Difference, StoredCheck, StoredSnapshot } from './copy-check.js';
import { BackupFailure, messageOf } from './errors.js';
import { eachLine, lastLines, nulList, splitNul, type ToolResult } from './exec.js';
import type { HashResult } from './hashing.js';
import type { ManifestInput, ManifestOutcome } from './manifest.js';
import { logSent, unescapeName } from './rsync.js';
import { TransferLog } from './transfers.js';
import { down, RsyncDaemonStore, RsyncDaemonTarget, withScratch } from './secondary-rsyncd.js';
import { StagedStore } from './staged-store.js';
import type { FetchSource } from './secondary.js';
import { isoFromEpoch, type Hasher, type PrimaryStore, type PrimaryTarget, type WalkBatch } from './target.js';

type DaemonLocation = Extract<SecondaryLocation, { kind: 'rsync' }>;

/** One entry of a dry run's `--out-format=%i %l %M %B %n%L`: the itemized change, size, time, permissions, name (and link target). */
const ITEM_RE = /^(\S{11}) (\d+) (\d{4})\/(\d\d)\/(\d\d)-(\d\d):(\d\d):(\d\d) ([-rwxsStT]{9}) (.*)$/;
/** One file of a dry run's `--out-format=%C %n` with --checksum: its SHA-1 as the daemon read it. */
const SUM_RE = /^([0-9a-f]{40}) (.*)$/;
const ARROW = Buffer.from(' -> ');
/** What a daemon that munges links puts before each target it stores. */
const MUNGED = '/rsyncd-munged/';
/** The sum rsync gives a file it could not open. */
const UNREAD = '0'.repeat(40);

/** How many files the originals' hashing takes at a time. */
const BATCH = 1024;

/** An entry of the daemon's listing of a folder: its path under it as bytes, rsync's type letter, size, time to the second, mode, raw link part. */
interface Item {
  rel: Buffer;
  /** %i's second letter: f file, d folder, L link, D device, S special. */
  kind: string;
  size: number;
  /** "2026-11-22T03:15:07Z". */
  mtime: string;
  mode: number;
  /** For a link, the name and target as rsync printed them ("name -> target"), unescaped. */
  named?: Buffer;
}

/** `rwsr-x--T` as permission bits. */
function modeOf(bits: string): number {
  let mode = 0;
  const special = [0o4000, 0o2000, 0o1000];
  for (let who = 0; who < 3; who++) {
    const [r, w, x] = bits.slice(who * 3, who * 3 + 3);
    const shift = (2 - who) * 3;
    if (r === 'r') mode |= 4 << shift;
    if (w === 'w') mode |= 2 << shift;
    if (x === 'x' || x === 's' || x === 't') mode |= 1 << shift;
    if (x === 's' || x === 'S' || x === 't' || x === 'T') mode |= special[who]!;
  }
  return mode;
}

/** A manifest's time and a listed one (to the second), to the second. */
function sameSecond(manifest: string, listed: string): boolean {
  return secondOf(manifest) === listed;
}

/** How long the arguments of one `pull` may grow. */
const ARGS_BYTES = 64 << 10;

/**
 * A path under a daemon's folder as an argument that names it alone, `<url>/./<path>`;
 * undefined when none can. The daemon expands wildcards (* ? [) in what it is asked for,
 * and takes a backslash as an escape only in a name that has one: a name with wildcards
 * gets them escaped, one with a backslash goes as it is, and one with both, or whose bytes
 * are not UTF-8 (node passes arguments as UTF-8), cannot be named.
 */
export function daemonArg(url: string, rel: Buffer): string | undefined {
  const name = rel.toString('utf8');
  if (!Buffer.from(name).equals(rel)) return undefined;
  const wild = /[*?[]/.test(name);
  if (wild && name.includes('\\')) return undefined;
  return `${url}/./${wild ? name.replace(/[*?[]/g, (c) => `\\${c}`) : name}`;
}

/** A stand-in for the inode of a file stored anew in snapshot `id` (see the top of this file): 52 bits, a safe integer. */
function madeIno(id: string, rel: Buffer): number {
  return parseInt(createHash('sha256').update(`${id}\0`).update(rel).digest('hex').slice(0, 13), 16);
}

export class DaemonPrimaryTarget implements PrimaryTarget {
  readonly role = 'primary' as const;
  readonly daemon: RsyncDaemonTarget;

  constructor(
    location: DaemonLocation,
    private readonly state: string,
  ) {
    this.daemon = new RsyncDaemonTarget(location, 'primary');
  }

  get display(): string {
    return this.daemon.display;
  }

  get root(): string {
    return this.daemon.root;
  }

  check(signal?: AbortSignal): Promise<void> {
    return this.daemon.check(signal);
  }

  async hasHost(host: string): Promise<boolean> {
    const listed = await this.daemon.list([`--filter=+ /${host}/`, '--filter=- *'], "looking for the host's folder");
    return listed.some((e) => e.path === host && e.type === 'd');
  }

  hostDir(host: string): string {
    return posix.join(this.root, host);
  }

  missingHost(host: string): string {
    return `check that the NAS's disk is mounted under the module's path there (rsync --list-only ${this.daemon.rsyncPath(this.root)}/ shows what the daemon sees), and run again; if it is a new, empty disk on purpose, create the folder ${host} in the target's folder there and run again`;
  }

  repository(host: string, name: string): DaemonPrimaryStore {
    return new DaemonPrimaryStore(this, posix.join(this.root, host, name), `${host}/${name}`, join(this.state, 'staging', host, name), join(this.state, 'relay', host, name));
  }

  async close(): Promise<void> {}
}

export class DaemonPrimaryStore extends StagedStore implements PrimaryStore {
  readonly checksum = 'sha1' as const;
  /** What CSC's copies in a daemon do that a primary there does too: listing, fetching, marking, deleting. */
  protected readonly at: RsyncDaemonStore;

  constructor(
    readonly target: DaemonPrimaryTarget,
    base: string,
    rel: string,
    staging: string,
    /** Where copies to CSC are fetched into. */
    private readonly relay: string,
  ) {
    super(base, rel, staging);
    this.at = new RsyncDaemonStore(target.daemon, base, rel);
  }

  protected shown(path: string): string {
    return this.daemon.rsyncPath(path);
  }

  private get daemon(): RsyncDaemonTarget {
    return this.target.daemon;
  }

  /** A snapshot is built where it will stay: without its `snapshot.yaml`, it is incomplete. */
  partialDir(id: string): string {
    return this.snapshotDir(id);
  }

  private leftovers: string[] = [];

  /** Makes the repository's folder in the module if it is missing, and lists the snapshots, complete or not. */
  async prepare(): Promise<void> {
    const { exists, ids } = await this.at.folders();
    if (!exists) await this.at.makeFolders();
    this.listed = [...ids].filter(([, complete]) => complete).map(([id]) => id);
    this.leftovers = [...ids].filter(([, complete]) => !complete).map(([id]) => id);
  }

  damaged(id: string): string {
    return `the snapshot was damaged after it was made (check the NAS's disk); have it moved aside in the module (to ${posix.join(this.rel, `damaged-${id}`)}) so that the next run makes a fresh copy`;
  }

  async readSummary(id: string, where: 'snapshots' | 'incomplete' = 'snapshots'): Promise<{ summary: SnapshotSummary; bytes: Buffer }> {
    const file = posix.join(this.snapshotDir(id), 'snapshot.yaml');
    const bytes = where === 'incomplete' ? await readFile(join(this.stagingDir(id), 'snapshot.yaml')) : (this.summaries.get(id) ?? (await this.at.fetch(file)));
    if (!bytes) throw new BackupFailure('manifest', `the summary ${this.daemon.rsyncPath(file)} of snapshot ${id} is missing`, this.damaged(id));
    return this.parsedSummary(id, file, bytes, where);
  }

  /** --link-dest, relative to the new snapshot's `data/` (the daemon resolves it inside the module). */
  linkDest(id: string): string {
    return `../../${id}/data/`;
  }

  snapshotData(id: string): string {
    return this.daemon.rsyncPath(posix.join(this.snapshotDir(id), 'data'));
  }

  dataDest(id: string): string {
    return `${this.snapshotData(id)}/`;
  }

  /** The daemon's connection options; every file written is flushed there (nothing can run `sync`), its folders made. */
  async rsh(): Promise<string[]> {
    return [...(await this.daemon.rsyncShell()), '--fsync', '--mkpath'];
  }

  async rsyncEnv(base: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv> {
    const own = await this.daemon.rsyncEnv();
    return { ...base, TZ: 'UTC', RSYNC_PASSWORD: own.RSYNC_PASSWORD ?? '' };
  }

  /** Clears the incomplete snapshots of interrupted runs (in the module and here). */
  async begin(id: string): Promise<string[]> {
    const cleared = this.leftovers.length ? await this.at.removeLeftovers() : [];
    this.leftovers = [];
    await this.freshStaging(id);
    return cleared;
  }

  /** A daemon cannot link a tree by itself: rsync's --link-dest does it. */
  async linkPrevious(): Promise<boolean> {
    return false;
  }

  /** What `sendStaged` sent, with the SHA-1 of what rsync read (as the sources' transfer logs it). */
  private readonly stagedSent = new TransferLog();

  async sendStaged(id: string, previous: string | undefined, signal: AbortSignal): Promise<void> {
    const args = ['-a', '--numeric-ids', '--modify-window=-1', '--fsync', '--mkpath', '--checksum-choice=sha1', '--out-format=%C %i %l %n', ...(previous ? [`--link-dest=${this.linkDest(previous)}`] : []), `${join(this.stagingDir(id), 'data')}/`, this.dataDest(id)];
    const result = await this.daemon.rsync(args, { signal, onStdout: eachLine((line) => logSent(this.stagedSent, line)) });
    if (result.code !== 0) throw this.daemon.failure(`sending snapshot ${id}'s files`, result);
  }

  partialPath(id: string, rel: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${this.snapshotDir(id)}/data/`), rel]);
  }

  storedPath(id: string, rel: Buffer): Buffer {
    return this.partialPath(id, rel);
  }

  /** The originals are hashed here; the stored files are read by the daemon (see `buildManifest`). */
  hasher(local: Hasher): Hasher {
    return local;
  }

  // eslint-disable-next-line require-yield
  async *walk(): AsyncGenerator<WalkBatch> {
    throw new Error('a snapshot in an rsync daemon is listed by rsync (DaemonPrimaryStore.buildManifest), not walked');
  }

  /** Nothing to do: every transfer ran with --fsync. */
  async flush(): Promise<void> {}

  /** Sends the manifest, then the summary: from then on the snapshot is complete. */
  async publish(id: string, signal?: AbortSignal): Promise<void> {
    const dir = this.stagingDir(id);
    const sent = await this.daemon.rsync(['-a', '--numeric-ids', '--fsync', '--filter=+ /manifest.jsonl', '--filter=- *', `${dir}/`, this.at.url(id)], { signal });
    if (sent.code !== 0) throw this.daemon.failure(`sending the manifest of snapshot ${id}`, sent);
    await this.at.publish(dir, id, false, signal);
    this.summaries.set(id, await readFile(join(dir, 'snapshot.yaml')));
    this.manifests.set(id, await readFile(join(dir, 'manifest.jsonl')));
    await rm(dir, { recursive: true, force: true });
  }

  async discard(id: string): Promise<void> {
    await this.at.removeSnapshot(id);
    await rm(this.stagingDir(id), { recursive: true, force: true });
  }

  async movedAside(id: string): Promise<boolean> {
    const name = `damaged-${id}`;
    const listed = await this.daemon.list([...down(this.rel), `--filter=+ /${this.rel}/${name}`, '--filter=- *'], 'looking for a snapshot moved aside');
    return listed.some((e) => e.path === `${this.rel}/${name}`);
  }

  async fileDigest(id: string, name: string): Promise<string | undefined> {
    const bytes = await this.at.fetch(posix.join(this.snapshotDir(id), name));
    return bytes ? `sha256:${createHash('sha256').update(bytes).digest('hex')}` : undefined;
  }

  /** A copy to CSC is sent from a folder here, fetched from the daemon (see FetchSource). */
  snapshotSource(id: string): FetchSource {
    return { fetch: (send, signal) => this.fetchForCopy(id, send, signal) };
  }

  private async fetchForCopy(id: string, send: Buffer | undefined, signal?: AbortSignal): Promise<string> {
    // One snapshot at a time: another's files are no longer needed.
    for (const other of await readdir(this.relay).catch(() => [])) if (other !== id) await rm(join(this.relay, other), { recursive: true, force: true });
    const dir = join(this.relay, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // What a later copy sends, named one by one; the whole snapshot when a name cannot be (see daemonArg).
    const names = send ? splitNul(send) : undefined;
    const url = this.daemon.rsyncPath(this.snapshotDir(id));
    const args = names?.map((n) => daemonArg(url, n));
    const result = args?.every((a) => a !== undefined) ? await this.pull(args, dir, signal) : await this.daemon.rsync(['-a', '--numeric-ids', '--delete', this.at.url(id), `${dir}/`], { signal });
    if (result.code !== 0) {
      const known = this.daemon.explain(result);
      throw new BackupFailure('copy', `fetching snapshot ${id} from the primary target ${this.daemon.display} into ${dir}, for the copy to CSC, failed: ${known?.message ?? `rsync exit code ${result.code}: ${lastLines(result.stderr, 2)}`}`, `check the space here (df ${this.relay}: a first copy needs room for the whole snapshot) and the primary target; the copy waits and is retried on the next run`, {
        detail: result.stderr,
        ...(result.code === null ? {} : { exitCode: result.code }),
      });
    }
    return dir;
  }

  /**
   * Copies the entries `rels` (relative to the module's folder `dir`; folders without what
   * is in them) into `dest` here, each at its path. They go as arguments (`daemonArg`), a
   * batch at a time, not by --files-from: rsync 3.5's daemon finds none of the files a
   * client names that way when it sends them ("file has vanished"), though it lists them.
   */
  private async pull(args: string[], dest: string, signal?: AbortSignal): Promise<ToolResult> {
    let batch: string[] = [];
    let length = 0;
    let failed: ToolResult | undefined;
    const run = async () => {
      if (!batch.length) return;
      const result = await this.daemon.rsync(['-lptgoD', '--dirs', '--relative', '--numeric-ids', ...batch, `${dest}/`], { signal });
      if (result.code !== 0) failed ??= result;
      batch = [];
      length = 0;
    };
    for (const arg of args) {
      batch.push(arg);
      length += arg.length + 1;
      if (length > ARGS_BYTES) await run();
    }
    await run();
    return failed ?? { code: 0, signal: null, stderr: '' };
  }

  async release(): Promise<void> {
    await rm(this.relay, { recursive: true, force: true, maxRetries: 5 });
  }

  /**
   * Every entry under the folder `dir` of the module, as the daemon lists it: a dry run that
   * copies it into an empty folder here, printing each entry.
   */
  private async listTree(dir: string, signal?: AbortSignal): Promise<Item[]> {
    const items: Item[] = [];
    let unknown: string | undefined;
    const result = await withScratch((empty) => this.daemon.rsync(['-a', '--dry-run', '--out-format=%i %l %M %B %n%L', `${this.daemon.rsyncPath(dir)}/`, `${empty}/`], { signal, onStdout: eachLine((line) => {
      if (line === '' || unknown !== undefined) return;
      const m = ITEM_RE.exec(line);
      if (!m) {
        unknown = line;
        return;
      }
      const kind = m[1]![1]!;
      const rest = unescapeName(m[10]!);
      const named = kind === 'L' ? rest : undefined;
      // A link's size is its target's length: what follows the name and " -> ", which either
      // may hold. A daemon that "munges" links (rsyncd.conf, the default without chroot)
      // gives the length of what it stores, MUNGED longer than what it shows and gives back.
      let size = Number(m[2]);
      const arrowAt = (n: number) => n >= 0 && rest.length - n - ARROW.length >= 0 && rest.subarray(rest.length - n - ARROW.length, rest.length - n).equals(ARROW);
      if (kind === 'L' && !arrowAt(size) && arrowAt(size - MUNGED.length)) size -= MUNGED.length;
      let rel = kind === 'L' ? rest.subarray(0, Math.max(0, rest.length - size - ARROW.length)) : rest;
      if (rel.length && rel[rel.length - 1] === 0x2f) rel = rel.subarray(0, rel.length - 1);
      if (rel.length === 0 || (rel.length === 1 && rel[0] === 0x2e)) return;
      items.push({ rel, kind, size, mtime: `${m[3]}-${m[4]}-${m[5]}T${m[6]}:${m[7]}:${m[8]}Z`, mode: modeOf(m[9]!), ...(named ? { named } : {}) });
    }) }));
    if (result.code !== 0) throw this.daemon.failure(`listing ${dir}`, result);
    if (unknown !== undefined) throw new BackupFailure('target', `cannot read rsync's listing of ${this.daemon.rsyncPath(dir)}: "${unknown.slice(0, 200)}"`, 'report it with this message: the rsync at either end prints its listing in a form respaldo does not know');
    return items;
  }

  /**
   * SHA-1 of the files `rels` (relative to the folder `dir` of the module), read by the daemon
   * (latin1 keys); a file it could not read has none.
   */
  private async daemonSums(dir: string, rels: Buffer[], signal?: AbortSignal): Promise<Map<string, string>> {
    const sums = new Map<string, string>();
    if (!rels.length) return sums;
    const input = nulList(rels);
    const result = await withScratch((empty) =>
      this.daemon.rsync(['-a', '--dry-run', '--checksum', '--checksum-choice=sha1', '--ignore-missing-args', '--from0', '--files-from=-', '--out-format=%C %n', `${this.daemon.rsyncPath(dir)}/`, `${empty}/`], {
        signal,
        input,
        onStdout: eachLine((line) => {
          const m = SUM_RE.exec(line);
          // rsync gives a file it could not open an all-zero sum, and goes on: not read.
          if (m && m[1] !== UNREAD) sums.set(unescapeName(m[2]!).toString('latin1'), m[1]!);
        }),
      }),
    );
    // 23: some file could not be read; it has no digest, which its check names.
    if (result.code !== 0 && result.code !== 23) throw this.daemon.failure(`reading files back in ${dir}`, result);
    return sums;
  }

  /** SHA-256 and SHA-1 of the stored copies of `rels` under `dir`, fetched into a folder here (files that changed while they were backed up: few). */
  private async fetchedDigests(dir: string, rels: Buffer[], pool: Hasher, signal: AbortSignal): Promise<Map<string, HashResult>> {
    const out = new Map<string, HashResult>();
    if (!rels.length) return out;
    await withScratch(async (scratch) => {
      // A file that cannot be fetched (or named, see daemonArg) has no digest, which its check names.
      const url = this.daemon.rsyncPath(dir);
      const result = await this.pull(rels.map((r) => daemonArg(url, r)).filter((a): a is string => a !== undefined), scratch, signal);
      if (result.code !== 0 && result.code !== 23 && result.code !== 24) throw this.daemon.failure(`fetching files from ${dir}`, result);
      const results = await pool.hash(rels.map((r) => ({ path: Buffer.concat([Buffer.from(`${scratch}/`), r]), transfer: 'sha1' as const })));
      rels.forEach((r, i) => out.set(r.toString('latin1'), results[i]!));
    });
    return out;
  }

  /**
   * The partial snapshot's manifest, from the daemon's listing and read-back (see the top
   * of this file), written in the staging folder; verification problems counted as
   * buildManifest counts them.
   */
  async buildManifest(input: ManifestInput): Promise<ManifestOutcome> {
    const { id, previous, transferred, origin, scope, pool, signal } = input;
    const data = posix.join(this.snapshotDir(id), 'data');
    const items = await this.listTree(data, signal);
    const prev = new Map<string, ManifestEntry>();
    if (previous) for await (const e of this.manifestEntries(previous)) if (e.type === 'f' && e.sha1) prev.set(entryPath(e).toString('latin1'), e);

    // Files linked from the previous snapshot keep its digests; the others are read back.
    const linked = new Map<string, ManifestEntry>();
    const toRead: Buffer[] = [];
    for (const it of items) {
      if (it.kind !== 'f') continue;
      const key = it.rel.toString('latin1');
      const p = prev.get(key);
      // Not sent (a path rsync may have sent counts as sent): rsync linked it to the previous snapshot's.
      if (p && p.size === it.size && sameSecond(p.mtime, it.mtime) && parseInt(p.mode, 8) === it.mode && !transferred.mayHaveSent(it.rel) && !this.stagedSent.mayHaveSent(it.rel)) linked.set(key, p);
      if (!linked.has(key) || scope === 'full') toRead.push(it.rel);
    }
    const sums = await this.daemonSums(data, toRead, signal);

    // The originals (or the files made here) of the files stored anew, hashed here.
    const fresh = items.filter((it) => it.kind === 'f' && !linked.has(it.rel.toString('latin1')));
    const originals = new Map<string, HashResult>();
    for (let k = 0; k < fresh.length; k += BATCH) {
      const part = fresh.slice(k, k + BATCH);
      const results = origin ? await pool.hash(part.map((it) => ({ path: origin(it.rel), recheck: true, limit: it.size, transfer: 'sha1' as const }))) : part.map((): HashResult => ({ error: 'ENOENT' }));
      if (signal.aborted) throw signal.reason;
      part.forEach((it, i) => originals.set(it.rel.toString('latin1'), results[i]!));
    }
    // Where the original changed since rsync sent exactly what the daemon holds, the stored
    // copy itself is fetched and hashed (the manifest below takes it only then).
    const sentSum = (rel: Buffer) => transferred.get(rel)?.sum ?? this.stagedSent.get(rel)?.sum;
    const differing = fresh.filter((it) => {
      const key = it.rel.toString('latin1');
      const sum = sums.get(key);
      const original = originals.get(key);
      return sum !== undefined && original?.transfer !== sum && sentSum(it.rel) === sum && changedSince(original, it);
    });
    const fetched = await this.fetchedDigests(data, differing.map((it) => it.rel), pool, signal);

    const size = { bytes: 0, files: 0, dirs: 0, symlinks: 0, others: 0 };
    const changed = { files: 0, bytes: 0 };
    const checksum = { scope, files: 0, bytes: 0, mismatches: 0 };
    const problems: { path: string; problem: string }[] = [];
    const changedDuring: string[] = [];
    const fail = (rel: Buffer, problem: string) => {
      checksum.mismatches++;
      if (problems.length < 20) problems.push({ path: rel.toString('utf8'), problem });
    };
    const lines: Buffer[] = [];
    for (const it of items) {
      const key = it.rel.toString('latin1');
      let type: ManifestEntry['type'];
      let ino = madeIno(id, it.rel);
      let sha256: string | undefined;
      let sha1: string | undefined;
      let target: Buffer | undefined;
      if (it.kind === 'f') {
        type = 'f';
        size.files++;
        size.bytes += it.size;
        const sum = sums.get(key);
        const before = linked.get(key);
        if (sum !== undefined) {
          checksum.files++;
          checksum.bytes += it.size;
        }
        if (before) {
          ino = before.ino;
          sha256 = before.sha256;
          sha1 = before.sha1;
          if (scope === 'full' && sum === undefined) fail(it.rel, 'could not be read back at the primary target');
          else if (sum !== undefined && sum !== before.sha1) fail(it.rel, 'the stored copy no longer matches the digest it had in the previous snapshot (damaged on the NAS?)');
        } else {
          changed.files++;
          changed.bytes += it.size;
          const original = originals.get(key);
          const sent = sentSum(it.rel);
          if (sum === undefined) fail(it.rel, 'could not be read back at the primary target');
          else if (original?.transfer === sum && original.sha256) {
            sha256 = original.sha256;
            sha1 = sum;
          } else if (sent === undefined) fail(it.rel, `the stored copy differs from the original (SHA-1 ${sum.slice(0, 12)}… at the primary target), and rsync did not send it in this run`);
          else if (sent !== sum) fail(it.rel, `the stored copy differs from what rsync sent (SHA-1 ${sum.slice(0, 12)}… at the primary target, ${sent.slice(0, 12)}… sent)`);
          else if (!changedSince(original, it)) fail(it.rel, 'the stored copy differs from the original, which did not change since it was sent');
          else {
            // The original changed since it was sent: the snapshot holds what was sent, read
            // here from a fetched copy for its SHA-256.
            const copy = fetched.get(key);
            if (!copy?.sha256 || copy.transfer !== sum) fail(it.rel, 'the stored copy could not be fetched to be read here, or changed while it was');
            else {
              sha256 = copy.sha256;
              sha1 = sum;
              changedDuring.push(`/${it.rel.toString('utf8')}`);
            }
          }
        }
      } else if (it.kind === 'd') {
        type = 'd';
        size.dirs++;
      } else if (it.kind === 'L') {
        type = 'l';
        size.symlinks++;
        target = linkTarget(it);
      } else {
        size.others++;
        type = otherType(it, origin);
      }
      const entry = {
        ...encodeName(it.rel, 'path'),
        type,
        size: it.size,
        mtime: it.mtime,
        mode: it.mode.toString(8).padStart(4, '0'),
        ino,
        ...(sha256 ? { sha256 } : {}),
        ...(sha1 ? { sha1 } : {}),
        ...(target ? encodeName(target, 'target') : {}),
      };
      lines.push(Buffer.from(`${JSON.stringify(entry)}\n`));
    }
    const text = Buffer.concat(lines);
    await writeFile(join(this.stagingDir(id), 'manifest.jsonl'), text, { flag: 'wx' });
    input.progress(items.length);
    const warnings = changedDuring.length
      ? [{ code: 'changed-during-backup', message: `${changedDuring.length} file(s) changed while they were being backed up; the snapshot holds the version that was copied: ${changedDuring.slice(0, 5).join(', ')}${changedDuring.length > 5 ? ', …' : ''}` }]
      : [];
    return { digest: `sha256:${createHash('sha256').update(text).digest('hex')}`, size, changed, checksum, problems, warnings };
  }

  /** Every file of a complete snapshot read back by the daemon and matched with the manifest's SHA-1. */
  async checkSnapshot(id: string, signal: AbortSignal): Promise<Pick<ManifestOutcome, 'checksum' | 'problems'>> {
    const checksum = { scope: 'full' as const, files: 0, bytes: 0, mismatches: 0 };
    const problems: { path: string; problem: string }[] = [];
    const files: ManifestEntry[] = [];
    for await (const e of this.manifestEntries(id)) {
      if (e.type !== 'f') continue;
      if (!insideSnapshot(entryPath(e)))
        throw new BackupFailure('manifest', `the manifest of snapshot ${id} names "${entryPath(e).toString('utf8')}", which is not a path inside the snapshot`, 'the manifest was altered (respaldo never writes such a path): check who changed the NAS; nothing was read from it');
      files.push(e);
    }
    const sums = await this.daemonSums(posix.join(this.snapshotDir(id), 'data'), files.map(entryPath), signal);
    for (const e of files) {
      const sum = sums.get(entryPath(e).toString('latin1'));
      checksum.files++;
      if (sum !== undefined) checksum.bytes += e.size;
      const problem = !e.sha1 ? 'the manifest holds no SHA-1 for it, which is what the daemon can check' : sum === undefined ? 'cannot read the stored copy' : sum !== e.sha1 ? 'the stored copy no longer matches the hash it had when it was backed up (damaged NAS disk?)' : undefined;
      if (problem) {
        checksum.mismatches++;
        if (problems.length < 20) problems.push({ path: entryPath(e).toString('utf8'), problem });
      }
    }
    return { checksum, problems };
  }

  /**
   * Verify at rest in the module: each snapshot's own files against the digests its records
   * carry, its listing against the manifest (every entry's type, size, time to the second,
   * permissions and link target; nothing missing, nothing more), and the files `pick`
   * selects read back by the daemon against the manifest's SHA-1.
   */
  async checkStored(snapshots: StoredSnapshot[], pick: (e: ManifestEntry) => boolean, signal?: AbortSignal): Promise<StoredCheck> {
    const problems = new Map<string, Difference[]>();
    const unchecked = new Map<string, string>();
    let files = 0;
    let bytes = 0;
    const where = 'on the primary target';
    for (const snap of snapshots) {
      if (signal?.aborted) throw signal.reason;
      const found = new Map<string, string>();
      const add = (path: string, problem: string) => {
        if (!found.has(path)) found.set(path, problem);
      };
      for (const [name, sha256] of [['manifest.jsonl', snap.manifest], ['snapshot.yaml', snap.summary]] as const) {
        const own = await this.fileDigest(snap.id, name);
        if (own === undefined) add(name, `missing ${where}`);
        else if (sha256 === undefined) add(name, 'no backup or copy record of this host names this snapshot: there is no signed digest to check it against');
        else if (own !== `sha256:${sha256}`) add(name, 'does not match the digest its record carries');
      }
      const listed = new Map<string, Item>();
      for (const it of await this.listTree(this.snapshotDir(snap.id), signal)) listed.set(it.rel.toString('latin1'), it);
      for (const own of ['data', 'manifest.jsonl', 'snapshot.yaml']) listed.delete(own);
      const read: Buffer[] = [];
      const digests = new Map<string, string | undefined>();
      try {
        for await (const e of snap.entries()) {
          const rel = entryPath(e);
          const path = `data/${rel.toString('utf8')}`;
          if (!insideSnapshot(rel)) {
            add(path, 'the manifest names a path outside the snapshot: it was altered');
            continue;
          }
          const key = Buffer.concat([Buffer.from('data/'), rel]).toString('latin1');
          const it = listed.get(key);
          listed.delete(key);
          if (!it) {
            add(path, `missing ${where}`);
            continue;
          }
          const problem = listedDifference(it, e, where);
          if (problem) add(path, problem);
          else if (e.type === 'f' && pick(e)) {
            read.push(Buffer.from(key, 'latin1'));
            digests.set(key, e.sha1);
            files++;
            bytes += e.size;
          }
        }
      } catch (e) {
        unchecked.set(snap.id, `its manifest cannot be read: ${messageOf(e)}`);
        problems.set(snap.id, [...found].map(([path, problem]) => ({ path, problem })));
        continue;
      }
      for (const it of listed.values()) add(it.rel.toString('utf8'), `${where} but not in the manifest`);
      const sums = await this.daemonSums(this.snapshotDir(snap.id), read, signal);
      for (const [key, sha1] of digests) {
        const sum = sums.get(key);
        const path = Buffer.from(key, 'latin1').toString('utf8');
        if (!sha1) add(path, 'the manifest holds no SHA-1 for it, which is what the daemon can check');
        else if (sum === undefined) add(path, `could not be read ${where}`);
        else if (sum !== sha1) add(path, `its bytes differ from the manifest's (SHA-1 ${sum.slice(0, 12)}… ${where})`);
      }
      problems.set(snap.id, [...found].map(([path, problem]) => ({ path, problem })));
    }
    return { problems, unchecked, files, bytes };
  }
}

const TYPE_NAMES: Record<string, string> = { f: 'a file', d: 'a folder', l: 'a symbolic link', p: 'a fifo', s: 'a socket', c: 'a character device', b: 'a block device' };
const KINDS: Record<string, string[]> = { f: ['f'], d: ['d'], L: ['l'], D: ['c', 'b'], S: ['p', 's'] };

/** What differs between a listed entry and its manifest entry; undefined when nothing. */
function listedDifference(it: Item, e: ManifestEntry, where: string): string | undefined {
  if (!(KINDS[it.kind] ?? []).includes(e.type)) return `is of another type ${where}, ${TYPE_NAMES[e.type]} in the snapshot`;
  if (e.type === 'f' && it.size !== e.size) return `its size differs: ${it.size} bytes ${where}, ${e.size} in the manifest`;
  if (e.type === 'l') {
    const want = e.target !== undefined ? Buffer.from(e.target) : Buffer.from(e.target_b64 ?? '', 'base64');
    if (!it.named?.equals(Buffer.concat([it.rel, ARROW, want])))
      return `its link target differs ${where}`;
  }
  if (e.type !== 'l' && it.mode !== parseInt(e.mode, 8)) return `its permissions differ: ${it.mode.toString(8).padStart(4, '0')} ${where}, ${e.mode} in the manifest`;
  if (!sameSecond(e.mtime, it.mtime)) return `its modification time differs: ${it.mtime} ${where}, ${e.mtime} in the manifest`;
  return undefined;
}

/** Whether an original shows that it changed since the stored copy was made (listed as `it`): gone, changed while read, another size or another second. */
function changedSince(original: HashResult | undefined, it: Item): boolean {
  if (!original || original.error !== undefined || original.changedWhileRead || original.size !== it.size) return true;
  return original.mtimeSec === undefined || secondOf(isoFromEpoch(`${original.mtimeSec}.${String(original.mtimeNsec ?? 0).padStart(9, '0')}`)) !== it.mtime;
}

/** A listed link's target: its last `size` bytes. */
function linkTarget(it: Item): Buffer {
  return it.named!.subarray(it.named!.length - it.size);
}

/** A device or special file's type: the original's, else a character device or a fifo. */
function otherType(it: Item, origin: ((rel: Buffer) => Buffer) | undefined): ManifestEntry['type'] {
  try {
    const st = origin ? lstatSync(origin(it.rel), { throwIfNoEntry: false }) : undefined;
    if (st?.isBlockDevice()) return 'b';
    if (st?.isCharacterDevice()) return 'c';
    if (st?.isSocket()) return 's';
    if (st?.isFIFO()) return 'p';
  } catch {
    // the listing's letter decides
  }
  return it.kind === 'D' ? 'c' : 'p';
}
