/**
 * The site's only reading: the records folder (every record parsed and its signature
 * checked through schemas/, remembered in a cache keyed by the file's digest so that a
 * rebuild checks only what is new), the signed history's verdicts that `respaldo site build`
 * wrote as JSON, and the procedure. Every page shares the one model built here.
 *
 * Settings come from the environment, as `respaldo site build` sets them:
 * RESPALDO_RECORDS (default ./records), RESPALDO_TRUST (the trust JSON), RESPALDO_SITE_CACHE (parses
 * and signature checks), RESPALDO_SITE_RUN (this build's summary and page keys), RESPALDO_SITE_CODE,
 * RESPALDO_SITE_PREVIOUS and RESPALDO_SITE_PAGES (the previous site and its pages),
 * RESPALDO_NOW, RESPALDO_TIMEZONE (default America/Mexico_City), RESPALDO_STRICT=1.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { noMemo, verifyRecordsFolder, type ChainMemo } from '../../schemas/chain.js';
import { procedure as procedureSchema, type Procedure } from '../../schemas/procedure.js';
import type { ParsedRecord } from '../../schemas/record.js';
import { parseFile, problemText } from '../../schemas/request.js';
import type { SshsigCheck } from '../../schemas/sshsig.js';
import type { Trust } from '../../schemas/trust.js';
import { blockCount, recordBlock } from './html.js';
import { buildModel, formPages, type FormPage, type HostView, type Model } from './model.js';

/** Bump when what the cache holds changes shape or meaning (a schema change that reads records differently). */
const CACHE_FORMAT = 'respaldo-site-cache/2';

type StoredCheck = { ok: true; publicKey: string; fingerprint: string } | { ok: false; reason: string; publicKey?: string; fingerprint?: string };
/** One line of the cache: a record's parse by its digest, or a signature check by the record's and the signature's digests. */
type CacheLine = { d: string; p: ParsedRecord } | { k: string; s: StoredCheck };

/**
 * A memo that remembers parses and signature checks by digest in an append-only file of JSON
 * lines: a rebuild appends only what is new, and the file is rewritten with only what was
 * used once most of it is stale.
 */
function cachedMemo(file: string | undefined, code: string): { memo: ChainMemo; save(): void; hits: () => number } {
  // What the code that checked them was: a release that reads records differently starts afresh.
  const header = JSON.stringify({ format: CACHE_FORMAT, code });
  const parsed = new Map<string, ParsedRecord>();
  const checks = new Map<string, StoredCheck>();
  let lines = 0;
  if (file) {
    try {
      const text = fs.readFileSync(file, 'utf8');
      const first = text.indexOf('\n');
      if (text.slice(0, first) === header)
        for (let at = first + 1; at < text.length; ) {
          const end = text.indexOf('\n', at);
          const line = JSON.parse(text.slice(at, end < 0 ? text.length : end)) as CacheLine;
          if ('d' in line) parsed.set(line.d, line.p);
          else checks.set(line.k, line.s);
          lines++;
          at = end < 0 ? text.length : end + 1;
        }
    } catch {
      // No cache yet, or an unreadable one: everything is checked afresh.
      parsed.clear();
      checks.clear();
      lines = 0;
    }
  }
  const used = new Set<string>();
  // What is new goes to the end of the file as it comes, a megabyte at a time, not held until the end.
  let pending = '';
  let fd: number | undefined;
  let added = 0;
  const append = (line: string) => {
    added++;
    pending += `${line}\n`;
    if (pending.length > 1 << 20) flush();
  };
  const flush = () => {
    if (!file || pending === '') return;
    if (fd === undefined) {
      fs.mkdirSync(dirname(file), { recursive: true });
      fd = lines > 0 ? fs.openSync(file, 'a') : fs.openSync(file, 'w');
      if (lines === 0) fs.writeSync(fd, `${header}\n`);
    }
    fs.writeSync(fd, pending);
    pending = '';
  };
  let hits = 0;
  const memo: ChainMemo = {
    parse(digest, text) {
      used.add(digest);
      const known = parsed.get(digest);
      if (known) {
        hits++;
        return known;
      }
      const result = noMemo.parse(digest, text);
      parsed.set(digest, result);
      append(JSON.stringify({ d: digest, p: result }));
      return result;
    },
    verify(digest, bytes, signature): SshsigCheck {
      const key = `${digest} ${createHash('sha256').update(signature).digest('hex')}`;
      used.add(key);
      const known = checks.get(key);
      if (known) return { ...known, publicKey: known.publicKey === undefined ? undefined : Buffer.from(known.publicKey, 'base64') } as SshsigCheck;
      const check = noMemo.verify(digest, bytes, signature);
      const stored = { ...check, publicKey: check.publicKey?.toString('base64') } as StoredCheck;
      checks.set(key, stored);
      append(JSON.stringify({ k: key, s: stored }));
      return check;
    },
  };
  return {
    memo,
    hits: () => hits,
    save() {
      flush();
      if (fd !== undefined) fs.closeSync(fd);
      if (!file || lines + added <= 2 * used.size) return;
      // Mostly stale: rewrite with only what this build used, a line at a time.
      const tmp = `${file}.${process.pid}.tmp`;
      const out = fs.openSync(tmp, 'w');
      let chunk = `${header}\n`;
      const write = (force: boolean) => {
        if (force || chunk.length > 1 << 20) {
          fs.writeSync(out, chunk);
          chunk = '';
        }
      };
      for (const [d, p] of parsed) if (used.has(d)) (chunk += `${JSON.stringify({ d, p })}\n`), write(false);
      for (const [k, c] of checks) if (used.has(k)) (chunk += `${JSON.stringify({ k, s: c })}\n`), write(false);
      write(true);
      fs.closeSync(out);
      fs.renameSync(tmp, file);
    },
  };
}

function readProcedure(dir: string): { procedure: Procedure | undefined; problem: string | undefined } {
  const path = 'policy/procedure.yaml';
  let text: string;
  try {
    text = fs.readFileSync(join(dir, path), 'utf8');
  } catch {
    return { procedure: undefined, problem: `${path} is missing: the forms' retention and the procedure's history cannot be shown (respaldo ships one: records/policy/procedure.yaml)` };
  }
  const parsed = parseFile(path, text, procedureSchema);
  return parsed.ok ? { procedure: parsed.value, problem: undefined } : { procedure: undefined, problem: parsed.problems.map(problemText).join('; ') };
}

/** A page of 200 records of one host: rendered anew, or taken unchanged from the previous build. */
export interface RecordBlock {
  host: HostView;
  block: number;
  path: string;
  key: string;
  reuse: boolean;
}

export interface Site {
  model: Model;
  forms: Map<string, FormPage[]>;
  blocks: RecordBlock[];
}

/**
 * Record pages are most of the site and, once written, rarely change: a page is taken from
 * the previous build when everything it shows is the same (each record's bytes and verdict,
 * its neighbours across the page's edges, the banner, the site's code and settings) and the
 * file is still the one that build wrote (its size, time and inode, kept in the private cache
 * by `respaldo site build`, not in the published folder).
 */
function recordBlocks(model: Model, env: NodeJS.ProcessEnv): RecordBlock[] {
  const previous = env.RESPALDO_SITE_PREVIOUS;
  let before: Record<string, [string, number, number, number]> = {};
  if (previous && env.RESPALDO_SITE_PAGES) {
    try {
      before = JSON.parse(fs.readFileSync(env.RESPALDO_SITE_PAGES, 'utf8')) as typeof before;
    } catch {
      before = {};
    }
  }
  const unchanged = (path: string, key: string): boolean => {
    const was = before[path];
    if (!previous || !was || was[0] !== key) return false;
    try {
      const st = fs.statSync(join(previous, path));
      return st.size === was[1] && st.mtimeMs === was[2] && st.ino === was[3];
    } catch {
      return false;
    }
  };
  const common = JSON.stringify([env.RESPALDO_SITE_CODE ?? String(Date.now()), model.clock.timeZone, model.recordsDir, model.broken]);
  const out: RecordBlock[] = [];
  for (const host of model.hosts) {
    const records = host.report.records;
    const blocks = blockCount(records);
    const byBlock = new Map<number, number[]>();
    records.forEach((r, i) => {
      const b = recordBlock(r.seq);
      const list = byBlock.get(b);
      if (list) list.push(i);
      else byBlock.set(b, [i]);
    });
    for (let block = 1; block <= blocks; block++) {
      const hash = createHash('sha256').update(common);
      const at = byBlock.get(block) ?? [];
      const edges = [records[(at[0] ?? 0) - 1], records[(at.at(-1) ?? -2) + 1]];
      for (const s of [...at.map((i) => records[i]!), ...edges]) if (s) hash.update(`\n${s.seq} ${s.type} ${s.path} ${s.digest} ${s.genuine} ${s.signer} ${JSON.stringify(s.problems)}`);
      const key = hash.digest('hex');
      const path = `records/${host.host}/${block}.html`;
      out.push({ host, block, path, key, reuse: unchanged(path, key) });
    }
  }
  return out;
}

let site: Site | undefined;

/** The model every page uses, built on first use. */
export function loadSite(env: NodeJS.ProcessEnv = process.env): Site {
  if (site) return site;
  const started = Date.now();
  const dir = resolve(env.RESPALDO_RECORDS ?? 'records');
  const cacheDir = env.RESPALDO_SITE_CACHE;
  // This build's own files (what it says of itself), apart from other builds sharing the cache.
  const runDir = env.RESPALDO_SITE_RUN ?? cacheDir;
  const cache = cachedMemo(cacheDir ? join(cacheDir, 'records.ndjson') : undefined, env.RESPALDO_SITE_CODE ?? '');
  const trust = env.RESPALDO_TRUST ? (JSON.parse(fs.readFileSync(env.RESPALDO_TRUST, 'utf8')) as Trust) : undefined;
  const folder = verifyRecordsFolder(dir, fs, trust?.git ? trust.policy : undefined, cache.memo);
  const verified = Date.now();
  cache.save();
  const { procedure, problem } = readProcedure(dir);
  const now = env.RESPALDO_NOW ? new Date(env.RESPALDO_NOW) : new Date();
  const model = buildModel({ folder, trust, procedure, procedureProblem: problem, recordsDir: dir, now, timeZone: env.RESPALDO_TIMEZONE || 'America/Mexico_City' });
  const summary = { records: folder.total, genuine: folder.total - folder.broken, broken: folder.broken, cached: cache.hits(), problems: model.problems.map((p) => `${p.where}: ${p.en}`), ms: { verify: verified - started, model: Date.now() - verified } };
  if (runDir) fs.writeFileSync(join(runDir, 'summary.json'), JSON.stringify(summary, null, 1));
  if (env.RESPALDO_STRICT === '1' && model.broken)
    throw new Error(`--strict: the records are not all genuine (${folder.broken} of ${folder.total} records broken; ${model.problems.length} problem(s)):\n${summary.problems.slice(0, 20).join('\n')}`);
  const blocks = recordBlocks(model, env);
  if (runDir) fs.writeFileSync(join(runDir, 'pages.json'), JSON.stringify({ keys: Object.fromEntries(blocks.map((b) => [b.path, b.key])), reuse: blocks.filter((b) => b.reuse).map((b) => b.path) }));
  site = { model, forms: formPages(model), blocks };
  return site;
}
