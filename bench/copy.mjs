#!/usr/bin/env node
/**
 * respaldo copy and restore benchmark: on the mixed tree (~2 GiB, ~20,000 files), the
 * second copy to CSC over SSH on loopback against plain `rsync -a --link-dest` over the
 * same SSH, and a restore of a whole snapshot against plain rsync and restic's restore.
 * See bench/README.md.
 *
 *   node bench/copy.mjs [--scale 1] [--repeat 3] [--work bench/work]
 *
 * Needs root (sshd on a loopback port, logging in as root with a key made here), rsync,
 * openssh-server, restic and GNU time (apt-get install -y rsync openssh-server restic time),
 * and a built respaldo (npx tsc -p .).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProbe, deployRespaldo, ensureTree, fail, has, inTurn, log, measure, median, modifyTree, paired, restoreTree, roundOptions, roundsRow as row, settled, setup, sh, startSshd, version, warmTree } from './lib.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { scale, repeat, work: WORK } = roundOptions('node bench/copy.mjs [--scale N] [--repeat N] [--work DIR]', join(REPO, 'bench', 'work'));
const HERE = join(WORK, 'copy');
const CLI = join(REPO, 'dist', 'agent', 'main.js');
setup({ work: WORK, scale });

for (const p of ['rsync', 'restic', 'git', 'ssh-keygen', '/usr/sbin/sshd', '/usr/bin/time']) if (!(p.startsWith('/') ? existsSync(p) : has(p))) fail(`${p} is not installed: apt-get install -y rsync openssh-server restic time git`);
if (!existsSync(CLI)) fail(`${CLI} is missing: build respaldo first (npx tsc -p .)`);

/** A respaldo deployment backing up the tree to a local primary; `secondary` (or not) in its config. */
function deployCopies(dir, tree, server) {
  mkdirSync(join(dir, 'target'), { recursive: true });
  mkdirSync(join(dir, 'csc'), { recursive: true });
  const body = (withSecondary) => ({
    targets: { primary: join(dir, 'target'), ...(withSecondary ? { secondary: { url: `root@127.0.0.1:${join(dir, 'csc')}`, port: server.port, identity: server.identity, 'host-key': server.hostKey } } : {}) },
    repositories: [{ name: 'mixed', kind: 'files', paths: [tree.root] }],
  });
  const d = deployRespaldo(CLI, dir, body(false));
  return { config: d.config, write: (withSecondary) => d.write(body(withSecondary)), snapshots: () => readdirSorted(join(dir, 'target/bench/mixed/snapshots')) };
}

function readdirSorted(dir) {
  return existsSync(dir) ? sh('ls', ['-1', dir]).split('\n').filter(Boolean).sort() : [];
}

async function main() {
  mkdirSync(WORK, { recursive: true });
  rmSync(HERE, { recursive: true, force: true });
  mkdirSync(join(HERE, 'logs'), { recursive: true });
  const tree = ensureTree('mixed');
  const server = await startSshd(join(HERE, 'sshd'));
  const samples = { copyFirst: { respaldo: [], rsync: [], rsyncFlushed: [] }, copyChanged: { respaldo: [], rsync: [] }, recheck: { respaldo: [], rsync: [] }, restore: { respaldo: [], rsync: [], restic: [], resticVerify: [] } };
  const logFile = (name) => join(HERE, 'logs', `${name}.log`);
  try {
    for (let r = 1; r <= repeat; r++) {
      const dir = join(HERE, `r${r}`);
      log(`round ${r} of ${repeat}: respaldo's first backup (not measured)`);
      const d = deployCopies(join(dir, 'respaldo'), tree, server);
      sh('node', [CLI, 'run', '--config', d.config, '--all']);
      const [s1] = d.snapshots();
      const snap = (id) => join(dir, 'respaldo/target/bench/mixed/snapshots', id);
      warmTree(tree);

      // The second copy of the first snapshot: respaldo's copy step (with its comparison at
      // CSC) against plain rsync of the same snapshot folder over the same SSH.
      log(`round ${r}: second copy of the first snapshot`);
      d.write(true);
      const plainCsc = join(dir, 'plain-csc');
      sh('ssh', [...server.ssh.split(' ').slice(1), 'root@127.0.0.1', `mkdir -p ${plainCsc}`]);
      const plainFirst = () => settled(() => measure('rsync', ['-a', '--numeric-ids', '-e', server.ssh, `${snap(s1)}/`, `root@127.0.0.1:${plainCsc}/${s1}/`], { logFile: logFile(`r${r}-copy-first-rsync`) }));
      const oursFirst = () => settled(() => measure('node', [CLI, 'run', '--config', d.config, '--json'], { logFile: logFile(`r${r}-copy-first-respaldo`) }));
      const [pr, rr] = inTurn(r, plainFirst, oursFirst);
      samples.copyFirst.rsync.push(pr.wall);
      samples.copyFirst.respaldo.push(rr.wall);
      // Beside the goal's baseline: plain rsync that then flushes what it wrote at CSC, as
      // respaldo does before it counts a copy (plain rsync leaves it in the page cache).
      const flushed = settled(() => measure('sh', ['-c', 'rsync -a --numeric-ids -e "$1" "$2" "$3" && exec $1 root@127.0.0.1 sync -f "$4"', 'sh', server.ssh, `${snap(s1)}/`, `root@127.0.0.1:${plainCsc}/${s1}-flushed/`, plainCsc], { logFile: logFile(`r${r}-copy-first-rsync-flushed`) }));
      samples.copyFirst.rsyncFlushed.push(flushed.wall);

      // After a 1% change: a backup (not measured), then its copy, linked to the first copy.
      log(`round ${r}: second copy after a 1% change`);
      modifyTree(tree);
      d.write(false);
      sh('node', [CLI, 'run', '--config', d.config, '--all']);
      restoreTree('mixed', tree.files, tree.changes);
      const [, s2] = d.snapshots();
      d.write(true);
      const [pr2, rr2] = inTurn(
        r,
        () => settled(() => measure('rsync', ['-a', '--numeric-ids', `--link-dest=../${s1}/`, '-e', server.ssh, `${snap(s2)}/`, `root@127.0.0.1:${plainCsc}/${s2}/`], { logFile: logFile(`r${r}-copy-changed-rsync`) })),
        () => settled(() => measure('node', [CLI, 'run', '--config', d.config, '--json'], { logFile: logFile(`r${r}-copy-changed-respaldo`) })),
      );
      samples.copyChanged.respaldo.push(rr2.wall);
      samples.copyChanged.rsync.push(pr2.wall);
      const copies = readFileSync(logFile(`r${r}-copy-changed-respaldo`), 'utf8').split('\n').filter((l) => l.includes('"copied"')).length;
      if (copies !== 1) throw new Error(`respaldo reported ${copies} copies after the change, expected 1 (log ${logFile(`r${r}-copy-changed-respaldo`)})`);

      // The re-read of the newest copy at CSC that each backup run makes before it copies: a
      // run with nothing changed, timed by its verify record, against rsync --checksum --dry-run.
      log(`round ${r}: re-read of the newest copy`);
      sh('sync', []);
      sh('node', [CLI, 'run', '--config', d.config, '--all']);
      const verify = sh('sh', ['-c', 'cat "$(ls -1 "$1"/hosts/bench/*/*-verify.yaml | tail -1)"', 'sh', join(dir, 'respaldo/records')]);
      const [, vs] = /\nstarted: (\S+)/.exec(verify);
      const [, vf] = /\nfinished: (\S+)/.exec(verify);
      if (!/\nresult: ok/.test(verify)) throw new Error(`the re-read of the copy did not match:\n${verify}`);
      samples.recheck.respaldo.push((Date.parse(vf) - Date.parse(vs)) / 1000);
      const pc = measure('rsync', ['-a', '--numeric-ids', '--checksum', '--dry-run', '--itemize-changes', '-e', server.ssh, `${snap(s2)}/`, `root@127.0.0.1:${plainCsc}/${s2}/`], { logFile: logFile(`r${r}-recheck-rsync`) });
      samples.recheck.rsync.push(pc.wall);

      // Restores of the whole tree into a new folder: respaldo (every file checked against the
      // manifest), plain rsync of the snapshot's data, restic (with and without --verify).
      log(`round ${r}: restores`);
      const restic = join(dir, 'restic');
      const env = { ...process.env, RESTIC_PASSWORD: 'bench-password-not-secret', RESTIC_CACHE_DIR: join(dir, 'restic-cache') };
      sh('restic', ['--repo', restic, 'init'], { env });
      sh('restic', ['--repo', restic, 'backup', '--quiet', tree.root], { env });
      const out = (name) => join(dir, `restored-${name}`);
      // In turns (the first of the round goes last in the next), and nothing is deleted
      // until the round is over: a large deletion slows the filesystem for what comes next.
      const restores = [
        ['respaldo', () => measure('node', [CLI, 'restore', 'mixed', '--config', d.config, '--to', out('respaldo')], { logFile: logFile(`r${r}-restore-respaldo`) })],
        ['rsync', () => measure('rsync', ['-a', `${snap(s2)}/data/`, `${out('rsync')}/`], { logFile: logFile(`r${r}-restore-rsync`) })],
        ['restic', () => measure('restic', ['--repo', restic, 'restore', 'latest', '--target', out('restic')], { env, logFile: logFile(`r${r}-restore-restic`) })],
        ['resticVerify', () => measure('restic', ['--repo', restic, 'restore', 'latest', '--verify', '--target', out('restic-verify')], { env, logFile: logFile(`r${r}-restore-restic-verify`) })],
      ];
      for (let k = 0; k < restores.length; k++) {
        const [tool, run] = restores[(k + r - 1) % restores.length];
        samples.restore[tool].push(settled(run).wall);
      }
      if (r < repeat) {
        rmSync(dir, { recursive: true, force: true });
        // The deletion of the round's 15 GiB slows the filesystem for minutes: the next
        // round starts once creating 2,000 files is quick again (or after four minutes).
        let probe = createProbe(join(HERE, `probe-r${r}`));
        for (let waited = 0, k = 1; probe > 0.15 && waited < 240; waited += 15, k++) {
          log(`creating 2,000 files took ${probe.toFixed(2)} s: the filesystem is still busy after deletions; waiting 15 s`);
          spawnSync('sleep', ['15']);
          probe = createProbe(join(HERE, `probe-r${r}-${k}`));
        }
      }
    }
  } finally {
    server.stop();
  }

  // ÷rsync: the median of the rounds' ratios, each round's two runs being back to back on
  // the same disk state; the ratio of the medians pairs runs of different rounds, whose
  // walls here vary by half (the disk), and is shown beside it.
  const goal = (ok, what, ratio, ofMedians) => `  ${ok ? 'PASS' : 'FAIL'}  ${what}: ${ratio.toFixed(2)}× (median of the rounds' ratios; ${ofMedians.toFixed(2)}× between the medians)`;
  const s = samples;
  const lines = [
    `respaldo copy and restore benchmark, scale ${scale}: ${availableParallelism()} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB RAM; rsync ${version('rsync', ['--version'], /version (\S+)/)}, restic ${version('restic', ['version'], /restic (\S+)/)}, ${spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr.trim().split(',')[0]}; respaldo ${sh('git', ['-C', REPO, 'rev-parse', '--short=12', 'HEAD']).trim()}`,
    `mixed tree: ${tree.info.files} files, ${(tree.info.bytes / 2 ** 30).toFixed(2)} GiB; medians of ${repeat} rounds (range: fastest–slowest); ÷rsync: median of the rounds' ratios to plain rsync, then the ratio of the medians`,
    '',
    'what                   tool                    wall s       range  ÷rsync (medians)',
    row('second copy, first', 'respaldo (+ compare)', s.copyFirst.respaldo, s.copyFirst.rsync),
    row('', 'rsync -a over ssh', s.copyFirst.rsync, s.copyFirst.rsync),
    row('', '  then sync -f at CSC', s.copyFirst.rsyncFlushed, s.copyFirst.rsync),
    row('second copy, 1% chg', 'respaldo (+ compare)', s.copyChanged.respaldo, s.copyChanged.rsync),
    row('', 'rsync --link-dest ssh', s.copyChanged.rsync, s.copyChanged.rsync),
    row('re-read of a copy', 'respaldo (verify rec.)', s.recheck.respaldo, s.recheck.rsync),
    row('', 'rsync -c --dry-run ssh', s.recheck.rsync, s.recheck.rsync),
    row('restore, whole tree', 'respaldo (+ check)', s.restore.respaldo, s.restore.rsync),
    row('', 'rsync -a', s.restore.rsync, s.restore.rsync),
    row('', 'restic restore', s.restore.restic, s.restore.rsync),
    row('', 'restic restore --verify', s.restore.resticVerify, s.restore.rsync),
    '',
    'Goals:',
    ...[
      ['second copy (first) within 1.2× of plain rsync over SSH', s.copyFirst],
      ['second copy (after a 1% change) within 1.2× of plain rsync --link-dest over SSH', s.copyChanged],
    ].map(([what, c]) => goal(paired(c.respaldo, c.rsync) <= 1.2, what, paired(c.respaldo, c.rsync), median(c.respaldo) / median(c.rsync))),
    `  ${paired(s.restore.respaldo, s.restore.restic) <= 1 ? 'PASS' : 'FAIL'}  restore at least as fast as restic: ${median(s.restore.respaldo).toFixed(2)} s against ${median(s.restore.restic).toFixed(2)} s (rounds' ratios: median ${paired(s.restore.respaldo, s.restore.restic).toFixed(2)}×)`,
  ];
  writeFileSync(join(HERE, 'results.json'), `${JSON.stringify({ scale, repeat, samples }, null, 2)}\n`);
  process.stdout.write(`${lines.join('\n')}\n\nraw results: ${join(HERE, 'results.json')}; logs: ${join(HERE, 'logs')}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  process.exit(1);
});
