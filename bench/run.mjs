#!/usr/bin/env node
/**
 * respaldo benchmark: respaldo against plain rsync --link-dest, restic and Borg on two
 * generated trees ("mixed": ~2 GiB in ~20,000 files; "small": 200,000 files of 1–4 KiB),
 * three scenarios each (first backup, no-change backup, backup after changing 1% of the
 * files), timed with GNU time. See bench/README.md.
 *
 *   node bench/run.mjs [--scale 1] [--only mixed|small] [--tools respaldo,rsync,restic,borg]
 *                      [--work bench/work] [--build] [--profile]
 *
 * Plain Node (no dependencies). Needs rsync, GNU time (/usr/bin/time), git, ssh-keygen,
 * restic and borg (apt-get install -y rsync time restic borgbackup), and a built respaldo
 * (npx tsc -p .), which it copies into the work dir so that a rebuild during the run
 * cannot change what is measured.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TREE_FORMAT = 2; // bump when the generator changes: cached trees are then rebuilt
const ALL_TOOLS = ['respaldo', 'rsync', 'restic', 'borg'];
const ALL_TREES = ['mixed', 'small'];
const SCENARIOS = [
  { key: 'first', label: 'first' },
  { key: 'nochange', label: 'no change' },
  { key: 'changed', label: '1% changed' },
];
const BASE_MTIME = 1704067200; // 2024-01-01T00:00:00Z: every generated file gets BASE_MTIME + its index
const CHANGED_MTIME = BASE_MTIME + 30 * 86400;
const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------------------------------
// Options

const { values: opt } = parseArgs({
  options: {
    work: { type: 'string', default: join(REPO, 'bench', 'work') },
    scale: { type: 'string', default: '1' },
    only: { type: 'string' },
    tools: { type: 'string', default: ALL_TOOLS.join(',') },
    build: { type: 'boolean', default: false },
    ref: { type: 'string' },
    profile: { type: 'boolean', default: false },
    repeat: { type: 'string', default: '1' },
    settle: { type: 'string', default: '240' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) {
  process.stdout.write(
    [
      'usage: node bench/run.mjs [options]',
      '  --scale N        size factor for both trees (default 1; 0.1 for a quick run)',
      '  --only TREE      mixed or small (default: both)',
      '  --tools LIST     comma-separated, from respaldo,rsync,restic,borg (default: all)',
      '  --work DIR       where trees, deployments and results go (default bench/work)',
      '  --build          run "npx tsc -p ." before copying dist/ (default: use dist/ as it is)',
      '  --ref REV        benchmark a committed version instead: git archive REV, built in the work dir',
      '  --repeat N       run every tool\'s three scenarios N times (fresh deployments, tools interleaved);',
      '                   tables show medians, results.json every sample (default 1; 3 recommended)',
      '  --profile        run respaldo under node --cpu-prof (timings are then inflated)',
      '  --settle S       wait up to S seconds (default 240) before each tool for the filesystem to',
      '                   create files at its quiet speed again after large deletions',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const scale = Number(opt.scale);
if (!(scale > 0 && scale <= 10)) fail(`--scale must be a number in (0, 10], not ${opt.scale}`);
const trees = opt.only ? opt.only.split(',') : ALL_TREES;
for (const t of trees) if (!ALL_TREES.includes(t)) fail(`--only: unknown tree "${t}" (mixed or small)`);
const tools = opt.tools.split(',').filter(Boolean);
for (const t of tools) if (!ALL_TOOLS.includes(t)) fail(`--tools: unknown tool "${t}" (${ALL_TOOLS.join(', ')})`);
const repeat = Number(opt.repeat);
if (!(Number.isInteger(repeat) && repeat >= 1 && repeat <= 20)) fail(`--repeat must be a whole number from 1 to 20, not ${opt.repeat}`);
const WORK = resolve(opt.work);
const settle = Number(opt.settle);
if (!(settle >= 0)) fail(`--settle must be a number of seconds, not ${opt.settle}`);
/** Seconds to create 2,000 files on a quiet filesystem here are 0.05–0.1; several times that means it is not. */
const SETTLED_PROBE = 0.15;
const scaleTag = `s${scale}`;

// ---------------------------------------------------------------------------------------
// Small helpers

function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const t0 = Date.now();
function log(message) {
  const s = ((Date.now() - t0) / 1000).toFixed(0).padStart(5);
  process.stderr.write(`[${s}s] ${message}\n`);
}

/** Runs a command to completion (not measured); throws with its output when it fails. */
function sh(cmd, args, { env, cwd, input } = {}) {
  const r = spawnSync(cmd, args, { env: env ?? process.env, cwd, input, encoding: 'utf8', maxBuffer: 256 * MiB });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${(r.stderr || r.stdout || '').slice(-2000)}`);
  return r.stdout;
}

function has(program) {
  return spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).status === 0;
}

function version(cmd, args, re) {
  try {
    const out = sh(cmd, args);
    return (re ? re.exec(out)?.[1] : out.split('\n')[0]) ?? out.trim();
  } catch {
    return null;
  }
}

/** Disk usage in bytes (hard-linked files counted once), as du reports it. */
function diskUsage(path) {
  return Number(sh('du', ['-s', '--block-size=1', path]).split('\t')[0]);
}

/** mulberry32: a tiny seeded PRNG, enough for sizes and picks. */
function prng(seedText) {
  let a = createHash('sha256').update(seedText).digest().readUInt32LE(0);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const fmtMiB = (b) => (b / MiB).toFixed(1);
const fmtGiB = (b) => (b / 1024 / MiB).toFixed(2);
const fmtInt = (n) => n.toLocaleString('en-US');

// ---------------------------------------------------------------------------------------
// Trees: deterministic names, sizes, contents and mtimes

/**
 * The list of files of a tree, from its name and the scale alone. Each entry: rel path,
 * kind (text: compressible; bin: AES-CTR keystream, incompressible), size, content seed,
 * mtime (seconds).
 */
function treeSpec(name) {
  const rand = prng(`respaldo-bench/${name}/${TREE_FORMAT}`);
  const files = [];
  const add = (rel, kind, size) => files.push({ rel, kind, size, seed: `${name}/${rel}`, mtime: BASE_MTIME + files.length });
  if (name === 'mixed') {
    const nText = Math.max(10, Math.round(18900 * scale));
    const nBin = Math.max(5, Math.round(1100 * scale));
    for (let i = 0; i < nText; i++) {
      // 20 × 10 × 5 folders, three levels deep
      const a = i % 20, b = Math.floor(i / 20) % 10, c = Math.floor(i / 200) % 5;
      add(`docs/area-${a}/project-${b}/part-${c}/note-${i}.txt`, 'text', Math.floor(KiB + rand() * 19 * KiB));
    }
    for (let i = 0; i < nBin; i++) {
      const a = i % 10, b = Math.floor(i / 10) % 10;
      // log-uniform 100 KiB – 5 MiB
      add(`media/set-${a}/batch-${b}/blob-${i}.bin`, 'bin', Math.floor(100 * KiB * Math.exp(rand() * Math.log(5120 / 100))));
    }
    for (const [i, mb] of [60, 100, 150, 200].entries()) add(`archive/large-${i}.bin`, 'bin', Math.max(MiB, Math.round(mb * MiB * scale)));
  } else {
    const leaves = Math.max(1, Math.round(200 * scale));
    for (let d = 0; d < leaves; d++)
      for (let i = 0; i < 1000; i++) add(`g${String(Math.floor(d / 10)).padStart(2, '0')}/d${d % 10}/f${String(i).padStart(4, '0')}.txt`, 'text', Math.floor(KiB + rand() * 3 * KiB));
  }
  return files;
}

/** 1% of the files (at least one), picked by a hash of their names; half keep their size. */
function changeSet(name, files) {
  const n = Math.max(1, Math.ceil(files.length / 100));
  const keyed = files.map((f, i) => ({ i, k: createHash('sha1').update(`pick/${f.seed}`).digest('hex') }));
  keyed.sort((x, y) => (x.k < y.k ? -1 : 1));
  const rand = prng(`respaldo-bench/${name}/changes`);
  return keyed.slice(0, n).map(({ i }, j) => {
    const f = files[i];
    const size = j % 2 === 0 ? f.size : Math.max(1, Math.round(f.size * (0.5 + rand())));
    return { ...f, size, seed: `${f.seed}#changed`, mtime: CHANGED_MTIME + j };
  });
}

let corpus;
/** 8 MiB of word salad: text files are slices of it, so they compress like text. */
function textCorpus() {
  if (corpus) return corpus;
  const rand = prng('respaldo-bench/corpus');
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  const words = Array.from({ length: 3000 }, () => {
    let w = '';
    const len = 2 + Math.floor(rand() * 9);
    for (let i = 0; i < len; i++) w += letters[Math.floor(Math.pow(rand(), 1.6) * 26)];
    return w;
  });
  const parts = [];
  let size = 0;
  while (size < 8 * MiB) {
    let line = '';
    const n = 4 + Math.floor(rand() * 14);
    for (let i = 0; i < n; i++) line += (i ? ' ' : '') + words[Math.floor(Math.pow(rand(), 2) * words.length)];
    line += rand() < 0.1 ? '.\n\n' : '.\n';
    parts.push(line);
    size += line.length;
  }
  corpus = Buffer.from(parts.join(''), 'latin1');
  return corpus;
}

const zeros = Buffer.alloc(4 * MiB);

/** Writes one file's deterministic content and mtime (in place when it exists: same inode). */
function writeEntry(root, f) {
  const path = join(root, f.rel);
  const fd = openSync(path, 'w');
  try {
    if (f.kind === 'bin') {
      const h = createHash('sha256').update(f.seed).digest();
      const cipher = createCipheriv('aes-128-ctr', h.subarray(0, 16), h.subarray(16, 32));
      for (let left = f.size; left > 0; left -= zeros.length) writeSync(fd, cipher.update(zeros.subarray(0, Math.min(left, zeros.length))));
    } else {
      const text = textCorpus();
      const head = Buffer.from(`# ${f.seed}\n`);
      const h = createHash('sha256').update(f.seed).digest();
      let at = h.readUInt32LE(0) % (text.length - 64 * KiB);
      const out = Buffer.allocUnsafe(f.size);
      let n = head.copy(out, 0, 0, Math.min(head.length, f.size));
      while (n < f.size) {
        const take = Math.min(f.size - n, text.length - at);
        n += text.copy(out, n, at, at + take);
        at = 0;
      }
      writeSync(fd, out);
    }
  } finally {
    closeSync(fd);
  }
  utimesSync(path, f.mtime, f.mtime);
}

function treePaths(name) {
  const base = join(WORK, 'trees', `${name}-${scaleTag}`);
  return { root: base, marker: `${base}.json`, dirty: `${base}.modified` };
}

/** Generates the tree unless a complete one of this format and scale is cached. */
function ensureTree(name) {
  const { root, marker, dirty } = treePaths(name);
  const files = treeSpec(name);
  const changes = changeSet(name, files);
  const info = {
    format: TREE_FORMAT,
    name,
    scale,
    files: files.length,
    bytes: files.reduce((s, f) => s + f.size, 0),
    dirs: new Set(files.flatMap((f) => f.rel.split('/').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('/')))).size,
    changed: { files: changes.length, bytes: changes.reduce((s, f) => s + f.size, 0) },
  };
  let cached = false;
  try {
    const m = JSON.parse(readFileSync(marker, 'utf8'));
    cached = m.format === TREE_FORMAT && m.files === info.files && m.bytes === info.bytes;
  } catch {
    // not generated yet
  }
  if (!cached) {
    log(`${name}: generating ${fmtInt(info.files)} files, ${fmtGiB(info.bytes)} GiB in ${root}`);
    rmSync(marker, { force: true });
    rmSync(dirty, { force: true });
    rmSync(root, { recursive: true, force: true });
    const made = new Set();
    for (const [k, f] of files.entries()) {
      const dir = dirname(join(root, f.rel));
      if (!made.has(dir)) {
        mkdirSync(dir, { recursive: true });
        made.add(dir);
      }
      writeEntry(root, f);
      if ((k + 1) % 20000 === 0) log(`${name}: ${fmtInt(k + 1)} files written`);
    }
    // Folder mtimes too (deepest first), so that the tree is the same from one generation to the next.
    const dirs = new Set([root]);
    for (let dir of made) for (; dir.length > root.length && !dirs.has(dir); dir = dirname(dir)) dirs.add(dir);
    for (const dir of [...dirs].sort((a, b) => b.split('/').length - a.split('/').length)) utimesSync(dir, BASE_MTIME, BASE_MTIME);
    writeFileSync(marker, `${JSON.stringify({ ...info, generated: new Date().toISOString() }, null, 2)}\n`);
    log(`${name}: generated`);
  } else if (existsSync(dirty)) {
    log(`${name}: a previous run stopped with the tree modified; restoring it`);
    restoreTree(name, files, changes);
  }
  return { name, root, files, changes, info };
}

function modifyTree(tree) {
  writeFileSync(treePaths(tree.name).dirty, '');
  for (const f of tree.changes) writeEntry(tree.root, f);
}

function restoreTree(name, files, changes) {
  const { root, dirty } = treePaths(name);
  const byRel = new Map(files.map((f) => [f.rel, f]));
  for (const c of changes) writeEntry(root, byRel.get(c.rel));
  unlinkSync(dirty);
}

/** Reads every file of the tree once, so that every tool starts with the same warm page cache. */
function warmTree(tree) {
  const started = Date.now();
  const buf = Buffer.allocUnsafe(4 * MiB);
  let bytes = 0;
  for (const f of tree.files) {
    const fd = openSync(join(tree.root, f.rel), 'r');
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        bytes += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return { seconds: (Date.now() - started) / 1000, bytes };
}

// ---------------------------------------------------------------------------------------
// Measuring

/**
 * A health check of the filesystem, not a result: seconds to create 2,000 files of 1 KiB.
 * Slow when many files were deleted on it recently (see the README).
 */
function createProbe(dir) {
  mkdirSync(dir, { recursive: true });
  const data = Buffer.alloc(1024, 97);
  const started = process.hrtime.bigint();
  for (let i = 0; i < 2000; i++) writeFileSync(join(dir, `p${i}`), data);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/**
 * Runs one measured command under GNU time after flushing dirty pages (sync, not measured),
 * so that no tool pays for another's writeback. Output goes to a log file.
 */
/** System-wide busy and steal CPU seconds so far, from /proc/stat (USER_HZ = 100 on Linux). */
function cpuTotals() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal = 0] = f;
  return { busy: (user + nice + system + irq + softirq) / 100, steal: steal / 100 };
}

function measure(cmd, args, { env, cwd, logFile }) {
  sh('sync', []);
  const before = cpuTotals();
  const timeFile = `${logFile}.time`;
  const fd = openSync(logFile, 'w');
  writeSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, cmd, ...args], { env: env ?? process.env, cwd, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const after = cpuTotals();
  const lines = readFileSync(timeFile, 'utf8').trim().split('\n');
  const [wall, user, sys, maxKB] = lines[lines.length - 1].split(' ').map(Number);
  if (r.status !== 0) {
    const tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
    throw new Error(`${cmd} exited with ${r.status ?? r.signal} (log: ${logFile}):\n${tail}`);
  }
  const cpu = Math.round((user + sys) * 100) / 100;
  // CPU that other processes used meanwhile (the machine is shared?), and time stolen by the hypervisor.
  const other = Math.max(0, Math.round((after.busy - before.busy - cpu) * 100) / 100);
  const steal = Math.round((after.steal - before.steal) * 100) / 100;
  return { wall, user, sys, cpu, peakMB: Math.round((maxKB / 1024) * 10) / 10, otherCpu: other, steal };
}

// ---------------------------------------------------------------------------------------
// Tools: setup (not measured) and one command per scenario

const RESPALDO_BUILD = join(WORK, 'respaldo-build');

function prepareRespaldo() {
  const git = (...a) => spawnSync('git', ['-C', REPO, ...a], { encoding: 'utf8' }).stdout?.trim() || null;
  rmSync(RESPALDO_BUILD, { recursive: true, force: true });
  mkdirSync(RESPALDO_BUILD, { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(RESPALDO_BUILD, 'node_modules'));
  const cli = join(RESPALDO_BUILD, 'dist', 'agent', 'main.js');
  if (opt.ref) {
    // A committed version, built in the work dir: what is being edited in agent/ does not leak in.
    const commit = git('rev-parse', '--verify', `${opt.ref}^{commit}`);
    if (!commit) fail(`--ref: ${opt.ref} is not a commit of ${REPO}`);
    log(`building respaldo ${opt.ref} (${commit.slice(0, 12)}) in ${RESPALDO_BUILD}`);
    sh('sh', ['-c', 'git -C "$1" archive --format=tar "$2" agent schemas package.json tsconfig.json | tar -x -C "$3"', 'sh', REPO, commit, RESPALDO_BUILD]);
    sh('node', [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', RESPALDO_BUILD]);
    return { source: `git ${opt.ref}`, commit, uncommitted: null, distBuilt: statSync(cli).mtime.toISOString(), cli };
  }
  if (opt.build) {
    log('building respaldo (npx tsc -p .)');
    sh('npx', ['tsc', '-p', '.'], { cwd: REPO });
  }
  const main = join(REPO, 'dist', 'agent', 'main.js');
  if (!existsSync(main)) fail(`${main} is missing: build respaldo first (cd ${REPO} && npx tsc -p .), or pass --build or --ref HEAD`);
  // A copy, so that a rebuild of dist/ during the run cannot change what is measured.
  cpSync(join(REPO, 'dist'), join(RESPALDO_BUILD, 'dist'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(RESPALDO_BUILD, 'package.json'));
  return { source: 'dist/', commit: git('rev-parse', 'HEAD'), uncommitted: git('status', '--porcelain', '--', 'agent', 'schemas'), distBuilt: statSync(main).mtime.toISOString(), cli };
}

const GIT_ID = ['-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', '-c', 'commit.gpgsign=false', '-c', 'init.defaultBranch=main'];

function makeTool(name, tree, dir, respaldo) {
  const abs = (p) => join(dir, p);
  if (name === 'respaldo') {
    const config = abs('agent.yaml');
    // node's flags as the installed script and the cron line give them (its first line).
    const flags = readFileSync(respaldo.cli, 'utf8').split('\n')[0].replace(/^#!\/usr\/bin\/env (-S )?node ?/, '').split(' ').filter(Boolean);
    const node = (scenario) => [...flags, ...(opt.profile ? ['--cpu-prof', `--cpu-prof-dir=${abs(`profiles/${scenario}`)}`] : []), respaldo.cli];
    return {
      setup() {
        mkdirSync(abs('target'), { recursive: true });
        mkdirSync(abs('records/policy'), { recursive: true });
        sh('git', [...GIT_ID, 'init', '--quiet', abs('records')]);
        writeFileSync(abs('records/policy/allowed_signers'), '# Who may sign what: agents under namespace "respaldo-record", approvers under "git".\n');
        writeFileSync(abs('records/.gitattributes'), '# respaldo: records are signed byte for byte\n* -text\n');
        sh('git', [...GIT_ID, 'add', '.'], { cwd: abs('records') });
        sh('git', [...GIT_ID, 'commit', '--quiet', '-m', 'records: trust policy'], { cwd: abs('records') });
        writeFileSync(
          config,
          [
            'host: bench',
            'key: keys/host.key',
            'records: records',
            'state: state',
            'targets:',
            '  primary: target',
            'repositories:',
            `  - name: ${tree.name}`,
            '    kind: files',
            `    paths: [${JSON.stringify(tree.root)}]`,
            '',
          ].join('\n'),
        );
        sh('node', [respaldo.cli, 'init', '--config', config]);
        appendFileSync(abs('records/policy/allowed_signers'), readFileSync(abs('keys/host.key.pub'), 'utf8'));
        sh('git', [...GIT_ID, 'add', 'policy/allowed_signers'], { cwd: abs('records') });
        sh('git', [...GIT_ID, 'commit', '--quiet', '-m', 'policy: trust the agent of bench'], { cwd: abs('records') });
      },
      command: (scenario) => ['node', [...node(scenario), 'run', '--config', config, '--all', '--json']],
      /** What respaldo said it did: files, and files stored anew. */
      check(logFile) {
        const done = readFileSync(logFile, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l))
          .find((e) => e.type === 'repo-done');
        if (!done) throw new Error(`respaldo reported no repo-done event (log: ${logFile})`);
        return { files: done.files, bytes: done.bytes, changedFiles: done.changedFiles, changedBytes: done.changedBytes, snapshot: done.snapshot };
      },
      store: () => diskUsage(abs('target')),
    };
  }
  if (name === 'rsync') {
    let previous;
    return {
      setup() {},
      command(scenario) {
        const dest = abs(`snap-${scenario}`);
        const args = ['-a', ...(previous ? [`--link-dest=${previous}`] : []), `${tree.root}/`, `${dest}/`];
        previous = dest;
        return ['rsync', args];
      },
      store: () => diskUsage(dir),
    };
  }
  if (name === 'restic') {
    const env = { ...process.env, RESTIC_PASSWORD: 'bench-password-not-secret', RESTIC_CACHE_DIR: abs('cache') };
    return {
      env,
      setup() {
        sh('restic', ['--repo', abs('repo'), 'init'], { env });
        return { repository: JSON.parse(sh('restic', ['--repo', abs('repo'), 'cat', 'config'], { env })) };
      },
      command: () => ['restic', ['--repo', abs('repo'), 'backup', tree.root]],
      store: () => diskUsage(abs('repo')),
    };
  }
  if (name === 'borg') {
    const env = { ...process.env, BORG_BASE_DIR: abs('base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
    return {
      env,
      setup() {
        sh('borg', ['init', '-e', 'none', abs('repo')], { env });
      },
      command: (scenario) => ['borg', ['create', `${abs('repo')}::${scenario}`, tree.root]],
      store: () => diskUsage(abs('repo')),
    };
  }
  throw new Error(name);
}

// ---------------------------------------------------------------------------------------
// Tables and goals

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** One cell per tree × tool × scenario: the median of the repetitions (peak: the median too; maxPeakMB: the largest). */
function aggregate(runs) {
  const cells = [];
  for (const r of runs) {
    let c = cells.find((x) => x.tree === r.tree && x.tool === r.tool && x.scenario === r.scenario);
    if (!c) cells.push((c = { tree: r.tree, tool: r.tool, scenario: r.scenario, samples: [] }));
    c.samples.push(r);
  }
  return cells.map((c) => {
    const of = (k) => median(c.samples.map((r) => r[k]));
    const walls = c.samples.map((r) => r.wall);
    return { tree: c.tree, tool: c.tool, scenario: c.scenario, n: c.samples.length, wall: of('wall'), wallMin: Math.min(...walls), wallMax: Math.max(...walls), cpu: of('cpu'), peakMB: of('peakMB'), maxPeakMB: Math.max(...c.samples.map((r) => r.peakMB)), storeBytes: of('storeBytes') };
  });
}

function table(tree, runs) {
  const rows = [];
  const head = ['scenario', 'tool', 'wall s', ...(repeat > 1 ? ['wall range'] : []), 'CPU s', 'peak MB', '÷rsync', 'store MB'];
  for (const s of SCENARIOS) {
    const rsyncWall = runs.find((r) => r.tree === tree.name && r.tool === 'rsync' && r.scenario === s.key)?.wall;
    tools.forEach((tool, i) => {
      const r = runs.find((x) => x.tree === tree.name && x.tool === tool && x.scenario === s.key);
      if (!r) return;
      rows.push([
        i === 0 ? s.label : '',
        tool,
        r.wall.toFixed(2),
        ...(repeat > 1 ? [`${r.wallMin.toFixed(1)}–${r.wallMax.toFixed(1)}`] : []),
        r.cpu.toFixed(2),
        r.peakMB.toFixed(0),
        rsyncWall ? `${(r.wall / rsyncWall).toFixed(2)}×` : '–',
        fmtMiB(r.storeBytes),
      ]);
    });
  }
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells) => cells.map((x, c) => (c < 2 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ');
  const i = tree.info;
  return [
    `${tree.name}: ${fmtInt(i.files)} files, ${fmtGiB(i.bytes)} GiB, ${fmtInt(i.dirs)} folders`,
    `1% change: ${fmtInt(i.changed.files)} files rewritten, ${fmtMiB(i.changed.bytes)} MiB`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ];
}

function sideBySide(blocks) {
  const widths = blocks.map((b) => Math.max(...b.map((l) => l.length)));
  const height = Math.max(...blocks.map((b) => b.length));
  const out = [];
  for (let k = 0; k < height; k++) out.push(blocks.map((b, j) => (b[k] ?? '').padEnd(j < blocks.length - 1 ? widths[j] : 0)).join('    ').trimEnd());
  return out.join('\n');
}

function goals(runs, treeList) {
  const out = [];
  const get = (tree, tool, scenario) => runs.find((r) => r.tree === tree && r.tool === tool && r.scenario === scenario);
  const add = (id, text, pass, detail) => out.push({ id, goal: text, status: pass === undefined ? 'SKIP' : pass ? 'PASS' : 'FAIL', detail });
  for (const t of treeList) {
    const rsNo = get(t.name, 'respaldo', 'nochange');
    const rsyncNo = get(t.name, 'rsync', 'nochange');
    add(
      `${t.name}/nochange-vs-rsync`,
      `${t.name}: respaldo no-change wall ≤ 1.3× plain rsync`,
      rsNo && rsyncNo ? rsNo.wall <= 1.3 * rsyncNo.wall : undefined,
      rsNo && rsyncNo ? `${rsNo.wall.toFixed(2)} s vs ${rsyncNo.wall.toFixed(2)} s = ${(rsNo.wall / rsyncNo.wall).toFixed(2)}×` : 'needs respaldo and rsync',
    );
    const others = ['restic', 'borg'].map((tool) => get(t.name, tool, 'nochange')).filter(Boolean);
    add(
      `${t.name}/nochange-vs-restic-borg`,
      `${t.name}: respaldo no-change faster than restic and Borg`,
      rsNo && others.length === 2 ? others.every((o) => rsNo.wall < o.wall) : undefined,
      rsNo && others.length ? `${rsNo.wall.toFixed(2)} s vs ${others.map((o) => `${o.tool} ${o.wall.toFixed(2)} s`).join(', ')}` : 'needs respaldo, restic and borg',
    );
    const rsFirst = get(t.name, 'respaldo', 'first');
    const rsyncFirst = get(t.name, 'rsync', 'first');
    add(
      `${t.name}/first-vs-rsync`,
      `${t.name}: respaldo first backup wall ≤ 1.5× plain rsync`,
      rsFirst && rsyncFirst ? rsFirst.wall <= 1.5 * rsyncFirst.wall : undefined,
      rsFirst && rsyncFirst ? `${rsFirst.wall.toFixed(2)} s vs ${rsyncFirst.wall.toFixed(2)} s = ${(rsFirst.wall / rsyncFirst.wall).toFixed(2)}×` : 'needs respaldo and rsync',
    );
    if (t.name === 'small') {
      const mine = SCENARIOS.map((s) => get(t.name, 'respaldo', s.key)).filter(Boolean);
      const peak = mine.length ? Math.max(...mine.map((r) => r.maxPeakMB)) : undefined;
      add(
        'small/peak-memory',
        `small: respaldo peak memory < 150 MB on the ${fmtInt(t.info.files)}-file tree${t.info.files !== 200000 ? ' (the goal is for 200,000 files: run at --scale 1)' : ''}`,
        peak === undefined ? undefined : peak < 150,
        peak === undefined ? 'needs respaldo' : `max over the three scenarios${repeat > 1 ? ' and all repetitions' : ''}: ${peak.toFixed(0)} MB (${mine.map((r) => `${r.scenario} ${r.maxPeakMB.toFixed(0)}`).join(', ')})`,
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Main

function main() {
  for (const p of ['/usr/bin/time', ...tools.filter((t) => t !== 'respaldo'), ...(tools.includes('respaldo') ? ['rsync', 'git', 'ssh-keygen', 'find'] : [])])
    if (!(p.startsWith('/') ? existsSync(p) : has(p))) fail(`${p} is not installed: apt-get install -y rsync time restic borgbackup git openssh-client`);
  mkdirSync(WORK, { recursive: true });
  const respaldo = tools.includes('respaldo') ? prepareRespaldo() : undefined;
  const meta = {
    started: new Date().toISOString(),
    argv: process.argv.slice(2),
    scale,
    work: WORK,
    machine: { cpus: availableParallelism(), cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 1024 / MiB), kernel: release(), fs: sh('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', WORK]).trim().replace(/\s+/, ' on ') },
    versions: {
      node: process.version,
      rsync: version('rsync', ['--version'], /version (\S+)/),
      restic: tools.includes('restic') ? version('restic', ['version'], /restic (\S+)/) : null,
      borg: tools.includes('borg') ? version('borg', ['--version'], /borg (\S+)/) : null,
      respaldo: respaldo ? { source: respaldo.source, commit: respaldo.commit, uncommittedSources: respaldo.uncommitted || null, distBuilt: respaldo.distBuilt } : null,
    },
    trees: {},
    warm: {},
    probe: {},
    setup: {},
    profile: opt.profile,
  };
  const avail = Number(sh('df', ['--output=avail', '-B1', WORK]).split('\n')[1]);
  log(`work dir ${WORK} (${fmtGiB(avail)} GiB free), scale ${scale}, trees ${trees.join(', ')}, tools ${tools.join(', ')}`);
  if (respaldo) log(`respaldo from ${respaldo.source} ${respaldo.commit?.slice(0, 12)}${respaldo.uncommitted ? ' + uncommitted changes in agent/ or schemas/' : ''}, dist built ${respaldo.distBuilt}, copied to ${RESPALDO_BUILD}`);

  // Deployments of an earlier run at this scale are moved aside (a rename) and deleted only
  // after the measurements: on ext4, deleting 100,000s of files makes creating files slow for
  // a while afterwards (the inode allocator skips recently deleted inodes), which would slow
  // the next first backup of respaldo and rsync. For the same reason nothing is deleted
  // between repetitions.
  const trash = join(WORK, 'trash');
  for (const name of trees) {
    const old = join(WORK, 'runs', `${name}-${scaleTag}`);
    if (existsSync(old)) {
      mkdirSync(trash, { recursive: true });
      renameSync(old, join(trash, `${name}-${scaleTag}-${Date.now()}`));
    }
  }
  sh('sync', []);
  const runs = [];
  const treeList = [];
  for (const name of trees) {
    const tree = ensureTree(name);
    treeList.push(tree);
    meta.trees[name] = { ...tree.info, root: tree.root };
    const need = tree.info.bytes * (tools.length + 0.5) * repeat;
    const free = Number(sh('df', ['--output=avail', '-B1', WORK]).split('\n')[1]);
    if (free < need) log(`warning: ${fmtGiB(free)} GiB free, the runs of this tree may need about ${fmtGiB(need)} GiB`);
    for (let r = 1; r <= repeat; r++) {
      for (const toolName of tools) {
        const dir = join(WORK, 'runs', `${name}-${scaleTag}`, toolName, `r${r}`);
        const tag = `${name}/${toolName}${repeat > 1 ? ` #${r}` : ''}`;
        log(`${tag}: fresh setup in ${dir}`);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(join(dir, 'logs'), { recursive: true });
        const tool = makeTool(toolName, tree, dir, respaldo);
        const setupInfo = tool.setup();
        if (setupInfo) meta.setup[`${name}/${toolName}`] = setupInfo;
        // After large deletions the filesystem creates files several times slower for minutes
        // (see the README): wait for it to settle, so that no tool is measured in that state.
        let probe = createProbe(join(dir, 'probe'));
        for (let waited = 0, k = 1; probe > SETTLED_PROBE && waited < settle; waited += 15, k++) {
          log(`${tag}: creating 2,000 files took ${probe.toFixed(2)} s: the filesystem is still busy after deletions; waiting 15 s`);
          spawnSync('sleep', ['15']);
          probe = createProbe(join(dir, `probe${k}`));
        }
        const warm = warmTree(tree);
        meta.warm[`${name}/${toolName}/r${r}`] = warm;
        meta.probe[`${name}/${toolName}/r${r}`] = probe;
        log(`${tag}: page cache warmed (read ${fmtGiB(warm.bytes)} GiB in ${warm.seconds.toFixed(1)} s); creating 2,000 files took ${probe.toFixed(2)} s`);
        for (const s of SCENARIOS) {
          if (s.key === 'changed') modifyTree(tree);
          try {
            const [cmd, args] = tool.command(s.key);
            const logFile = join(dir, 'logs', `${s.key}.log`);
            const m = measure(cmd, args, { env: tool.env, logFile });
            const extra = tool.check ? tool.check(logFile) : undefined;
            const storeBytes = tool.store();
            runs.push({ tree: name, tool: toolName, scenario: s.key, rep: r, ...m, storeBytes, ...(extra ? { reported: extra } : {}), log: logFile });
            log(`${tag}/${s.key}: wall ${m.wall.toFixed(2)} s, CPU ${m.cpu.toFixed(2)} s, peak ${m.peakMB.toFixed(0)} MB, store ${fmtMiB(storeBytes)} MiB${extra ? `; respaldo: ${fmtInt(extra.files)} files, ${fmtInt(extra.changedFiles)} stored anew` : ''}`);
            if (m.otherCpu > Math.max(0.5, 0.1 * m.wall) || m.steal > 0.1 * m.wall)
              log(`note: other processes used ${m.otherCpu.toFixed(1)} s of CPU during this run${m.steal ? ` and the hypervisor stole ${m.steal.toFixed(1)} s` : ''}: the machine was not quiet`);
            if (extra) {
              const expect = s.key === 'first' ? tree.info.files : s.key === 'nochange' ? 0 : tree.info.changed.files;
              if (extra.changedFiles !== expect || extra.files !== tree.info.files)
                log(`warning: respaldo reported ${extra.files} files / ${extra.changedFiles} stored anew, expected ${tree.info.files} / ${expect}`);
            }
          } finally {
            if (s.key === 'changed') restoreTree(name, tree.files, tree.changes);
          }
        }
      }
    }
  }

  const cells = aggregate(runs);
  const goalList = goals(cells, treeList);
  const results = { meta: { ...meta, repeat, finished: new Date().toISOString() }, cells, runs, goals: goalList };
  writeFileSync(join(WORK, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(WORK, `results-${scaleTag}.json`), `${JSON.stringify(results, null, 2)}\n`);

  const out = [];
  out.push('');
  out.push(`respaldo benchmark, scale ${scale}: ${meta.machine.cpus} CPUs, ${meta.machine.memGiB} GiB RAM, ${meta.machine.fs}; node ${meta.versions.node}, rsync ${meta.versions.rsync}${meta.versions.restic ? `, restic ${meta.versions.restic}` : ''}${meta.versions.borg ? `, borg ${meta.versions.borg}` : ''}${respaldo ? `, respaldo ${respaldo.commit?.slice(0, 12)}${respaldo.uncommitted ? '+dirty' : ''}` : ''}${opt.profile ? ' (respaldo under --cpu-prof)' : ''}`);
  out.push(`wall = elapsed s; CPU = user+sys s (children included); peak = max RSS of the largest process, MB; ÷rsync = wall / plain rsync wall; store = disk used by the backup after the run, MiB${repeat > 1 ? `; each cell the median of ${repeat} runs (wall range: fastest–slowest)` : ''}`);
  out.push('');
  out.push(sideBySide(treeList.map((t) => table(t, cells))));
  out.push('');
  out.push('Goals:');
  for (const g of goalList) out.push(`  ${g.status.padEnd(4)}  ${g.goal}: ${g.detail}`);
  out.push('');
  out.push(`raw results: ${join(WORK, 'results.json')}; logs: ${join(WORK, 'runs')}`);
  process.stdout.write(`${out.join('\n')}\n`);

  // Now that nothing is measured: earlier runs' deployments, and every repetition but the last.
  log('removing earlier deployments (moved aside at the start) and all repetitions but the last');
  rmSync(trash, { recursive: true, force: true });
  for (const name of trees)
    for (const toolName of tools) for (let r = 1; r < repeat; r++) rmSync(join(WORK, 'runs', `${name}-${scaleTag}`, toolName, `r${r}`), { recursive: true, force: true });
  log('done');
}

try {
  main();
} catch (e) {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  process.exit(1);
}
