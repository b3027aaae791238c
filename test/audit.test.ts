/**
 * tools/audit.sh, the auditor's own check with git, ssh-keygen and sha256sum alone, against
 * `respaldo records verify` on clean and tampered records folders made by the real agent:
 * both must reach the same verdict on every one. And checkpoints: JAA's signed anchor of
 * every chain head, which makes the deletion of an agent's newest records visible.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { deployment, git, respaldo, ROOT, tempDir, writeTree, type Deployment } from './helpers.js';
import { cloneOf, commitAs, person, sshKey, writeApproval, type SshKey } from './trust.js';

const AUDIT = join(ROOT, 'tools/audit.sh');

function audit(dir: string, ...opts: string[]) {
  const r = spawnSync('bash', [AUDIT, ...opts, dir], { encoding: 'utf8' });
  const lines = r.stdout.trim().split('\n');
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, summary: lines.at(-1)!, broken: lines.filter((l) => l.startsWith('BROKEN ')).map((l) => l.split(' ')[1]!).sort() };
}

async function respaldoVerify(dir: string, ...opts: string[]) {
  const text = await respaldo(['records', 'verify', dir, ...opts]);
  const json = await respaldo(['records', 'verify', dir, '--json', ...opts]);
  const data = JSON.parse(json.stdout.trim().split('\n').at(-1)!).data;
  return { code: text.code, stdout: text.stdout, summary: text.stdout.trim().split('\n').at(-1)!, broken: data.hosts.flatMap((h: any) => h.broken).sort(), data };
}

describe('tools/audit.sh and respaldo records verify', () => {
  let d: Deployment;
  let base: string;
  let jaa: SshKey;
  let eve: SshKey;
  let records: string[];

  /** A copy of the records repository (work tree and history) to tamper with. */
  function variant(): string {
    const dir = join(tempDir(), 'records');
    execFileSync('cp', ['-a', base, dir]);
    return dir;
  }

  beforeAll(async () => {
    const src = tempDir();
    writeTree(join(src, 'web'), { 'index.html': '<h1>hola</h1>\n', 'css/a.css': 'body{}\n' });
    [jaa, eve] = [sshKey('jaa'), sshKey('eve')];
    d = await deployment([{ name: 'web', paths: [join(src, 'web')] }], { remote: true, approver: jaa, extra: { requests: { 'allow-paths': [src] } } });
    const office = cloneOf(d.remote!, 'office');
    const asked = await respaldo(['request', 'new', '--records', office, '--type', 'backup', '--name', 'Ana', '--area', 'Web', '--host', 'web01', '--repository', 'web', '--kind', 'files', '--path', join(src, 'web')], { env: person('Ana') });
    expect(asked.code, asked.stderr).toBe(0);
    expect((await respaldo(['approve', 'REQ-2026-0001', '--records', office, '--key', jaa.key], { env: person('JAA') })).code).toBe(0);
    for (let i = 0; i < 5; i++) {
      writeFileSync(join(src, 'web', `page-${i}.html`), `<p>${i}</p>\n`);
      const run = await d.run('run', '--all');
      expect(run.code, run.stderr).toBe(0);
    }
    const cp = await respaldo(['checkpoint', '--records', office, '--key', jaa.key], { env: person('JAA') });
    expect(cp.code, cp.stderr).toBe(0);
    base = cloneOf(d.remote!, 'base');
    records = d.recordFiles();
    expect(records.length).toBe(6);
  });

  it('a checkpoint is signed by JAA and anchors every chain head; deleting newest records after it is reported', async () => {
    const clean = await respaldoVerify(base);
    expect(clean.code, clean.stdout).toBe(0);
    const checkpoints = readdirSync(join(base, 'checkpoints'));
    expect(checkpoints).toHaveLength(1);
    const text = readFileSync(join(base, 'checkpoints', checkpoints[0]!), 'utf8');
    expect(text).toMatch(new RegExp(`^  web01: ${records.length} sha256:[0-9a-f]{64}$`, 'm'));

    // The agent's newest two records vanish (a compromised host, a careless rebase): the chain itself is still whole.
    const dir = variant();
    for (const f of records.slice(-2)) for (const ext of ['', '.sig']) rmSync(join(dir, f + ext));
    const v = await respaldoVerify(dir);
    expect(v.code).toBe(3);
    expect(v.stdout).toContain(`checkpoints/${checkpoints[0]}: web01: truncated: the chain of web01 ends at seq ${records.length - 2}, but checkpoint checkpoints/${checkpoints[0]} saw it at seq ${records.length}: its newest records were deleted`);
    expect(v.data.summary).toMatchObject({ broken: 0, hostsBroken: 0, checkpointsViolated: 1 });
    const a = audit(dir);
    expect(a.code).toBe(1);
    expect(a.stdout).toContain(`CHECKPOINT ${checkpoints[0]} web01 truncated`);
  });

  const cases: [string, (dir: string) => void, string[]?][] = [
    ['clean', () => {}],
    ['a record edited after signing', (dir) => {
      const f = join(dir, records[3]!);
      writeFileSync(f, readFileSync(f, 'utf8').replace(/^finished: .*$/m, 'finished: 2026-01-01T00:00:00.000Z'));
    }],
    ['a record in the middle deleted', (dir) => {
      for (const ext of ['', '.sig']) rmSync(join(dir, records[4]! + ext));
    }],
    ['the newest records deleted after the checkpoint', (dir) => {
      for (const f of records.slice(-3)) for (const ext of ['', '.sig']) rmSync(join(dir, f + ext));
    }],
    ['a signature deleted', (dir) => rmSync(join(dir, `${records[2]}.sig`))],
    ['a record rewritten after the checkpoint, re-chained and re-signed by another key', (dir) => {
      // Eve replaces the newest record and signs it with her own key: a wrong key and a diverged checkpoint.
      const f = join(dir, records.at(-1)!);
      writeFileSync(f, readFileSync(f, 'utf8').replace(/^trigger: .*$/m, 'trigger: manual'));
      const sig = execFileSync('ssh-keygen', ['-Y', 'sign', '-f', eve.key, '-n', 'respaldo-record', '-q'], { input: readFileSync(f) });
      writeFileSync(`${f}.sig`, sig);
    }],
    ['allowed_signers changed by an unsigned commit', (dir) => {
      appendFileSync(join(dir, 'policy/allowed_signers'), `eve namespaces="git" ${eve.line}\n`);
      commitAs(dir, undefined, 'policy: eve', 'policy/allowed_signers');
    }],
    ['allowed_signers changed in the work tree only', (dir) => appendFileSync(join(dir, 'policy/allowed_signers'), `eve namespaces="git" ${eve.line}\n`)],
    ['an approval changed by an unsigned commit', (dir) => {
      appendFileSync(join(dir, 'approvals/REQ-2026-0001.yaml'), 'why: cambiado\n');
      commitAs(dir, undefined, 'edit', 'approvals/REQ-2026-0001.yaml');
    }],
    ['an approval signed by an unknown key', (dir) => {
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, jaa, 'withdrawn', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, eve, 'approved', writeApproval(dir, 'REQ-2026-0001'));
    }],
    ['a merge commit that brings an approval', (dir) => {
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, jaa, 'withdrawn', 'approvals/REQ-2026-0001.yaml');
      git(dir, 'checkout', '--quiet', '-b', 'side');
      writeFileSync(join(dir, 'notes.txt'), 'x\n');
      commitAs(dir, jaa, 'notes', 'notes.txt');
      git(dir, 'checkout', '--quiet', 'main');
      git(dir, 'merge', '--quiet', '--no-ff', '--no-commit', 'side');
      // The merge itself brings the approval back, and JAA's key signs the merge.
      git(dir, 'add', writeApproval(dir, 'REQ-2026-0001'));
      git(dir, '-c', 'gpg.format=ssh', '-c', `user.signingkey=${jaa.key}`, 'commit', '-S', '--quiet', '-m', 'merge side');
    }],
    ['the request edited after its approval', (dir) => {
      appendFileSync(join(dir, 'requests/REQ-2026-0001.yaml'), 'notes: también /etc/shadow\n');
      commitAs(dir, undefined, 'edit', 'requests/REQ-2026-0001.yaml');
    }],
    ['a pinned approver that never signed the policy', () => {}, ['--approver', 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']],
    ['the pinned approver is the one that signed the policy', () => {}, ['--approver', '@jaa']],
    ["a policy of eve's own, signed by her and dated 2000, merged in from an orphan branch, then her approval", (dir) => {
      // Her side commit is older than JAA's anchor by date; only the first-parent chain counts, whatever the dates.
      git(dir, 'checkout', '--quiet', '--orphan', 'evil');
      writeFileSync(join(dir, 'policy/allowed_signers'), `eve namespaces="git" ${eve.line}\n`);
      git(dir, 'add', '--all');
      execFileSync('git', ['-c', 'user.name=Eve', '-c', 'user.email=eve@x', '-c', 'gpg.format=ssh', '-c', `user.signingkey=${eve.key}`, 'commit', '-S', '--quiet', '-m', 'policy'], { cwd: dir, env: { ...process.env, GIT_AUTHOR_DATE: '2000-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2000-01-01T00:00:00Z' } });
      git(dir, 'checkout', '--quiet', 'main');
      git(dir, 'merge', '--quiet', '-s', 'ours', '--allow-unrelated-histories', '-m', 'merge', 'evil');
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, eve, 'withdrawn', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, eve, 'approved', writeApproval(dir, 'REQ-2026-0001'));
    }],
    ['the newest records deleted, and the checkpoint too by an unsigned commit', (dir) => {
      for (const f of records.slice(-2)) for (const ext of ['', '.sig']) rmSync(join(dir, f + ext));
      git(dir, 'rm', '--quiet', '-r', 'checkpoints');
      git(dir, 'commit', '--quiet', '-m', 'tidy');
    }],
    ['the checkpoint rewritten to a shorter chain by an unsigned commit', (dir) => {
      const [name] = readdirSync(join(dir, 'checkpoints'));
      const path = join(dir, 'checkpoints', name!);
      writeFileSync(path, readFileSync(path, 'utf8').replace(/^  web01: .*$/m, `  web01: 1 sha256:${'0'.repeat(64)}`));
      commitAs(dir, undefined, 'checkpoint', `checkpoints/${name}`);
    }],
    ['an unsigned commit wrote the approval first; JAA withdraws it with a signed deletion and approves anew', (dir) => {
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, jaa, 'withdrawn', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, undefined, 'sneaked', writeApproval(dir, 'REQ-2026-0001'));
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, jaa, 'withdrawn again', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, jaa, 'approved', writeApproval(dir, 'REQ-2026-0001'));
    }],
    ["a fast-forward merge whose first parent is eve's own history, anchored and approved by her", (dir) => {
      git(dir, 'checkout', '--quiet', '--orphan', 'evil');
      appendFileSync(join(dir, 'policy/allowed_signers'), `eve namespaces="git" ${eve.line}\n`);
      git(dir, 'rm', '--quiet', '-r', '--cached', 'approvals', 'checkpoints');
      git(dir, 'add', '--all', 'policy');
      git(dir, '-c', 'gpg.format=ssh', '-c', `user.signingkey=${eve.key}`, 'commit', '-S', '--quiet', '-m', 'policy');
      commitAs(dir, eve, 'approved', writeApproval(dir, 'REQ-2026-0001'));
      git(dir, 'merge', '--quiet', '-s', 'ours', '--allow-unrelated-histories', '-m', 'merge', 'main');
      // main moves forward to it: what a push without force does on the remote.
      git(dir, 'update-ref', 'refs/heads/main', 'HEAD');
      git(dir, 'checkout', '--quiet', '--force', 'main');
      git(dir, 'clean', '--quiet', '-fd', 'approvals', 'checkpoints');
    }],
    ['an approval under a name with an ñ, signed, then deleted by an unsigned commit', (dir) => {
      execFileSync('cp', [join(dir, 'approvals/REQ-2026-0001.yaml'), join(dir, 'approvals/REQ-2026-0001ñ.yaml')]);
      commitAs(dir, jaa, 'copy', 'approvals/REQ-2026-0001ñ.yaml');
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001ñ.yaml');
      git(dir, 'commit', '--quiet', '-m', 'gone');
    }],
    ['a checkpoint rewritten by JAA in another YAML form', (dir) => {
      const [name] = readdirSync(join(dir, 'checkpoints'));
      const path = join(dir, 'checkpoints', name!);
      writeFileSync(path, readFileSync(path, 'utf8').replace(/^heads:\n  web01: (.*)$/m, 'heads: { web01: "$1" }'));
      commitAs(dir, jaa, 'checkpoint', `checkpoints/${name}`);
    }],
    ['a request copied to a name without .yaml, and the request itself changed', (dir) => {
      execFileSync('cp', [join(dir, 'requests/REQ-2026-0001.yaml'), join(dir, 'requests/REQ-2026-0001')]);
      appendFileSync(join(dir, 'requests/REQ-2026-0001.yaml'), 'notes: y /etc\n');
      commitAs(dir, undefined, 'swap', 'requests/REQ-2026-0001', 'requests/REQ-2026-0001.yaml');
    }],
    ['an approval deleted by an unsigned commit', (dir) => {
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001.yaml');
      git(dir, 'commit', '--quiet', '-m', 'gone');
    }],
    ['an approval withdrawn by JAA with a signed deletion', (dir) => {
      git(dir, 'rm', '--quiet', 'approvals/REQ-2026-0001.yaml');
      commitAs(dir, jaa, 'withdrawn', 'approvals/REQ-2026-0001.yaml');
    }],
    ['the whole hosts folder deleted', (dir) => rmSync(join(dir, 'hosts'), { recursive: true })],
    ['a folder that is not a git checkout', (dir) => rmSync(join(dir, '.git'), { recursive: true })],
  ];

  for (const [name, tamper, given = []] of cases)
    it(`agree: ${name}`, async () => {
      const dir = variant();
      tamper(dir);
      const opts = given.map((o) => (o === '@jaa' ? jaa.fingerprint : o));
      const [mine, theirs] = [await respaldoVerify(dir, ...opts), audit(dir, ...opts)];
      expect(theirs.stderr).toBe('');
      expect(theirs.summary, `${mine.stdout}\n----\n${theirs.stdout}`).toBe(mine.summary);
      expect(theirs.broken).toEqual(mine.broken);
      expect(theirs.code === 0, theirs.stdout).toBe(mine.code === 0);
      const harmless = ['clean', 'a folder that is not a git checkout', 'the pinned approver is the one that signed the policy', 'an unsigned commit wrote the approval first; JAA withdraws it with a signed deletion and approves anew', 'an approval withdrawn by JAA with a signed deletion'];
      if (harmless.includes(name)) expect(mine.code, mine.stdout).toBe(0);
      else expect(mine.code, `${name} went unnoticed:\n${mine.stdout}`).toBe(3);
    });
});
