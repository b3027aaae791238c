/**
 * A printed sticker: a heading, then rows of a caption and a value, laid out once on a page
 * of a given size in millimetres and drawn from that one layout as SVG or as PDF, so both
 * print alike. Text is measured with the metrics of the PDF's standard fonts, Helvetica and
 * Courier (Arial, Liberation Sans and Liberation Mono have the same widths, and the SVG
 * names them as fallbacks): a value too long for its column is wrapped, and a sticker with
 * more lines than fit is drawn smaller as a whole, never cut off.
 *
 * The PDF is written here rather than with a library: one page of text and lines in the
 * standard fonts needs a page, a content stream, four font dictionaries and a table of
 * byte offsets, about sixty lines, and no dependency. The standard fonts print Latin-1
 * (WinAnsiEncoding), Spanish included, which is why the config accepts only Latin-1 text
 * for what goes on a sticker.
 */

export type Font = 'sans' | 'bold' | 'mono' | 'mono-bold';

export interface StickerRow {
  caption: string;
  /** Wrapped at spaces to the value column; given as lines, each line starts a new one (and is wrapped if still too long). */
  value: string | string[];
  font?: Font;
  /** Drawn larger: the value a person looks for first. */
  large?: boolean;
  /** In a monospace font: where the lines after the first start, in characters (a digest's hex under its hex, not under "sha256:"). */
  indent?: number;
}

export interface Sticker {
  /** Millimetres. */
  width: number;
  height: number;
  title: string;
  titleRight: string;
  subtitle: string;
  subtitleRight: string;
  rows: StickerRow[];
  /** The SVG's <title> and the PDF's /Title. */
  name: string;
  /** The language of the text, for the SVG (xml:lang). */
  lang: string;
}

/** What is drawn, in millimetres from the top left; `y` of a text is its baseline. */
export type Mark =
  | { type: 'text'; x: number; y: number; size: number; font: Font; text: string; anchor: 'start' | 'end'; gray: number }
  | { type: 'line'; x1: number; y1: number; x2: number; y2: number; width: number }
  | { type: 'rect'; x: number; y: number; w: number; h: number; width: number };

// Advance widths in thousandths of an em of the characters 32 to 126 (WinAnsiEncoding),
// from Adobe's AFM files for Helvetica and Helvetica-Bold. Courier's are all 600.
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
  722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260,
  334, 584,
];
const HELVETICA_BOLD = [
  278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833,
  722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280,
  389, 584,
];
/**
 * Latin-1 characters that are not an ASCII letter with an accent (accented letters are as
 * wide as their letter in both weights, and these are the same in both). Anything else
 * counts as a full em: too wide rather than too narrow, so it still fits.
 */
const OTHER_WIDTHS: Record<string, number> = { '\u00a0': 278, '¡': 333, '¿': 611, 'ª': 370, 'º': 365, '·': 278, '°': 400, 'Æ': 1000, 'æ': 889, 'ß': 611, 'Ø': 778, 'ø': 611, '«': 556, '»': 556 };

/** The width of `text` in millimetres, in `font` at `size` millimetres. */
export function textWidth(text: string, font: Font, size: number): number {
  if (font === 'mono' || font === 'mono-bold') return [...text].length * 0.6 * size;
  const table = font === 'bold' ? HELVETICA_BOLD : HELVETICA;
  let units = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    const base = code >= 32 && code <= 126 ? code : ch.normalize('NFD').codePointAt(0)!;
    units += base >= 32 && base <= 126 ? table[base - 32]! : (OTHER_WIDTHS[ch] ?? 1000);
  }
  return (units / 1000) * size;
}

/** Greedy line breaking at spaces; a word wider than the line is broken between characters. */
function wrap(text: string, font: Font, size: number, width: number, later: number): string[] {
  const lines: string[] = [];
  let line = '';
  const room = () => (lines.length === 0 ? width : width - later);
  for (const word of text.split(/ +/).filter(Boolean)) {
    const joined = line ? `${line} ${word}` : word;
    if (textWidth(joined, font, size) <= room()) {
      line = joined;
      continue;
    }
    if (line) lines.push(line);
    line = '';
    for (const ch of word) {
      if (line && textWidth(line + ch, font, size) > room()) {
        lines.push(line);
        line = '';
      }
      line += ch;
    }
  }
  if (line || lines.length === 0) lines.push(line);
  return lines;
}

const PAD = 3.2;
const CAPTION_WIDTH = 27.5;
const CAPTION_SIZE = 2.1;
const TITLE_SIZE = 3.4;
const SUBTITLE_SIZE = 2.3;

/** The sticker's marks: at full size when it fits, else smaller by 5% steps. */
export function layOut(s: Sticker): Mark[] {
  for (let step = 0; step <= 10; step++) {
    const marks = attempt(s, 1 - step * 0.05);
    if (marks) return marks;
  }
  throw new Error(`the sticker "${s.name}" does not fit on ${s.width} × ${s.height} mm even at half size`);
}

function attempt(s: Sticker, scale: number): Mark[] | undefined {
  const left = PAD;
  const right = s.width - PAD;
  const text = (x: number, y: number, size: number, font: Font, t: string, anchor: 'start' | 'end' = 'start', gray = 0): Mark => ({ type: 'text', x, y, size, font, text: t, anchor, gray });
  // The cut line, a little inside the edge so that a printer's margin does not lose it.
  const marks: Mark[] = [{ type: 'rect', x: 0.8, y: 0.8, w: s.width - 1.6, h: s.height - 1.6, width: 0.3 }];
  const titleY = PAD + TITLE_SIZE * 0.8;
  marks.push(text(left, titleY, TITLE_SIZE, 'bold', s.title), text(right, titleY, TITLE_SIZE * 0.8, 'bold', s.titleRight, 'end'));
  const subtitleY = titleY + SUBTITLE_SIZE * 1.45;
  marks.push(text(left, subtitleY, SUBTITLE_SIZE, 'sans', s.subtitle, 'start', 0.25), text(right, subtitleY, SUBTITLE_SIZE, 'sans', s.subtitleRight, 'end', 0.25));
  const rule = subtitleY + SUBTITLE_SIZE * 0.6;
  marks.push({ type: 'line', x1: left, y1: rule, x2: right, y2: rule, width: 0.25 });

  const valueX = left + CAPTION_WIDTH;
  const valueWidth = right - valueX;
  let y = rule + 0.9 * scale;
  for (const row of s.rows) {
    const font = row.font ?? 'sans';
    const mono = font === 'mono' || font === 'mono-bold';
    const size = (row.large ? 3.0 : mono ? 2.5 : 2.7) * scale;
    const lineHeight = size * 1.15;
    const later = mono && row.indent ? textWidth(' '.repeat(row.indent), font, size) : 0;
    const lines = [row.value].flat().flatMap((v) => wrap(v, font, size, valueWidth, later));
    lines.forEach((line, i) => {
      const baseline = y + lineHeight * i + size * 0.85;
      if (i === 0) marks.push(text(left, baseline, CAPTION_SIZE * scale, 'sans', row.caption, 'start', 0.35));
      marks.push(text(valueX + (i === 0 ? 0 : later), baseline, size, font, line));
    });
    y += lineHeight * lines.length + 0.35 * scale;
  }
  return y <= s.height - PAD + 0.6 ? marks : undefined;
}

const SVG_FAMILY: Record<Font, string> = {
  sans: "Helvetica, Arial, 'Liberation Sans', 'Nimbus Sans', sans-serif",
  bold: "Helvetica, Arial, 'Liberation Sans', 'Nimbus Sans', sans-serif",
  mono: "Courier, 'Courier New', 'Liberation Mono', 'Nimbus Mono PS', monospace",
  'mono-bold': "Courier, 'Courier New', 'Liberation Mono', 'Nimbus Mono PS', monospace",
};

/** Text for XML: the five special characters escaped, and characters XML 1.0 forbids replaced. */
function xmlEscape(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '?')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const num = (v: number) => String(Math.round(v * 100) / 100);

/** The sticker as an SVG document whose size is the sticker's, in millimetres. */
export function stickerSvg(s: Sticker): string {
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(s.width)}mm" height="${num(s.height)}mm" viewBox="0 0 ${num(s.width)} ${num(s.height)}" xml:lang="${xmlEscape(s.lang)}">`,
    `<title>${xmlEscape(s.name)}</title>`,
    `<rect width="${num(s.width)}" height="${num(s.height)}" fill="#fff"/>`,
  ];
  for (const m of layOut(s)) {
    if (m.type === 'rect') out.push(`<rect x="${num(m.x)}" y="${num(m.y)}" width="${num(m.w)}" height="${num(m.h)}" fill="none" stroke="#000" stroke-width="${num(m.width)}"/>`);
    else if (m.type === 'line') out.push(`<line x1="${num(m.x1)}" y1="${num(m.y1)}" x2="${num(m.x2)}" y2="${num(m.y2)}" stroke="#000" stroke-width="${num(m.width)}"/>`);
    else {
      const gray = Math.round(m.gray * 255).toString(16).padStart(2, '0');
      const weight = m.font === 'bold' || m.font === 'mono-bold' ? ' font-weight="bold"' : '';
      const anchor = m.anchor === 'end' ? ' text-anchor="end"' : '';
      out.push(`<text x="${num(m.x)}" y="${num(m.y)}" font-family="${SVG_FAMILY[m.font]}" font-size="${num(m.size)}"${weight}${anchor} fill="#${gray.repeat(3)}">${xmlEscape(m.text)}</text>`);
    }
  }
  out.push('</svg>', '');
  return out.join('\n');
}

const PDF_FONTS: Record<Font, { resource: string; base: string }> = {
  sans: { resource: 'F1', base: 'Helvetica' },
  bold: { resource: 'F2', base: 'Helvetica-Bold' },
  mono: { resource: 'F3', base: 'Courier' },
  'mono-bold': { resource: 'F4', base: 'Courier-Bold' },
};

/**
 * A PDF string literal in WinAnsiEncoding (Latin-1 for the characters the config lets
 * through; any other character becomes "?"), with everything outside printable ASCII
 * written as an octal escape, so that the file itself is ASCII and its offsets are its length.
 */
function pdfString(text: string): string {
  let out = '(';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c === 0x28 || c === 0x29 || c === 0x5c) out += `\\${ch}`;
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c >= 0xa0 && c <= 0xff) out += `\\${c.toString(8).padStart(3, '0')}`;
    else out += '?';
  }
  return `${out})`;
}

/** The sticker as a one-page PDF 1.4 whose page is the sticker's size. */
export function stickerPdf(s: Sticker): Buffer {
  const k = 72 / 25.4;
  const pt = (mm: number) => (Math.round(mm * k * 100) / 100).toFixed(2);
  const top = (mm: number) => pt(s.height - mm);
  const content: string[] = [];
  for (const m of layOut(s)) {
    if (m.type === 'rect') content.push(`${pt(m.width)} w 0 G ${pt(m.x)} ${top(m.y + m.h)} ${pt(m.w)} ${pt(m.h)} re S`);
    else if (m.type === 'line') content.push(`${pt(m.width)} w 0 G ${pt(m.x1)} ${top(m.y1)} m ${pt(m.x2)} ${top(m.y2)} l S`);
    else {
      const x = m.anchor === 'end' ? m.x - textWidth(m.text, m.font, m.size) : m.x;
      content.push(`BT /${PDF_FONTS[m.font].resource} ${pt(m.size)} Tf ${m.gray.toFixed(2)} g ${pt(x)} ${top(m.y)} Td ${pdfString(m.text)} Tj ET`);
    }
  }
  const stream = content.join('\n');
  const fonts = Object.values(PDF_FONTS);
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${pt(s.width)} ${pt(s.height)}] /Resources << /Font << ${fonts.map((f, i) => `/${f.resource} ${5 + i} 0 R`).join(' ')} >> >> /Contents 4 0 R >>`,
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    ...fonts.map((f) => `<< /Type /Font /Subtype /Type1 /BaseFont /${f.base} /Encoding /WinAnsiEncoding >>`),
    `<< /Title ${pdfString(s.name)} /Producer (respaldo) >>`,
  ];
  // The comment's bytes above 127 tell transfer programs that the file is binary (PDF 1.4, 7.5.2).
  let pdf = '%PDF-1.4\n%\u00e2\u00e3\u00cf\u00d3\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(pdf.length);
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = pdf.length;
  // Each entry is exactly 20 bytes, its end of line a space and a line feed.
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info ${objects.length} 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(pdf, 'latin1');
}
