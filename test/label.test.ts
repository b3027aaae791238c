/**
 * `respaldo label` (clause 4.2.2): what a sysadmin reads on a disk's sticker matches what is
 * stored and what was recorded: the snapshot id, its size, the sha256 of the stored manifest
 * and snapshot.yaml, the record's seq, and the device from the inventory. The SVG is read by
 * a strict XML parser (xmllint) and the PDF by poppler (pdftotext, pdfinfo).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deployment, listRecordFiles, respaldo, tempDir, writeTree, type Deployment } from './helpers.js';

const DEVICE = { label: 'DSE-HDD-01', location: 'oficina de JAA <planta 2> & "archivo" (A\\B)', capacity: '2 TB', target: 'primary' };
const FILES = { 'index.php': '<?php echo "hola";\n', 'lib/db.php': 'x'.repeat(5000), 'img/logo.png': Buffer.alloc(20_000, 3) };
const CHANGED = '<?php echo "adiós";\n';
const BYTES = Object.values(FILES).reduce((n, c) => n + Buffer.byteLength(c), 0);

const sha256 = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
/** The text with all white space removed: a digest split over two lines reads whole again. */
const squeeze = (text: string) => text.replace(/\s+/g, '');

interface Backup {
  id: string;
  seq: number;
  manifest: string;
  summary: string;
}

describe('respaldo label', () => {
  let d: Deployment;
  let src: string;
  let first: Backup;
  let second: Backup;
  const out = tempDir();

  /** The snapshot just made: its id, the seq of the record that made it, the digests of its stored files. */
  const newest = (): Backup => {
    const id = d.snapshots('portal').at(-1)!;
    const dir = join(d.target, d.host, 'portal/snapshots', id);
    const rel = listRecordFiles(d.records, d.host).at(-1)!;
    const record = parse(readFileSync(join(d.records, rel), 'utf8'));
    expect(record.snapshot.id).toBe(id);
    return { id, seq: record.seq, manifest: sha256(join(dir, 'manifest.jsonl')), summary: sha256(join(dir, 'snapshot.yaml')) };
  };

  beforeAll(async () => {
    src = tempDir();
    writeTree(src, FILES);
    d = await deployment([{ name: 'portal', kind: 'source', paths: [src] }], { extra: { timezone: 'America/Mexico_City', devices: [DEVICE] } });
    expect((await d.run('run', '--all')).code).toBe(0);
    first = newest();
    // Nothing changed: the same snapshot is recorded again; its label keeps the record that made it.
    expect((await d.run('run', '--all')).code).toBe(0);
    expect(d.snapshots('portal')).toEqual([first.id]);
    writeFileSync(join(src, 'index.php'), CHANGED);
    expect((await d.run('run', '--all')).code).toBe(0);
    second = newest();
    expect(second.id).not.toBe(first.id);
  });

  it('prints the label of the newest snapshot as text: host, repository, kind, id, size, digests, record, device', async () => {
    const r = await d.run('label', 'portal');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const line = (caption: string) => r.stdout.split('\n').find((l) => l.trimStart().startsWith(caption))?.trim().slice(caption.length).trim();
    expect(line('Servidor / host')).toBe('web01');
    expect(line('Repositorio / repository')).toBe('portal');
    expect(line('Tipo / kind')).toBe('Código fuente (source), registrado en / registered on FOR 7.5 DSE 02');
    expect(line('Respaldo / snapshot')).toBe(second.id);
    expect(line('Tamaño / size')).toContain(`(${BYTES - Buffer.byteLength(FILES['index.php']) + Buffer.byteLength(CHANGED)} bytes), 3 archivos / files`);
    expect(line('Manifiesto / manifest')).toBe(second.manifest);
    expect(line('Resumen / summary')).toBe(`${second.summary} (snapshot.yaml)`);
    expect(line('Registro / record')).toMatch(new RegExp(`^web01 n\\.º ${second.seq} \\(hosts/web01/\\d{4}/0*${second.seq}-backup\\.yaml\\)$`));
    expect(line('Dispositivo / device')).toBe(`${DEVICE.label} · ${DEVICE.location} · 2 TB`);
    expect(line('Copia / copy')).toBe('JAA (destino primario / primary target)');
  });

  it('labels an older snapshot by its id, with the record that made it, not the one that found it unchanged', async () => {
    const r = await d.run('label', 'portal', first.id, '--json');
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(result.type).toBe('result');
    expect(result.data).toMatchObject({
      host: 'web01',
      repository: 'portal',
      kind: 'source',
      form: 'FOR 7.5 DSE 02',
      snapshot: first.id,
      size: { bytes: BYTES, files: 3 },
      manifest: first.manifest,
      summary: first.summary,
      record: { seq: first.seq },
      device: { label: DEVICE.label, location: DEVICE.location, capacity: '2 TB' },
      stickers: { svg: null, pdf: null },
    });
    // The unchanged run's record names the same snapshot under a later seq.
    expect(second.seq).toBeGreaterThan(first.seq + 1);
  });

  it('writes an SVG sticker that a strict XML parser reads, 100 x 60 mm, with the fields and the escaped location', async () => {
    const file = join(out, 'label.svg');
    const r = await d.run('label', 'portal', 'latest', '--svg', file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`SVG sticker (100 × 60 mm): ${file}`);
    // xmllint exits non-zero on anything that is not well-formed XML (an unescaped "<" or "&").
    execFileSync('xmllint', ['--noout', file]);
    const xpath = (expr: string) => execFileSync('xmllint', ['--xpath', expr, file], { encoding: 'utf8' }).trim();
    expect(xpath('string(/*[local-name()="svg"]/@width)')).toBe('100mm');
    expect(xpath('string(/*[local-name()="svg"]/@height)')).toBe('60mm');
    // Each <text> element's string value, as the parser reads it (entities resolved).
    const count = Number(xpath('count(//*[local-name()="text"])'));
    expect(count).toBeGreaterThan(20);
    const texts = Array.from({ length: count }, (_, i) => xpath(`string((//*[local-name()="text"])[${i + 1}])`)).join('\n');
    for (const field of ['web01', 'portal', 'Código fuente (source)', second.id, `web01 n.º ${second.seq}`, 'FOR 7.5 DSE 02', 'PRO 7.5 DSE 02', DEVICE.label]) expect(texts).toContain(field);
    // The location went through escaping and comes back as written.
    expect(squeeze(texts)).toContain(squeeze(DEVICE.location));
    expect(squeeze(texts)).toContain(second.manifest);
    expect(squeeze(texts)).toContain(second.summary);
  });

  it('writes a PDF sticker that poppler reads: one 100 x 60 mm page with the id, digests and device, every word inside it', async () => {
    const file = join(out, 'label.pdf');
    const r = await d.run('label', 'portal', second.id, '--pdf', file);
    expect(r.code, r.stderr).toBe(0);
    const info = spawnSync('pdfinfo', [file], { encoding: 'utf8' });
    // poppler reports a broken cross-reference table or stream on stderr ("Syntax Error", "Internal Error").
    expect(info.status).toBe(0);
    expect(info.stderr).toBe('');
    expect(info.stdout).toMatch(/Page size:\s+283\.46 x 170\.08 pts/);
    expect(info.stdout).toMatch(/Pages:\s+1\n/);
    const text = spawnSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
    expect(text.stderr).toBe('');
    const flat = squeeze(text.stdout);
    for (const field of [second.id, second.manifest, second.summary, 'web01', 'portal', 'Códigofuente', `n.º${second.seq}`, squeeze(DEVICE.location), 'oficinadeJAA']) expect(flat).toContain(field);

    // Each word's box as poppler computes it from the fonts' metrics: inside the page, off its 2 mm edge, and no two on a line overlapping.
    const bbox = spawnSync('pdftotext', ['-bbox', file, '-'], { encoding: 'utf8' }).stdout;
    const words = [...bbox.matchAll(/<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<\/word>/g)].map((m) => ({ x0: Number(m[1]), y0: Number(m[2]), x1: Number(m[3]), y1: Number(m[4]), text: m[5]! }));
    expect(words.length).toBeGreaterThan(30);
    const edge = (2 * 72) / 25.4;
    for (const w of words) {
      expect(w.x0, w.text).toBeGreaterThanOrEqual(edge);
      expect(w.x1, w.text).toBeLessThanOrEqual(283.46 - edge);
      expect(w.y1, w.text).toBeLessThanOrEqual(170.08 - edge);
    }
    for (const a of words)
      for (const b of words) {
        const sameLine = Math.abs((a.y0 + a.y1) / 2 - (b.y0 + b.y1) / 2) < Math.min(a.y1 - a.y0, b.y1 - b.y0) / 2;
        if (a !== b && sameLine) expect(a.x1 <= b.x0 + 0.01 || b.x1 <= a.x0 + 0.01, `"${a.text}" overlaps "${b.text}"`).toBe(true);
      }
  });

  it('lists the device inventory', async () => {
    const r = await d.run('label', '--devices');
    expect(r.code, r.stderr).toBe(0);
    const row = r.stdout.split('\n').find((l) => l.startsWith(DEVICE.label))!;
    expect(row).toContain(DEVICE.location);
    expect(row).toContain('2 TB');
    expect(row).toContain(`primary: ${d.target}`);
  });

  it('names what exists when the repository or snapshot is unknown', async () => {
    const repo = await d.run('label', 'portl');
    expect(repo.code).toBe(2);
    expect(repo.stderr).toContain('no repository named "portl"');
    expect(repo.stderr).toContain('repositories: portal');
    const snap = await d.run('label', 'portal', '20990101T000000Z', '--svg', join(out, 'never.svg'));
    expect(snap.code).toBe(2);
    expect(snap.stderr).toContain('no snapshot "20990101T000000Z" of repository "portal"');
    expect(snap.stderr).toContain(`snapshots there, oldest first: ${first.id}, ${second.id}; or "latest"`);
    expect(spawnSync('test', ['-e', join(out, 'never.svg')]).status).toBe(1);
  });

  it('rejects a device inventory with a duplicate label, an unknown target or a bad capacity, naming the field and line', async () => {
    const config = readFileSync(d.config, 'utf8');
    const bad = join(out, 'bad.yaml');
    const withDevices = (devices: string) => `${config.replace(/^devices:\n(?:[ -].*\n)*/m, '')}devices:\n${devices}`;
    writeFileSync(bad, withDevices('  - { label: DSE-HDD-01, location: oficina de JAA, capacity: 2 TB, target: primary }\n  - { label: dse-hdd-01, location: CSC, capacity: 4 TB }\n'));
    const twice = await respaldo(['label', 'portal', '--config', bad]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/bad\.yaml:\d+: devices\[1\]\.label: device label "dse-hdd-01" is used twice \(also devices\[0\]\)/);
    writeFileSync(bad, withDevices('  - { label: CSC-01, location: CSC, capacity: 2 teras, target: secondary }\n'));
    const other = await respaldo(['label', '--devices', '--config', bad]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/bad\.yaml:\d+: devices\[0\]\.capacity: a capacity is a number and a unit, e\.g\. "2 TB"/);
    expect(other.stderr).toMatch(/bad\.yaml:\d+: devices\[0\]\.target: there is no secondary target in "targets"; name one of: primary/);
  });

  it('refuses to label a snapshot whose summary or manifest changed after it was recorded', async () => {
    const dir = join(d.target, d.host, 'portal/snapshots', first.id);
    appendFileSync(join(dir, 'snapshot.yaml'), '# edited\n');
    const summary = await d.run('label', 'portal', first.id, '--pdf', join(out, 'tampered.pdf'));
    expect(summary.code).toBe(4);
    expect(summary.stderr).toContain(`snapshot ${first.id} of portal is not what backup record ${first.seq}`);
    expect(summary.stderr).toContain("snapshot.yaml's sha256 is");
    expect(summary.stderr).toContain('do not label it as a good backup');
    expect(spawnSync('test', ['-e', join(out, 'tampered.pdf')]).status).toBe(1);

    appendFileSync(join(d.target, d.host, 'portal/snapshots', second.id, 'manifest.jsonl'), '\n');
    const manifest = await d.run('label', 'portal');
    expect(manifest.code).toBe(4);
    expect(manifest.stderr).toMatch(/manifest\.jsonl has changed since the backup: its sha256 is sha256:[0-9a-f]{64}, snapshot\.yaml says sha256:[0-9a-f]{64}/);
  });
});
