/**
 * The host's own chain of records in the records checkout: `hosts/<host>/<yyyy>/<seq>-<type>.yaml`
 * and its `.sig`. Appends are atomic and ordered so that a crash at any moment leaves a
 * whole chain: the signature is put in place first, then the record; a leftover signature
 * or temporary file is removed by the next run before it writes anything.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { digestOf, parseRecord, readHeader, RECORD_NAMESPACE, RECORD_PATH_RE, recordPath, serializeRecord, type AnyRecord, type RecordBody, type RecordType } from '../schemas/record.js';
import { signSshsig } from '../schemas/sshsig.js';
import { Exit, RespaldoError } from './errors.js';
import { fsyncDir, writeFileAtomic } from './fsutil.js';
import type { HostKey } from './keys.js';

/** The lines a record of one repository's work begins with: the repository, who started the work, when it ran. */
export function workHeader(repo: { name: string; kind: 'config' | 'files' | 'source' | 'database'; request?: string | undefined }, who: { trigger: 'scheduled' | 'manual'; operator?: string | undefined }, started: Date, finished: Date) {
  return { repository: repo.name, kind: repo.kind, ...(repo.request ? { request: repo.request } : {}), trigger: who.trigger, ...(who.operator ? { operator: who.operator } : {}), started: started.toISOString(), finished: finished.toISOString() };
}

export interface RecordFile {
  /** Absolute path of the `.yaml`. */
  path: string;
  /** Relative to the records folder. */
  rel: string;
  seq: number;
  type: string;
}

export interface Appended {
  seq: number;
  rel: string;
  digest: string;
}

export class RecordStore {
  readonly hostDir: string;
  private headCache: { seq: number; digest: string } | null | undefined;

  constructor(
    readonly dir: string,
    readonly host: string,
    private readonly key: HostKey | undefined,
    private readonly now: () => Date,
  ) {
    this.hostDir = join(dir, 'hosts', host);
  }

  /** The host's record files, newest (highest seq) first. */
  async list(): Promise<RecordFile[]> {
    const out: RecordFile[] = [];
    let years: string[];
    try {
      years = await readdir(this.hostDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    for (const year of years) {
      if (!/^\d{4}$/.test(year)) continue;
      for (const name of await readdir(join(this.hostDir, year))) {
        const rel = `hosts/${this.host}/${year}/${name}`;
        const m = RECORD_PATH_RE.exec(rel);
        if (m) out.push({ path: join(this.hostDir, year, name), rel, seq: Number(m[3]), type: m[4]! });
      }
    }
    return out.sort((a, b) => b.seq - a.seq);
  }

  /** The newest record's seq and digest; undefined before enrolment. */
  async head(): Promise<{ seq: number; digest: string } | undefined> {
    if (this.headCache === undefined) {
      const newest = (await this.list())[0];
      this.headCache = newest ? { seq: newest.seq, digest: digestOf(await readFile(newest.path)) } : null;
    }
    return this.headCache ?? undefined;
  }

  /**
   * Reads and parses one record; undefined when it does not parse (verify reports why).
   * Records never change once written: each is parsed once per store, however many of a
   * run's scans (history, copies, checks at rest, prune) read it.
   */
  async read(file: RecordFile): Promise<AnyRecord | undefined> {
    let parsed = this.parsed.get(file.path);
    if (!parsed) this.parsed.set(file.path, (parsed = readFile(file.path, 'utf8').then((text) => ((r) => (r.ok ? r.record : undefined))(parseRecord(text)))));
    return parsed;
  }

  private readonly parsed = new Map<string, Promise<AnyRecord | undefined>>();

  /**
   * Removes what an interrupted append leaves: temporary files and a signature whose record
   * was never renamed into place. Call under the run lock, before appending.
   */
  async cleanup(): Promise<string[]> {
    const removed: string[] = [];
    const head = await this.head();
    let years: string[] = [];
    try {
      years = await readdir(this.hostDir);
    } catch {
      return removed;
    }
    for (const year of years) {
      const dir = join(this.hostDir, year);
      const names = new Set(await readdir(dir).catch(() => [] as string[]));
      for (const name of names) {
        const isTemp = name.startsWith('.') && name.endsWith('.tmp');
        const m = /^(\d{8,})-[a-z-]+\.yaml\.sig$/.exec(name);
        const orphanSig = m && !names.has(name.slice(0, -4)) && Number(m[1]) > (head?.seq ?? 0);
        if (isTemp || orphanSig) {
          await unlink(join(dir, name));
          removed.push(`hosts/${this.host}/${year}/${name}`);
        }
      }
    }
    return removed;
  }

  /** Signs and writes the next record of the chain. */
  async append<T extends RecordType>(type: T, body: RecordBody<T>): Promise<Appended> {
    if (!this.key) throw new Error('RecordStore opened without a key cannot append');
    const head = await this.head();
    if (!head && type !== 'enrolment')
      throw new RespaldoError(`host ${this.host} is not enrolled in ${this.dir}`, { exitCode: Exit.usage, hint: 'run "respaldo init" first' });
    const header = { schema: 'respaldo/v1' as const, type, host: this.host, seq: (head?.seq ?? 0) + 1, prev: head?.digest ?? null, at: this.now().toISOString() };
    const text = serializeRecord(header, body);
    // Never sign what verification would reject: the site and auditors would see a broken record.
    const check = parseRecord(text);
    if (!check.ok) throw new Error(`refusing to sign an invalid ${type} record: ${check.error}`);
    const rel = recordPath(header);
    const path = join(this.dir, rel);
    const signature = signSshsig(Buffer.from(text), this.key.privateKey, RECORD_NAMESPACE);
    try {
      await mkdir(join(path, '..'), { recursive: true });
      await writeFileAtomic(`${path}.sig`, signature);
      // exclusive: two writers racing for the same seq must not both win (a fork).
      await writeFileAtomic(path, text, { exclusive: true });
      await fsyncDir(join(path, '..'));
    } catch (e) {
      throw new RespaldoError(`cannot write record ${rel}: ${(e as Error).message}`, {
        exitCode: Exit.nothing,
        hint: `check that ${this.dir} is writable and has free space`,
        cause: e,
      });
    }
    const digest = digestOf(text);
    this.headCache = { seq: header.seq, digest };
    return { seq: header.seq, rel, digest };
  }
}

/** The header of a record file without parsing its YAML: cheap, for scans of many records. */
export async function readRecordHeader(path: string): Promise<ReturnType<typeof readHeader>> {
  return readHeader(await readFile(path, 'utf8'));
}
