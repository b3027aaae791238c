import { describe, expect, it } from 'vitest';
import type { SnapshotSummary } from '../schemas/snapshot.js';
import { labelOf, labelPdf, labelSticker, labelSvg, labelText, type LabelInput } from './label.js';
import { layOut, textWidth, type Mark } from './sticker.js';

const summary: SnapshotSummary = {
  schema: 'respaldo/v1',
  host: 'web01',
  repository: 'portal',
  kind: 'source',
  id: '20261122T091500Z',
  started: '2026-11-22T09:15:00.000Z',
  finished: '2026-11-22T09:16:10.000Z',
  paths: ['/var/www/portal'],
  exclude: [],
  manifest: `sha256:${'ab'.repeat(32)}`,
  previous: null,
  size: { bytes: 1_234_567, files: 120, dirs: 8, symlinks: 0, others: 0 },
  changed: { files: 120, bytes: 1_234_567 },
  verification: { level: 'checksum' },
  warnings: [],
  trigger: 'scheduled',
};

const input: LabelInput = {
  summary,
  summaryDigest: `sha256:${'cd'.repeat(32)}`,
  manifestDigest: summary.manifest,
  target: 'primary',
  record: { seq: 42, path: 'hosts/web01/2026/00000042-backup.yaml' },
  device: { label: 'DSE-HDD-01', location: 'oficina de JAA', capacity: '2 TB', target: 'primary' },
  timeZone: 'America/Mexico_City',
};

const texts = (marks: Mark[]) => marks.filter((m): m is Extract<Mark, { type: 'text' }> => m.type === 'text');
const left = (m: Extract<Mark, { type: 'text' }>) => (m.anchor === 'end' ? m.x - textWidth(m.text, m.font, m.size) : m.x);
const right = (m: Extract<Mark, { type: 'text' }>) => left(m) + textWidth(m.text, m.font, m.size);

/** Every text inside the cut line, and no two texts on the same line overlapping. */
function expectFits(marks: Mark[], width: number, height: number): void {
  const all = texts(marks);
  for (const m of all) {
    expect(left(m), m.text).toBeGreaterThanOrEqual(2);
    expect(right(m), m.text).toBeLessThanOrEqual(width - 2);
    expect(m.y, m.text).toBeLessThanOrEqual(height - 2);
  }
  for (const a of all)
    for (const b of all) {
      if (a === b || Math.abs(a.y - b.y) > Math.max(a.size, b.size) * 0.8) continue;
      expect(right(a) <= left(b) || right(b) <= left(a), `"${a.text}" overlaps "${b.text}"`).toBe(true);
    }
}

describe('labelOf', () => {
  it('carries what clause 4.2.2 labels: host, repository, kind and its form, snapshot, size, digests, record, device', () => {
    const l = labelOf(input);
    expect(l).toMatchObject({
      host: 'web01',
      repository: 'portal',
      kind: 'source',
      kindName: 'Código fuente',
      form: 'FOR 7.5 DSE 02',
      snapshot: '20261122T091500Z',
      location: 'web01/portal/snapshots/20261122T091500Z',
      size: { bytes: 1_234_567, files: 120 },
      holder: 'JAA',
      record: { seq: 42 },
      device: { label: 'DSE-HDD-01', location: 'oficina de JAA', capacity: '2 TB' },
      manifest: input.manifestDigest,
      summary: input.summaryDigest,
    });
    // 09:15 UTC is 03:15 in Mexico City (UTC-6, no daylight saving since 2022).
    expect(l.made).toBe('2026-11-22 03:15 (UTC-06:00)');
    expect(labelOf({ ...input, summary: { ...summary, kind: 'database' } }).form).toBe('FOR 7.5 DSE 03');
    expect(labelOf({ ...input, summary: { ...summary, kind: 'files' } }).form).toBe('FOR 7.5 DSE 04');
    expect(labelOf({ ...input, target: 'secondary' }).holder).toBe('CSC');
  });

  it('says so when no record or device is known', () => {
    const l = labelOf({ ...input, record: undefined, device: undefined });
    expect(l.record).toBeNull();
    expect(l.device).toBeNull();
    const text = labelText(l);
    expect(text).toContain('sin registro aún / not recorded yet');
    expect(text).toContain('not in the inventory');
    const rows = labelSticker(l).rows.map((r) => r.caption);
    expect(rows).not.toContain('Dispositivo / device');
  });

  it('prints every field as text, the digests whole', () => {
    const text = labelText(labelOf(input));
    for (const s of ['web01', 'portal', 'Código fuente (source)', 'FOR 7.5 DSE 02', '20261122T091500Z', '1234567 bytes', '120 archivos', 'DSE-HDD-01 · oficina de JAA · 2 TB', 'web01 n.º 42', input.manifestDigest, input.summaryDigest])
      expect(text).toContain(s);
  });
});

describe('textWidth', () => {
  it("uses Helvetica's and Courier's widths; an accented letter is as wide as its letter", () => {
    expect(textWidth('Hello', 'sans', 10)).toBeCloseTo(22.78);
    expect(textWidth('Hello', 'bold', 10)).toBeCloseTo(24.45);
    expect(textWidth('Código', 'sans', 1)).toBeCloseTo(textWidth('Codigo', 'sans', 1));
    expect(textWidth('sha256:', 'mono', 2)).toBeCloseTo(8.4);
    // Unknown characters count as a whole em: too wide, never too narrow.
    expect(textWidth('€', 'sans', 1)).toBe(1);
  });
});

describe('the sticker', () => {
  it('fits on 100 x 60 mm, with and without a device, even with the longest device text the config allows', () => {
    for (const device of [undefined, input.device, { label: 'W'.repeat(40), location: 'WM'.repeat(40), capacity: '999.5 TiB' }]) {
      const sticker = labelSticker(labelOf({ ...input, device }));
      expectFits(layOut(sticker), sticker.width, sticker.height);
    }
  });

  it('keeps each digest on two lines, its hex under its hex', () => {
    const marks = texts(layOut(labelSticker(labelOf(input))));
    const first = marks.find((m) => m.text === input.manifestDigest.slice(0, 39))!;
    const second = marks.find((m) => m.text === input.manifestDigest.slice(39))!;
    expect(first.font).toBe('mono');
    expect(second.y).toBeGreaterThan(first.y);
    expect(second.x).toBeCloseTo(first.x + textWidth('sha256:', 'mono', first.size));
  });

  it('escapes text in the SVG', () => {
    const svg = labelSvg(labelOf({ ...input, device: { label: 'A&B', location: 'sala "<2>"', capacity: '2 TB' } }));
    expect(svg).toContain('A&amp;B · sala &quot;&lt;2&gt;&quot; · 2 TB');
    expect(svg).not.toContain('<2>');
    expect(svg).toMatch(/<svg [^>]*width="100mm" height="60mm" viewBox="0 0 100 60"/);
  });

  it('writes a PDF whose cross-reference table points at each object', () => {
    const pdf = labelPdf(labelOf({ ...input, device: { label: 'DSE (1)', location: 'oficina \\ JAA', capacity: '2 TB' } }));
    const text = pdf.toString('latin1');
    expect(text.startsWith('%PDF-1.4\n')).toBe(true);
    const startxref = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(text)![1]);
    expect(text.slice(startxref, startxref + 5)).toBe('xref\n');
    const [, count, entries] = /^xref\n0 (\d+)\n([\s\S]*?)trailer/.exec(text.slice(startxref))!;
    // Each entry is exactly 20 bytes.
    expect(entries!.length).toBe(20 * Number(count));
    const rows = entries!.match(/[\s\S]{20}/g)!;
    rows.slice(1).forEach((row, i) => expect(text.slice(Number(row.slice(0, 10)), Number(row.slice(0, 10)) + 10)).toMatch(new RegExp(`^${i + 1} 0 obj\\n`)));
    // The content stream's /Length is its length in bytes.
    const m = /<< \/Length (\d+) >>\nstream\n/.exec(text)!;
    const start = m.index + m[0].length;
    expect(text.slice(start + Number(m[1]), start + Number(m[1]) + 10)).toBe('\nendstream');
    // Parentheses and backslashes are escaped in string literals; Latin-1 letters as octal.
    expect(text).toContain('(DSE \\(1\\) \\267 oficina \\\\ JAA \\267 2 TB)');
    expect(text).toContain('(C\\363digo fuente \\(source\\))');
  });
});
