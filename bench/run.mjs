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
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createProbe, diskUsage, ensureTree, fail, fmtGiB, fmtInt, fmtMiB, GIT_ID, has, log, measure, MiB, modifyTree, restoreTree, setup, sh, version, warmTree } from './lib.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ALL_TOOLS = ['respaldo', 'rsync', 'restic', 'borg'];
const ALL_TREES = ['mixed', 'small'];
const SCENARIOS = [
  { key: 'first', label: 'first' },
  { key: 'nochange', label: 'no change' },
  { key: 'changed', label: '1% changed' },
];

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
setup({ work: WORK, scale });

// ---------------------------------------------------------------------------------------
// Small helpers



// ---------------------------------------------------------------------------------------
// Measuring

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
