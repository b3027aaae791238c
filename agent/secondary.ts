/**
 * The secondary target: CSC's copy of every snapshot (clause 4.1.6), on a local path (a
 * second disk, a mounted share) or on a host reached over SSH. Same layout as the primary:
 * `<root>/<host>/<repository>/snapshots/<id>/`, built in `incomplete/<id>/` and published
 * with one rename once the copy has been compared with the primary's, byte for byte.
 *
 * Everything done at the target is a fixed `sh -c` script with the paths as its
 * arguments, run locally or through ssh with each word quoted: a path with spaces, quotes
 * or `$` reaches the far side as it is. ssh runs in BatchMode with CSC's host key pinned,
 * so a cron run never waits at a prompt nor talks to an impostor.
 *
 * A module of an rsync daemon (`rsync://…`) runs no script: `RsyncDaemonTarget`
 * (secondary-rsyncd.ts) reaches it, with the same interface (`Secondary` below).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ZodError } from 'zod';
import { compareSnapshotIds, SNAPSHOT_ID_RE } from '../schemas/common.js';
import { snapshotSummary, type SnapshotSummary } from '../schemas/snapshot.js';
import { targetDisplay, type SecondaryLocation } from './config.js';
import { BackupFailure, messageOf } from './errors.js';
import { eachLine, lastLines, nulList, pipeTools, runTool, sessionTool, type ToolResult } from './exec.js';
import { writeFileAtomic } from './fsutil.js';
import type { PruneStore } from './prune.js';
import { checkCopy, checkStored, parseDigest, type CopyReference, type Difference, type Fail, type StoredCheck, type StoredSnapshot, type TargetShell } from './copy-check.js';
import type { ManifestEntry } from '../schemas/manifest.js';

/** One word for a POSIX shell: single-quoted unless plainly safe. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * One word of rsync's `-e` command: rsync splits it on spaces and honours single and double
 * quotes, but no backslash, so a word holding both kinds of quote cannot be given.
 */
function rsyncWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  if (!word.includes("'")) return `'${word}'`;
  if (!word.includes('"')) return `"${word}"`;
  throw new BackupFailure('copy', `${word} holds both kinds of quote, which rsync's -e cannot pass to ssh`, 'rename the key file, known_hosts file or state folder');
}

/**
 * `rmtree PATH`: `rm -rf`, for a login that is not root too: a folder that came read-only
 * (0555, as Go's module cache has them) is made writable first, or rm could not empty it.
 * Only folders change mode, and a folder is never a hard link: no other copy changes.
 * find starts inside the folder: it fails where it cannot come back to where it started
 * (sudo from root's home).
 */
export const RMTREE = 'rmtree() { if [ "$(id -u)" != 0 ] && [ -d "$1" ] && [ ! -L "$1" ]; then chmod u+rwx -- "$1" && (cd -- "$1" && exec find . -type d ! -perm -u=rwx -exec chmod u+rwx {} \\;); fi 2>/dev/null; rm -rf -- "$1"; }; ';
/** $1 removed, whatever its folders' modes. */
const CLEAR = `${RMTREE}rmtree "$1"`;
/** A later copy begun from the older copy $2 (see LinkPlan): hard-linked whole into $1. */
export const LINK = `${CLEAR} && exec cp -al -- "$2" "$1"`;
/**
 * Then what stdin names (NUL-separated, relative to the copy $1) removed from it, each
 * folder it is removed from made writable (its mode is sent again after).
 */
export const REMOVE = 'cd "$1" && exec xargs -0 -r sh -c "$2" sh';
export const REMOVE_EACH = `${RMTREE}for p; do case $p in */*) d=\${p%/*} ;; *) d=. ;; esac; [ -w "$d" ] || chmod u+wx -- "$d"; rmtree "$p"; done`;

/** rsync's options for copies and for comparing them: the primary's snapshot exactly, times to the nanosecond. */
export const COPY_ARGS = ['-a', '--numeric-ids', '--modify-window=-1', '--delete'];

/** How `deliver` copies a snapshot. */
export interface Delivery {
  /** An older complete copy at the target: files unchanged since are hard links to it. */
  linkFrom?: string;
  /** A file is linked only when its bytes match: a repair must not link the damaged file it replaces. */
  checksum?: boolean;
  /** A few files to send (a later copy after a small change), worth no connection of their own. */
  small?: boolean;
  /**
   * What the manifests say changed since `linkFrom` (see LinkPlan), worked out while the
   * target links the older copy; undefined: rsync walks the whole tree.
   */
  plan?: Promise<LinkPlan | undefined>;
  /** After a plan's transfer failed: what it left at the target goes first. */
  again?: boolean;
}

/**
 * A later copy made from the older copy at the target, as the two snapshots' manifests
 * tell, rather than by rsync's walk of the whole tree: `--link-dest` looks up and links
 * every file one at a time (most of the 3.3–3.7 s that rsync took for a 1% change of
 * 20,000 files). The target hard-links the older copy whole (`cp -al`, 0.3–0.6 s), removes
 * what `remove` names, and rsync sends only what `send` names (`--files-from`, with
 * `--ignore-times`: a file that changed keeps neither its old bytes nor its old inode,
 * as rsync writes it anew and renames it into place). The copy is then checked as any
 * other: what the plan got wrong is a difference, and the copy is made again with
 * `--checksum` over the whole tree.
 */
export interface LinkPlan {
  /** Paths relative to the snapshot's folder, each ended by a NUL: every folder, and every entry that is not the older copy's file. */
  send: Buffer;
  /** Paths relative to the snapshot's folder, each ended by a NUL: what the older copy holds that the snapshot does not, or holds as another type. */
  remove: Buffer;
  /**
   * The same for the older copy's files that the snapshot holds changed: removed too before
   * a relay, so that no tar (GNU tar unlinks a file before it writes one, not every tar
   * does) can write through a hard link into the older copy.
   */
  changed: Buffer;
}

/**
 * A snapshot folder on a remote primary target: rsync cannot copy from one remote host to
 * another, so it goes through this machine as a tar stream (`tar -c` there, `tar -x` at
 * CSC, POSIX format: times to the nanosecond), then is checked at CSC as any copy.
 */
export interface RelaySource {
  target: ShellTarget;
  dir: string;
}

/**
 * A snapshot in an rsync daemon's module (the primary target, daemon-primary.ts): rsync
 * cannot copy from a daemon to another host, so what a copy sends is fetched into a folder
 * here first (`fetch`: what `send` names, NUL-separated paths in the snapshot's folder, or
 * all of it), then sent from there as from a local primary, and checked at CSC against the
 * manifest like any copy.
 */
export interface FetchSource {
  fetch(send: Buffer | undefined, signal?: AbortSignal): Promise<string>;
}

/** Where a copy is sent from: the primary's snapshot folder here, one on a remote primary, or one fetched from a daemon. */
export type SnapshotSource = string | RelaySource | FetchSource;

/** The snapshot folder $1 as a tar stream: what stdin names (NUL-separated), or with $2 = all, everything. */
const TAR = 'cd "$1" || exit 3; if [ "$2" = all ]; then exec tar --format=posix --pax-option=delete=atime,delete=ctime --numeric-owner -cf - .; else exec tar --format=posix --pax-option=delete=atime,delete=ctime --numeric-owner -cf - --null --verbatim-files-from --no-recursion -T -; fi';
/** A tar stream extracted into the copy's folder $1, folders' modes and times set once their contents are in. */
const UNTAR = 'umask 077; mkdir -p "$1" && cd "$1" && exec tar -xf - --numeric-owner --preserve-permissions --delay-directory-restore';

/** SHA-256 of the files named on stdin (NUL-separated), 64 at a time so that each digest comes out soon: for EarlyReader, which reads nothing where OpenSSL is missing. */
const EARLY_HASH = 'cd "$1" 2>/dev/null || exit 3; command -v openssl >/dev/null 2>&1 || exit 0; exec xargs -0 -r -n 64 openssl dgst -sha256 -r 2>/dev/null';
/** How many bytes rsync must have sent after a file before it is read back: what SSH and the pipes between may still hold. */
const EARLY_HOLD = 32 << 20;
/** A line of rsync's `--out-format=%i %l %b %n` for a file sent (`<f` in a push): its size and its name. */
const SENT_RE = /^[<>]f\S{9} (\d+) \d+ (.+)$/;

/**
 * Reads a first copy's files back at CSC while rsync still sends the others, so that the
 * check after the transfer is left with what this could not read. rsync's sender prints a
 * file once it has sent it (the `%b` in the format makes it wait till then); the receiver
 * writes each file under a temporary name and renames it into place whole, so a path read
 * here holds either nothing yet or the file as rsync finished it, which nothing writes
 * again. A file is read only after EARLY_HOLD more bytes were sent, so that it is most
 * likely in place. One not there yet, or whose name rsync escaped (a `\` in it), is just
 * not read here: the check reads it.
 */
class EarlyReader {
  readonly digests = new Map<string, string>();
  private readonly held: { name: Buffer; size: number }[] = [];
  private heldBytes = 0;
  /** Started with the first file to read: the copy's folder does not exist before rsync makes it. */
  private tool: { child: ChildProcess; done: Promise<ToolResult> } | undefined;
  private failed = false;

  constructor(
    private readonly command: [string, string[]],
    private readonly signal: AbortSignal | undefined,
  ) {}

  private read(names: Buffer[]): void {
    if (this.failed || !names.length) return;
    if (!this.tool) {
      try {
        this.tool = sessionTool(this.command[0], this.command[1], this.signal ? { signal: this.signal } : {});
      } catch {
        this.failed = true;
        return;
      }
      this.tool.done.catch(() => {});
      this.tool.child.stdin!.on('error', () => {});
      // OpenSSL's lines: `<hex> *<name>`.
      this.tool.child.stdout!.on(
        'data',
        eachLine((line) => {
          const d = parseDigest(Buffer.from(line, 'latin1'), 'openssl');
          if (d) this.digests.set(d.name.toString('latin1'), d.digest);
        }),
      );
    }
    this.tool.child.stdin!.write(nulList(names));
  }

  /** Rsync's stdout. */
  readonly sent = eachLine((line) => {
    const m = SENT_RE.exec(line);
    if (!m || m[2]!.includes('\\')) return;
    const size = Number(m[1]);
    this.held.push({ name: Buffer.from(m[2]!, 'latin1'), size });
    this.heldBytes += size;
    const ready: Buffer[] = [];
    while (this.held.length && this.heldBytes - this.held[0]!.size >= EARLY_HOLD) {
      const { name, size: bytes } = this.held.shift()!;
      this.heldBytes -= bytes;
      ready.push(name);
    }
    this.read(ready);
  });

  /** After rsync succeeded: reads what is still held, and returns every digest read (paths as latin1 keys). */
  async finish(): Promise<ReadonlyMap<string, string>> {
    this.read(this.held.map((h) => h.name));
    if (this.tool) {
      this.tool.child.stdin!.end();
      await this.tool.done.catch(() => {});
    }
    return this.digests;
  }

  /** After rsync failed: nothing read counts. */
  async stop(): Promise<void> {
    if (!this.tool) return;
    this.tool.child.kill('SIGTERM');
    await this.tool.done.catch(() => {});
  }
}

/**
 * CSC's target as the copy, the restore and the prune use it, however it is reached:
 * `SecondaryTarget` (a local path, SSH) and `RsyncDaemonTarget` (an rsync daemon).
 * `openSecondary` (secondary-rsyncd.ts) picks the one the config names.
 */
export interface Secondary {
  /** Secondary, but for an rsync daemon that is the primary target (daemon-primary.ts), which restores read as they read CSC's. */
  readonly role: 'primary' | 'secondary';
  /** How messages name the target. */
  readonly display: string;
  /** Fails (a BackupFailure) when CSC cannot take a copy; asked once per run. */
  check(signal?: AbortSignal): Promise<void>;
  repository(host: string, name: string): SecondaryRepository;
  /** Ends what the run opened (a shared SSH connection). */
  close(): Promise<void>;
  /** rsync's options to reach the target: `-e 'ssh …'`, a daemon's time limits, nothing for a path; `bulk`: for a large transfer. */
  rsyncShell(bulk?: boolean): Promise<string[]>;
  /** The environment rsync needs (a daemon's password); undefined: the agent's own. */
  rsyncEnv(): Promise<NodeJS.ProcessEnv | undefined>;
  /** A path at the target as rsync's source or destination. */
  rsyncPath(path: string): string;
}

/** One repository's folder on CSC's target: what copy.ts delivers to and prune.ts prunes. */
export interface SecondaryRepository extends PruneStore {
  /** `<root>/<host>/<repository>`, as `rsyncPath` takes it. */
  readonly base: string;
  snapshotLocation(id: string): string;
  snapshots(signal?: AbortSignal): Promise<string[]>;
  /** `snapshots`, for a run that copies: what a copy cut short left is cleared, the folders made. */
  prepare(signal?: AbortSignal): Promise<string[]>;
  /**
   * Copies the primary's snapshot folder `dir` into `incomplete/<id>` at the target. Returns
   * the milliseconds spent linking the older copy when `how.plan` was followed, else undefined.
   */
  deliver(dir: SnapshotSource, id: string, how: Delivery, signal?: AbortSignal): Promise<number | undefined>;
  /** How many files of the last delivery of `id` were read back at the target while it went on. */
  readEarly?(id: string): number;
  /**
   * How `differences` compares, as copy records say: `rehash` honours the reference's
   * `reread`; `rsync-checksum` reads every file back.
   */
  readonly method: 'rehash' | 'rsync-checksum';
  /** How the copy of snapshot `id` in `where` differs from `ref`, the primary's; empty when it matches. */
  differences(ref: CopyReference, id: string, where: 'snapshots' | 'incomplete', signal?: AbortSignal): Promise<Difference[]>;
  flush(id: string, signal?: AbortSignal): Promise<void>;
  /** Makes a delivered and compared copy of the primary's snapshot `dir` the complete snapshot. */
  publish(dir: SnapshotSource, id: string, replace: boolean, signal?: AbortSignal): Promise<void>;
  deliverArchive(archive: string, signal?: AbortSignal): Promise<void>;
  discard(id: string): Promise<void>;
  /**
   * Verify at rest: the complete copies `snapshots` checked where they lie (see checkStored
   * in copy-check.ts), the files `pick` selects read back. `primaryDir`: the primary's folder
   * of a snapshot, for a target that can only compare with it (an rsync daemon).
   */
  checkStored(snapshots: StoredSnapshot[], pick: (e: ManifestEntry) => boolean, primaryDir: (id: string) => Promise<string | undefined>, signal?: AbortSignal): Promise<StoredCheck>;
  /** A complete copy's `manifest.jsonl` as the target holds it; undefined when it has none; throws when the target cannot be read. */
  readManifest(id: string, signal?: AbortSignal): Promise<Buffer | undefined>;
}

/**
 * A target reached as a path or over SSH, where fixed scripts run: CSC's (SecondaryTarget)
 * or a remote primary (remote-target.ts). `role` names it in messages and in the name of
 * the known_hosts file its pinned host key is written to.
 */
export class ShellTarget {
  /** How messages name the target: `csc@host:/srv/respaldos` or the local path. */
  readonly display: string;

  constructor(
    readonly location: Exclude<SecondaryLocation, { kind: 'rsync' }>,
    /** The agent's state folder, where the pinned host key is written as a known_hosts file. */
    protected readonly state: string,
    readonly role: 'primary' | 'secondary',
  ) {
    this.display = targetDisplay(location);
  }

  get root(): string {
    return this.location.path;
  }

  private pinned: Promise<void> | undefined;

  /** The pinned host key as a known_hosts file, written once per run (atomically: two ssh may start together). */
  private async pinHostKey(host: string, port: number | undefined, key: string): Promise<void> {
    // known_hosts names a host on another port as [host]:port.
    const name = port && port !== 22 ? `[${host}]:${port}` : host;
    await mkdir(this.state, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.knownHostsFile(), `${name} ${key.split(' ').slice(0, 2).join(' ')}\n`, { mode: 0o600 });
  }

  private knownHostsFile(): string {
    const l = this.location;
    if (l.kind !== 'ssh') throw new Error('not an SSH target');
    return l.knownHosts ?? join(this.state, `${this.role}_known_hosts`);
  }

  /** ssh's options: batch mode, the pinned host key and nothing else, the key file, the port. */
  private async sshOptions(shared = true): Promise<string[]> {
    const l = this.location;
    if (l.kind !== 'ssh') return [];
    if (l.hostKey) await (this.pinned ??= this.pinHostKey(l.host, l.port, l.hostKey));
    return [
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${this.knownHostsFile()}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'UpdateHostKeys=no',
      '-o', 'ConnectTimeout=20',
      '-o', 'ServerAliveInterval=15',
      '-o', 'ServerAliveCountMax=4',
      '-o', 'LogLevel=ERROR',
      // One connection for the whole run: a copy takes some ten commands, and each new
      // handshake costs a round trip and a key exchange (close() ends it).
      // Or a connection of its own, for the bulk of a transfer.
      ...(!shared ? ['-o', 'ControlMaster=no', '-o', 'ControlPath=none'] : this.multiplexed() ? ['-o', 'ControlMaster=auto', '-o', `ControlPath=${this.controlPath()}`, '-o', 'ControlPersist=120'] : []),
      ...(l.identity ? ['-o', 'IdentitiesOnly=yes', '-i', l.identity] : []),
      ...(l.port ? ['-p', String(l.port)] : []),
    ]; // prettier-ignore
  }

  private controlPath(): string {
    return join(this.state, 'ssh-%C');
  }

  /**
   * A Unix socket's path has at most 107 bytes: %C becomes 40 characters, and ssh binds a
   * temporary name 17 characters longer first. A longer state folder goes without.
   */
  private multiplexed(): boolean {
    return this.state.length + '/ssh-'.length + 40 + 17 < 108;
  }

  /** Ends the shared connection, if one was opened. */
  async close(): Promise<void> {
    if (this.location.kind !== 'ssh' || !this.multiplexed()) return;
    // The same options as the connection: %C in the socket's name hashes the host, port and user.
    await runTool('ssh', [...(await this.sshOptions()), '-O', 'exit', this.sshDest()]).catch(() => undefined);
  }

  private sshDest(): string {
    const l = this.location;
    if (l.kind !== 'ssh') throw new Error('not an SSH target');
    const host = l.host.includes(':') ? `[${l.host}]` : l.host;
    return `${l.user ? `${l.user}@` : ''}${host}`;
  }

  /** rsync's way to reach the target: `--secluded-args -e 'ssh …'` for SSH, nothing for a local path. */
  async rsyncShell(bulk = false): Promise<string[]> {
    if (this.location.kind !== 'ssh') return [];
    // A bulk transfer gets its own connection: through the shared one, every byte would pass
    // through the master ssh process too (a quarter more time on loopback).
    if (bulk) return ['--secluded-args', '-e', ['ssh', ...(await this.sshOptions(false))].map(rsyncWord).join(' ')];
    // --secluded-args: the paths travel inside rsync's protocol, not through the remote
    // shell, so an rsync older than 3.2.4 does not split a path at its spaces.
    return ['--secluded-args', '-e', ['ssh', ...(await this.sshOptions())].map(rsyncWord).join(' ')];
  }

  /** ssh reads its key from the identity file: rsync needs nothing more. */
  async rsyncEnv(): Promise<undefined> {
    return undefined;
  }

  /** A path at the target as rsync's source or destination. */
  rsyncPath(path: string): string {
    return this.location.kind === 'ssh' ? `${this.sshDest()}:${path}` : path;
  }

  /**
   * Runs `script` with `sh -c` at the target, `args` as $1, $2…; stdout is returned. ssh
   * itself exits 255 when it cannot connect or log in: that is "unreachable", not a failed
   * command.
   */
  async sh(script: string, args: string[], signal?: AbortSignal): Promise<{ result: ToolResult; stdout: string; unreachable: boolean }> {
    const { result, bytes, unreachable } = await this.shBytes(script, args, signal);
    return { result, stdout: bytes.toString('utf8'), unreachable };
  }

  /** `sh` with stdout as bytes; `input` on the script's stdin. */
  async shBytes(script: string, args: string[], signal?: AbortSignal, input?: Buffer, onStdout?: (chunk: Buffer) => void): Promise<{ result: ToolResult; bytes: Buffer; unreachable: boolean }> {
    const chunks: Buffer[] = [];
    const opts = { onStdout: (c: Buffer) => (chunks.push(c), onStdout?.(c)), ...(signal ? { signal } : {}), ...(input ? { input } : {}) };
    const [program, argv] = await this.command(script, args);
    const result = await runTool(program, argv, opts);
    return { result, bytes: Buffer.concat(chunks), unreachable: this.location.kind === 'ssh' && result.code === 255 };
  }

  /** The program and arguments that run `script` at the target (through ssh, or here); `bulk`: on a connection of its own. */
  async command(script: string, args: string[], bulk = false): Promise<[string, string[]]> {
    const argv = ['sh', '-c', script, 'sh', ...args];
    if (this.location.kind !== 'ssh') return [argv[0]!, argv.slice(1)];
    return ['ssh', [...(await this.sshOptions(!bulk)), this.sshDest(), argv.map(shellQuote).join(' ')]];
  }

  private checked: Promise<void> | undefined;

  /**
   * Fails when CSC cannot take a copy: unreachable, no such folder, or read-only. Asked once
   * per run: when CSC is down, each repository records that its copies wait, but the
   * connection is not tried again for each.
   */
  check(signal?: AbortSignal): Promise<void> {
    this.checked ??= this.probe(signal);
    return this.checked;
  }

  /** Folders under the root that the check also looks for (a host's), and those it found: one command for both. */
  protected readonly probed: string[] = [];
  protected readonly found = new Set<string>();

  private async probe(signal?: AbortSignal): Promise<void> {
    const script = 'r=$1; shift; if [ ! -d "$r" ]; then echo missing; elif [ ! -w "$r" ]; then echo readonly; else echo ok; echo "uid $(id -u)"; for f; do [ -d "$r/$f" ] && printf "has %s\\n" "$f"; done; fi; exit 0';
    const { result, stdout: out, unreachable } = await this.sh(script, [this.root, ...this.probed], signal);
    const [stdout = '', ...more] = out.split('\n');
    for (const line of more) if (line.startsWith('has ')) this.found.add(line.slice(4));
    const uid = more.find((l) => l.startsWith('uid '))?.slice(4);
    const { stage, waits } = roleWords(this.role);
    const where = this.role === 'secondary' ? 'at CSC' : 'on the target host';
    if (unreachable || result.code !== 0)
      throw new BackupFailure(stage, `the ${this.role} target ${this.display} cannot be reached: ${lastLines(result.stderr, 2) || `exit code ${result.code}`}`, `${this.role === 'secondary' ? 'the copies wait and are retried on every run, nothing is dropped' : waits}; check the network, the ssh server ${where}, the key (targets.${this.role}.identity) and the pinned host key`);
    if (stdout.trim() === 'missing')
      throw new BackupFailure(stage, `the ${this.role} target's folder ${this.display} does not exist`, `create it ${where} (mkdir ${this.root}), or mount its disk; respaldo does not create a target's top folder, so that an unmounted disk is noticed`);
    if (stdout.trim() === 'readonly') throw new BackupFailure(stage, `the ${this.role} target ${this.display} is not writable`, `check the permissions of ${this.root} for the user that logs in`);
    // CSC stores copies under any login; the primary's snapshots are made there by rsync,
    // which keeps the files' owners only as root, and read back there, which a file only
    // its owner may read (mode 0000, as /etc/shadow) would refuse to another login.
    if (this.role === 'primary' && this.location.kind === 'ssh' && uid !== undefined && uid !== '0')
      throw new BackupFailure(stage, `the primary target ${this.display} logs in as a user that is not root (uid ${uid})`, "log in as root there (a key of its own in root's authorized_keys, which may restrict it with from=\"…\"): rsync keeps the files' owners only as root, and the snapshot's files must be read back there");
  }
}

/** How failures at a target of this role are recorded: the record's stage, what happens next when it is out of reach (`waits`) or fails a command (`retry`). */
export function roleWords(role: 'primary' | 'secondary'): { stage: 'copy' | 'target'; waits: string; retry: string } {
  return role === 'secondary'
    ? { stage: 'copy', waits: 'the copy waits and is retried on the next run', retry: 'the copy is retried on the next run' }
    : { stage: 'target', waits: 'run again once the target is back; the previous snapshot is intact', retry: 'run again; the previous snapshot is intact' };
}

export class SecondaryTarget extends ShellTarget implements Secondary {
  declare readonly role: 'secondary';

  constructor(location: Exclude<SecondaryLocation, { kind: 'rsync' }>, state: string) {
    super(location, state, 'secondary');
  }

  repository(host: string, name: string): SecondaryStore {
    return new SecondaryStore(this, posix.join(this.root, host, name), `${host}/${name}`);
  }
}

/** One repository's folder on the secondary target. */
export class SecondaryStore implements SecondaryRepository {
  readonly method = 'rehash';
  /** Per snapshot id, the digests its last transfer read back as it went (EarlyReader). */
  private readonly early = new Map<string, ReadonlyMap<string, string>>();
  constructor(
    readonly target: ShellTarget,
    readonly base: string,
    readonly rel: string,
  ) {}

  snapshotLocation(id: string): string {
    return `${this.rel}/snapshots/${id}`;
  }

  private dir(where: 'snapshots' | 'incomplete', id: string): string {
    return posix.join(this.base, where, id);
  }

  readEarly(id: string): number {
    return this.early.get(id)?.size ?? 0;
  }

  private async must(script: string, args: string[], what: string, signal?: AbortSignal): Promise<string> {
    return (await this.mustBytes(script, args, what, signal)).toString('utf8');
  }

  /** Runs `script` at the target (`input` on its stdin) and returns its output; a failure names `what` it was doing. */
  async mustBytes(script: string, args: string[], what: string, signal?: AbortSignal, input?: Buffer): Promise<Buffer> {
    const { result, bytes, unreachable } = await this.target.shBytes(script, args, signal, input);
    const role = this.target.role;
    const { stage, waits, retry } = roleWords(role);
    if (unreachable) throw new BackupFailure(stage, `the ${role} target ${this.target.display} became unreachable while ${what}: ${lastLines(result.stderr, 2)}`, waits);
    if (result.code !== 0) throw new BackupFailure(stage, `${what} failed on the ${role} target ${this.target.display}: ${lastLines(result.stderr, 2) || `exit code ${result.code}`}`, `check the ${role} target's disk (space, permissions, what is in ${this.base} there); ${retry}`, { detail: result.stderr });
    return bytes;
  }

  /** Complete snapshots at the target, oldest first. */
  async snapshots(signal?: AbortSignal): Promise<string[]> {
    return this.list('[ -d "$1" ] || exit 0;', signal);
  }

  /**
   * `snapshots`, after clearing `incomplete/` (what a copy cut short left: the run holds
   * the host's lock, so no copy is under way) and making the repository's folders, in the
   * same connection: `deliver` needs nothing more done at the target.
   */
  async prepare(signal?: AbortSignal): Promise<string[]> {
    return this.list(`${RMTREE}umask 077; mkdir -p "$1" "$2" && rmtree "$2" && mkdir "$2" || exit 1;`, signal);
  }

  private async list(before: string, signal?: AbortSignal): Promise<string[]> {
    const out = await this.must(`${before} cd "$1" && for f in *; do [ -d "$f" ] && printf "%s\\n" "$f"; done; exit 0`, [posix.join(this.base, 'snapshots'), posix.join(this.base, 'incomplete')], 'listing the snapshots', signal);
    return out.split('\n').filter((n) => SNAPSHOT_ID_RE.test(n)).sort(compareSnapshotIds);
  }

  /**
   * `--link-dest` for an older copy: its absolute path at the target. rsync 3.4 opens each
   * name of a basis path one at a time (no symbolic link followed), and walks a relative
   * one from the destination folder through `..`: for 20,000 files, 0.4 s more than the
   * absolute path. A root relative to the login's home folder is walked so, from
   * `incomplete/<id>`.
   */
  private linkDest(linkFrom: string): string {
    return `${this.base.startsWith('/') ? posix.join(this.base, 'snapshots', linkFrom) : `../../snapshots/${linkFrom}`}/`;
  }

  /**
   * Copies a complete primary snapshot (its folder, `dir`) into `incomplete/<id>` at the
   * target: files unchanged since `how.linkFrom` (an older snapshot there) become hard
   * links to it, following `how.plan` when there is one (see LinkPlan).
   */
  async deliver(dir: SnapshotSource, id: string, how: Delivery, signal?: AbortSignal): Promise<number | undefined> {
    const { linkFrom, checksum = false, small = false, plan } = how;
    const incomplete = this.dir('incomplete', id);
    let linked: number | undefined;
    let send: Buffer | undefined;
    if (plan && linkFrom && !checksum) {
      const t0 = performance.now();
      const link = this.target.shBytes(LINK, [incomplete, this.dir('snapshots', linkFrom)], signal);
      const [done, changes] = await Promise.all([link, plan]);
      if (signal?.aborted) throw signal.reason;
      // cp cannot link everything (a folder it may not read): rsync walks the whole tree instead.
      const removed = done.result.code === 0 && changes ? await this.target.shBytes(REMOVE, [incomplete, REMOVE_EACH], signal, typeof dir === 'string' ? changes.remove : Buffer.concat([changes.remove, changes.changed])) : done;
      if (signal?.aborted) throw signal.reason;
      if (removed.unreachable) throw new BackupFailure('copy', `the secondary target ${this.target.display} became unreachable while linking the copy of snapshot ${id} to ${linkFrom}: ${lastLines(removed.result.stderr, 2)}`, 'the copy waits and is retried on the next run');
      if (removed.result.code === 0 && changes) {
        linked = performance.now() - t0;
        send = changes.send;
      }
    }
    // After `prepare`, `incomplete/` is empty but for a copy made again (with --checksum)
    // after its check differed, or an older copy's links where no plan followed: that one
    // starts afresh too.
    if (checksum || (plan && send === undefined) || how.again) await this.must(CLEAR, [incomplete], 'preparing the copy', signal);
    const source = dir;
    if (typeof dir !== 'string' && 'fetch' in dir) dir = await dir.fetch(send, signal);
    if (typeof dir !== 'string') {
      await this.relay(dir, incomplete, id, send, signal);
      return linked;
    }
    // A first copy, or one rsync walks whole: its files are read back at CSC as they arrive.
    this.early.delete(id);
    const early = !send && !small && !checksum ? new EarlyReader(await this.target.command(EARLY_HASH, [incomplete]), signal) : undefined;
    const args = [
      ...(early ? ['--out-format=%i %l %b %n'] : []),
      ...COPY_ARGS.filter((a) => !send || a !== '--delete'),
      ...(checksum ? ['--checksum'] : []),
      ...(send ? ['--ignore-times', '--from0', '--files-from=-'] : linkFrom ? [`--link-dest=${this.linkDest(linkFrom)}`] : []),
      // A small transfer goes through the run's shared connection: a handshake of its own
      // would cost more than the bytes passing through the master ssh process.
      ...(await this.target.rsyncShell(!small)),
      `${dir}/`,
      `${this.target.rsyncPath(incomplete)}/`,
    ];
    const result = await runTool('rsync', args, { ...(signal ? { signal } : {}), ...(send ? { input: send } : {}), ...(early ? { onStdout: early.sent } : {}) });
    if (early) {
      if (result.code === 0) this.early.set(id, await early.finish());
      else await early.stop();
    }
    if (result.code !== 0) {
      const lost = result.code === 255 || /connection unexpectedly closed|Connection refused|timed out/i.test(result.stderr);
      // What the plan left (a path it did not foresee, that rsync could not make way through)
      // goes, and rsync walks the whole tree.
      // (From the source as given: what a fetch brought here for `send` is not the whole snapshot.)
      if (send && !lost && !signal?.aborted) return this.deliver(source, id, { ...(linkFrom ? { linkFrom } : {}), checksum, small, again: true }, signal).then(() => undefined);
      throw new BackupFailure('copy', `the copy of snapshot ${id} to ${this.target.display} failed: rsync exit code ${result.code}: ${lastLines(result.stderr, 2)}`, lost ? 'the connection to CSC was lost: the copy is retried on the next run' : 'check the secondary target\'s disk (space: df; permissions); the copy is retried on the next run', {
        detail: result.stderr,
        ...(result.code === null ? {} : { exitCode: result.code }),
      });
    }
    return linked;
  }

  /**
   * Sends a remote primary's snapshot folder (what `send` names, or all of it) into
   * `incomplete` at the target through this machine: `tar -c` there, `tar -x` here or at
   * CSC, each on a connection of its own.
   */
  private async relay(from: RelaySource, incomplete: string, id: string, send: Buffer | undefined, signal?: AbortSignal): Promise<void> {
    const source = await from.target.command(TAR, [from.dir, send ? 'list' : 'all'], true);
    const sink = await this.target.command(UNTAR, [incomplete], true);
    const [out, into] = await pipeTools(source, sink, { ...(send ? { input: send } : {}), ...(signal ? { signal } : {}) });
    if (signal?.aborted) throw signal.reason;
    if (out.code === 0 && into.code === 0) return;
    const lost = (r: ToolResult) => r.code === 255;
    // The receiving side's failure first: the sending side then only saw its pipe closed.
    const [side, r] = into.code !== 0 ? [`the secondary target ${this.target.display}`, into] : [`the primary target ${from.target.display}`, out];
    throw new BackupFailure('copy', `the copy of snapshot ${id} through this machine failed at ${side}: tar exit code ${r.code}: ${lastLines(r.stderr, 2)}`, lost(r) ? 'the connection was lost: the copy is retried on the next run' : 'both hosts need GNU tar; check the disks (space: df; permissions); the copy is retried on the next run', {
      detail: `${out.stderr}\n${into.stderr}`.trim(),
      ...(r.code === null ? {} : { exitCode: r.code }),
    });
  }

  /**
   * How the copy differs from the primary's snapshot: listed and read back at the target
   * and compared with the manifest (copy-check.ts). With the reference's `reread`, only
   * the files it picks are read; the others, hard links to an older copy that was compared
   * when it was made, are compared by listing.
   */
  async differences(ref: CopyReference, id: string, where: 'snapshots' | 'incomplete', signal?: AbortSignal): Promise<Difference[]> {
    return checkCopy(this.shell, this.dir(where, id), ref, signal, this.failing(` of snapshot ${id}`), ref.linkedFrom ? this.dir('snapshots', ref.linkedFrom) : undefined, where === 'incomplete' ? this.early.get(id) : undefined);
  }

  readonly shell: TargetShell = (script, args, signal, input, onStdout) => this.target.shBytes(script, args, signal, input, onStdout);

  /** How the target failing to run a check (`what`, then `of`) becomes a BackupFailure; `after`: what happens next. */
  failing(of: string, after = roleWords(this.target.role).waits): Fail {
    const { stage } = roleWords(this.target.role);
    const role = this.target.role;
    return (what, result, unreachable) =>
      unreachable
        ? new BackupFailure(stage, `the ${role} target ${this.target.display} became unreachable while ${what}${of}: ${lastLines(result.stderr, 2)}`, after)
        : new BackupFailure(stage, `${what}${of} failed on the ${role} target ${this.target.display}: ${lastLines(result.stderr, 2) || `exit code ${result.code}`}`, `the target needs GNU find and OpenSSL or coreutils' sha256sum; ${after}`, { detail: result.stderr });
  }

  async checkStored(snapshots: StoredSnapshot[], pick: (e: ManifestEntry) => boolean, _primaryDir: (id: string) => Promise<string | undefined>, signal?: AbortSignal): Promise<StoredCheck> {
    return checkStored(this.shell, this.base, snapshots, pick, `at the ${this.target.role} target`, signal, this.failing('', 'the check is tried again on the next run'));
  }

  async readManifest(id: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    const { result, bytes, unreachable } = await this.target.shBytes('[ -f "$1" ] || exit 3; cat -- "$1"', [posix.join(this.dir('snapshots', id), 'manifest.jsonl')], signal);
    if (result.code === 3) return undefined;
    if (unreachable || result.code !== 0) throw this.failing(` of snapshot ${id}`, 'the check is tried again on the next run')('reading the manifest', result, unreachable);
    return bytes;
  }

  /** Writes `incomplete/<id>` to the target's disk (syncfs): rsync does not fsync what it writes. */
  async flush(id: string, signal?: AbortSignal): Promise<void> {
    await this.must('sync -f "$1"', [this.dir('incomplete', id)], `flushing the copy of snapshot ${id} to disk`, signal);
  }

  /**
   * Makes `incomplete/<id>` (flushed) the complete snapshot with one rename. With
   * `replace`, a damaged copy of the same snapshot is moved aside first and removed once
   * the new one is in place.
   */
  async publish(_dir: SnapshotSource, id: string, replace: boolean, signal?: AbortSignal): Promise<void> {
    const script = replace
      ? `${RMTREE}mkdir -p "$4" && rmtree "$4/$5" && { [ ! -e "$2" ] || mv -T "$2" "$4/$5"; } && mv -T "$1" "$2" && sync -f "$3" && rmtree "$4/$5"`
      : '[ ! -e "$2" ] && mv -T "$1" "$2" && sync -f "$3"';
    await this.must(script, [this.dir('incomplete', id), this.dir('snapshots', id), posix.join(this.base, 'snapshots'), posix.join(this.base, 'replaced'), id], `publishing snapshot ${id}`, signal);
  }

  // What `respaldo prune` needs (PruneStore in prune.ts): the same steps as on the primary.

  async readSummary(id: string): Promise<{ summary: SnapshotSummary }> {
    const file = posix.join(this.dir('snapshots', id), 'snapshot.yaml');
    const text = await this.must('cat -- "$1"', [file], `reading ${file}`);
    try {
      return { summary: snapshotSummary.parse(parseYaml(text)) };
    } catch (e) {
      throw new Error(`the summary ${this.target.display.replace(this.target.root, '')}${file} of snapshot ${id} cannot be read: ${e instanceof ZodError ? `field ${e.issues[0]!.path.join('.')}: ${e.issues[0]!.message}` : messageOf(e)}`);
    }
  }

  async readSnapshotFile(id: string, rel: string): Promise<Buffer | undefined> {
    const { result, bytes, unreachable } = await this.target.shBytes('[ -f "$1" ] || exit 3; cat -- "$1"', [posix.join(this.dir('snapshots', id), 'data', rel)]);
    if (result.code === 3) return undefined;
    if (unreachable || result.code !== 0) throw new Error(`cannot read ${rel} of snapshot ${id} at ${this.target.display}: ${lastLines(result.stderr, 2)}`);
    return bytes;
  }

  /** Out of `snapshots/` with one rename (flushed), then removed: a crash leaves it whole or in `pruning/`. */
  async removeSnapshot(id: string): Promise<void> {
    await this.must(`${RMTREE}mkdir -p "$3" && mv -T "$1" "$3/$4" && sync -f "$2" && rmtree "$3/$4"`, [this.dir('snapshots', id), posix.join(this.base, 'snapshots'), posix.join(this.base, 'pruning'), id], `deleting snapshot ${id}`);
  }

  async removeLeftovers(): Promise<string[]> {
    const out = await this.must(`${RMTREE}[ -d "$1" ] || exit 0; cd "$1" && for f in *; do [ -e "$f" ] && printf "%s\\n" "$f" && rmtree "$f"; done; exit 0`, [posix.join(this.base, 'pruning')], 'clearing an interrupted prune');
    return out.split('\n').filter(Boolean);
  }

  async archiveFiles(folder: 'wal' | 'binlog'): Promise<string[]> {
    const out = await this.must('[ -d "$1" ] || exit 0; cd "$1" && for f in *; do [ -f "$f" ] && printf "%s\\n" "$f"; done; exit 0', [posix.join(this.base, 'archive', folder)], 'listing the archive');
    return out.split('\n').filter(Boolean);
  }

  async removeArchiveFile(folder: 'wal' | 'binlog', name: string): Promise<void> {
    await this.must('rm -f -- "$1"', [posix.join(this.base, 'archive', folder, name)], `deleting archive file ${name}`);
  }

  /**
   * Adds the point-in-time-recovery archive's new files (WAL segments, binary logs) to
   * CSC's copy. They never change once archived: files already there are left as they are.
   */
  async deliverArchive(archive: string, signal?: AbortSignal): Promise<void> {
    await this.must('umask 077; mkdir -p "$1"', [posix.join(this.base, 'archive')], 'preparing the archive', signal);
    // Files being written (".name.tmp") are left for the next run; one already there is
    // replaced only if its bytes differ (a copy cut short), never deleted.
    const base = ['-a', '--numeric-ids', '--exclude=.*', ...(await this.target.rsyncShell()), `${archive}/`, `${this.target.rsyncPath(posix.join(this.base, 'archive'))}/`];
    const sent = await runTool('rsync', ['--ignore-existing', ...base], signal ? { signal } : {});
    if (sent.code !== 0) throw new BackupFailure('copy', `the copy of the archive to ${this.target.display} failed: rsync exit code ${sent.code}: ${lastLines(sent.stderr, 2)}`, 'the archive is copied again on the next run');
    const checked = await runTool('rsync', ['--checksum', ...base], signal ? { signal } : {});
    if (checked.code !== 0) throw new BackupFailure('copy', `the comparison of the archive at ${this.target.display} failed: rsync exit code ${checked.code}: ${lastLines(checked.stderr, 2)}`, 'the archive is compared again on the next run');
    await this.must('sync -f "$1"', [posix.join(this.base, 'archive')], 'flushing the archive to disk', signal);
  }

  /** Removes what a failed copy left in `incomplete/`. */
  async discard(id: string): Promise<void> {
    await this.target.sh(CLEAR, [this.dir('incomplete', id)]).catch(() => {});
  }
}
