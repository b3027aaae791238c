/**
 * A worker thread that hashes files with SHA-256 (and rsync's transfer checksum): hashing
 * is CPU work, and the main thread would otherwise use one core while the other sits idle.
 * Jobs come in batches to keep the cost of messages small next to thousands of small files.
 */
import { createHash, hash as hashOnce } from 'node:crypto';
import { createXXHash128 } from 'hash-wasm';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { statOf, unpackJobs, type HashJob, type HashResult, type PackedJobs } from './hashing.js';

const buffer = Buffer.allocUnsafe(1 << 20);
// One xxh128 state, reset for each file (hash-wasm: WebAssembly, byte for byte rsync's %C).
const xxh128 = await createXXHash128();

function hashFile(job: HashJob): HashResult {
  if (job.stat) return statOf(lstatSync(job.path, { bigint: true }));
  const fd = openSync(job.path, job.recheck ? constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK : 'r');
  try {
    // Nanosecond times only where they are compared: BigInt stats cost more.
    const before = job.recheck || job.times ? fstatSync(fd, { bigint: true }) : fstatSync(fd);
    if (job.recheck && !before.isFile()) return { error: 'not a regular file' };
    // A stored copy is ours alone (nothing writes into a partial snapshot but rsync, which
    // never writes in place): once its size is read, the read that would return 0 is spared.
    const expected = job.recheck ? Infinity : Number(before.size);
    const result = (sha256: string, transfer: string | undefined, bytes: number): HashResult => ({
      sha256,
      ...(transfer !== undefined ? { transfer } : {}),
      bytes,
      size: Number(before.size),
      ino: Number(before.ino),
      ...('mtimeNs' in before ? statOf(before) : {}),
    });
    // Most stored copies fit in the buffer: one read and one-shot hashes, no hash objects
    // (200,000 small files cost 10% less this way).
    if (expected <= buffer.length && job.transfer !== 'sha1') {
      const n = expected === 0 ? 0 : readSync(fd, buffer, 0, expected, 0);
      if (n === expected) {
        const data = buffer.subarray(0, n);
        return result(hashOnce('sha256', data), job.transfer === 'xxh128' ? xxh128.init().update(data).digest('hex') : undefined, n);
      }
      // A copy shorter than its size (truncated under us) is read again the long way below.
    }
    const hash = createHash('sha256');
    const transfer: { update(data: Uint8Array): unknown; digest(encoding: 'hex'): string } | undefined =
      job.transfer === 'sha1' ? createHash('sha1') : job.transfer === 'xxh128' ? xxh128.init() : undefined;
    // An original that grew past its copy differs from it: one byte more tells as much as all.
    const limit = job.limit === undefined ? Infinity : job.limit + 1;
    let bytes = 0;
    while (bytes < limit) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, limit - bytes), bytes);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      transfer?.update(buffer.subarray(0, n));
      bytes += n;
      if (bytes === expected) break;
    }
    return result(hash.digest('hex'), transfer?.digest('hex'), bytes);
  } finally {
    closeSync(fd);
  }
}

parentPort!.on('message', ({ id, batch }: { id: number; batch: PackedJobs }) => {
  const results = unpackJobs(batch).map((job): HashResult => {
    try {
      const result = hashFile(job);
      if (job.recheck) {
        // The file's state after reading, so the caller can tell "changed while we read it".
        const after = statOf(lstatSync(job.path, { bigint: true }));
        result.changedWhileRead = after.size !== result.size || after.mtimeSec !== result.mtimeSec || after.mtimeNsec !== result.mtimeNsec;
      }
      return result;
    } catch (e) {
      return { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
    }
  });
  parentPort!.postMessage({ id, results });
});
