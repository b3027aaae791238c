/**
 * `respaldo site build` and `respaldo site watch`: the compliance site, built by Astro from a
 * records folder alone. This command reads what only git can tell (the trust policy's
 * history, which approvals and checkpoints count: agent/trust.ts) and hands it to the site
 * as JSON; the site (site/) reads and checks the records itself, through schemas/, with a
 * cache keyed by each file's digest so that a rebuild checks only what is new.
 *
 * The site is built into a fresh folder and put in place of the old one only when the build
 * succeeded: a failed or `--strict` build leaves the previous site as it was.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Trust } from '../../schemas/trust.js';
import { parseZoned } from '../../schemas/zoned.js';
import type { Context } from '../context.js';
import { Exit, RespaldoError, usageError, type ExitCode } from '../errors.js';
import { runTool } from '../exec.js';
import { readRequestFile, readTrust } from '../trust.js';

export interface SiteOptions {
  records: string | undefined;
  out: string | undefined;
  cache: string | undefined;
  strict: boolean;
  /** Judge schedules as of this time instead of now (an audit "as of" a date). */
  now: string | undefined;
  timezone: string | undefined;
  approvers: string[];
}

/** Marks a folder as a site respaldo built, so that a rebuild may replace it. */
const MARKER = 'respaldo-site.json';
const KEEP = 'respaldo-build-keep';
const PKG = fileURLToPath(new URL('../../../', import.meta.url));

export interface SiteBuilt {
  out: string;
  records: number;
  genuine: number;
  broken: number;
  cached: number;
  /** Record pages taken unchanged from the previous build. */
  reused: number;
  problems: string[];
  seconds: number;
}

/**
 * Outside git, the requests are still shown, read from the files; no approval can count
 * there, since only a signed commit makes one.
 */
async function filesOnly(dir: string, trust: Trust): Promise<Trust> {
  for (const name of (await readdir(join(dir, 'requests')).catch(() => [] as string[])).sort())
    trust.requests.push(readRequestFile(name, await readFile(join(dir, 'requests', name)).catch(() => Buffer.alloc(0))));
  for (const name of (await readdir(join(dir, 'approvals')).catch(() => [] as string[])).sort())
    trust.approvals.push({ id: name.replace(/\.yaml$/, ''), path: `approvals/${name}`, approval: undefined, valid: false, reason: 'the records folder is not a git checkout: who signed this approval cannot be checked', commit: undefined, key: undefined, principal: undefined, date: undefined });
  return trust;
}

/** What the pages are made by: the site's and the schemas' sources and Astro's settings. A page is reused only from a build by the same code. */
function siteCode(): string {
  const hash = createHash('sha256');
  for (const root of ['site', 'schemas']) {
    const names = readdirSync(join(PKG, root), { recursive: true, encoding: 'utf8' }).filter((n) => !n.endsWith('.test.ts')).sort();
    for (const name of names) {
      const path = join(PKG, root, name);
      if (statSync(path).isFile()) hash.update(`${root}/${name}\0`).update(readFileSync(path));
    }
  }
  for (const name of ['astro.config.mjs', 'package.json']) hash.update(readFileSync(join(PKG, name)));
  return hash.digest('hex');
}

function cacheFor(dir: string, env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'respaldo', 'site', createHash('sha256').update(dir).digest('hex').slice(0, 16));
}

/** A folder the build may replace: missing, empty, or a site it built before. */
function replaceable(out: string): boolean {
  if (!existsSync(out)) return true;
  if (!statSync(out).isDirectory()) return false;
  const names = readdirSync(out);
  return names.length === 0 || names.includes(MARKER);
}

export async function buildSite(ctx: Context, opts: SiteOptions): Promise<SiteBuilt> {
  const started = Date.now();
  const dir = resolve(ctx.cwd, opts.records ?? 'records');
  if (!existsSync(join(dir, 'policy')) && !existsSync(join(dir, 'hosts')))
    throw usageError(`${dir} is not a records folder (it has neither policy/ nor hosts/)`, 'pass --records DIR: a clone of the records repository');
  const out = resolve(ctx.cwd, opts.out ?? 'site-dist');
  if (!replaceable(out)) throw usageError(`${out} is not empty and is not a site respaldo built (no ${MARKER}): refusing to replace it`, 'pass --out with a new or empty folder');
  const cache = resolve(ctx.cwd, opts.cache ?? cacheFor(dir, ctx.env));
  let now: string | undefined;
  if (opts.now) {
    const at = parseZoned(opts.now, opts.timezone ?? 'America/Mexico_City');
    if (!at) throw usageError(`--now ${opts.now}: not a time`, 'write it as 2026-11-25 09:00, or in UTC as 2026-11-25T15:00:00Z');
    now = at.toISOString();
  }
  if (opts.timezone) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: opts.timezone });
    } catch {
      throw usageError(`--timezone ${opts.timezone}: not a time zone`, 'use an IANA name such as America/Mexico_City');
    }
  }
  await mkdir(cache, { recursive: true });
  // This build's own files; the cache of parses and checks is shared with other builds.
  const run = await mkdtemp(join(cache, 'build-'));
  try {
    return await buildInto(ctx, opts, { dir, out, cache, run, now, started });
  } finally {
    await rm(run, { recursive: true, force: true });
  }
}

/** The key, size, time and inode of each record page of the site in `out`, kept in the private cache. */
const pagesFile = (cache: string, out: string) => join(cache, `pages-${createHash('sha256').update(out).digest('hex').slice(0, 16)}.json`);

async function buildInto(ctx: Context, opts: SiteOptions, b: { dir: string; out: string; cache: string; run: string; now: string | undefined; started: number }): Promise<SiteBuilt> {
  const { dir, out, cache, run, now, started } = b;
  const read = await readTrust(dir, { approvers: opts.approvers, env: ctx.env });
  const trust = read.git ? read : await filesOnly(dir, read);
  const trustFile = join(run, 'trust.json');
  await writeFile(trustFile, JSON.stringify(trust));

  const staging = join(dirname(out), `.${basename(out)}.building-${process.pid}`);
  await rm(staging, { recursive: true, force: true });
  const env: NodeJS.ProcessEnv = {
    ...ctx.env,
    ASTRO_TELEMETRY_DISABLED: '1',
    RESPALDO_RECORDS: dir,
    RESPALDO_SITE_OUT: staging,
    RESPALDO_SITE_CACHE: cache,
    RESPALDO_SITE_RUN: run,
    RESPALDO_TRUST: trustFile,
    RESPALDO_STRICT: opts.strict ? '1' : '0',
    RESPALDO_SITE_CODE: siteCode(),
    ...(existsSync(join(out, MARKER)) ? { RESPALDO_SITE_PREVIOUS: out, RESPALDO_SITE_PAGES: pagesFile(cache, out) } : {}),
    ...(now ? { RESPALDO_NOW: now } : {}),
    ...(opts.timezone ? { RESPALDO_TIMEZONE: opts.timezone } : {}),
  };
  // Astro puts its working modules in ./.astro of the folder it runs in (the output being elsewhere):
  // a folder of this build's own, below node_modules so that they find their packages, lets two builds run at once.
  await mkdir(join(PKG, 'node_modules/.cache'), { recursive: true });
  const work = await mkdtemp(join(PKG, 'node_modules/.cache/respaldo-site-'));
  // Astro empties ./.astro of its modules when done and then reads it again: it must not vanish.
  await mkdir(join(work, '.astro'));
  await writeFile(join(work, `.astro/${KEEP}`), '');
  const built = await runTool(process.execPath, ['--max-old-space-size=1100', join(PKG, 'node_modules/astro/astro.js'), 'build', '--silent', '--root', PKG], { cwd: work, env, signal: ctx.signal })
    .catch((e: Error) => ({ code: 1, signal: null, stderr: e.message }))
    .finally(() => rm(work, { recursive: true, force: true }));
  const summary = (() => {
    try {
      return JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8')) as Omit<SiteBuilt, 'out' | 'seconds' | 'reused'>;
    } catch {
      return undefined;
    }
  })();
  if (built.code !== 0) {
    await rm(staging, { recursive: true, force: true });
    if (opts.strict && summary && summary.problems.length > 0)
      throw new RespaldoError(`--strict: the site was not built, because the records are not all genuine (${summary.broken} of ${summary.records} records broken):\n${summary.problems.slice(0, 30).map((p) => `  ${p}`).join('\n')}${summary.problems.length > 30 ? `\n  … and ${summary.problems.length - 30} more` : ''}`, { exitCode: Exit.partial, hint: `the previous site in ${out} is untouched; build without --strict to see every problem marked on the site` });
    throw new RespaldoError(`the site build failed:\n${built.stderr.trim().split('\n').slice(-12).join('\n')}`, { exitCode: Exit.internal, hint: `the previous site in ${out} is untouched` });
  }
  // Record pages unchanged since the previous build come from it, as hard links (the old folder goes after the swap).
  const pages = JSON.parse(await readFile(join(run, 'pages.json'), 'utf8')) as { keys: Record<string, string>; reuse: string[] };
  for (const path of pages.reuse) {
    await mkdir(dirname(join(staging, path)), { recursive: true });
    await link(join(out, path), join(staging, path)).catch(() => copyFile(join(out, path), join(staging, path)));
  }
  const result: SiteBuilt = { out, records: summary?.records ?? 0, genuine: summary?.genuine ?? 0, broken: summary?.broken ?? 0, cached: summary?.cached ?? 0, reused: pages.reuse.length, problems: summary?.problems ?? [], seconds: (Date.now() - started) / 1000 };
  // Astro leaves its server-side modules (and copies the file above) next to the pages; they are not part of the site.
  for (const name of await readdir(staging)) if (name.endsWith('.mjs') || name === KEEP) await rm(join(staging, name), { force: true });
  await writeFile(join(staging, MARKER), `${JSON.stringify({ records: dir, built: new Date().toISOString(), records_total: result.records, genuine: result.genuine, broken: result.broken }, null, 1)}\n`);
  // Swap the new site in; the old one goes only once the new one is in place.
  const old = `${staging}.old`;
  if (existsSync(out)) await rename(out, old);
  await rename(staging, out);
  await rm(old, { recursive: true, force: true });
  const seen: Record<string, [string, number, number, number]> = {};
  for (const [path, key] of Object.entries(pages.keys)) {
    const st = statSync(join(out, path), { throwIfNoEntry: false });
    if (st) seen[path] = [key, st.size, st.mtimeMs, st.ino];
  }
  await writeFile(pagesFile(cache, out), JSON.stringify(seen));
  return result;
}

function report(ctx: Context, r: SiteBuilt): void {
  ctx.reporter.event({ type: 'info', message: `site: ${r.records} records (${r.genuine} genuine, ${r.broken} broken; ${r.cached} checked before; ${r.reused} record pages unchanged) → ${join(r.out, 'index.html')} in ${r.seconds.toFixed(1)} s` });
  if (r.problems.length > 0) ctx.reporter.event({ type: 'warning', message: `the site shows ${r.problems.length} problem(s), marked on every page: ${r.problems.slice(0, 5).join('; ')}${r.problems.length > 5 ? '; …' : ''}` });
}

export async function runSiteBuild(ctx: Context, opts: SiteOptions): Promise<ExitCode> {
  const r = await buildSite(ctx, opts);
  report(ctx, r);
  return Exit.ok;
}

/** Rebuilds whenever a file of the records folder changes (JAA's workstation), until interrupted. */
export async function runSiteWatch(ctx: Context, opts: SiteOptions): Promise<ExitCode> {
  const { watch } = await import('chokidar');
  const dir = resolve(ctx.cwd, opts.records ?? 'records');
  const build = async () => {
    try {
      report(ctx, await buildSite(ctx, opts));
    } catch (e) {
      if (ctx.signal.aborted) return;
      ctx.reporter.event({ type: 'warning', message: e instanceof RespaldoError ? `${e.message}${e.hint ? `\n${e.hint}` : ''}` : String(e) });
    }
  };
  await build();
  // Git's objects are not watched, but its HEAD and refs are: a signed commit that makes an approval count changes the site.
  const gitOnly = (path: string) => path.includes(`${dir}/.git/`) && !/\/\.git\/(HEAD|packed-refs|refs(\/.*)?)$/.test(path);
  const watcher = watch(dir, { ignoreInitial: true, ignored: (path) => gitOnly(path) || path.endsWith('.tmp'), awaitWriteFinish: { stabilityThreshold: 300, pollInterval: 100 } });
  let running: Promise<void> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  const trigger = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (running) {
        again = true;
        return;
      }
      running = (async () => {
        do {
          again = false;
          await build();
        } while (again && !ctx.signal.aborted);
        running = undefined;
      })();
    }, 300);
  };
  watcher.on('all', trigger);
  await new Promise<void>((resolveReady) => watcher.on('ready', () => resolveReady()));
  ctx.reporter.event({ type: 'info', message: `watching ${dir}; the site is rebuilt on every change (Ctrl-C stops)` });
  await new Promise<void>((done) => ctx.signal.addEventListener('abort', () => done(), { once: true }));
  clearTimeout(timer);
  await watcher.close();
  await running;
  return Exit.interrupted;
}
