/**
 * CSC's copy in a module of an rsync daemon: `rsync://[user@]host[:port]/module/path`.
 *
 * A daemon runs no command for its clients: no rename, no `rm`, no `sync`; only rsync's
 * transfers, listings and the deletions that `--delete` makes. So a copy becomes complete
 * by its last file instead of by a rename:
 *
 * - a snapshot is delivered straight into `snapshots/<id>/` without its `snapshot.yaml`,
 *   with `--fsync` (the daemon fsyncs every file it writes, since nothing can run `sync`
 *   there), compared with the primary's copy by checksum (`--checksum --dry-run`: the
 *   daemon reads back what it stored), and only then given its `snapshot.yaml`;
 * - a folder in `snapshots/` with a `snapshot.yaml` is a complete copy. One without is an
 *   incomplete copy: never listed, reused by the next delivery of that snapshot (with
 *   `--checksum`, so nothing it holds is believed unread), cleared by `respaldo prune`;
 * - a complete copy is rewritten (a repair) or deleted (prune) only once its
 *   `snapshot.yaml` is gone: a crash leaves an incomplete folder, never a copy that looks
 *   whole and is not;
 * - a deletion is an rsync of an empty folder with `--delete` and filter rules that
 *   include the one entry to delete and exclude, which for `--delete` means protect,
 *   everything else.
 *
 * The module's password (its `auth users`) is read from `password-file` by the agent and
 * reaches rsync in its environment (RSYNC_PASSWORD), never on a command line or in a record.
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ZodError } from 'zod';
import { compareSnapshotIds, SNAPSHOT_ID_RE } from '../schemas/common.js';
import { snapshotSummary, type SnapshotSummary } from '../schemas/snapshot.js';
import { daemonUrl, targetDisplay, type SecondaryLocation } from './config.js';
import { BackupFailure, messageOf } from './errors.js';
import { lastLines, nulList, runTool, type ToolResult } from './exec.js';
import { COPY_ARGS, roleWords, SecondaryTarget, type Delivery, type Secondary, type SecondaryRepository, type SnapshotSource } from './secondary.js';
import type { CopyReference, Difference, StoredCheck, StoredSnapshot } from './copy-check.js';
import { entryPath, insideSnapshot, type ManifestEntry } from '../schemas/manifest.js';
import { sha256File } from './fsutil.js';

type DaemonLocation = Extract<SecondaryLocation, { kind: 'rsync' }>;

/** What to do when a check at rest could not run. */
const CHECK_AGAIN = 'the check is tried again on the next run';

/** The marker of a complete copy, and the filter rules that send (or compare) it alone. */
const MARKER = 'snapshot.yaml';
const MARKER_ONLY = [`--filter=+ /${MARKER}`, '--filter=- *'];

/** CSC's target as the config names it: a module of an rsync daemon, or a path reached locally or over SSH. */
export function openSecondary(location: SecondaryLocation, state: string): Secondary {
  return location.kind === 'rsync' ? new RsyncDaemonTarget(location) : new SecondaryTarget(location, state);
}

/** One entry of `rsync --list-only`: its type (`d`, `-`, `l`…) and its path under the listed folder. */
interface Listed {
  type: string;
  path: string;
}

/**
 * A line of `rsync --list-only --no-h`: permissions, size, date, time, name
 * ("drwx------          4096 2026/11/02 03:00:00 web01/docs"). The name is the rest of
 * the line, spaces and all.
 */
const LISTING_RE = /^([-dlpscb])[-rwxsStT]{9}\S*\s+\d+\s+\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (.+)$/;

/** A temporary local folder for the length of `body`: an empty source for deletions, a place for fetched files. */
export async function withScratch<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'respaldo-rsyncd-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What went wrong, from rsync's stderr: its own error lines, without the summary
 * ("rsync error: … (code 23)") and the hang-up that follows any error of the daemon.
 */
function cause(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !/^rsync error: |read error: Connection reset by peer/.test(l));
  return (lines.length ? lines.slice(-2).join(' | ') : lastLines(stderr, 2)).slice(0, 500);
}

/** Filter rules that let rsync walk down to `rel` (a folder under the listed one) and no further by themselves. */
export function down(rel: string): string[] {
  const parts = rel.split('/');
  return parts.map((_, i) => `--filter=+ /${parts.slice(0, i + 1).join('/')}/`);
}

/** How messages name a daemon in either role, and what happens after a failure. */
interface DaemonWords {
  /** "CSC's rsync daemon". */
  daemon: string;
  /** Who sets the daemon up: "CSC". */
  admin: string;
  /** Where the daemon's host is: "at CSC". */
  at: string;
  /** The config's field: "targets.secondary". */
  field: string;
  /** What happens after a failure. */
  waits: string;
}

const WORDS: Record<'primary' | 'secondary', DaemonWords> = {
  secondary: { daemon: "CSC's rsync daemon", admin: 'CSC', at: 'at CSC', field: 'targets.secondary', waits: 'the copies wait and are retried on every run, nothing is dropped' },
  primary: { daemon: "the primary target's rsync daemon", admin: "the daemon's administrator", at: "on the daemon's host", field: 'targets.primary', waits: 'respaldo tries again on its next run; the snapshots there stay as they were' },
};

export class RsyncDaemonTarget implements Secondary {
  /** `rsync://user@host:port/module/path`: no password is ever part of it. */
  readonly display: string;
  private readonly url: string;
  readonly words: DaemonWords & { stage: 'copy' | 'target' };

  constructor(
    readonly location: DaemonLocation,
    readonly role: 'secondary' | 'primary' = 'secondary',
  ) {
    this.url = daemonUrl(location);
    this.display = targetDisplay(location);
    this.words = { ...WORDS[role], stage: roleWords(role).stage };
  }

  /** `/<module>/<folder>`: the top of the target, as `rsyncPath` takes it. */
  get root(): string {
    return this.location.path;
  }

  /**
   * No message of the day in listings, and a dead daemon noticed: a connection gets 20
   * seconds, a transfer that goes silent 5 minutes (both ends send keep-alive messages
   * while they read files for checksums, since protocol 31).
   */
  async rsyncShell(): Promise<string[]> {
    return ['--no-motd', '--contimeout=20', '--timeout=300'];
  }

  rsyncPath(path: string): string {
    return `${this.url}${path}`;
  }

  private env: Promise<NodeJS.ProcessEnv> | undefined;

  rsyncEnv(): Promise<NodeJS.ProcessEnv> {
    this.env ??= this.readPassword();
    return this.env;
  }

  /**
   * The module's password, for rsync's environment. Without a password file RSYNC_PASSWORD
   * is set empty all the same: rsync would otherwise ask for one at the terminal, and a
   * module that wants one then says so ("auth failed") instead of waiting at a prompt.
   */
  private async readPassword(): Promise<NodeJS.ProcessEnv> {
    const file = this.location.passwordFile;
    // Times in listings (%M) are printed in UTC.
    if (!file) return { ...process.env, TZ: 'UTC', RSYNC_PASSWORD: '' };
    const fix = `write the password of the module "${this.location.module}" alone in ${file}, owned by the user that runs respaldo, mode 0600 (chmod 600 ${file})`;
    const { stage, field, waits } = this.words;
    let text: string;
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new BackupFailure(stage, `${field}.password-file ${file} is not a file`, fix);
      if (info.mode & 0o077)
        throw new BackupFailure(stage, `${field}.password-file ${file} can be read by other users (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}): it holds the module's password, so respaldo does not use it`, `chmod 600 ${file}; ${waits}`);
      text = await readFile(file, 'utf8');
    } catch (e) {
      if (e instanceof BackupFailure) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw new BackupFailure(stage, `cannot read ${field}.password-file ${file}: ${code === 'ENOENT' ? 'no such file' : messageOf(e)}`, fix);
    }
    // The first line, as rsync's own --password-file reads it.
    const password = text.split(/\r?\n/)[0] ?? '';
    if (!password) throw new BackupFailure(stage, `${field}.password-file ${file} is empty`, fix);
    return { ...process.env, TZ: 'UTC', RSYNC_PASSWORD: password };
  }

  /** Runs rsync against the daemon: its connection options first, the password in the environment. */
  async rsync(args: string[], opts: { signal?: AbortSignal | undefined; onStdout?: (chunk: Buffer) => void; input?: Buffer } = {}): Promise<ToolResult> {
    return runTool('rsync', [...(await this.rsyncShell()), ...args], {
      env: await this.rsyncEnv(),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onStdout ? { onStdout: opts.onStdout } : {}),
      ...(opts.input ? { input: opts.input } : {}),
    });
  }

  /**
   * What a failed rsync run says about the daemon, in words a sysadmin can act on; undefined
   * when it is not about the daemon (a full disk, a missing file). `unreachable`: the
   * connection could not be made or was lost, so what failed waits for the next run.
   */
  explain(result: ToolResult): { message: string; hint: string; unreachable: boolean } | undefined {
    const err = result.stderr;
    const { module, user, passwordFile } = this.location;
    const { daemon, admin, field, waits } = this.words;
    const role = this.role;
    if (/@ERROR: auth failed on module/.test(err))
      return passwordFile
        ? { message: `${daemon} refused the password${user ? ` of user ${user}` : ''} for module "${module}" (${this.display})`, hint: `check that ${field}.password-file holds the password that the module's "secrets file" ${this.words.at} gives ${user ?? 'the user'}, and that the user is in its "auth users"; ${waits}`, unreachable: false }
        : { message: `the module "${module}" of ${daemon} (${this.display}) asks for a password`, hint: `put the password alone in a file (mode 0600) and name it under ${field}: { url: ${this.display}, password-file: /etc/respaldo/csc-rsync.pass }; ${waits}`, unreachable: false };
    if (/@ERROR: Unknown module/.test(err))
      return { message: `${daemon} has no module "${module}" (${this.display})`, hint: `check the module's name in ${field} (rsync --list-only ${this.url}/ shows the modules the daemon lists); ${waits}`, unreachable: false };
    if (/@ERROR: access denied/.test(err))
      return { message: `${daemon} does not let this host into the module "${module}": ${cause(err)}`, hint: `${admin} must allow this host in the module's "hosts allow" (and not in "hosts deny"); ${waits}`, unreachable: false };
    if (/module is read only/.test(err))
      return { message: `the module "${module}" of ${daemon} is read only (${this.display})`, hint: `${admin} must set "read only = no" for the module in rsyncd.conf: the snapshots are written there; ${waits}`, unreachable: false };
    if (/module is write only/.test(err))
      return { message: `the module "${module}" of ${daemon} is write only (${this.display})`, hint: `${admin} must set "write only = no" for the module: respaldo reads the snapshots back to check them, to prune them and to restore from them; ${waits}`, unreachable: false };
    const refused = /configured to refuse (-{1,2}[\w-]+)|(-{1,2}[\w-]+): unknown option/.exec(err);
    if (refused)
      return {
        message: `${daemon} refuses the option ${refused[1] ?? refused[2]} (${cause(err)})`,
        hint: `respaldo needs --delete, --max-delete, --checksum, --dry-run, --link-dest, --mkpath and --fsync (rsync 3.2.4 or later there): ${admin} must take them out of the module's "refuse options", or upgrade rsync; ${waits}`,
        unreachable: false,
      };
    if (/@ERROR: max connections/.test(err)) return { message: `${daemon} is busy: ${cause(err)}`, hint: waits, unreachable: true };
    if (/@ERROR: (chdir|chroot) failed/.test(err))
      return { message: `${daemon} cannot enter the folder of the module "${module}": ${cause(err)}`, hint: `${admin} must check the module's "path" (a disk not mounted?); ${waits}`, unreachable: false };
    // The daemon hangs up after any error, so "Connection reset by peer" alone says nothing:
    // lost means it could not be reached, or rsync's exit code says the connection failed
    // (10 socket, 12 protocol stream, 30 timeout, 35 daemon connection timeout).
    if (/failed to connect|Connection refused|No route to host|Network is unreachable|getaddrinfo|Name or service not known|did not see server greeting/i.test(err) || [10, 12, 30, 35].includes(result.code ?? -1))
      return { message: `the ${role} target ${this.display} cannot be reached: ${cause(err) || `rsync exit code ${result.code}`}`, hint: `${waits}; check the network and that ${daemon} is running`, unreachable: true };
    return undefined;
  }

  /** A BackupFailure for an rsync run that failed while doing `what`. */
  failure(what: string, result: ToolResult, hint = `check the disk of the ${this.role} target (space, permissions) and its rsync daemon's log; ${this.words.waits}`): BackupFailure {
    const { stage } = this.words;
    const known = this.explain(result);
    const extra = { detail: result.stderr, ...(result.code === null ? {} : { exitCode: result.code }) };
    if (known) return new BackupFailure(stage, `${known.message} (while ${what})`, known.hint, extra);
    return new BackupFailure(stage, `${what} failed at the ${this.role} target ${this.display}: rsync exit code ${result.code}: ${cause(result.stderr)}`, hint, extra);
  }

  private checked: Promise<void> | undefined;

  /** Fails when CSC cannot take a copy: unreachable, refused, no such folder, or read only. Asked once per run. */
  check(signal?: AbortSignal): Promise<void> {
    this.checked ??= this.probe(signal);
    return this.checked;
  }

  private async probe(signal?: AbortSignal): Promise<void> {
    const top = `${this.rsyncPath(this.root)}/`;
    const listed = await this.rsync(['--list-only', '--dirs', '--filter=- *', top], { signal });
    if (listed.code !== 0) {
      if (/change_dir .* failed: No such file or directory/.test(listed.stderr)) {
        const folder = this.root.slice(this.location.module.length + 1);
        throw new BackupFailure(this.words.stage, `the ${this.role} target's folder ${this.display} does not exist`, `create it ${this.words.at} (the folder ${folder} in the module's path), or mount its disk; respaldo does not create a target's top folder, so that an unmounted disk is noticed`);
      }
      throw this.failure('looking at its top folder', listed);
    }
    // A dry run of an empty folder writes nothing, but a read-only module refuses it all the same.
    const written = await withScratch((empty) => this.rsync(['--dry-run', '--dirs', `${empty}/`, top], { signal }));
    if (written.code !== 0) throw this.failure('checking that the module can be written', written);
  }

  /**
   * Lists, recursively, what the filter rules let through under the target's top folder.
   * Any error fails the listing: a listing cut short would make complete copies look
   * incomplete, and incomplete copies are what prune clears.
   */
  async list(rules: string[], what: string, signal?: AbortSignal): Promise<Listed[]> {
    const chunks: Buffer[] = [];
    const result = await this.rsync(['--list-only', '--recursive', '--no-h', ...rules, `${this.rsyncPath(this.root)}/`], { signal, onStdout: (c) => chunks.push(c) });
    if (result.code !== 0) throw this.failure(what, result);
    const out: Listed[] = [];
    for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
      if (line === '') continue;
      const m = LISTING_RE.exec(line);
      if (!m) throw new BackupFailure(this.words.stage, `cannot read rsync's listing of ${this.display} while ${what}: "${line.slice(0, 200)}"`, 'report it with this message: the rsync at either end prints its listing in a form respaldo does not know');
      if (m[2] !== '.') out.push({ type: m[1]!, path: m[2]! });
    }
    return out;
  }

  /**
   * Deletes the entries of the folder `rel` (under the top folder) that `pattern` (a filter
   * pattern anchored at that folder) names, and nothing else: an empty folder is sent with
   * `--delete`, the pattern included, everything else excluded, which `--delete` leaves
   * alone. `max`: at most this many deletions, as a second fence (rsync stops beyond it).
   */
  async remove(rel: string, pattern: string, what: string, max?: number): Promise<void> {
    const result = await withScratch((empty) =>
      this.rsync(['--recursive', '--delete', ...(max ? [`--max-delete=${max}`] : []), `--filter=+ ${pattern}`, '--filter=- *', `${empty}/`, `${this.rsyncPath(posix.join(this.root, rel))}/`]),
    );
    if (result.code !== 0) throw this.failure(what, result, `check the ${this.role} target (permissions, the module's "refuse options"); respaldo tries again on its next run`);
  }

  repository(host: string, name: string): RsyncDaemonStore {
    return new RsyncDaemonStore(this, posix.join(this.root, host, name), `${host}/${name}`);
  }

  /** Nothing stays open between rsync runs. */
  async close(): Promise<void> {}
}

/** One repository's folder in the daemon's module. */
export class RsyncDaemonStore implements SecondaryRepository {
  /** Every comparison here reads every file by checksum (the list of files stored anew is not used with a daemon yet). */
  readonly method = 'rsync-checksum';
  constructor(
    readonly target: RsyncDaemonTarget,
    readonly base: string,
    /** `<host>/<repository>`, under the target's top folder. */
    readonly rel: string,
  ) {}

  snapshotLocation(id: string): string {
    return `${this.rel}/snapshots/${id}`;
  }

  /** A snapshot's folder as rsync's destination. */
  url(id: string): string {
    return `${this.target.rsyncPath(posix.join(this.base, 'snapshots', checkedId(id)))}/`;
  }

  /**
   * The folders in `snapshots/`, each with whether it is complete (it holds a
   * `snapshot.yaml` file); `exists`: `snapshots/` itself is there.
   */
  async folders(signal?: AbortSignal): Promise<{ exists: boolean; ids: Map<string, boolean> }> {
    const snapshots = `${this.rel}/snapshots`;
    const listed = await this.target.list([...down(snapshots), `--filter=+ /${snapshots}/*/`, `--filter=+ /${snapshots}/*/${MARKER}`, '--filter=- *'], 'listing the snapshots', signal);
    const ids = new Map<string, boolean>();
    for (const e of listed) {
      const [id, file, ...more] = e.path.startsWith(`${snapshots}/`) ? e.path.slice(snapshots.length + 1).split('/') : [];
      if (!id || !SNAPSHOT_ID_RE.test(id) || more.length) continue;
      if (file === undefined && e.type === 'd') ids.set(id, ids.get(id) ?? false);
      else if (file === MARKER && e.type === '-') ids.set(id, true);
    }
    return { exists: listed.some((e) => e.path === snapshots && e.type === 'd'), ids };
  }

  /** Complete snapshots at the target, oldest first. */
  async snapshots(signal?: AbortSignal): Promise<string[]> {
    const { ids } = await this.folders(signal);
    return [...ids].filter(([, complete]) => complete).map(([id]) => id).sort(compareSnapshotIds);
  }

  /** `snapshots`: a copy cut short is reused by the next delivery of its snapshot (see deliver). */
  prepare(signal?: AbortSignal): Promise<string[]> {
    return this.snapshots(signal);
  }

  /**
   * Creates `<host>/<repository>/snapshots/` as `mkdir -p` with umask 077 would: an rsync
   * of empty local folders of mode 0700, without --perms, so that new folders get 0700 and
   * folders already there keep theirs. A world-writable folder inside a copy must not let
   * other users at CSC plant links in it.
   */
  async makeFolders(signal?: AbortSignal): Promise<void> {
    const [host] = this.rel.split('/') as [string];
    const result = await withScratch(async (dir) => {
      await mkdir(join(dir, this.rel, 'snapshots'), { recursive: true, mode: 0o700 });
      return this.target.rsync(['--recursive', join(dir, host), `${this.target.rsyncPath(this.target.root)}/`], { signal });
    });
    if (result.code !== 0) throw this.target.failure('creating the repository\'s folder', result);
  }

  /**
   * Copies a complete primary snapshot (its folder, `dir`) into `snapshots/<id>/` at the
   * target, without its `snapshot.yaml`: files unchanged since `linkFrom` (an older
   * complete copy there) become hard links to it. A folder already there (a delivery cut
   * short, or a damaged copy being repaired, whose `snapshot.yaml` goes first) is reused,
   * with `--checksum`: a file in it is kept only when its bytes match.
   */
  async deliver(source: SnapshotSource, id: string, { linkFrom, checksum = false }: Delivery, signal?: AbortSignal): Promise<undefined> {
    // The config keeps a remote primary away from a daemon (it compares with the primary's folder here).
    if (typeof source !== 'string') throw new BackupFailure('copy', 'a copy to an rsync daemon is sent from a primary target on this machine', 'keep the primary target on this machine, or reach CSC over SSH');
    const dir = source;
    const { exists, ids } = await this.folders(signal);
    if (!exists) await this.makeFolders(signal);
    const there = ids.get(id);
    if (there) await this.unmark(id, signal);
    const args = [
      ...COPY_ARGS,
      '--fsync',
      ...(checksum || there !== undefined ? ['--checksum'] : []),
      // Relative to the destination folder: the daemon resolves it inside the module.
      ...(linkFrom && linkFrom !== id ? [`--link-dest=../${checkedId(linkFrom)}/`] : []),
      `--filter=- /${MARKER}`,
      `${dir}/`,
      this.url(id),
    ];
    const result = await this.target.rsync(args, { signal });
    if (result.code !== 0) {
      const known = this.target.explain(result);
      throw this.target.failure(`copying snapshot ${id}`, result, known?.unreachable ? 'the connection to CSC was lost: the copy is retried on the next run' : undefined);
    }
    return undefined;
  }

  /**
   * What differs between the primary snapshot's folder and its copy at the target, by
   * rsync's checksum of every file read at both ends: one per itemized line.
   * `incomplete`: a copy not yet published, compared without its `snapshot.yaml`, which it
   * does not have yet.
   */
  async differences(ref: CopyReference, id: string, where: 'snapshots' | 'incomplete', signal?: AbortSignal): Promise<Difference[]> {
    return this.itemize([...COPY_ARGS, '--checksum', '--dry-run', ...(where === 'incomplete' ? [`--filter=- /${MARKER}`] : []), `${ref.dir}/`, this.url(id)], id, signal);
  }

  /** Nothing to do: the delivery ran with --fsync, so the daemon wrote each file to its disk before it counted as received. */
  async flush(): Promise<void> {}

  /**
   * Sends the snapshot's `snapshot.yaml` last, once the rest was compared: from then on the
   * copy is complete. A repair needs nothing more, `deliver` having taken the old one away.
   */
  async publish(dir: string, id: string, _replace: boolean, signal?: AbortSignal): Promise<void> {
    const result = await this.target.rsync(['-a', '--numeric-ids', '--modify-window=-1', '--fsync', '--checksum', ...MARKER_ONLY, `${dir}/`, this.url(id)], { signal });
    if (result.code !== 0) throw this.target.failure(`publishing snapshot ${id}`, result);
  }

  /** Removes a copy's `snapshot.yaml`: from then on the folder is an incomplete copy. */
  private async unmark(id: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    await this.target.remove(`${this.rel}/snapshots/${checkedId(id)}`, `/${MARKER}`, `taking snapshot ${id} out of the complete copies`, 1);
  }

  // What `respaldo prune` needs (PruneStore in prune.ts).

  /** Copies one file of the target into a temporary folder and reads it; undefined when there is no such file. */
  async fetch(path: string): Promise<Buffer | undefined> {
    if (/[*?[\\]/.test(path)) throw new Error(`cannot read ${path} at ${this.target.display}: the daemon would take * ? [ or \\ in its name as a pattern`);
    return withScratch(async (dir) => {
      // Without -a: a regular file only; a link or a folder is skipped, and so is not read.
      const result = await this.target.rsync([this.target.rsyncPath(path), `${dir}/`]);
      if (result.code === 23 && /No such file or directory \(2\)/.test(result.stderr)) return undefined;
      if (result.code !== 0) throw this.target.failure(`reading ${path}`, result);
      return readFile(join(dir, posix.basename(path))).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    });
  }

  async readSummary(id: string): Promise<{ summary: SnapshotSummary }> {
    const where = `${this.snapshotLocation(id)}/${MARKER}`;
    const bytes = await this.fetch(posix.join(this.base, 'snapshots', checkedId(id), MARKER));
    if (!bytes) throw new Error(`the summary ${where} of snapshot ${id} at ${this.target.display} cannot be read: no such file`);
    try {
      return { summary: snapshotSummary.parse(parseYaml(bytes.toString('utf8'))) };
    } catch (e) {
      throw new Error(`the summary ${where} of snapshot ${id} at ${this.target.display} cannot be read: ${e instanceof ZodError ? `field ${e.issues[0]!.path.join('.')}: ${e.issues[0]!.message}` : messageOf(e)}`);
    }
  }

  async readSnapshotFile(id: string, rel: string): Promise<Buffer | undefined> {
    return this.fetch(posix.join(this.base, 'snapshots', checkedId(id), 'data', rel));
  }

  async readManifest(id: string): Promise<Buffer | undefined> {
    return this.fetch(posix.join(this.base, 'snapshots', checkedId(id), 'manifest.jsonl'));
  }

  /**
   * Verify at rest in a daemon's module, which runs nothing: each copy is compared with the
   * primary's snapshot by rsync, every entry by type, size, time, permissions and link
   * target (nothing missing, nothing more), and the files `pick` selects, with
   * `manifest.jsonl` and `snapshot.yaml`, by checksum (the daemon reads them back). Where a
   * file differs, the primary's is read against the manifest: when it is the one that no
   * longer matches (damaged on JAA's disk, which the primary's own check names), CSC's copy of
   * it could not be checked, which is not counted against CSC. The primary's
   * `manifest.jsonl` and `snapshot.yaml` must match the digests the records carry.
   */
  async checkStored(snapshots: StoredSnapshot[], pick: (e: ManifestEntry) => boolean, primaryDir: (id: string) => Promise<string | undefined>, signal?: AbortSignal): Promise<StoredCheck> {
    const problems = new Map<string, Difference[]>();
    const unchecked = new Map<string, string>();
    let files = 0;
    let bytes = 0;
    for (const snap of snapshots) {
      if (signal?.aborted) throw signal.reason;
      const found = new Map<string, string>();
      const add = (d: Difference) => {
        if (!found.has(d.path)) found.set(d.path, d.problem);
      };
      const dir = await primaryDir(snap.id);
      if (!dir) {
        unchecked.set(snap.id, "the primary no longer holds this snapshot, and a copy in an rsync daemon's module can only be compared with the primary's");
        problems.set(snap.id, []);
        continue;
      }
      let primaryDamaged: string | undefined;
      for (const [name, sha256] of [['manifest.jsonl', snap.manifest], ['snapshot.yaml', snap.summary]] as const) {
        const own = await sha256File(join(dir, name)).catch(() => undefined);
        if (sha256 === undefined) add({ path: name, problem: 'no backup or copy record of this host names this snapshot: there is no signed digest to check it against' });
        else if (own !== `sha256:${sha256}`) primaryDamaged ??= `the primary's ${name}, which the copy would be compared with, does not match the digest its record carries`;
      }
      if (primaryDamaged) {
        unchecked.set(snap.id, primaryDamaged);
        problems.set(snap.id, [...found].map(([path, problem]) => ({ path, problem })));
        continue;
      }
      const digests = new Map<string, string>();
      const picked: Buffer[] = [Buffer.from('manifest.jsonl'), Buffer.from('snapshot.yaml')];
      for await (const e of snap.entries()) {
        const rel = entryPath(e);
        if (!insideSnapshot(rel)) {
          add({ path: `data/${rel.toString('utf8')}`, problem: 'the manifest names a path outside the snapshot: it was altered' });
          continue;
        }
        const path = Buffer.concat([Buffer.from('data/'), rel]);
        if (e.type !== 'f') continue;
        if (e.sha256) digests.set(path.toString('utf8'), e.sha256);
        if (pick(e)) {
          picked.push(path);
          files++;
          bytes += e.size;
        }
      }
      const differences = [
        ...(await this.itemize([...COPY_ARGS, '--dry-run', `${dir}/`, this.url(snap.id)], snap.id, signal, CHECK_AGAIN)),
        ...(await withScratch(async (scratch) => {
          const list = join(scratch, 'files');
          await writeFile(list, nulList(picked));
          // --files-from reads only the files named (-a without -r with it), by checksum; one
          // missing on the primary is the primary's check's to name.
          return this.itemize([...COPY_ARGS.filter((a) => a !== '--delete'), '--checksum', '--dry-run', '--ignore-missing-args', '--from0', `--files-from=${list}`, `${dir}/`, this.url(snap.id)], snap.id, signal, CHECK_AGAIN);
        })),
      ];
      for (const d of differences) {
        const sha256 = digests.get(d.path);
        if (sha256 !== undefined && (await sha256File(join(dir, d.path)).catch(() => undefined)) !== `sha256:${sha256}`) {
          unchecked.set(snap.id, `the primary's ${d.path}, which the copy is compared with, does not match the manifest (damaged on JAA's disk: the primary's check names it)`);
          continue;
        }
        add(d);
      }
      problems.set(snap.id, [...found].map(([path, problem]) => ({ path, problem })));
    }
    return { problems, unchecked, files, bytes };
  }

  /** rsync's itemized differences between a primary snapshot's folder and its copy, for `args`. */
  private async itemize(args: string[], id: string, signal?: AbortSignal, hint = 'the comparison is retried on the next run'): Promise<Difference[]> {
    const chunks: Buffer[] = [];
    const result = await this.target.rsync(['--itemize-changes', '--out-format=%i %n', ...args], { signal, onStdout: (c) => chunks.push(c) });
    if (result.code !== 0) throw this.target.failure(`comparing snapshot ${id} with its copy`, result, hint);
    return Buffer.concat(chunks)
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(itemized);
  }

  /**
   * Takes `snapshot.yaml` away first, then the rest of the folder: a crash in between
   * leaves an incomplete copy, which the next prune clears. Checked by a listing after:
   * rsync says little about what `--delete` did not do.
   */
  async removeSnapshot(id: string): Promise<void> {
    await this.unmark(id);
    await this.removeFolder(id);
    if ((await this.folders()).ids.has(id)) throw new Error(`snapshot ${id} is still at ${this.target.display} after its deletion`);
  }

  /** Removes `snapshots/<id>/` whole: the one entry of that name under `snapshots/`, with everything in it. */
  private async removeFolder(id: string): Promise<void> {
    await this.target.remove(`${this.rel}/snapshots`, `/${checkedId(id)}/***`, `deleting snapshot ${id}`);
  }

  /** Clears the incomplete copies (an interrupted prune, a copy cut short); returns their snapshot ids. */
  async removeLeftovers(): Promise<string[]> {
    const incomplete = [...(await this.folders()).ids].filter(([, complete]) => !complete).map(([id]) => id);
    if (!incomplete.length) return [];
    for (const id of incomplete) await this.removeFolder(id);
    const left = (await this.folders()).ids;
    const stuck = incomplete.filter((id) => left.has(id));
    if (stuck.length) throw new Error(`the incomplete copies of snapshot(s) ${stuck.join(', ')} are still at ${this.target.display} after their deletion`);
    return incomplete.sort(compareSnapshotIds);
  }

  async archiveFiles(folder: 'wal' | 'binlog'): Promise<string[]> {
    const rel = `${this.rel}/archive/${folder}`;
    const listed = await this.target.list([...down(rel), `--filter=+ /${rel}/*`, '--filter=- *'], 'listing the archive');
    return listed.filter((e) => e.type === '-' && e.path.startsWith(`${rel}/`) && !e.path.slice(rel.length + 1).includes('/')).map((e) => e.path.slice(rel.length + 1));
  }

  async removeArchiveFile(folder: 'wal' | 'binlog', name: string): Promise<void> {
    // WAL segments and binary logs are named with letters, digits, dots, dashes and underscores; anything else is not put in a filter rule.
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') throw new Error(`archive file "${name}" at ${this.target.display} is not deleted: its name is not one respaldo puts in rsync's filter rules`);
    await this.target.remove(`${this.rel}/archive/${folder}`, `/${name}`, `deleting archive file ${name}`, 1);
  }

  /**
   * Adds the point-in-time-recovery archive's new files (WAL segments, binary logs) to
   * CSC's copy. They never change once archived: files already there are left as they are.
   */
  async deliverArchive(archive: string, signal?: AbortSignal): Promise<void> {
    const result = await this.target.rsync(['-a', '--numeric-ids', '--ignore-existing', '--fsync', '--mkpath', `${archive}/`, `${this.target.rsyncPath(posix.join(this.base, 'archive'))}/`], { signal });
    if (result.code !== 0) throw this.target.failure('copying the archive', result, 'the archive is copied again on the next run');
  }

  /**
   * Keeps what a failed delivery left: the next delivery of the snapshot reuses it (and
   * reads every file in it with --checksum), and `respaldo prune` clears it if none comes.
   */
  async discard(): Promise<void> {}
}

/** A snapshot id, checked before it goes into a path or a filter rule. */
function checkedId(id: string): string {
  if (!SNAPSHOT_ID_RE.test(id)) throw new Error(`"${id}" is not a snapshot id`);
  return id;
}

/**
 * "path: what differs" from one of rsync's itemized lines ("`<fc.t...... data/etc/x`"): a
 * file to send is `<f` (the daemon is remote).
 */
function itemized(line: string): Difference {
  const [flags = '', ...rest] = line.split(' ');
  const path = rest.join(' ');
  const file = /^[<>]f/.test(flags);
  if (flags === '*deleting') return { path, problem: 'at the secondary target but not in the primary snapshot' };
  if (file && flags[2] === '+') return { path, problem: 'missing at the secondary target' };
  if (file && flags[2] === 'c') return { path, problem: "its bytes differ from the primary's copy (checksum)" };
  return { path, problem: `differs from the primary's copy (rsync: ${flags})` };
}
