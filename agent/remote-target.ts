/**
 * A primary target on another host, reached over SSH (`targets.primary: { url:
 * user@host:/path, host-key: … }`): the same layout as a local one, built the same way.
 * rsync copies the sources straight into `incomplete/<id>/data` there, with `--link-dest`
 * to the previous snapshot on that host, so a backup sends only what changed. The stored
 * snapshot is then listed (GNU find) and its new files read back (OpenSSL or sha256sum)
 * where they lie, each matched against its original here; files that are hard links to
 * the previous snapshot take their digest from its manifest. The manifest and the summary
 * are written here, in a staging folder under the agent's state, and sent last; the
 * snapshot is flushed and published with one rename, as on a local disk.
 *
 * Sources that make files (database dumps, git bundles) make them in the staging folder,
 * from which rsync sends them: the checks that need them (a test restore, `git bundle
 * verify`) read them here.
 */
import { readFile, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { compareSnapshotIds, SNAPSHOT_ID_RE } from '../schemas/common.js';
import type { ManifestEntry } from '../schemas/manifest.js';
import type { SnapshotSummary } from '../schemas/snapshot.js';
import type { Config, TargetLocation } from './config.js';
import { checkStored, digestsAt, split, streamDigestsAt, type Fail, type StoredCheck, type StoredSnapshot } from './copy-check.js';
import { BackupFailure } from './errors.js';
import { lastLines, nulList, runTool } from './exec.js';
import type { HashJob, HashResult } from './hashing.js';
import { DaemonPrimaryTarget } from './daemon-primary.js';
import { StagedStore } from './staged-store.js';
import { RMTREE, roleWords, SecondaryStore, ShellTarget, type RelaySource } from './secondary.js';
import { LocalTarget, WALK_FORMAT, WalkBatch, type Hasher, type PrimaryStore, type PrimaryTarget } from './target.js';

/**
 * The first byte of a stored file's path handed to the hash pool: no path on this machine
 * holds a NUL, so `hasher` tells the files to read at the target from the originals to
 * read here without any other mark, and a local read of one fails instead of reading some
 * other file.
 */
const AT_TARGET = Buffer.from([0]);
/** $1 (empty) replaced by hard links to the previous snapshot's data $2, then what stdin names (NUL-separated, relative to $1) removed by the script $3. */
const LINK_PREVIOUS = 'rmdir -- "$1" && cp -al -- "$2" "$1" && cd "$1" && exec xargs -0 -r sh -c "$3" sh';
/**
 * Removes each path given, when every folder above it in the new tree is a real folder or
 * gone (removed as stale itself): a removal never follows a link out of the snapshot.
 * Anything else fails the whole linking.
 */
const REMOVE_STALE = 'for p; do d=$p; while :; do case $d in */*) d=${d%/*} ;; *) break ;; esac; if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then exit 9; fi; done; rm -rf -- "$p" || exit 9; done';

/** A stale name from rsync's listing: relative, and never through `..`. */
function safeStale(rel: Buffer): boolean {
  return rel.length > 0 && rel[0] !== 0x2f && !rel.includes(0) && !rel.toString('latin1').split('/').includes('..');
}

/** The folder $1 made, its snapshots listed (C order), then a NUL and the last one's summary, if it has one. */
const PREPARE = 'umask 077; mkdir -p "$1" && cd "$1" || exit 1; last=; for f in *; do [ -d "$f" ] && printf "%s\\n" "$f" && last=$f; done; if [ -n "$last" ] && [ -f "$last/snapshot.yaml" ]; then printf "\\0" && cat -- "$last/snapshot.yaml"; fi; exit 0';

/**
 * The partial snapshot $1 given its summary (the first $4 bytes of stdin: dd reads no more
 * than a block) and its manifest (the rest), flushed, and renamed to $2 in $3.
 */
const PUBLISH = 'umask 077; dd of="$1/snapshot.yaml" bs="$4" count=1 iflag=fullblock status=none && cat > "$1/manifest.jsonl" && sync -f "$1" || exit 1; if [ -e "$2" ]; then echo "$2 already exists" >&2; exit 1; fi; mv -T "$1" "$2" && sync -f "$3"';

/** How many reading processes run at the target at once (each an ssh session of the shared connection). */
const READERS = 2;

/** The primary target the config names: a local path, a host over SSH, or a module of an rsync daemon. */
export function openPrimary(config: Config): PrimaryTarget {
  const l = config.targets.primary;
  if (l.kind === 'local') return new LocalTarget('primary', l.path);
  if (l.kind === 'rsync') return new DaemonPrimaryTarget(l, config.state);
  return new RemotePrimaryTarget(l, config.state, config.host);
}

export class RemotePrimaryTarget extends ShellTarget implements PrimaryTarget {
  declare readonly role: 'primary';

  /** `host`: the host whose folder the run's check looks for too (see hasHost). */
  constructor(location: Extract<TargetLocation, { kind: 'ssh' }>, state: string, host: string) {
    super(location, state, 'primary');
    this.probed.push(host);
  }

  /** Whether the host's folder was there when the run's check looked (for the host the target was opened for). */
  async hasHost(host: string): Promise<boolean> {
    await this.check();
    return this.found.has(host);
  }

  hostDir(host: string): string {
    return posix.join(this.root, host);
  }

  repository(host: string, name: string): RemoteRepositoryStore {
    return new RemoteRepositoryStore(this, posix.join(this.root, host, name), `${host}/${name}`, join(this.state, 'staging', host, name));
  }
}

export class RemoteRepositoryStore extends StagedStore implements PrimaryStore {
  /** The scripts CSC's copies use for listing, reading, flushing, publishing and pruning. */
  protected readonly at: SecondaryStore;

  constructor(
    readonly target: RemotePrimaryTarget,
    base: string,
    rel: string,
    staging: string,
  ) {
    super(base, rel, staging);
    this.at = new SecondaryStore(target, base, rel);
  }

  partialDir(id: string): string {
    return posix.join(this.base, 'incomplete', id);
  }

  protected shown(path: string): string {
    return this.target.rsyncPath(path);
  }

  /**
   * Makes the repository's folders and lists its snapshots, with the summary of the last in
   * the shell's order (the newest but for a run's second snapshot of one second), in one command.
   */
  async prepare(): Promise<void> {
    const out = await this.must(PREPARE, [posix.join(this.base, 'snapshots')], 'preparing the repository\'s folder');
    const cut = out.indexOf(0);
    const names = out.toString('utf8', 0, cut < 0 ? out.length : cut).split('\n');
    this.listed = names.filter((n) => SNAPSHOT_ID_RE.test(n)).sort(compareSnapshotIds);
    const last = names.filter(Boolean).at(-1);
    if (cut >= 0 && last && SNAPSHOT_ID_RE.test(last)) this.summaries.set(last, out.subarray(cut + 1));
  }

  private must(script: string, args: string[], what: string, signal?: AbortSignal, input?: Buffer): Promise<Buffer> {
    return this.at.mustBytes(script, args, what, signal, input);
  }

  damaged(id: string): string {
    return `the snapshot was damaged after it was made (check the target host's disk: dmesg, smartctl); move it aside there (mv ${this.snapshotDir(id)} ${posix.join(this.base, `damaged-${id}`)}) so that the next run makes a fresh copy`;
  }

  async readSummary(id: string, where: 'snapshots' | 'incomplete' = 'snapshots'): Promise<{ summary: SnapshotSummary; bytes: Buffer }> {
    const file = posix.join(this.base, where, id, 'snapshot.yaml');
    const bytes = (where === 'snapshots' ? this.summaries.get(id) : undefined) ?? (await this.must('cat -- "$1"', [file], `reading ${file}`));
    return this.parsedSummary(id, file, bytes, where);
  }

  /**
   * rsync's --link-dest for a complete snapshot, on the target: its absolute path, or for a
   * root relative to the login's home, the way from `incomplete/<id>/data` (rsync walks a
   * relative basis from the destination folder).
   */
  linkDest(id: string): string {
    return this.base.startsWith('/') ? posix.join(this.snapshotDir(id), 'data') : `../../../snapshots/${id}/data`;
  }

  /** A complete snapshot's data folder as rsync's destination for a comparison. */
  snapshotData(id: string): string {
    return this.target.rsyncPath(posix.join(this.snapshotDir(id), 'data'));
  }

  dataDest(id: string): string {
    return `${this.target.rsyncPath(posix.join(this.partialDir(id), 'data'))}/`;
  }

  /** rsync's options to reach the target: its own connection, for the bulk of the bytes. */
  rsh(): Promise<string[]> {
    return this.target.rsyncShell(true);
  }

  /** Files of a partial snapshot being read at the target, by their path there (latin1): each one's digest, as it comes. */
  private readonly reading = new Map<string, Promise<string | undefined>>();

  /** Clears what interrupted runs left in `incomplete/` (at the target and here) and makes a fresh partial snapshot. */
  async begin(id: string): Promise<string[]> {
    const out = await this.must(`${RMTREE}umask 077; mkdir -p "$1" && cd "$1" && for f in *; do [ -e "$f" ] && printf "%s\\n" "$f" && rmtree "$f"; done; mkdir -p "$2"`, [posix.join(this.base, 'incomplete'), posix.join(this.partialDir(id), 'data')], 'preparing the snapshot\'s folder');
    await this.freshStaging(id);
    return out.toString('utf8').split('\n').filter(Boolean);
  }

  /** Sends what a source made in `stage(id)` into the partial snapshot, files unchanged since `previous` hard-linked there. */
  async sendStaged(id: string, previous: string | undefined, signal: AbortSignal): Promise<void> {
    const args = ['-a', '--numeric-ids', '--modify-window=-1', ...(previous ? [`--link-dest=${this.linkDest(previous)}`] : []), ...(await this.rsh()), `${join(this.stagingDir(id), 'data')}/`, this.dataDest(id)];
    const result = await runTool('rsync', args, { signal });
    if (result.code !== 0) throw new BackupFailure('transfer', `sending the snapshot's files to ${this.target.display} failed: rsync exit code ${result.code}: ${lastLines(result.stderr, 2)}`, 'check the network and the target host\'s disk (space: df); the previous snapshot is intact', { detail: result.stderr, ...(result.code === null ? {} : { exitCode: result.code }) });
  }

  /**
   * Fills the partial snapshot's data at the target with hard links to the previous
   * snapshot's entries but the stale ones, as RepositoryStore.linkPrevious does here: one
   * `cp -al` there instead of rsync's lookup of each file in --link-dest. False when it could
   * not be done (the data folder is then left empty, and rsync links with --link-dest).
   */
  async linkPrevious(previous: string, id: string, stale: Buffer[], signal: AbortSignal): Promise<boolean> {
    const data = posix.join(this.partialDir(id), 'data');
    if (!stale.every(safeStale)) return false;
    const input = nulList(stale);
    const linked = await this.target.shBytes(LINK_PREVIOUS, [data, posix.join(this.snapshotDir(previous), 'data'), REMOVE_STALE], signal, input);
    if (signal.aborted) throw new BackupFailure('interrupted', `the run was interrupted (${String(signal.reason)})`, 'run again; the previous snapshot is intact');
    if (linked.unreachable) throw this.failing()('linking the previous snapshot', linked.result, true);
    if (linked.result.code === 0) return true;
    await this.must(`${RMTREE}rmtree "$1" && mkdir "$1"`, [data], 'clearing the snapshot\'s folder', signal);
    return false;
  }

  private paths(where: 'snapshots' | 'incomplete', id: string, rel: Buffer): Buffer {
    return Buffer.concat([AT_TARGET, Buffer.from(`${posix.join(this.base, where, id, 'data')}/`), rel]);
  }

  partialPath(id: string, rel: Buffer): Buffer {
    return this.paths('incomplete', id, rel);
  }

  storedPath(id: string, rel: Buffer): Buffer {
    return this.paths('snapshots', id, rel);
  }

  /**
   * The hash pool for this store's manifest: stored files (their paths from `partialPath`,
   * `storedPath`) are read at the target, READERS parts at a time; originals here, by `local`.
   */
  hasher(local: Hasher): Hasher {
    let running = 0;
    const waiting: (() => void)[] = [];
    const slot = async <T>(work: () => Promise<T>): Promise<T> => {
      if (running >= READERS) await new Promise<void>((resolve) => waiting.push(resolve));
      running++;
      try {
        return await work();
      } finally {
        running--;
        waiting.shift()?.();
      }
    };
    // The paths are read from the root, or from the login's home for a relative root.
    const absolute = this.base.startsWith('/');
    const result = (sha256: string | undefined): HashResult => (sha256 ? { sha256 } : { error: 'EIO' });
    const remote = async (jobs: HashJob[]): Promise<HashResult[]> => {
      // Files the walk started reading (see `walk`) are waited for; the rest read now.
      const results = new Array<HashResult>(jobs.length);
      const rest: number[] = [];
      await Promise.all(
        jobs.map(async (j, i) => {
          const started = this.reading.get(j.path.toString('latin1', AT_TARGET.length));
          if (started) results[i] = result(await started);
          else rest.push(i);
        }),
      );
      if (!rest.length) return results;
      const rels = rest.map((i) => jobs[i]!.path.subarray(AT_TARGET.length + (absolute ? 1 : 0)));
      const digests = await slot(() => digestsAt(this.at.shell, absolute ? '/' : '.', rels, undefined, this.failing()));
      rest.forEach((i, k) => (results[i] = result(digests[k])));
      return results;
    };
    return {
      size: local.size,
      hash: async (jobs) => {
        const there: number[] = [];
        const here: number[] = [];
        jobs.forEach((j, i) => (j.path[0] === AT_TARGET[0] ? there : here).push(i));
        const [a, b] = await Promise.all([there.length ? remote(there.map((i) => jobs[i]!)) : [], here.length ? local.hash(here.map((i) => jobs[i]!)) : []]);
        const results = new Array<HashResult>(jobs.length);
        there.forEach((i, k) => (results[i] = a[k]!));
        here.forEach((i, k) => (results[i] = b[k]!));
        return results;
      },
    };
  }

  private failing(): ReturnType<SecondaryStore['failing']> {
    return this.at.failing('', roleWords('primary').retry);
  }

  /**
   * Every entry of a partial snapshot's data, listed at the target by GNU find, with its
   * inode, size, time and mode. The files stored anew (not the previous snapshot's inodes)
   * start being read there at once, READERS processes each reading about as many bytes, in
   * the listing's order: the manifest waits for each file's digest as it comes, while the
   * originals are read here, instead of one round trip to the target per batch of files.
   */
  async *walk(id: string, signal?: AbortSignal, _light?: boolean, previous?: string): AsyncGenerator<WalkBatch> {
    const data = posix.join(this.partialDir(id), 'data');
    const bytes = await this.must('cd "$1" || exit 3; TZ=UTC LC_ALL=C exec find . -mindepth 1 -printf "$2"', [data, WALK_FORMAT], 'listing the stored snapshot', signal);
    const { batch } = WalkBatch.parse(bytes);
    const linked = new Set<number>();
    if (previous) for await (const e of this.manifestEntries(previous)) if (e.type === 'f') linked.add(e.ino);
    const reads: { rel: Buffer; key: string; size: number; resolve: (digest: string | undefined) => void; reject: (e: unknown) => void }[] = [];
    for (let i = 0; i < batch.length; i++) {
      if (!batch.isFile(i) || linked.has(batch.ino[i]!)) continue;
      const rel = Buffer.from(batch.rel(i));
      // As the hasher finds it: the path's bytes, read as latin1 (a UTF-8 name is not its string).
      const key = Buffer.concat([Buffer.from(`${data}/`), rel]).toString('latin1');
      let resolve!: (digest: string | undefined) => void;
      let reject!: (e: unknown) => void;
      const digest = new Promise<string | undefined>((res, rej) => ((resolve = res), (reject = rej)));
      digest.catch(() => {});
      this.reading.set(key, digest);
      reads.push({ rel, key, size: batch.size[i]!, resolve, reject });
    }
    for (const part of split(reads))
      streamDigestsAt(this.at.shell, data, part.map((r) => r.rel), signal, this.failing(), (k, digest) => part[k]!.resolve(digest)).catch((e: unknown) => part.forEach((r) => r.reject(e)));
    try {
      if (batch.length) yield batch;
    } finally {
      for (const r of reads) this.reading.delete(r.key);
    }
  }

  flush(id: string, signal?: AbortSignal): Promise<void> {
    return this.at.flush(id, signal);
  }

  /** Sends the summary and the manifest, flushes the snapshot at the target and makes it visible with one rename, all in one command. */
  async publish(id: string, signal?: AbortSignal): Promise<void> {
    const manifest = await readFile(join(this.stagingDir(id), 'manifest.jsonl'));
    const summary = await readFile(join(this.stagingDir(id), 'snapshot.yaml'));
    await this.must(PUBLISH, [this.partialDir(id), this.snapshotDir(id), posix.join(this.base, 'snapshots'), String(summary.length)], `publishing snapshot ${id}`, signal, Buffer.concat([summary, manifest]));
    this.summaries.set(id, summary);
    this.manifests.set(id, manifest);
    await rm(this.stagingDir(id), { recursive: true, force: true });
  }

  async discard(id: string): Promise<void> {
    await this.at.discard(id);
    await rm(this.stagingDir(id), { recursive: true, force: true });
  }

  snapshotSource(id: string): RelaySource {
    return { target: this.target, dir: this.snapshotDir(id) };
  }

  async fileDigest(id: string, name: string): Promise<string | undefined> {
    // A file or folder that is not there reads as no digest; a target out of reach is a failure.
    let down = false;
    const fail: Fail = (what, result, unreachable) => ((down = unreachable), this.failing()(what, result, unreachable));
    const [digest] = await digestsAt(this.at.shell, this.snapshotDir(id), [Buffer.from(name)], undefined, fail).catch((e: unknown) => (down ? Promise.reject(e) : [undefined]));
    return digest ? `sha256:${digest}` : undefined;
  }

  /** Whether a damaged snapshot was moved aside (`damaged-<id>`) at the target. */
  async movedAside(id: string): Promise<boolean> {
    const { result, unreachable } = await this.target.sh('[ -e "$1" ]', [posix.join(this.base, `damaged-${id}`)]);
    if (unreachable) throw this.failing()('looking for a snapshot moved aside', result, true);
    return result.code === 0;
  }

  /** Verify at rest, where the snapshots lie (see checkStored in copy-check.ts). */
  checkStored(snapshots: StoredSnapshot[], pick: (e: ManifestEntry) => boolean, signal?: AbortSignal): Promise<StoredCheck> {
    return checkStored(this.at.shell, this.base, snapshots, pick, 'on the primary target', signal, this.at.failing('', 'the check is tried again on the next run'));
  }
}
