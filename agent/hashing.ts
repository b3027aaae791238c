/** A small pool of hashing worker threads (see hash-worker.ts). */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';

/**
 * The whole-file checksum rsync computes while it transfers a file (on both sides) and
 * prints with %C: xxh128 where rsync has it (3.2+), far cheaper than SHA-1 on gigabytes.
 */
export type TransferChecksum = 'xxh128' | 'sha1';

export interface HashJob {
  path: Buffer;
  /**
   * An original at the source, which other users may control: never follow a link at its
   * name, never block on a fifo or read a device, never read more than `limit` + 1 bytes;
   * and report whether the file changed while it was being read.
   */
  recheck?: boolean;
  /** With `recheck`: the size of the stored copy it is compared with. */
  limit?: number;
  /** Also compute rsync's transfer checksum, in the same read, to match the sender's. */
  transfer?: TransferChecksum;
  /** Also report the modification time to the nanosecond, and the permission bits. */
  times?: boolean;
  /** Only lstat the path (any type of entry), read nothing: its size, inode, time and mode. */
  stat?: boolean;
}

export interface HashResult {
  sha256?: string;
  /** The transfer checksum asked for, hex, as rsync's %C prints it. */
  transfer?: string;
  bytes?: number;
  size?: number;
  ino?: number;
  /** With `times`, `recheck` or `stat`: the modification time as the kernel keeps it (seconds, then nanoseconds ≥ 0), and the permission bits. */
  mtimeSec?: number;
  mtimeNsec?: number;
  mode?: number;
  changedWhileRead?: boolean;
  /** errno code (ENOENT, EACCES, EIO, …) when the file could not be read. */
  error?: string;
}

const NS = 1_000_000_000n;

/** What a stat tells of an entry, as HashResult carries it: the time split where the kernel splits it. */
export function statOf(s: BigIntStats): Required<Pick<HashResult, 'size' | 'ino' | 'mtimeSec' | 'mtimeNsec' | 'mode'>> {
  let sec = s.mtimeNs / NS;
  let nsec = s.mtimeNs % NS;
  if (nsec < 0n) {
    nsec += NS;
    sec -= 1n;
  }
  return { size: Number(s.size), ino: Number(s.ino), mtimeSec: Number(sec), mtimeNsec: Number(nsec), mode: Number(s.mode & 0o7777n) };
}

/**
 * Jobs as one buffer of paths and their end offsets. Posting Buffers one by one would copy
 * each one's whole 8 KiB pool slab into the message: thousands of times the paths' size.
 */
export interface PackedJobs {
  paths: Uint8Array<ArrayBuffer>;
  ends: Uint32Array<ArrayBuffer>;
  /** Bit 1: recheck; bit 2: SHA-1; bit 4: times; bit 8: xxh128; bit 16: stat. */
  flags: Uint8Array<ArrayBuffer>;
  limits: Float64Array<ArrayBuffer>;
}

export function packJobs(jobs: HashJob[]): PackedJobs {
  const total = jobs.reduce((n, j) => n + j.path.length, 0);
  const paths = new Uint8Array(total);
  const ends = new Uint32Array(jobs.length);
  const flags = new Uint8Array(jobs.length);
  const limits = new Float64Array(jobs.length);
  let at = 0;
  jobs.forEach((j, i) => {
    paths.set(j.path, at);
    at += j.path.length;
    ends[i] = at;
    flags[i] = (j.recheck ? 1 : 0) | (j.transfer === 'sha1' ? 2 : 0) | (j.times ? 4 : 0) | (j.transfer === 'xxh128' ? 8 : 0) | (j.stat ? 16 : 0);
    limits[i] = j.limit ?? -1;
  });
  return { paths, ends, flags, limits };
}

export function unpackJobs(packed: PackedJobs): HashJob[] {
  const paths = Buffer.from(packed.paths.buffer, packed.paths.byteOffset, packed.paths.byteLength);
  let start = 0;
  return Array.from(packed.ends, (end, i) => {
    const limit = packed.limits[i]!;
    const flags = packed.flags[i]!;
    const transfer = flags & 2 ? 'sha1' : flags & 8 ? 'xxh128' : undefined;
    const job: HashJob = { path: paths.subarray(start, end), recheck: (flags & 1) !== 0, times: (flags & 4) !== 0, stat: (flags & 16) !== 0, ...(transfer ? { transfer } : {}), ...(limit >= 0 ? { limit } : {}) };
    start = end;
    return job;
  });
}

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { jobs: HashJob[]; resolve: (r: HashResult[]) => void; reject: (e: unknown) => void }[] = [];
  private readonly pending = new Map<number, { resolve: (r: HashResult[]) => void; reject: (e: unknown) => void; worker: Worker }>();
  private nextId = 0;

  // One core is left to rsync, which copies while the workers hash what it copied: on two
  // cores a second worker made backups no faster and cost 11 MB.
  constructor(size = Math.min(4, Math.max(1, availableParallelism() - 1))) {
    for (let i = 0; i < size; i++) {
      // A worker holds one file at a time: a small heap makes its garbage go early, so the
      // agent's memory stays flat over hundreds of thousands of files.
      const worker = new Worker(new URL('./hash-worker.js', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 } });
      worker.on('message', ({ id, results }: { id: number; results: HashResult[] }) => {
        const p = this.pending.get(id)!;
        this.pending.delete(id);
        p.resolve(results);
        this.idle.push(worker);
        this.pump();
      });
      worker.on('error', (e) => {
        for (const [id, p] of this.pending) if (p.worker === worker) (this.pending.delete(id), p.reject(e));
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const worker = this.idle.pop()!;
      const task = this.queue.shift()!;
      const id = this.nextId++;
      this.pending.set(id, { resolve: task.resolve, reject: task.reject, worker });
      const batch = packJobs(task.jobs);
      worker.postMessage({ id, batch }, [batch.paths.buffer, batch.ends.buffer, batch.flags.buffer, batch.limits.buffer]);
    }
  }

  /** Hashes one batch on one worker; results in the order of `jobs`. */
  hash(jobs: HashJob[]): Promise<HashResult[]> {
    if (jobs.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ jobs, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * A pass-through stream that hashes (SHA-1) and counts the bytes on their way to a file:
 * a dump or a bundle is hashed as it is written, and the stored copy re-read against it.
 */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha1');
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  /** The hex SHA-1 of everything that passed, once the stream has ended. */
  sha1(): string {
    return this.hash.digest('hex');
  }
}
