/**
 * Receipts (clause 4.1.6; FOR 7.5 CSC 02): CSC, with its own key, re-reads every copy that
 * arrived against the sender's manifest and copy record and signs a `receipt`; a damaged
 * copy gets a receipt that says so, and the repaired copy a good one.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { deployment, git, listRecordFiles, respaldo, verified, writeTree } from './helpers.js';

describe('respaldo receive', () => {
  it('signs a receipt for each copy that matches, and says which file does not', async () => {
    const d = await deployment([{ name: 'docs', paths: ['/placeholder'] }]);
    const source = join(d.root, 'docs');
    const csc = join(d.root, 'csc');
    mkdirSync(csc);
    writeTree(source, { 'a.txt': 'uno\n', 'b/c.txt': 'dos\n' });
    const config = parse(readFileSync(d.config, 'utf8'));
    config.repositories[0].paths = [source];
    config.targets.secondary = csc;
    writeFileSync(d.config, stringify(config));

    // CSC's own host: its key, trusted in allowed_signers like any host's.
    const cscConfig = join(d.root, 'csc.yaml');
    writeFileSync(cscConfig, stringify({ host: 'csc', key: join(d.root, 'csc.key'), records: d.records, state: join(d.root, 'csc-state'), targets: { primary: csc }, receive: true, repositories: [] }));
    expect((await respaldo(['init', '--config', cscConfig])).code).toBe(0);
    appendFileSync(join(d.records, 'policy/allowed_signers'), readFileSync(join(d.root, 'csc.key.pub')));
    git(d.records, 'commit', '--quiet', '-am', 'trust CSC');
    const receive = () => respaldo(['receive', '--config', cscConfig]);
    const receipts = () => listRecordFiles(d.records, 'csc').map((f) => parse(readFileSync(join(d.records, f), 'utf8'))).filter((r) => r.type === 'receipt');
    const copies = () => d.recordFiles().map((f) => ({ f, r: parse(readFileSync(join(d.records, f), 'utf8')) })).filter((x) => x.r.type === 'copy');

    expect((await d.run('run', '--all')).code).toBe(0);
    const [id1] = d.snapshots('docs');
    const r1 = await receive();
    expect(r1.code, r1.stderr).toBe(0);
    const copy1 = copies()[0]!;
    expect(receipts()).toHaveLength(1);
    expect(receipts()[0]).toMatchObject({
      host: 'csc',
      origin: 'web01',
      repository: 'docs',
      snapshot: id1,
      copy: { host: 'web01', seq: copy1.r.seq, digest: `sha256:${execFileSync('sha256sum', [join(d.records, copy1.f)], { encoding: 'utf8' }).split(' ')[0]}` },
      manifest: copy1.r.snapshot.manifest,
      files: 2,
      result: 'ok',
      problems: [],
    });
    // Checked once: the next run has nothing new to answer.
    expect((await receive()).code).toBe(0);
    expect(receipts()).toHaveLength(1);

    // A second snapshot damaged on CSC's disk before CSC checks it.
    writeFileSync(join(source, 'a.txt'), 'uno, cambiado\n');
    expect((await d.run('run', '--all')).code).toBe(0);
    const [, id2] = d.snapshots('docs');
    const damaged = join(csc, 'web01/docs/snapshots', id2!, 'data', source, 'a.txt');
    const { atime, mtime } = statSync(damaged);
    writeFileSync(damaged, 'uno, cambiadX\n');
    utimesSync(damaged, atime, mtime);
    const r2 = await receive();
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(/does not match what web01 sent/);
    expect(receipts().at(-1)).toMatchObject({ snapshot: id2, result: 'mismatch', problems: [{ path: `data${source}/a.txt` }] });

    // web01's next run (a new snapshot) finds the damage, by CSC's receipt and by its own
    // re-check of its newest copy, and copies that snapshot again; CSC signs a good receipt.
    writeFileSync(join(source, 'b/c.txt'), 'tres\n');
    expect((await d.run('run', '--all')).code).toBe(0);
    const [, , id3] = d.snapshots('docs');
    // The damaged copy is replaced first, then the new one is linked to it.
    expect(copies().slice(-2).map((c) => [c.r.snapshot.id, c.r.repair ?? false])).toEqual([
      [id2, true],
      [id3, false],
    ]);
    expect(readFileSync(damaged, 'utf8')).toBe('uno, cambiado\n');
    const r3 = await receive();
    expect(r3.code, r3.stderr).toBe(0);
    expect(receipts().slice(-2).map((r) => [r.snapshot, r.result, r.copy.seq])).toEqual(
      expect.arrayContaining([
        [id2, 'ok', copies().find((c) => c.r.snapshot.id === id2 && c.r.repair)!.r.seq],
        [id3, 'ok', copies().find((c) => c.r.snapshot.id === id3)!.r.seq],
      ]),
    );
    // A mismatch is not checked again and again: nothing new, no new receipt.
    const count = receipts().length;
    expect((await receive()).code).toBe(0);
    expect(receipts()).toHaveLength(count);
    await verified(d);
  });
});
