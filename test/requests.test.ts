/**
 * Requests and approvals through signed git commits (clauses 4.1.1 and 4.3): a developer's
 * request, JAA's SSH-signed approval, and the agent acting on exactly what was approved,
 * with real git, real ssh-keygen signatures and the real agent.
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployment, git, MAIN, recordsOf, respaldo, sleep, tempDir, writeTree, type Deployment } from './helpers.js';
import { cloneOf, commitAs, person, sshKey, writeApproval, type SshKey } from './trust.js';

const dev = person('Ana');

function psql(database: string, sql: string): void {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'postgres', '-d', database, '-c', sql], { stdio: 'pipe' });
}
const jaaEnv = person('JAA');

async function verdict(dir: string, ...more: string[]) {
  const r = await respaldo(['records', 'verify', dir, '--json', ...more]);
  const data = JSON.parse(r.stdout.trim().split('\n').at(-1)!).data;
  return { code: r.code, data, approval: (id: string) => data.approvals.find((a: any) => a.id === id) };
}

describe('requests and approvals', () => {
  let d: Deployment;
  let src: string;
  let restoreRoot: string;
  let devClone: string;
  let jaaClone: string;
  let jaa: SshKey;
  let eve: SshKey;
  let old: SshKey;
  let revoked: SshKey;
  let db: string;
  const folder = (n: string) => join(src, n);
  afterAll(() => psql('postgres', `DROP DATABASE IF EXISTS ${db}`));

  /** A backup request for folder `name`, made with respaldo request new in the developer's clone; returns its number. */
  async function requestBackup(name: string, extra: string[] = []): Promise<string> {
    const r = await respaldo(['request', 'new', '--records', devClone, '--json', '--type', 'backup', '--name', 'Ana López', '--area', 'Desarrollo web', '--host', 'web01', '--repository', name, '--kind', 'files', '--path', folder(name), ...extra], { env: dev });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!).data.id;
  }

  /** respaldo approve in JAA's clone, after JAA pulled and read the request. */
  function approve(args: string[], opts: { env: NodeJS.ProcessEnv }) {
    git(jaaClone, 'pull', '--quiet', '--ff-only');
    return respaldo(['approve', ...args], opts);
  }

  /** JAA withdraws approvals with a signed deletion, and pushes. */
  function withdraw(...ids: string[]) {
    git(jaaClone, 'pull', '--quiet', '--ff-only');
    for (const id of ids) git(jaaClone, 'rm', '--quiet', `approvals/${id}.yaml`);
    commitAs(jaaClone, jaa, `withdrawn: ${ids.join(', ')}`, ...ids.map((id) => `approvals/${id}.yaml`));
    git(jaaClone, 'push', '--quiet');
  }

  /** A hand-made approval in JAA's clone, committed (signed with `key`, or not) and pushed. */
  function approveBy(id: string, key: SshKey | undefined) {
    git(jaaClone, 'pull', '--quiet', '--rebase');
    commitAs(jaaClone, key, `${id}: approved`, writeApproval(jaaClone, id));
    git(jaaClone, 'push', '--quiet');
  }

  beforeAll(async () => {
    src = tempDir();
    restoreRoot = tempDir();
    for (const n of ['portal', 'unsigned', 'stranger', 'revoked', 'expired', 'edited', 'rejected', 'merged', 'usurped', 'agented', 'agent-key', 'prompted'])
      writeTree(folder(n), { 'a.txt': `${n}: uno\n`, 'sub/b.txt': `${n}: dos\n` });
    writeTree(join(src, 'local'), { 'c.txt': 'local\n' });
    db = `respaldo_req_${process.pid}`;
    psql('postgres', `CREATE DATABASE ${db}`);
    psql(db, 'CREATE TABLE pedidos (id integer PRIMARY KEY, total numeric); INSERT INTO pedidos SELECT i, i * 1.5 FROM generate_series(1, 250) i');
    [jaa, eve, old, revoked] = [sshKey('jaa'), sshKey('eve'), sshKey('old'), sshKey('revoked')];
    d = await deployment([{ name: 'local', paths: [join(src, 'local')] }], {
      remote: true,
      approver: jaa,
      extra: { requests: { 'allow-paths': [src], 'restore-to': [restoreRoot], servers: { 'main-pg': { engine: 'postgresql', connection: { host: '/var/run/postgresql', user: 'postgres' } } } } },
    });
    devClone = cloneOf(d.remote!, 'dev');
    jaaClone = cloneOf(d.remote!, 'jaa');
    // JAA (the policy's first approver) adds two more approvers, one expired and one revoked, in a commit JAA signs.
    appendFileSync(join(jaaClone, 'policy/allowed_signers'), [`old namespaces="git",valid-before="20200101" ${old.line}`, `revoked namespaces="git" ${revoked.line}`, ''].join('\n'));
    writeFileSync(join(jaaClone, 'policy/revoked_keys'), `${revoked.line}\n`);
    commitAs(jaaClone, jaa, 'policy: approvers', 'policy/allowed_signers', 'policy/revoked_keys');
    git(jaaClone, 'push', '--quiet');
  });

  it('a request approved by an approver-signed commit is backed up on the next run; unsigned, unknown, revoked, expired or edited approvals are not', async () => {
    const ids: Record<string, string> = {};
    for (const n of ['portal', 'unsigned', 'stranger', 'revoked', 'expired', 'edited', 'rejected']) ids[n] = await requestBackup(n);
    expect(Object.values(ids)).toEqual(['REQ-2026-0001', 'REQ-2026-0002', 'REQ-2026-0003', 'REQ-2026-0004', 'REQ-2026-0005', 'REQ-2026-0006', 'REQ-2026-0007']);
    const request = parse(readFileSync(join(devClone, 'requests/REQ-2026-0001.yaml'), 'utf8'));
    expect(request).toMatchObject({ form: 'FOR 7.5 DSE 05', type: 'backup', requester: { name: 'Ana López', area: 'Desarrollo web' }, host: 'web01', repository: 'portal', kind: 'files', what: { paths: [folder('portal')] } });

    // JAA approves with respaldo: a signed commit that git itself checks.
    const ok = await approve([ids.portal!, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`approved by jaa (${jaa.fingerprint}) in signed commit`);
    const onlyJaa = join(tempDir(), 'allowed_signers');
    writeFileSync(onlyJaa, `jaa namespaces="git" ${jaa.line}\n`);
    expect(git(jaaClone, '-c', `gpg.ssh.allowedSignersFile=${onlyJaa}`, 'log', '-1', '--format=%G? %GK', '--', `approvals/${ids.portal}.yaml`).trim()).toBe(`G ${jaa.fingerprint}`);
    const edited = await approve([ids.edited!, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv });
    expect(edited.code, edited.stderr).toBe(0);
    const rejected = await approve([ids.rejected!, '--records', jaaClone, '--key', jaa.key, '--reject', '--why', 'no es de la aplicación'], { env: jaaEnv });
    expect(rejected.code, rejected.stderr).toBe(0);

    // respaldo itself refuses keys that would not count.
    const byEve = await approve([ids.stranger!, '--records', jaaClone, '--key', eve.key], { env: jaaEnv });
    expect(byEve.code).toBe(2);
    expect(byEve.stderr).toContain(`key ${eve.fingerprint} is not an approver`);
    const byOld = await approve([ids.expired!, '--records', jaaClone, '--key', old.key], { env: jaaEnv });
    expect(byOld.code).toBe(4);
    expect(byOld.stderr).toContain('the commit would not count');
    git(jaaClone, 'checkout', '--quiet', '--', '.');
    git(jaaClone, 'clean', '--quiet', '-fd', 'approvals');

    // The same approvals made by hand, as someone bypassing respaldo would.
    approveBy(ids.unsigned!, undefined);
    approveBy(ids.stranger!, eve);
    approveBy(ids.revoked!, revoked);
    approveBy(ids.expired!, old);
    // Edited after its approval by an unsigned commit: the approval no longer counts.
    git(jaaClone, 'pull', '--quiet', '--rebase');
    appendFileSync(join(jaaClone, `approvals/${ids.edited}.yaml`), 'why: nadie lo firmó\n');
    commitAs(jaaClone, undefined, 'edit', `approvals/${ids.edited}.yaml`);
    git(jaaClone, 'push', '--quiet');

    // The agent acts on the one that counts, and says of each other why it does not (cron mails it), once as a failure record.
    const run = await d.run('run');
    expect(run.code, run.stderr).toBe(3);
    for (const [n, why] of [['unsigned', 'not signed'], ['stranger', `signed by key ${eve.fingerprint}, which is not an approver`], ['revoked', `signed by key ${revoked.fingerprint}, which policy/revoked_keys revokes`], ['expired', `signed by key ${old.fingerprint}, which is not an approver of the policy in force at the commit's time`], ['edited', 'not signed']])
      expect(run.stderr).toMatch(new RegExp(`the decision on ${ids[n]} does not count: approvals/${ids[n]}\\.yaml: does not count: commit [0-9a-f]{12} \\(JAA, [^)]*\\) that touched it is ${why!.replace(/[+/()]/g, '\\$&')}.*; ${n} is not backed up under it`));
    expect(recordsOf(d, 'failure').filter((f) => f.stage === 'request').map((f) => f.request).sort()).toEqual([ids.unsigned, ids.stranger, ids.revoked, ids.expired, ids.edited].sort());
    expect(d.snapshots('portal')).toHaveLength(1);
    for (const n of ['unsigned', 'stranger', 'revoked', 'expired', 'edited', 'rejected']) expect(d.snapshots(n), n).toEqual([]);
    const backups = recordsOf(d, 'backup');
    expect(backups.find((r) => r.repository === 'portal')).toMatchObject({ request: ids.portal });
    // Configured on the host with no approved request: backed up all the same, marked.
    expect(backups.find((r) => r.repository === 'local')).toMatchObject({ request: 'unrequested' });
    expect(d.snapshots('local')).toHaveLength(1);

    const v = await verdict(d.records);
    expect(v.code).toBe(3);
    expect(v.approval(ids.portal!)).toMatchObject({ valid: true, decision: 'approved', principal: 'jaa', key: jaa.fingerprint });
    expect(v.approval(ids.rejected!)).toMatchObject({ valid: true, decision: 'rejected' });
    expect(v.approval(ids.unsigned!).reason).toMatch(/not signed/);
    expect(v.approval(ids.stranger!).reason).toContain(`signed by key ${eve.fingerprint}, which is not an approver`);
    expect(v.approval(ids.revoked!).valid).toBe(false);
    expect(v.approval(ids.revoked!).reason).toContain(`signed by key ${revoked.fingerprint}, which policy/revoked_keys revokes`);
    expect(v.approval(ids.expired!).reason).toContain(`signed by key ${old.fingerprint}, which is not an approver of the policy in force at the commit's time`);
    expect(v.approval(ids.edited!).reason).toMatch(/not signed/);
    expect(v.data.summary).toMatchObject({ approvalsValid: 2, approvalsInvalid: 5, broken: 0 });

    const status = await d.run('status');
    expect(status.stdout).toMatch(/portal\s+files\s+REQ-2026-0001/);
    expect(status.stdout).toMatch(/local\s+files\s+unrequested/);

    // JAA withdraws what does not count, with a signed commit: the next run is clean.
    withdraw(...['unsigned', 'stranger', 'revoked', 'expired', 'edited'].map((n) => ids[n]!));
    const clean = await d.run('run');
    expect(clean.code, clean.stderr).toBe(0);
  });

  it('a change to allowed_signers not signed by an existing approver is reported and has no effect', async () => {
    const id = await requestBackup('usurped');
    git(jaaClone, 'pull', '--quiet', '--rebase');
    // Eve makes herself an approver, without a trusted signature, and approves with her key.
    appendFileSync(join(jaaClone, 'policy/allowed_signers'), `eve namespaces="git" ${eve.line}\n`);
    commitAs(jaaClone, eve, 'policy: eve', 'policy/allowed_signers');
    commitAs(jaaClone, eve, `${id}: approved`, writeApproval(jaaClone, id));
    git(jaaClone, 'push', '--quiet');

    const run = await d.run('run');
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toContain(`the decision on ${id} does not count`);
    expect(d.snapshots('usurped')).toEqual([]);
    const v = await verdict(d.records);
    expect(v.data.policy.ignored.join('\n')).toMatch(/only an approver trusted before a change may make it/);
    expect(v.data.summary.policyIgnored).toBe(1);
    expect(v.approval(id).valid).toBe(false);
    const text = await respaldo(['records', 'verify', d.records]);
    expect(text.stdout).toContain('ignored change:');
    // An approver's signed commit afterwards is what counts; eve's line was in the tree it signed, so JAA takes it out.
    git(jaaClone, 'pull', '--quiet', '--rebase');
    const lines = readFileSync(join(jaaClone, 'policy/allowed_signers'), 'utf8').split('\n').filter((l) => !l.startsWith('eve '));
    writeFileSync(join(jaaClone, 'policy/allowed_signers'), lines.join('\n'));
    commitAs(jaaClone, jaa, 'policy: without eve', 'policy/allowed_signers');
    git(jaaClone, 'push', '--quiet');
    withdraw(id);
  });

  it('a merge commit that sneaks in an approval is caught', async () => {
    const id = await requestBackup('merged');
    git(jaaClone, 'pull', '--quiet', '--rebase');
    git(jaaClone, 'checkout', '--quiet', '-b', 'side');
    writeFileSync(join(jaaClone, 'notes.txt'), 'nada que ver\n');
    commitAs(jaaClone, jaa, 'notes', 'notes.txt');
    git(jaaClone, 'checkout', '--quiet', 'main');
    git(jaaClone, 'merge', '--quiet', '--no-ff', '--no-commit', 'side');
    // The merge commit itself brings the approval, and JAA's key even signs the merge.
    git(jaaClone, 'add', writeApproval(jaaClone, id));
    git(jaaClone, '-c', 'gpg.format=ssh', '-c', `user.signingkey=${jaa.key}`, 'commit', '-S', '--quiet', '-m', 'merge side');
    git(jaaClone, 'push', '--quiet');

    const run = await d.run('run');
    expect(run.code, run.stderr).toBe(3);
    expect(d.snapshots('merged')).toEqual([]);
    const v = await verdict(d.records);
    withdraw(id);
    expect(v.approval(id).reason).toMatch(/^commit [0-9a-f]{12} \(JAA, .*\) that touched it is a merge commit: only plain commits on the first-parent chain count \(a linear history\)$/);
  });

  it('an approved restore request is carried out once on the next run, its record pointing at the request; never into production unless it says so', async () => {
    const asked = (extra: string[]) =>
      respaldo(['request', 'new', '--records', devClone, '--json', '--type', 'restore', '--name', 'Ana López', '--area', 'Desarrollo web', '--host', 'web01', '--repository', 'portal', '--reason', 'deleted-by-mistake', ...extra], { env: dev });
    const lost = join(folder('portal'), 'sub/b.txt');
    const r1 = await asked(['--path', lost, '--to', join(restoreRoot, 'r1'), '--why', 'borrado por error']);
    expect(r1.code, r1.stderr).toBe(0);
    const into = await asked(['--to', folder('portal')]);
    expect(into.code, into.stderr).toBe(0);
    const [restoreId, intoId] = [r1, into].map((r) => JSON.parse(r.stdout.trim().split('\n').at(-1)!).data.id as string);
    for (const id of [restoreId!, intoId!]) {
      const a = await approve([id, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv });
      expect(a.code, a.stderr).toBe(0);
    }
    const before = readFileSync(lost);
    const run = await d.run('run');
    expect(run.code).toBe(3); // the production restore cannot be met
    expect(run.stderr).toContain(`requests/${intoId}.yaml: destination: ${folder('portal')} is within or over folders the host protects (production); the request must say into-production: true for that`);
    expect(readFileSync(join(restoreRoot, 'r1', lost))).toEqual(before);
    const restores = recordsOf(d, 'restore');
    expect(restores).toHaveLength(1);
    expect(restores[0]).toMatchObject({ repository: 'portal', request: restoreId, trigger: 'scheduled', reason: 'deleted-by-mistake', result: 'ok', paths: [lost] });
    expect(restores[0]!.operator).toBeUndefined();
    expect(recordsOf(d, 'failure').find((f) => f.request === intoId)).toMatchObject({ stage: 'request', repository: 'portal' });

    // Once: the next run does not restore again, and says again (without a second record) why the other waits.
    const again = await d.run('run');
    expect(again.code).toBe(3);
    expect(recordsOf(d, 'restore')).toHaveLength(1);
    expect(recordsOf(d, 'failure').filter((f) => f.request === intoId)).toHaveLength(1);
    // JAA rejects it; a request that says into-production: true puts the lost file back where it was.
    expect((await approve([intoId!, '--records', jaaClone, '--key', jaa.key, '--reject', '--why', 'sin into-production'], { env: jaaEnv })).code).toBe(0);
    const back = await asked(['--path', lost, '--to', '/', '--into-production']);
    const backId = JSON.parse(back.stdout.trim().split('\n').at(-1)!).data.id as string;
    expect((await approve([backId, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv })).code).toBe(0);
    rmSync(lost);
    const third = await d.run('run');
    expect(third.code, third.stderr).toBe(0);
    expect(readFileSync(lost)).toEqual(before);
    expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ request: backId, destination: '/', result: 'ok' });
  });

  it('JAA signs only the request JAA read: one changed or arrived by the pull is refused; a link in place of the approval is refused, and its target left alone', async () => {
    const id = await requestBackup('agented');
    // Arrived with the command's own pull: JAA has not read it.
    const unseen = await respaldo(['approve', id, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv });
    expect(unseen.code).toBe(2);
    expect(unseen.stderr).toContain(`requests/${id}.yaml arrived when the records were brought up to date: nothing was signed`);
    // Read, then changed by the developer before JAA signs.
    git(jaaClone, 'pull', '--quiet', '--ff-only');
    git(devClone, 'pull', '--quiet', '--ff-only');
    appendFileSync(join(devClone, `requests/${id}.yaml`), 'notes: y también /etc\n');
    commitAs(devClone, undefined, 'more', `requests/${id}.yaml`);
    git(devClone, 'push', '--quiet');
    const changed = await respaldo(['approve', id, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv });
    expect(changed.code).toBe(2);
    expect(changed.stderr).toContain(`requests/${id}.yaml changed when the records were brought up to date: nothing was signed`);
    expect(git(jaaClone, 'status', '--porcelain')).toBe('');

    // A link committed where the approval goes: respaldo writes nothing through it.
    const victim = join(tempDir(), 'id_ed25519');
    writeFileSync(victim, 'the key\n');
    const { symlinkSync } = await import('node:fs');
    symlinkSync(victim, join(devClone, `approvals/${id}.yaml`));
    commitAs(devClone, undefined, 'link', `approvals/${id}.yaml`);
    git(devClone, 'push', '--quiet');
    const linked = await approve([id, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv });
    expect(linked.code).toBe(2);
    expect(linked.stderr).toContain(`approvals/${id}.yaml is a symbolic link`);
    expect(readFileSync(victim, 'utf8')).toBe('the key\n');
    // JAA withdraws the link in a signed commit and approves: it counts.
    git(jaaClone, 'rm', '--quiet', `approvals/${id}.yaml`);
    commitAs(jaaClone, jaa, 'withdraw the link', `approvals/${id}.yaml`);
    git(jaaClone, 'push', '--quiet');
    const ok = await approve([id, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`backup of agented (files) on web01: ${folder('agented')}, asked by Ana López (Desarrollo web)`);
  });

  it("JAA's key can live in ssh-agent: respaldo needs only its public line", async () => {
    const id = await requestBackup('agent-key');
    const sock = join(tempDir(), 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(50);
      execFileSync('ssh-add', ['-q', jaa.key], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      // Only the public half is on this "workstation"; the private key is in the agent.
      const pub = join(tempDir(), 'jaa.pub');
      writeFileSync(pub, `${jaa.line} jaa\n`);
      const a = await approve([id, '--records', jaaClone, '--key', pub], { env: { ...jaaEnv, SSH_AUTH_SOCK: sock } });
      expect(a.code, a.stderr).toBe(0);
      expect(a.stdout).toContain(`approved by jaa (${jaa.fingerprint})`);
    } finally {
      agent.kill();
    }
    const run = await d.run('run');
    expect(run.code, run.stderr).toBe(0);
    expect(d.snapshots('agented')).toHaveLength(1);
    expect(d.snapshots('agent-key')).toHaveLength(1);
  });

  it('a database is asked for by its name on a server the host configuration names: how to reach it never enters the request', async () => {
    const r = await respaldo(['request', 'new', '--records', devClone, '--json', '--type', 'backup', '--name', 'Ana', '--area', 'Web', '--host', 'web01', '--repository', 'shop-db', '--kind', 'database', '--database', db, '--server', 'main-pg'], { env: dev });
    expect(r.code, r.stderr).toBe(0);
    const id = JSON.parse(r.stdout.trim().split('\n').at(-1)!).data.id;
    const text = readFileSync(join(devClone, `requests/${id}.yaml`), 'utf8');
    expect(parse(text)).toMatchObject({ kind: 'database', what: { database: db, server: 'main-pg' } });
    expect(text).not.toMatch(/postgresql|\/var\/run|user/);
    expect((await approve([id, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv })).code).toBe(0);
    const run = await d.run('run');
    expect(run.code, run.stderr).toBe(0);
    const backup = recordsOf(d, 'backup').find((b) => b.repository === 'shop-db');
    expect(backup).toMatchObject({ request: id, kind: 'database', database: { engine: 'postgresql', databases: [{ name: db, tables: 1, rows: 250 }] }, verification: { level: 'restore' } });
  });

  it('asks on a terminal for what the flags leave out', async () => {
    const answers = ['Ana López', 'Desarrollo web', 'backup', 'web01', 'prompted', 'files', folder('prompted')];
    const child = spawn('script', ['-q', '-e', '-c', `${process.execPath} ${MAIN} request new --records ${devClone}`, '/dev/null'], { env: { ...process.env, ...dev } });
    let out = '';
    let asked = 0;
    child.stdout.on('data', (chunk) => {
      out += chunk;
      // One answer after each question, as a person types it.
      for (const questions = out.split('): ').length - 1; asked < questions && answers.length; asked++) child.stdin.write(`${answers.shift()}\n`);
    });
    const stuck = setTimeout(() => child.kill(), 30_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(stuck);
    expect(code, out).toBe(0);
    expect(out).toContain('Who asks, name (Ana López): ');
    const id = /(REQ-\d{4}-\d{4}): backup request for prompted on web01/.exec(out)?.[1];
    expect(id, out).toBeDefined();
    expect(parse(readFileSync(join(devClone, `requests/${id}.yaml`), 'utf8'))).toMatchObject({ requester: { name: 'Ana López', area: 'Desarrollo web' }, repository: 'prompted', kind: 'files', what: { paths: [folder('prompted')] } });
  });

  it('bad input: an unknown host, a malformed schedule, a path outside what the host allows, one number from two clones', async () => {
    const base = ['request', 'new', '--records', devClone, '--type', 'backup', '--name', 'Ana', '--area', 'Web', '--repository', 'x', '--kind', 'files'];
    const unknown = await respaldo([...base, '--host', 'web99', '--path', '/srv/x'], { env: dev });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('host (--host): "web99" is not a host of the records');
    expect(unknown.stderr).toContain('known: web01');
    const cron = await respaldo([...base, '--host', 'web01', '--path', '/srv/x', '--schedule', '61 3 * *'], { env: dev });
    expect(cron.code).toBe(2);
    expect(cron.stderr).toMatch(/schedule\.cron \(--schedule\): a cron expression has five fields/);
    const every = await respaldo([...base, '--host', 'web01', '--path', '/srv/x', '--schedule', '7x'], { env: dev });
    expect(every.code).toBe(2);
    expect(every.stderr).toMatch(/schedule\.every \(--schedule\): a duration is a number and a unit/);
    const relative = await respaldo([...base, '--host', 'web01', '--path', 'srv/x'], { env: dev });
    expect(relative.stderr).toMatch(/what\.paths\[0\] \(--path\): an absolute path/);

    // Approved, but outside requests.allow-paths: named by file and field, on the run and in a failure record.
    const outside = await respaldo([...base.slice(0, -4), '--repository', 'etc', '--kind', 'config', '--host', 'web01', '--path', '/etc', '--json'], { env: dev });
    const outsideId = JSON.parse(outside.stdout.trim().split('\n').at(-1)!).data.id;
    expect((await approve([outsideId, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv })).code).toBe(0);
    const noServer = await respaldo([...base.slice(0, -4), '--repository', 'other-db', '--kind', 'database', '--host', 'web01', '--database', 'x', '--server', 'nope', '--json'], { env: dev });
    const noServerId = JSON.parse(noServer.stdout.trim().split('\n').at(-1)!).data.id;
    expect((await approve([noServerId, '--records', jaaClone, '--key', jaa.key], { env: jaaEnv })).code).toBe(0);
    const run = await d.run('run');
    expect(run.stderr).toContain(`requests/${noServerId}.yaml: what.server: "nope" is not a server of web01: ${d.config} names main-pg under requests.servers`);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(`requests/${outsideId}.yaml: what.paths[0]: /etc is outside what ${d.config} allows requests to name on web01 (requests.allow-paths: ${src})`);
    expect(d.snapshots('etc')).toEqual([]);
    expect(recordsOf(d, 'failure').find((f) => f.request === outsideId)?.cause).toContain('what.paths[0]');

    // Two clones ask at the same moment: the second push is rejected, and its request takes the next number.
    const other = cloneOf(d.remote!, 'dev2');
    const hook = join(other, '.git/hooks/pre-push');
    const once = join(tempDir(), 'once');
    writeFileSync(
      hook,
      `#!/bin/sh\n[ -e '${once}' ] && exit 0\ntouch '${once}'\n'${process.execPath}' '${MAIN}' request new --records '${devClone}' --type backup --name Ana --area Web --host web01 --repository race-a --kind files --path '${src}/race-a' >/dev/null\n`,
    );
    chmodSync(hook, 0o755);
    const raced = await respaldo([...base.slice(0, 2), '--records', other, ...base.slice(4, -4), '--repository', 'race-b', '--kind', 'files', '--host', 'web01', '--path', `${src}/race-b`, '--json'], { env: dev });
    expect(raced.code, raced.stderr).toBe(0);
    const data = JSON.parse(raced.stdout.trim().split('\n').at(-1)!).data;
    expect(existsSync(once)).toBe(true);
    expect(data.renumbered).toHaveLength(1);
    git(devClone, 'pull', '--quiet', '--rebase');
    const numbers = execFileSync('ls', [join(devClone, 'requests')], { encoding: 'utf8' }).trim().split('\n');
    expect(new Set(numbers).size).toBe(numbers.length);
    const a = parse(readFileSync(join(devClone, `requests/${data.id}.yaml`), 'utf8'));
    expect(a).toMatchObject({ id: data.id, repository: 'race-b' });

    // A number duplicated by hand (a request copied under another name): named by file and field.
    const dup = data.id.replace(/\d{4}$/, (n: string) => String(Number(n) + 50).padStart(4, '0'));
    execFileSync('cp', [join(devClone, `requests/${data.id}.yaml`), join(devClone, `requests/${dup}.yaml`)]);
    commitAs(devClone, undefined, 'copy', `requests/${dup}.yaml`);
    const v = await verdict(devClone);
    expect(v.code).toBe(3);
    expect(v.data.requests.find((r: any) => r.id === dup).problems[0]).toContain(`requests/${dup}.yaml: id: says ${data.id}, but the file is ${dup}.yaml and requests/${data.id}.yaml already has that number`);

    // A copy of an approved request under its number without ".yaml", asking for something else: not a request, and not acted on.
    git(devClone, 'pull', '--quiet', '--ff-only');
    const approved = readFileSync(join(devClone, 'requests/REQ-2026-0001.yaml'), 'utf8');
    writeFileSync(join(devClone, 'requests/REQ-2026-0001'), approved.replace('repository: portal', 'repository: sneaked'));
    commitAs(devClone, undefined, 'copy', 'requests/REQ-2026-0001');
    git(devClone, 'push', '--quiet');
    const sneaked = await d.run('run');
    expect(d.snapshots('sneaked')).toEqual([]);
    expect(sneaked.stderr).not.toContain('sneaked');
    const named = await verdict(d.records);
    expect(named.data.requests.find((r: any) => r.problems.some((p: string) => p.startsWith('requests/REQ-2026-0001: ')))?.problems[0]).toBe('requests/REQ-2026-0001: a request file is named REQ-YYYY-NNNN.yaml');
    expect(named.approval('REQ-2026-0001')).toMatchObject({ valid: true });
  });

  it('an upstream rewritten by a forced push (a withdrawn approval put back) is not followed', async () => {
    git(jaaClone, 'pull', '--quiet', '--ff-only');
    const withApproval = git(jaaClone, 'rev-parse', 'HEAD').trim();
    withdraw('REQ-2026-0001');
    const first = await d.run('run', '--repo', 'local');
    expect(first.stderr).not.toContain('rewritten');
    const withdrawn = git(d.records, 'rev-parse', '@{u}').trim();
    // Someone with push access puts the old history back.
    git(jaaClone, 'push', '--quiet', '--force', 'origin', `${withApproval}:main`);
    const run = await d.run('run', '--repo', 'local');
    expect(run.stderr).toContain(`the records' upstream origin/main was rewritten (${withdrawn.slice(0, 12)} is no longer on its first-parent chain: a forced push, or a merge that put another history first); not following it`);
    // The agent stays where it was: the approval stays withdrawn, and its records stay committed here.
    expect(git(d.records, 'merge-base', '--is-ancestor', withdrawn, 'HEAD')).toBe('');
    expect(existsSync(join(d.records, 'approvals/REQ-2026-0001.yaml'))).toBe(false);
    const status = await d.run('status', '--json');
    expect(JSON.parse(status.stdout.trim().split('\n').at(-1)!).data.repositories.find((r: any) => r.name === 'portal')).toBeUndefined();
    // JAA restores the remote; the agent's records go out with its next run.
    git(d.records, 'push', '--quiet', '--force', 'origin', `${withdrawn}:refs/heads/main`);
    const after = await d.run('run', '--repo', 'local');
    expect(after.stderr).not.toContain('rewritten');
    expect(git(d.records, 'rev-list', '--count', '@{u}..HEAD').trim()).toBe('0');

    // A fast-forward that needs no force: a merge whose first parent is the old history, with the approval back.
    const published = git(d.records, 'rev-parse', '@{u}').trim();
    const evil = cloneOf(d.remote!, 'evil');
    git(evil, 'checkout', '--quiet', '-b', 'old', withApproval);
    git(evil, 'merge', '--quiet', '-s', 'ours', '-m', 'merge', 'origin/main');
    git(evil, 'push', '--quiet', 'origin', 'old:main');
    const merged = await d.run('run', '--repo', 'local');
    expect(merged.stderr).toContain(`the records' upstream origin/main was rewritten (${published.slice(0, 12)} is no longer on its first-parent chain`);
    expect(existsSync(join(d.records, 'approvals/REQ-2026-0001.yaml'))).toBe(false);
    git(d.records, 'push', '--quiet', '--force', 'origin', `${published}:refs/heads/main`);

    // Someone deletes this host's restore record upstream (so that the approved restore would run again): not followed.
    const other = cloneOf(d.remote!, 'other');
    const restoreRecord = d.recordFiles().find((f) => f.endsWith('-restore.yaml'))!;
    git(other, 'rm', '--quiet', restoreRecord, `${restoreRecord}.sig`);
    git(other, 'commit', '--quiet', '-m', 'tidy');
    git(other, 'push', '--quiet');
    const tidied = await d.run('run', '--repo', 'local');
    expect(tidied.stderr).toContain(`someone else's commits on origin/main change this host's own records (${restoreRecord}`);
    expect(existsSync(join(d.records, restoreRecord))).toBe(true);
    expect(recordsOf(d, 'restore')).toHaveLength(2);
  });
});
