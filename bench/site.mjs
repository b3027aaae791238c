#!/usr/bin/env node
/**
 * The site benchmark: `respaldo site build` on generated records folders of 10,000, 50,000
 * and 100,000 records (bench/site-records.mjs), three ways each: cold (empty cache), warm
 * (same records, cache kept) and after one more day of records (cache kept). Wall time and
 * the peak resident memory of the whole process tree; pages written and output size; the
 * goals (100,000 records: under 90 s and 1.5 GiB; one more day: under 20 s). See
 * bench/README.md.
 *
 *   node bench/site.mjs [--sizes 10000,50000,100000] [--work bench/work/site] [--cli dist/agent/main.js]
 *
 * Plain Node (no dependencies); GNU time (/usr/bin/time, package `time`) is used when present.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createProbe, fail, fmtInt, log, MiB, sh } from './lib.mjs';
import { FORMAT } from './site-records.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const GENERATOR = join(REPO, 'bench', 'site-records.mjs');
const SETTLED_PROBE = 0.15;
const GOALS = { records: 100_000, coldSeconds: 90, peakMB: 1536, appendSeconds: 20 };

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,50000,100000' },
    work: { type: 'string', default: join(REPO, 'bench', 'work', 'site') },
    cli: { type: 'string', default: join(REPO, 'dist', 'agent', 'main.js') },
    dist: { type: 'string', default: join(REPO, 'dist') },
    regenerate: { type: 'boolean', default: false },
    settle: { type: 'string', default: '120' },
    poll: { type: 'string', default: '100' },
    'real-now': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) {
  process.stdout.write(
    [
      'usage: node bench/site.mjs [options]',
      '  --sizes LIST     records per folder, comma-separated (default 10000,50000,100000)',
      '  --work DIR       generated folders, runs, logs and results.json (default bench/work/site)',
      '  --cli FILE       the respaldo to measure (default dist/agent/main.js): node FILE site build …',
      '  --dist DIR       compiled respaldo the generator signs with (default dist/)',
      '  --regenerate     make the records folders again even when a matching one is kept',
      '  --settle S       wait up to S seconds (default 120) before each size for the filesystem',
      '                   to create files at its quiet speed again after large deletions',
      '  --poll MS        how often the process tree\'s memory is sampled (default 100)',
      '  --real-now       judge schedules as of now; by default each build gets --now: midnight (UTC) after',
      '                   the newest day of records, so that a folder made days ago is not all overdue',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const sizes = opt.sizes.split(',').map((s) => Number(s.replace(/[_,]/g, '')));
for (const n of sizes) if (!Number.isInteger(n) || n < 100) fail(`--sizes: "${opt.sizes}" is not a list of record counts (each at least 100)`);
const WORK = resolve(opt.work);
const CLI = resolve(opt.cli);
const DIST = resolve(opt.dist);
const settle = Number(opt.settle);
const pollMs = Number(opt.poll);
if (!existsSync(CLI)) fail(`${CLI} not found: build first (npx tsc -p .) or pass --cli`);
if (!existsSync(join(DIST, 'schemas/record.js'))) fail(`${DIST}/schemas/record.js not found: build first (npx tsc -p .) or pass --dist`);
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

// ---------------------------------------------------------------------------------------
// Measuring: wall time, GNU time's largest process, and the whole tree's RSS sampled in /proc

/** Every process below `root` (and root), from /proc/<pid>/stat's parent ids. */
function descendants(root) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(name));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}
function treeRssKiB(root) {
  let sum = 0;
  for (const pid of descendants(root)) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (m) sum += Number(m[1]);
    } catch {
      // exited between the listing and the read
    }
  }
  return sum;
}

/** Runs one command to completion: wall seconds, the tree's peak RSS (sum, sampled), the largest process's (GNU time). */
async function measure(cmd, args, logFile) {
  sh('sync', []); // the previous step's writeback is not this one's to pay
  const timeFile = `${logFile}.time`;
  const fd = openSync(logFile, 'w');
  writeFileSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
  const argv = GNU_TIME ? [GNU_TIME, ['-f', '%e %M', '-o', timeFile, cmd, ...args]] : [cmd, args];
  const started = process.hrtime.bigint();
  const child = spawn(argv[0], argv[1], { stdio: ['ignore', fd, fd], env: { ...process.env, ASTRO_TELEMETRY_DISABLED: '1' } });
  let peakKiB = 0;
  let samples = 0;
  const sample = () => {
    const kib = treeRssKiB(child.pid);
    samples++;
    if (kib > peakKiB) peakKiB = kib;
  };
  const timer = setInterval(sample, pollMs);
  sample();
  const code = await new Promise((done) => child.on('exit', (c, signal) => done(c ?? signal)));
  clearInterval(timer);
  const wallHr = Number(process.hrtime.bigint() - started) / 1e9;
  closeSync(fd);
  let wall = Math.round(wallHr * 100) / 100;
  let maxProcMB = null;
  if (GNU_TIME && existsSync(timeFile)) {
    const last = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ');
    if (last.length === 2 && !Number.isNaN(Number(last[0]))) {
      wall = Number(last[0]);
      maxProcMB = Math.round((Number(last[1]) / 1024) * 10) / 10;
    }
  }
  const treeMB = Math.round((peakKiB / 1024) * 10) / 10;
  // The tree's sampled sum misses peaks shorter than a sample; GNU time's largest process never does.
  const peakMB = Math.max(treeMB, maxProcMB ?? 0);
  return { exit: code, wall, peakMB, treeMB, maxProcMB, samples };
}

function pagesAndBytes(dir) {
  let pages = 0;
  let files = 0;
  if (!existsSync(dir)) return { pages, files, bytes: 0 };
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    if (e.name.endsWith('.html')) pages++;
  }
  const bytes = Number(sh('du', ['-s', '--block-size=1', '--apparent-size', dir]).split('\t')[0]);
  return { pages, files, bytes };
}

const tail = (file, n = 12) => (existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n') : '');

// ---------------------------------------------------------------------------------------
// Records folders: generated once per size and kept (bench/work/site/gen-<n>/records); each
// run measures a hard-linked copy, which the one-more-day step then extends.

function ensureFolder(n) {
  const dir = join(WORK, `gen-${n}`);
  const records = join(dir, 'records');
  const genFile = join(dir, 'records.gen.json');
  let state;
  try {
    state = JSON.parse(readFileSync(genFile, 'utf8'));
  } catch {
    // not generated yet
  }
  const usable = state && state.format === FORMAT && state.asked?.records === n && state.lastDay === state.generatedLastDay && existsSync(join(records, 'policy/allowed_signers'));
  if (usable && !opt.regenerate) {
    log(`${fmtInt(n)}: reusing ${relative(REPO, records)} (${fmtInt(state.records)} records, ${state.hosts.length + 1} hosts, made ${state.asked.end.slice(0, 10)})`);
    return { records, state, generated: null };
  }
  // The records end yesterday (UTC): a site built today sees them as recent.
  const end = `${new Date().toISOString().slice(0, 10)}T00:00:00Z`;
  log(`${fmtInt(n)}: generating ${relative(REPO, records)}`);
  mkdirSync(dir, { recursive: true });
  if (existsSync(records) && !existsSync(genFile)) rmSync(records, { recursive: true, force: true });
  const out = sh('node', [GENERATOR, '--records', String(n), '--out', records, '--end', end, '--dist', DIST, '--json', '--quiet']);
  const summary = JSON.parse(out.trim().split('\n').pop());
  log(`${fmtInt(n)}: ${fmtInt(summary.records)} records for ${summary.hosts} hosts (${summary.from} to ${summary.to}) in ${summary.seconds.toFixed(1)} s`);
  return { records, state: JSON.parse(readFileSync(genFile, 'utf8')), generated: summary };
}

/** A run's own copy of a folder: hard links (records are never rewritten), its sidecar files copied. */
function runCopy(src, runDir) {
  mkdirSync(runDir, { recursive: true });
  const records = join(runDir, 'records');
  sh('cp', ['-al', src, records]);
  for (const ext of ['gen.json', 'keys.json']) copyFileSync(`${src}.${ext}`, `${records}.${ext}`);
  return records;
}

function settleFilesystem(dir, tag) {
  let probe = createProbe(join(dir, 'probe'));
  for (let waited = 0, k = 1; probe > SETTLED_PROBE && waited < settle; waited += 15, k++) {
    log(`${tag}: creating 2,000 files took ${probe.toFixed(2)} s: the filesystem is still busy after deletions; waiting 15 s`);
    spawnSync('sleep', ['15']);
    probe = createProbe(join(dir, `probe${k}`));
  }
  return probe;
}

// ---------------------------------------------------------------------------------------
// Main

async function main() {
  mkdirSync(WORK, { recursive: true });
  const git = (args) => spawnSync('git', args, { cwd: REPO, encoding: 'utf8' }).stdout?.trim() || null;
  const meta = {
    started: new Date().toISOString(),
    argv: process.argv.slice(2),
    machine: { cpus: availableParallelism(), cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 1024 / MiB), kernel: release() },
    node: process.version,
    cli: CLI,
    commit: git(['rev-parse', 'HEAD']),
    uncommitted: git(['status', '--porcelain', '--', 'agent', 'schemas', 'site']) || null,
    measuredWith: GNU_TIME ? `GNU time (largest process) and /proc every ${pollMs} ms (tree sum)` : `/proc every ${pollMs} ms (tree sum)`,
  };
  const help = spawnSync('node', [CLI, 'site', 'build', '--help'], { encoding: 'utf8' });
  const hasSiteBuild = help.status === 0 && /--records/.test(`${help.stdout}${help.stderr}`);
  if (!hasSiteBuild) log(`warning: "node ${relative(REPO, CLI)} site build --help" did not show a --records option (exit ${help.status}): the builds will probably fail`);

  // Runs of an earlier benchmark are moved aside and deleted once the results are out:
  // deleting many files slows creating files on this kind of filesystem (bench/README.md).
  const trash = join(WORK, 'trash');
  for (const name of existsSync(WORK) ? readdirSync(WORK) : [])
    if (name.startsWith('run-')) {
      mkdirSync(trash, { recursive: true });
      renameSync(join(WORK, name), join(trash, `${name}-${Date.now()}`));
    }

  const results = [];
  for (const n of sizes) {
    const folder = ensureFolder(n);
    const runDir = join(WORK, `run-${n}`);
    const logs = join(runDir, 'logs');
    mkdirSync(logs, { recursive: true });
    const records = runCopy(folder.records, runDir);
    const out = join(runDir, 'out');
    const cache = join(runDir, 'cache');
    mkdirSync(cache, { recursive: true });
    const probe = settleFilesystem(join(runDir, 'probe'), fmtInt(n));
    rmSync(join(runDir, 'probe'), { recursive: true, force: true });
    const row = { records: n, written: folder.state.records, hosts: folder.state.hosts.length + 1, days: folder.state.lastDay - folder.state.startDay + 1, generated: folder.generated, probe, dir: runDir };
    // As of midnight after the newest day of records (the next morning's build), unless --real-now.
    const build = (phase, lastDay) => measure('node', [CLI, 'site', 'build', '--records', records, '--out', out, '--cache', cache, ...(opt['real-now'] ? [] : ['--now', new Date((lastDay + 1) * 86_400_000).toISOString()])], join(logs, `${phase}.log`));
    let lastDay = folder.state.lastDay;
    for (const phase of ['cold', 'warm', 'append']) {
      if (phase === 'append') {
        const added = JSON.parse(sh('node', [GENERATOR, '--append-day', records, '--dist', DIST, '--json', '--quiet']).trim().split('\n').pop());
        row.appended = { records: added.records, day: added.to };
        lastDay += 1;
        log(`${fmtInt(n)}: one more day (${added.to}): ${added.records} records`);
      }
      log(`${fmtInt(n)}: ${phase} build`);
      const m = await build(phase, lastDay);
      Object.assign(m, pagesAndBytes(out));
      row[phase] = m;
      if (m.exit !== 0) {
        log(`${fmtInt(n)}: ${phase} build exited with ${m.exit} (log: ${relative(REPO, join(logs, `${phase}.log`))}):\n${tail(join(logs, `${phase}.log`))}`);
        break;
      }
      log(`${fmtInt(n)}: ${phase}: ${m.wall.toFixed(1)} s, peak ${m.peakMB.toFixed(0)} MB (tree ${m.treeMB.toFixed(0)} MB${m.maxProcMB !== null ? `, largest process ${m.maxProcMB.toFixed(0)} MB` : ''}), ${fmtInt(m.pages)} pages, ${(m.bytes / MiB).toFixed(1)} MiB`);
    }
    results.push(row);
  }

  // The table and the goals.
  const ok = (m) => m && m.exit === 0;
  const cell = (m) => (ok(m) ? `${m.wall.toFixed(1)} s / ${m.peakMB.toFixed(0)} MB` : m ? `failed (${m.exit})` : '–');
  const last = (r) => (ok(r.append) ? r.append : ok(r.warm) ? r.warm : r.cold);
  const head = ['records', 'hosts', 'pages', 'output', 'cold s / MB', 'warm s / MB', '+1 day s / MB'];
  const rows = results.map((r) => [fmtInt(r.written), String(r.hosts), ok(r.cold) ? fmtInt(r.cold.pages) : '–', ok(r.cold) ? `${(r.cold.bytes / MiB).toFixed(1)} MiB` : '–', cell(r.cold), cell(r.warm), cell(r.append)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  const lines = [`respaldo site build: ${meta.machine.cpus} CPUs, ${meta.machine.memGiB} GiB RAM, node ${meta.node}, commit ${meta.commit?.slice(0, 12) ?? '?'}${meta.uncommitted ? '+dirty' : ''}; peak = resident memory of the whole process tree`, '', line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''];
  const big = results.find((r) => r.records === GOALS.records);
  const goals = [];
  const goal = (name, value, limit, unit, m) => {
    if (!big) goals.push({ goal: name, result: 'SKIP', note: `needs ${fmtInt(GOALS.records)} in --sizes` });
    else if (!ok(m)) goals.push({ goal: name, result: 'FAIL', note: 'the build did not complete' });
    else goals.push({ goal: name, result: value < limit ? 'PASS' : 'FAIL', value, limit, note: `${value} ${unit} (limit ${limit} ${unit})` });
  };
  goal(`${fmtInt(GOALS.records)} records, cold build under ${GOALS.coldSeconds} s`, big?.cold?.wall, GOALS.coldSeconds, 's', big?.cold);
  const peaks = big ? ['cold', 'warm', 'append'].filter((p) => ok(big[p])).map((p) => big[p].peakMB) : [];
  goal(`${fmtInt(GOALS.records)} records, peak memory under ${GOALS.peakMB} MB (1.5 GiB), every build`, peaks.length ? Math.max(...peaks) : undefined, GOALS.peakMB, 'MB', big && ok(big.cold) ? big.cold : undefined);
  goal(`${fmtInt(GOALS.records)} records, rebuild after one more day under ${GOALS.appendSeconds} s`, big?.append?.wall, GOALS.appendSeconds, 's', big?.append);
  lines.push('goals:');
  for (const g of goals) lines.push(`  ${g.result.padEnd(4)}  ${g.goal}: ${g.note}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  writeFileSync(join(WORK, 'results.json'), `${JSON.stringify({ meta: { ...meta, finished: new Date().toISOString() }, goals, sizes: results }, null, 2)}\n`);
  log(`results: ${relative(REPO, join(WORK, 'results.json'))}; each build's output in ${relative(REPO, WORK)}/run-<records>/logs/`);

  if (existsSync(trash)) {
    log('deleting the previous runs');
    rmSync(trash, { recursive: true, force: true });
  }
  const failed = results.some((r) => ['cold', 'warm', 'append'].some((p) => r[p] && r[p].exit !== 0));
  return failed || goals.some((g) => g.result === 'FAIL') ? 1 : 0;
}

process.exitCode = await main();
