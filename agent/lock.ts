/**
 * One run at a time per host. The lock file names its holder (pid, start time, command);
 * a second run exits 11 and says who holds it. A lock whose process is gone (killed,
 * crashed, or the machine rebooted) is stale: the next run takes it over and the caller
 * records that the earlier run was interrupted.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Exit, RespaldoError } from './errors.js';
import { writeNewFileSynced } from './fsutil.js';

export interface LockHolder {
  pid: number;
  started: string;
  command: string;
  token: string;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat), so a reused pid is not mistaken for the holder. */
  procStart: string | undefined;
  boot: string | undefined;
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (one of another user's counts too). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isAlive(holder: LockHolder): boolean {
  // pid 0 would ask about our own process group: a lock without a real pid is nobody's.
  if (!Number.isInteger(holder.pid) || holder.pid <= 0) return false;
  if (holder.boot && bootId() && holder.boot !== bootId()) return false;
  if (!processExists(holder.pid)) return false;
  const current = procStart(holder.pid);
  return !(holder.procStart && current && holder.procStart !== current);
}

/** The token of a lock file that could not be parsed. */
export const UNREADABLE_LOCK = 'unreadable';

async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockHolder;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // A lock file we cannot parse was not written by a live respaldo (those are complete
    // before they appear, thanks to link()); treat it as stale.
    return { pid: 0, started: 'unknown', command: 'unknown', token: UNREADABLE_LOCK, procStart: undefined, boot: undefined };
  }
}

export class RunLock {
  private constructor(
    private readonly path: string,
    readonly holder: LockHolder,
  ) {}

  /** Takes the host's run lock; `takenOver` is the dead run whose lock was taken, if any. */
  static async acquire(stateDir: string, command: string, now: Date): Promise<{ lock: RunLock; takenOver: LockHolder | undefined }> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const path = join(stateDir, 'run.lock');
    const mine: LockHolder = {
      pid: process.pid,
      started: now.toISOString(),
      command,
      token: randomBytes(8).toString('hex'),
      procStart: procStart(process.pid),
      boot: bootId(),
    };
    // Temporary files of runs killed while taking the lock (a live one exists for microseconds).
    for (const name of await readdir(stateDir)) {
      if (!/^run\.lock\..*\.tmp$|^run\.lock\.stale-/.test(name)) continue;
      const full = join(stateDir, name);
      if (Date.now() - (await stat(full).then((s) => s.mtimeMs, () => Date.now())) > 60_000) await unlink(full).catch(() => {});
    }
    const tmp = `${path}.${mine.token}.tmp`;
    // Flushed before it is linked into place: after a power cut the lock is whole or absent,
    // never an empty file.
    await writeNewFileSynced(tmp, `${JSON.stringify(mine)}\n`);
    let takenOver: LockHolder | undefined;
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          // link() is atomic and fails if the lock exists: the file appears whole or not at all.
          await link(tmp, path);
          return { lock: new RunLock(path, mine), takenOver };
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const holder = await readHolder(path);
        if (!holder) continue;
        if (isAlive(holder)) {
          throw new RespaldoError(`another respaldo run holds the lock: pid ${holder.pid}, "${holder.command}", started ${holder.started} (lock file ${path})`, {
            exitCode: Exit.locked,
            hint: `wait for it to finish; if it is hung, stop it (kill ${holder.pid}) and run again`,
          });
        }
        // Stale. Move it aside atomically, then make sure what we moved is the stale lock
        // and not one that another run created a moment ago.
        const aside = `${path}.stale-${mine.token}`;
        try {
          await rename(path, aside);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw e;
        }
        const moved = await readHolder(aside);
        if (moved?.token !== holder.token) await link(aside, path).catch(() => {});
        else takenOver = holder;
        await unlink(aside).catch(() => {});
      }
      throw new RespaldoError(`could not take the lock ${path}: other runs keep taking it`, { exitCode: Exit.locked, hint: 'check for runs started in a loop' });
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  async release(): Promise<void> {
    const current = await readHolder(this.path);
    if (current?.token === this.holder.token) await unlink(this.path).catch(() => {});
  }
}
