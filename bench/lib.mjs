/**
 * What the benchmark scripts share: running commands, the generated trees (deterministic
 * names, sizes, contents and mtimes, cached between runs) and timing a command under GNU
 * time. Call `setup({ work, scale })` once before using the trees.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';

export const TREE_FORMAT = 2; // bump when the generator changes: cached trees are then rebuilt
export const BASE_MTIME = 1704067200; // 2024-01-01T00:00:00Z: every generated file gets BASE_MTIME + its index
export const CHANGED_MTIME = BASE_MTIME + 30 * 86400;
export const KiB = 1024;
export const MiB = 1024 * KiB;

let WORK = 'bench/work';
let scale = 1;

export function setup(opts) {
  WORK = opts.work;
  scale = opts.scale;
}

export function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const t0 = Date.now();
export function log(message) {
  const s = ((Date.now() - t0) / 1000).toFixed(0).padStart(5);
  process.stderr.write(`[${s}s] ${message}\n`);
}

export const fmtMiB = (b) => (b / MiB).toFixed(1);
export const fmtGiB = (b) => (b / 1024 / MiB).toFixed(2);
export const fmtInt = (n) => n.toLocaleString('en-US');

/** Runs a command to completion (not measured); throws with its output when it fails. */
export function sh(cmd, args, { env, cwd, input } = {}) {
  const r = spawnSync(cmd, args, { env: env ?? process.env, cwd, input, encoding: 'utf8', maxBuffer: 256 * MiB });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${(r.stderr || r.stdout || '').slice(-2000)}`);
  return r.stdout;
}

export function has(program) {
  return spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).status === 0;
}

export function version(cmd, args, re) {
  try {
    const out = sh(cmd, args);
    return (re ? re.exec(out)?.[1] : out.split('\n')[0]) ?? out.trim();
  } catch {
    return null;
  }
}

/** Disk usage in bytes (hard-linked files counted once), as du reports it. */
export function diskUsage(path) {
  return Number(sh('du', ['-s', '--block-size=1', path]).split('\t')[0]);
}

/** mulberry32: a tiny seeded PRNG, enough for sizes and picks. */
export function prng(seedText) {
  let a = createHash('sha256').update(seedText).digest().readUInt32LE(0);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------
// Trees: deterministic names, sizes, contents and mtimes

/**
 * The list of files of a tree, from its name and the scale alone. Each entry: rel path,
 * kind (text: compressible; bin: AES-CTR keystream, incompressible), size, content seed,
 * mtime (seconds).
 */
export function treeSpec(name) {
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
export function changeSet(name, files) {
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
export function textCorpus() {
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
export function writeEntry(root, f) {
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

export function treePaths(name) {
  const base = join(WORK, 'trees', `${name}-s${scale}`);
  return { root: base, marker: `${base}.json`, dirty: `${base}.modified` };
}

/** Generates the tree unless a complete one of this format and scale is cached. */
export function ensureTree(name) {
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

export function modifyTree(tree) {
  writeFileSync(treePaths(tree.name).dirty, '');
  for (const f of tree.changes) writeEntry(tree.root, f);
}

export function restoreTree(name, files, changes) {
  const { root, dirty } = treePaths(name);
  const byRel = new Map(files.map((f) => [f.rel, f]));
  for (const c of changes) writeEntry(root, byRel.get(c.rel));
  unlinkSync(dirty);
}

/** Reads every file of the tree once, so that every tool starts with the same warm page cache. */
export function warmTree(tree) {
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
export function createProbe(dir) {
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
export function cpuTotals() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal = 0] = f;
  return { busy: (user + nice + system + irq + softirq) / 100, steal: steal / 100 };
}

export function measure(cmd, args, { env, cwd, logFile }) {
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

/** A throwaway sshd on a loopback port: its own host key, one client key for root. */
export async function startSshd(dir) {
  mkdirSync(dir, { recursive: true });
  for (const k of ['host_key', 'client_key']) if (!existsSync(join(dir, k))) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, k)]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 });
  const port = 20000 + Math.floor(Math.random() * 20000);
  writeFileSync(
    join(dir, 'sshd_config'),
    [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`, `PidFile ${join(dir, 'sshd.pid')}`, `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'StrictModes no', 'PasswordAuthentication no', 'UsePAM no', 'PermitRootLogin prohibit-password', 'LogLevel ERROR', ''].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true });
  const child = spawn('/usr/sbin/sshd', ['-D', '-f', join(dir, 'sshd_config')], { stdio: 'ignore' });
  for (let i = 0; i < 100 && spawnSync('ssh-keyscan', ['-p', String(port), '127.0.0.1'], { stdio: 'ignore' }).status !== 0; i++) await new Promise((r) => setTimeout(r, 100));
  const hostKey = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostKey}\n`);
  // What plain rsync gets: the same options respaldo gives ssh.
  const ssh = `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${join(dir, 'known_hosts')} -o IdentitiesOnly=yes -i ${join(dir, 'client_key')} -p ${port}`;
  return { port, hostKey, identity: join(dir, 'client_key'), ssh, stop: () => child.kill('SIGTERM') };
}

/**
 * The two measurements of round `r`, plain rsync's first in odd rounds and respaldo's in
 * even ones: the disk is not in the same state for the second writer as for the first.
 */
export function inTurn(r, plain, ours) {
  if (r % 2) return [plain(), ours()];
  const o = ours();
  return [plain(), o];
}

/**
 * `measure` from a clean page cache state: what the previous step wrote is on the disk
 * first, so that neither tool pays for the other's writes (respaldo flushes its copy before
 * it records it; plain rsync leaves its writes in the page cache, for the next to pay).
 */
export function settled(measure) {
  sh('sync', []);
  return measure();
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export const GIT_ID = ['-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', '-c', 'commit.gpgsign=false', '-c', 'init.defaultBranch=main'];

/** The options of a benchmark that takes turns with a plain tool: --scale, --repeat, --work; `usage` for --help. */
export function roundOptions(usage, work) {
  const { values } = parseArgs({
    options: {
      scale: { type: 'string', default: '1' },
      repeat: { type: 'string', default: '3' },
      work: { type: 'string', default: work },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  return { scale: Number(values.scale), repeat: Number(values.repeat), work: resolve(values.work) };
}

/**
 * A respaldo deployment in `dir`: a records repository, a host config (host "bench") with
 * the fields of `config` besides, the host enrolled and trusted. `write(config)` rewrites the
 * config with other fields.
 */
export function deployRespaldo(cli, dir, config) {
  mkdirSync(join(dir, 'records/policy'), { recursive: true });
  sh('git', [...GIT_ID, 'init', '--quiet', join(dir, 'records')]);
  writeFileSync(join(dir, 'records/policy/allowed_signers'), '# bench\n');
  writeFileSync(join(dir, 'records/.gitattributes'), '* -text\n');
  sh('git', [...GIT_ID, 'add', '.'], { cwd: join(dir, 'records') });
  sh('git', [...GIT_ID, 'commit', '--quiet', '-m', 'policy'], { cwd: join(dir, 'records') });
  const file = join(dir, 'agent.yaml');
  const write = (body) => writeFileSync(file, stringify({ host: 'bench', key: join(dir, 'host.key'), records: join(dir, 'records'), state: join(dir, 'state'), ...body }));
  write(config);
  sh('node', [cli, 'init', '--config', file]);
  writeFileSync(join(dir, 'records/policy/allowed_signers'), readFileSync(join(dir, 'host.key.pub')), { flag: 'a' });
  sh('git', [...GIT_ID, 'commit', '--quiet', '-am', 'trust'], { cwd: join(dir, 'records') });
  return { config: file, write };
}

/** The median of the rounds' ratios of `xs` to `base` (each round's two runs back to back). */
export const paired = (xs, base) => median(xs.map((x, i) => x / base[i]));

/** One row of a rounds table: median, range, ÷ the base (the rounds' ratios, then the medians'). */
export function roundsRow(label, tool, xs, base, toolWidth = 22) {
  return `${label.padEnd(22)} ${tool.padEnd(toolWidth)} ${median(xs).toFixed(2).padStart(7)}  ${`${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`.padStart(10)}  ${`${paired(xs, base).toFixed(2)}×`.padStart(6)}  ${(median(xs) / median(base)).toFixed(2)}×`;
}
