/**
 * `respaldo init`: the host's key and its enrolment. Creates the Ed25519 key (kept if it
 * exists, replaced only with --force), writes its public line in allowed_signers form next
 * to the key for JAA, and writes the enrolment record (seq 1, or a later one that names the
 * key it replaces).
 */
import { access, mkdir } from 'node:fs/promises';
import { release, hostname, platform } from 'node:os';
import { join } from 'node:path';
import type { Context } from '../context.js';
import { Exit, type ExitCode } from '../errors.js';
import { capture } from '../exec.js';
import { writeFileAtomic } from '../fsutil.js';
import { RecordsGit } from '../git.js';
import { allowedSignersLine, createKey, loadKey, type HostKey } from '../keys.js';
import { loadConfig } from '../config.js';
import { publishRecords } from '../host.js';
import { RunLock } from '../lock.js';
import { RecordStore } from '../records.js';
import { VERSION } from '../version.js';

export interface InitOptions {
  config: string;
  force: boolean;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function rsyncVersion(env: NodeJS.ProcessEnv): Promise<string | null> {
  try {
    return /version (\S+)/.exec((await capture('rsync', ['--version'], { env })).toString())?.[1] ?? null;
  } catch {
    return null;
  }
}

export async function runInit(ctx: Context, opts: InitOptions): Promise<ExitCode> {
  const config = await loadConfig(opts.config, ctx.cwd);
  const git = await RecordsGit.open(config.records, config.host, ctx.env);
  const started = ctx.now();
  const { lock } = await RunLock.acquire(config.state, 'respaldo init', started);
  try {
    const hadKey = await exists(config.key);
    let key: HostKey;
    if (hadKey && !opts.force) key = await loadKey(config.key);
    else key = await createKey(config.key, opts.force);
    const line = allowedSignersLine(config.host, key);
    await writeFileAtomic(`${config.key}.pub`, `${line}\n`);

    const records = new RecordStore(config.records, config.host, key, ctx.now);
    await records.cleanup();
    const head = await records.head();
    // The enrolment in force: the newest one, if the chain exists.
    let enrolled: string | undefined;
    for (const file of head ? await records.list() : []) {
      if (file.type !== 'enrolment') continue;
      const r = await records.read(file);
      if (r?.type === 'enrolment') enrolled = r.key.fingerprint;
      break;
    }
    let seq: number | undefined;
    if (enrolled !== key.fingerprint) {
      const body = {
        key: { public: key.publicLine, fingerprint: key.fingerprint },
        agent: { version: VERSION, node: process.version, rsync: await rsyncVersion(ctx.env) },
        system: { hostname: hostname(), platform: platform(), release: release() },
        ...(head && enrolled ? { replaces: { fingerprint: enrolled, last_record: head.digest } } : {}),
      };
      seq = (await records.append('enrolment', body)).seq;
      // Records are signed byte for byte: a checkout that rewrote line endings would break them.
      const attributes = join(config.records, '.gitattributes');
      const paths = [`hosts/${config.host}`];
      if (!(await exists(attributes)) && !(await exists(join(git.top, '.gitattributes')))) {
        await writeFileAtomic(attributes, '# respaldo: records are signed byte for byte\n* -text\n');
        paths.push('.gitattributes');
      }
      await mkdir(config.state, { recursive: true, mode: 0o700 });
      await publishRecords(ctx, { config, key, git, records }, paths, `respaldo ${config.host}: enrolment (record ${seq})`);
    }
    ctx.reporter.result(
      [
        seq ? `enrolled ${config.host}: record ${seq} (${head ? 'a new key replaces the old one' : 'the first record of its chain'})` : `${config.host} is already enrolled with this key`,
        `key: ${config.key} (${key.fingerprint})${hadKey && !opts.force ? ', kept' : ', new'}`,
        '',
        `For JAA: add this line to records/policy/allowed_signers (also in ${config.key}.pub),`,
        'so that the records of this host are trusted:',
        '',
        `  ${line}`,
      ].join('\n'),
      { host: config.host, key: config.key, fingerprint: key.fingerprint, allowedSigners: line, enrolment: seq ?? null },
    );
    return Exit.ok;
  } finally {
    await lock.release();
  }
}
