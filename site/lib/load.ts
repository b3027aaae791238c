/**
 * The site's only reading: the records folder (every record parsed and its signature
 * checked through schemas/, remembered in a cache keyed by the file's digest so that a
 * rebuild checks only what is new), the signed history's verdicts that `respaldo site build`
 * wrote as JSON, and the procedure. Every page shares the one model built here.
 *
 * Settings come from the environment, as `respaldo site build` sets them:
 * RESPALDO_RECORDS (default ./records), RESPALDO_TRUST (the trust JSON), RESPALDO_SITE_CACHE,
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
import { buildModel, formPages, type FormPage, type Model } from './model.js';

/** Bump when what the cache holds changes shape or meaning (a schema change that reads records differently). */
const CACHE_FORMAT = 'respaldo-site-cache/1';

type StoredCheck = { ok: true; publicKey: string; fingerprint: string } | { ok: false; reason: string; publicKey?: string; fingerprint?: string };
interface CacheFile {
  format: string;
  parsed: Record<string, ParsedRecord>;
  signatures: Record<string, StoredCheck>;
}

/** A memo that remembers parses and signature checks by digest, and keeps only what was used. */
function cachedMemo(file: string | undefined): { memo: ChainMemo; save(): void; hits: () => number } {
  let old: CacheFile = { format: CACHE_FORMAT, parsed: {}, signatures: {} };
  if (file) {
    try {
      const read = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheFile;
      if (read.format === CACHE_FORMAT) old = read;
    } catch {
      // No cache yet, or an unreadable one: everything is checked afresh.
    }
  }
  const next: CacheFile = { format: CACHE_FORMAT, parsed: {}, signatures: {} };
  let hits = 0;
  const memo: ChainMemo = {
    parse(digest, text) {
      const known = old.parsed[digest];
      if (known) hits++;
      return (next.parsed[digest] = known ?? noMemo.parse(digest, text));
    },
    verify(digest, bytes, signature): SshsigCheck {
      const key = `${digest} ${createHash('sha256').update(signature).digest('hex')}`;
      const known = old.signatures[key];
      if (known) {
        next.signatures[key] = known;
        return { ...known, publicKey: known.publicKey === undefined ? undefined : Buffer.from(known.publicKey, 'base64') } as SshsigCheck;
      }
      const check = noMemo.verify(digest, bytes, signature);
      next.signatures[key] = { ...check, publicKey: check.publicKey?.toString('base64') } as StoredCheck;
      return check;
    },
  };
  return {
    memo,
    hits: () => hits,
    save() {
      if (!file) return;
      fs.mkdirSync(dirname(file), { recursive: true });
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(next));
      fs.renameSync(`${file}.tmp`, file);
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

export interface Site {
  model: Model;
  forms: Map<string, FormPage[]>;
}

let site: Site | undefined;

/** The model every page uses, built on first use. */
export function loadSite(env: NodeJS.ProcessEnv = process.env): Site {
  if (site) return site;
  const started = Date.now();
  const dir = resolve(env.RESPALDO_RECORDS ?? 'records');
  const cacheDir = env.RESPALDO_SITE_CACHE;
  const cache = cachedMemo(cacheDir ? join(cacheDir, 'records.json') : undefined);
  const trust = env.RESPALDO_TRUST ? (JSON.parse(fs.readFileSync(env.RESPALDO_TRUST, 'utf8')) as Trust) : undefined;
  const folder = verifyRecordsFolder(dir, fs, trust?.git ? trust.policy : undefined, cache.memo);
  cache.save();
  const { procedure, problem } = readProcedure(dir);
  const now = env.RESPALDO_NOW ? new Date(env.RESPALDO_NOW) : new Date();
  const model = buildModel({ folder, trust, procedure, procedureProblem: problem, recordsDir: dir, now, timeZone: env.RESPALDO_TIMEZONE || 'America/Mexico_City' });
  const summary = { records: folder.total, genuine: folder.total - folder.broken, broken: folder.broken, cached: cache.hits(), problems: model.problems.map((p) => `${p.where}: ${p.en}`), loadMs: Date.now() - started };
  if (cacheDir) fs.writeFileSync(join(cacheDir, 'summary.json'), JSON.stringify(summary, null, 1));
  if (env.RESPALDO_STRICT === '1' && model.broken)
    throw new Error(`--strict: the records are not all genuine (${folder.broken} of ${folder.total} records broken; ${model.problems.length} problem(s)):\n${summary.problems.slice(0, 20).join('\n')}`);
  site = { model, forms: formPages(model) };
  return site;
}
