/**
 * rsync as the copy engine: `rsync -a -R --link-dest=<previous>`, spawned with an argument
 * array (a path with spaces, parentheses or `$` is just a path), and its exit codes turned
 * into failures that say what to do.
 */
import { BackupFailure } from './errors.js';
import { capture, lastLines, runTool } from './exec.js';
import type { TransferChecksum } from './hashing.js';
import type { TransferLog } from './transfers.js';

/** rsync's exit codes (rsync(1), EXIT VALUES). */
const EXIT_MEANING: Record<number, string> = {
  1: 'syntax or usage error',
  2: 'protocol incompatibility',
  3: 'errors selecting input/output files or folders',
  4: 'requested action not supported',
  5: 'error starting client-server protocol',
  10: 'error in socket I/O',
  11: 'error in file I/O',
  12: 'error in rsync protocol data stream',
  13: 'errors with program diagnostics',
  14: 'error in IPC code',
  20: 'received SIGUSR1 or SIGINT',
  21: 'some error returned by waitpid()',
  22: 'error allocating core memory buffers',
  23: 'partial transfer due to error',
  24: 'partial transfer due to vanished source files',
  30: 'timeout in data send/receive',
  35: 'timeout waiting for daemon connection',
};

export interface RsyncJob {
  sources: string[];
  dest: string;
  /** rsync's options to reach `dest` (`-e 'ssh …'`); none for a local one. */
  rsh: string[];
  linkDest: string | undefined;
  /** Leave every file already in `dest` as it is (see SnapshotJob.keepExisting). */
  keepExisting: boolean;
  exclude: string[];
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  /** Called with bytes copied so far and the total rsync expects, when showing progress. */
  progress: ((done: number, total: number) => void) | undefined;
  /**
   * Filled with the checksum that rsync's sender computed over each file it transferred, by
   * the file's path under the destination; its `algorithm` is set here. Verification
   * matches the stored copy against it, so the original need not be read a second time.
   */
  transferred: TransferLog;
  /** The transfer checksum to report, when the target wants one (see PrimaryStore.checksum); else transferChecksum's. */
  checksum?: TransferChecksum | undefined;
}

let checksums: Promise<TransferChecksum> | undefined;

/** xxh128 where this rsync has it (its `--version` lists it), else SHA-1; asked once. */
export function transferChecksum(env: NodeJS.ProcessEnv): Promise<TransferChecksum> {
  checksums ??= capture('rsync', ['--version'], { env }).then(
    (out) => (/^Checksum list:\s*\n?\s*.*\bxxh128\b/m.test(out.toString()) ? 'xxh128' : 'sha1'),
    () => 'sha1' as const,
  );
  return checksums;
}

/** The options every copy and every comparison shares, so both see files the same way. */
function commonArgs(exclude: string[]): string[] {
  return [
    // -a keeps permissions, times, owners, symlinks (as links, never followed) and devices;
    // -R keeps each source's absolute path under data/, so two sources never collide.
    '-a',
    '-R',
    '--numeric-ids',
    // Compare and set times to the nanosecond: by default rsync matches whole seconds, so a
    // file rewritten within the same second with the same size would be hard-linked as
    // unchanged, and folders and links would lose their sub-second times.
    '--modify-window=-1',
    ...exclude.map((pattern) => `--exclude=${pattern}`),
  ];
}

export function rsyncArgs(job: Pick<RsyncJob, 'sources' | 'dest' | 'rsh' | 'linkDest' | 'keepExisting' | 'exclude' | 'progress'>, checksum: TransferChecksum): string[] {
  return [
    ...commonArgs(job.exclude),
    ...job.rsh,
    ...(job.linkDest ? [`--link-dest=${job.linkDest}`] : []),
    // The destination already holds hard links to the previous snapshot's unchanged files:
    // never write through one (not even its permissions or times), whatever changed since.
    // --delete: what was deleted at the source after the comparison goes too (the folders
    // of the new tree are its own, so this never touches the previous snapshot).
    ...(job.keepExisting ? ['--ignore-existing', '--delete'] : []),
    // The whole-file checksum both ends of rsync compute anyway, printed per file (%C).
    `--checksum-choice=${checksum}`,
    '--out-format=%C %i %l %n',
    ...(job.progress ? ['--info=progress2'] : []),
    '--',
    ...job.sources,
    job.dest,
  ];
}

/** Undoes rsync's escaping of names in its output: `\#ooo` is a byte in octal (a literal `\#` is written `\#134#`). */
export function unescapeName(text: string): Buffer {
  return Buffer.from(text.replace(/\\#([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))), 'latin1');
}

/**
 * Adds a file sent to `log` when `line` is rsync's `--out-format='%C %i %l %n'` line of one
 * (">f" into a folder here, "<f" to another host); false for any other line.
 */
export function logSent(log: TransferLog, line: string): boolean {
  const sent = /^([0-9a-f]{32}|[0-9a-f]{40}) [<>]f\S{9} (\d+) (.*)$/.exec(line);
  if (sent) log.add(unescapeName(sent[3]!.replace(/^\/+/, '')), sent[1]!, Number(sent[2]));
  return sent !== null;
}

/**
 * Reads rsync's stdout: `--out-format='%C %i %l %n'` lines of transferred files (the checksum
 * of what the sender read, the itemized change, the size, the name) and, on a terminal,
 * `--info=progress2` updates ("  1,234,567  45%  10.00MB/s  0:00:05 …") between carriage returns.
 */
function outputParser(job: RsyncJob): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    const parts = (pending + chunk.toString('latin1')).split(/[\r\n]/);
    pending = parts.pop()!;
    let progress: RegExpExecArray | null = null;
    for (const part of parts) if (!logSent(job.transferred, part)) progress = /^\s*([\d,]+)\s+(\d+)%/.exec(part) ?? progress;
    // A line at 0% says nothing of the total yet: the bar waits for one that does.
    if (progress && job.progress && Number(progress[2]) > 0) {
      const done = Number(progress[1]!.replace(/,/g, ''));
      job.progress(done, Math.round((done * 100) / Number(progress[2])));
    }
  };
}

function hintFor(code: number | null, stderr: string): string {
  if (/No space left on device|Disk quota exceeded/i.test(stderr)) return 'the target is full: free space on it (or prune old snapshots) and run again; the previous snapshot is intact';
  if (/Read-only file system/i.test(stderr)) return 'the target is mounted read-only: remount it read-write and run again';
  if (/Permission denied/i.test(stderr)) return 'a file could not be read or written: check the permissions named above (the agent usually runs as root; NFS with root_squash denies root), or add the path to "exclude"';
  if (code === 24) return 'files vanished while they were being copied (temporary or rotating files?): exclude them with "exclude" in the host config, or run again';
  if (/Input\/output error/i.test(stderr)) return 'an I/O error: check the disk named above (dmesg, smartctl) before running again';
  return 'read the rsync messages above, fix the cause and run again; the previous snapshot is intact';
}

/** Copies the sources into `dest`. Throws a BackupFailure for anything but a clean exit 0. */
export async function rsyncSnapshot(job: RsyncJob): Promise<void> {
  let result;
  try {
    const checksum = job.checksum ?? (await transferChecksum(job.env));
    job.transferred.algorithm = checksum;
    result = await runTool('rsync', rsyncArgs(job, checksum), {
      env: job.env,
      signal: job.signal,
      onStdout: outputParser(job),
    });
  } catch (e) {
    throw new BackupFailure('transfer', (e as Error).message, 'install rsync (apt-get install rsync) and run again');
  }
  if (job.signal.aborted) throw new BackupFailure('interrupted', `the run was interrupted (${String(job.signal.reason)})`, 'run again; the previous snapshot is intact');
  if (result.code === 0) return;
  const detail = result.stderr;
  if (result.signal) {
    throw new BackupFailure('transfer', `rsync was killed by ${result.signal}: ${lastLines(detail, 2) || 'no message'}`, result.signal === 'SIGKILL' ? 'was it killed by the out-of-memory killer? (dmesg)  run again; the previous snapshot is intact' : 'run again; the previous snapshot is intact', { detail, signal: result.signal });
  }
  const meaning = EXIT_MEANING[result.code!] ?? 'unknown error';
  throw new BackupFailure('transfer', `rsync exited with code ${result.code} (${meaning}): ${lastLines(detail.replace(/^rsync error:.*$/gm, ''), 2) || 'no message'}`, hintFor(result.code, detail), {
    detail,
    exitCode: result.code!,
  });
}

/** What changed at the source since a complete snapshot (rsyncCompare). */
export interface Comparison {
  /** Nothing that is backed up changed. */
  unchanged: boolean;
  /**
   * Paths under data/ of the snapshot's entries that are no longer the source's (changed,
   * replaced or deleted; not folders, which are never shared between snapshots); undefined
   * when there were more than the limit, or when the comparison could not be made.
   */
  stale: Buffer[] | undefined;
}

/**
 * Compares the sources with a complete snapshot by rsync's own rules (type, size, mtime to
 * the nanosecond, permissions, owner, link target; files added or deleted), changing
 * nothing: `--dry-run --delete --itemize-changes` against the snapshot's data lists every
 * difference. The parent folders that -R recreates above each source path (/var,
 * /var/www…) are not part of what is backed up, so a change to them alone does not count.
 * Any doubt (an error, a vanished file) answers "changed", with no list.
 */
export async function rsyncCompare(job: { sources: string[]; exclude: string[]; snapshotData: string; rsh: string[]; limit: number; signal: AbortSignal; env: NodeJS.ProcessEnv }): Promise<Comparison> {
  const parents = new Set<string>(['']);
  for (const source of job.sources) {
    const parts = source.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join('/'));
  }
  let pending = '';
  let changed = false;
  let stale: Buffer[] | undefined = [];
  // Past the limit the list is no use: stop rsync rather than read the rest.
  const enough = new AbortController();
  const signal = AbortSignal.any([job.signal, enough.signal]);
  const result = await runTool('rsync', [...commonArgs(job.exclude), ...job.rsh, '--dry-run', '--delete', '--itemize-changes', '--out-format=%i %n', '--', ...job.sources, `${job.snapshotData}/`], {
    env: job.env,
    signal,
    onStdout: (chunk) => {
      if (!stale) return;
      const lines = (pending + chunk.toString('latin1')).split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        // "%i %n": 11 itemize characters, a space, the name ("*deleting  " lines have the same width).
        const name = line.slice(12).replace(/^\/+|\/+$/g, '');
        const folder = line[1] === 'd' && !line.startsWith('*');
        if (folder && parents.has(name)) continue;
        changed = true;
        // A folder that exists in both is copied, not shared: nothing stale. One that rsync
        // creates ("cd") may replace a file or a link of the snapshot: that entry must go
        // before anything is removed below it (rsync lists parents first), or the removal
        // would follow the link out of the snapshot.
        if ((folder && line[0] !== 'c') || !stale) continue;
        stale.push(unescapeName(name));
        if (stale.length > job.limit) {
          stale = undefined;
          enough.abort();
        }
      }
    },
  });
  if (job.signal.aborted) throw job.signal.reason;
  if (!stale || result.code !== 0 || pending !== '') return { unchanged: false, stale: undefined };
  return { unchanged: !changed, stale };
}
