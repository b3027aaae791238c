#!/usr/bin/env node
/**
 * respaldo backup to a primary target over SSH: on the mixed tree (~2 GiB, ~20,000 files),
 * the first backup and the backup after a 1% change, into a throwaway sshd's folder on
 * loopback, against plain `rsync -a` (then `rsync -a --link-dest`) of the tree over the same
 * SSH. respaldo also reads every new file back at the target and its original here, and
 * records and commits the result. See bench/README.md.
 *
 *   node bench/remote.mjs [--scale 1] [--repeat 3] [--work bench/work]
 *
 * Needs root (sshd on a loopback port, logging in as root with a key made here), rsync,
 * openssh-server and GNU time (apt-get install -y rsync openssh-server time), and a built
 * respaldo (npx tsc -p .).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deployRespaldo, ensureTree, fail, has, inTurn, log, measure, modifyTree, restoreTree, roundOptions, roundsRow, settled, setup, sh, startSshd, version, warmTree } from './lib.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { scale, repeat, work: WORK } = roundOptions('node bench/remote.mjs [--scale N] [--repeat N] [--work DIR]', join(REPO, 'bench', 'work'));
const HERE = join(WORK, 'remote');
const CLI = join(REPO, 'dist', 'agent', 'main.js');
setup({ work: WORK, scale });

for (const p of ['rsync', 'git', 'ssh-keygen', '/usr/sbin/sshd', '/usr/bin/time']) if (!(p.startsWith('/') ? existsSync(p) : has(p))) fail(`${p} is not installed: apt-get install -y rsync openssh-server time git`);
if (!existsSync(CLI)) fail(`${CLI} is missing: build respaldo first (npx tsc -p .)`);

/** A respaldo deployment backing up the tree to a primary target over SSH (the folder `disk` at the sshd). */
function deployRemote(dir, tree, server) {
  const disk = join(dir, 'disk');
  mkdirSync(disk, { recursive: true });
  const { config } = deployRespaldo(CLI, dir, {
    targets: { primary: { url: `root@127.0.0.1:${disk}`, port: server.port, identity: server.identity, 'host-key': server.hostKey } },
    repositories: [{ name: 'mixed', kind: 'files', paths: [tree.root] }],
  });
  return { config, disk };
}

async function main() {
  mkdirSync(WORK, { recursive: true });
  rmSync(HERE, { recursive: true, force: true });
  mkdirSync(join(HERE, 'logs'), { recursive: true });
  const tree = ensureTree('mixed');
  const server = await startSshd(join(HERE, 'sshd'));
  const samples = { first: { respaldo: [], rsync: [] }, changed: { respaldo: [], rsync: [] } };
  const logFile = (name) => join(HERE, 'logs', `${name}.log`);
  const backup = (d, name) => () => settled(() => measure('node', [CLI, 'run', '--config', d.config, '--all', '--json'], { logFile: logFile(name) }));
  const ok = (name) => {
    const out = readFileSync(logFile(name), 'utf8');
    if (!out.includes('"repo-done"')) throw new Error(`respaldo's backup did not finish (log ${logFile(name)})`);
  };
  try {
    for (let r = 1; r <= repeat; r++) {
      const dir = join(HERE, `r${r}`);
      const d = deployRemote(join(dir, 'respaldo'), tree, server);
      const plain = join(dir, 'plain');
      mkdirSync(plain, { recursive: true });
      warmTree(tree);

      log(`round ${r} of ${repeat}: first backup`);
      const [pr, rr] = inTurn(
        r,
        () => settled(() => measure('rsync', ['-a', '--numeric-ids', '-e', server.ssh, `${tree.root}/`, `root@127.0.0.1:${plain}/s1/`], { logFile: logFile(`r${r}-first-rsync`) })),
        backup(d, `r${r}-first-respaldo`),
      );
      ok(`r${r}-first-respaldo`);
      samples.first.rsync.push(pr.wall);
      samples.first.respaldo.push(rr.wall);

      log(`round ${r}: backup after a 1% change`);
      modifyTree(tree);
      const [pr2, rr2] = inTurn(
        r,
        () => settled(() => measure('rsync', ['-a', '--numeric-ids', '--link-dest=../s1/', '-e', server.ssh, `${tree.root}/`, `root@127.0.0.1:${plain}/s2/`], { logFile: logFile(`r${r}-changed-rsync`) })),
        backup(d, `r${r}-changed-respaldo`),
      );
      restoreTree('mixed', tree.files, tree.changes);
      ok(`r${r}-changed-respaldo`);
      samples.changed.rsync.push(pr2.wall);
      samples.changed.respaldo.push(rr2.wall);
      if (r < repeat) rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    server.stop();
  }

  const row = (label, tool, xs, base) => roundsRow(label, tool, xs, base, 26);
  const s = samples;
  const lines = [
    `respaldo backup to a primary over SSH, scale ${scale}: ${availableParallelism()} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB RAM; rsync ${version('rsync', ['--version'], /version (\S+)/)}; respaldo ${sh('git', ['-C', REPO, 'rev-parse', '--short=12', 'HEAD']).trim()}`,
    `mixed tree: ${tree.info.files} files, ${(tree.info.bytes / 2 ** 30).toFixed(2)} GiB; medians of ${repeat} rounds (range: fastest–slowest); ÷rsync: median of the rounds' ratios to plain rsync, then the ratio of the medians`,
    '',
    'what                   tool                        wall s       range  ÷rsync (medians)',
    row('first backup', 'respaldo (+ read back)', s.first.respaldo, s.first.rsync),
    row('', 'rsync -a over ssh', s.first.rsync, s.first.rsync),
    row('after a 1% change', 'respaldo (+ read back)', s.changed.respaldo, s.changed.rsync),
    row('', 'rsync --link-dest over ssh', s.changed.rsync, s.changed.rsync),
  ];
  writeFileSync(join(HERE, 'results.json'), `${JSON.stringify({ scale, repeat, samples }, null, 2)}\n`);
  process.stdout.write(`${lines.join('\n')}\n\nraw results: ${join(HERE, 'results.json')}; logs: ${join(HERE, 'logs')}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  process.exit(1);
});
