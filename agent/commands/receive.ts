/**
 * `respaldo receive`, run at CSC (clause 4.1.6; FOR 7.5 CSC 02): every snapshot that other
 * hosts delivered under this host's target is checked on CSC's own side, with CSC's own
 * key, and answered by a signed `receipt` record. The sender's word is not taken: the
 * manifest's digest must be the one the sender's `copy` record carries, and every file is
 * read back from CSC's disk and matched against that manifest.
 *
 * Only genuine copy records count (signed by the sender's key in allowed_signers, in an
 * unbroken chain). A snapshot whose copy record has not arrived yet (the sender's records
 * not pushed, or not pulled here yet) waits for the next run. A copy record is answered
 * once: after a "mismatch" receipt, the sender copies again (it reads the receipts) and its
 * new copy record gets its own check.
 */
import * as fs from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../fsutil.js';
import { verifyRecordsFolder } from '../../schemas/chain.js';
import type { Context } from '../context.js';
import { requireLocalPrimary } from '../config.js';
import { Exit, messageOf, RespaldoError, type ExitCode } from '../errors.js';
import { HashPool } from '../hashing.js';
import { lockAndRecover, openHost, operatorName, publishRecords } from '../host.js';
import { checkSnapshot } from '../manifest.js';
import { RepositoryStore } from '../target.js';

export interface ReceiveOptions {
  config: string;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;

async function folders(dir: string, re: RegExp): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && re.test(e.name)).map((e) => e.name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

type CopyRef = { seq: number; digest: string; manifest: string; summary: string };

/**
 * The genuine copy records of every sending host, by "host/repository/snapshot": the newest
 * good one of each. Genuine: signed by the host's key in policy/allowed_signers, in an
 * unbroken chain. A receipt vouches for a copy record, so a forged one must not count.
 */
function copyRecords(records: string): Map<string, CopyRef> {
  const { reports } = verifyRecordsFolder(records, fs);
  const out = new Map<string, CopyRef>();
  for (const report of reports)
    for (const status of [...report.records].reverse()) {
      const r = status.record;
      if (!status.genuine || r?.type !== 'copy' || r.verified.result !== 'ok') continue;
      const key = `${report.host}/${r.repository}/${r.snapshot.id}`;
      if (!out.has(key)) out.set(key, { seq: r.seq, digest: status.digest, manifest: r.snapshot.manifest, summary: r.snapshot.digest });
    }
  return out;
}

export async function runReceive(ctx: Context, opts: ReceiveOptions): Promise<ExitCode> {
  const host = await openHost(ctx, opts.config);
  const { config, records } = host;
  if (!config.receive) throw new RespaldoError(`${config.file} does not say that this host receives copies`, { exitCode: Exit.usage, hint: 'on CSC\'s host, add "receive: true" to its config; targets.primary is where the copies arrive' });
  const started = ctx.now();
  const { lock, firstSeq } = await lockAndRecover(ctx, host, 'respaldo receive', started);
  const pool = new HashPool();
  let mismatches = 0;
  try {
    const pulled = await host.git.pull();
    if (pulled.status === 'failed') ctx.reporter.event({ type: 'warning', message: `cannot pull the records (${pulled.error}): checking against the copy records already here` });

    // What this host has answered already, by copy record. A mismatch is not checked again
    // each run: the sender reads the receipt, copies again, and its new copy record is new.
    const answered = new Set<string>();
    for (const file of await records.list()) {
      if (file.type !== 'receipt') continue;
      const r = await records.read(file);
      if (r?.type === 'receipt') answered.add(`${r.origin}/${r.repository}/${r.snapshot}/${r.copy.seq}`);
    }

    const root = requireLocalPrimary(config, '"respaldo receive"');
    const copies = copyRecords(config.records);
    for (const origin of await folders(root, NAME_RE)) {
      if (origin === config.host) continue;
      for (const repository of await folders(join(root, origin), NAME_RE)) {
        const store = new RepositoryStore(join(root, origin, repository), `${origin}/${repository}`);
        const ids = await store.snapshots();
        for (const id of ids) {
          if (ctx.signal.aborted) break;
          const copy = copies.get(`${origin}/${repository}/${id}`);
          if (!copy) {
            ctx.reporter.event({ type: 'info', message: `${origin}/${repository}/${id}: no copy record from ${origin} yet; it is checked once the record arrives` });
            continue;
          }
          if (answered.has(`${origin}/${repository}/${id}/${copy.seq}`)) continue;
          const problems: { path: string; problem: string }[] = [];
          const manifest = await sha256File(join(store.snapshotDir(id), 'manifest.jsonl')).catch(() => undefined);
          if (manifest !== copy.manifest) problems.push({ path: 'manifest.jsonl', problem: manifest ? `its digest ${manifest} is not the ${copy.manifest} that ${origin}'s copy record ${copy.seq} carries` : 'missing or unreadable' });
          const summary = await sha256File(join(store.snapshotDir(id), 'snapshot.yaml')).catch(() => undefined);
          if (summary !== copy.summary) problems.push({ path: 'snapshot.yaml', problem: summary ? `its digest is not the one ${origin}'s copy record ${copy.seq} carries` : 'missing or unreadable' });
          let files = 0;
          let bytes = 0;
          if (!problems.length) {
            // Only a manifest that is the sender's is worth checking the files against.
            const check = await checkSnapshot(store, id, pool, ctx.signal).catch((e: unknown) => {
              // Interrupted: no receipt at all, rather than a false "mismatch".
              if (ctx.signal.aborted) throw e;
              problems.push({ path: 'manifest.jsonl', problem: messageOf(e) });
              return undefined;
            });
            if (check) {
              files = check.checksum.files;
              bytes = check.checksum.bytes;
              problems.push(...check.problems.map((p) => ({ path: `data${p.path}`, problem: p.problem })));
            }
          }
          const result = problems.length ? 'mismatch' : 'ok';
          if (result === 'mismatch') mismatches++;
          const appended = await records.append('receipt', {
            origin,
            repository,
            snapshot: id,
            copy: { host: origin, seq: copy.seq, digest: copy.digest },
            manifest: copy.manifest,
            files,
            bytes,
            result,
            problems: problems.slice(0, 20),
            received_by: operatorName(ctx.env),
          });
          ctx.reporter.event(
            result === 'ok'
              ? { type: 'info', message: `${origin}/${repository}/${id}: received, ${files} file(s) checked; receipt record ${appended.seq}` }
              : { type: 'warning', repository, message: `${origin}/${repository}/${id}: the copy does not match what ${origin} sent (${problems[0]!.path}: ${problems[0]!.problem}); receipt record ${appended.seq} says so` },
          );
        }
      }
    }
    const last = (await records.head())!.seq;
    if (last >= firstSeq) await publishRecords(ctx, host, [`hosts/${config.host}`], `respaldo ${config.host}: receipts ${firstSeq}–${last}`);
    return mismatches ? Exit.partial : Exit.ok;
  } finally {
    await pool.close();
    await lock.release();
  }
}
