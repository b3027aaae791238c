/**
 * A snapshot's label. Clause 4.2.2 of PRO 7.5 DSE 02 has the storage devices labelled: the
 * label says what a backup on a disk is and ties it to its signed record. It carries the
 * host, repository, kind, snapshot id, date and size, the copy (JAA's or CSC's, clause
 * 4.1.6) and the device it is on, the backup record's seq and the form that registers it,
 * and the digests an auditor checks the disk against: the manifest's and the summary's
 * (snapshot.yaml), which the record carries too. Spanish first, the users' language, then
 * English. One pure function makes the content; the text, the SVG and the PDF say the same.
 */
import type { RepositoryKind } from '../schemas/common.js';
import type { DeviceConfig } from '../schemas/config.js';
import type { SnapshotSummary } from '../schemas/snapshot.js';
import { formatBytes } from '../schemas/common.js';
import { stickerPdf, stickerSvg, type Sticker, type StickerRow } from './sticker.js';
import { offsetAt } from '../schemas/zoned.js';

/** The kinds as clause 4.1 names them. */
const KIND_NAMES: Record<RepositoryKind, string> = {
  config: 'Archivos de configuración de servidores',
  source: 'Código fuente',
  database: 'Bases de datos',
  files: 'Imágenes y documentos',
};

/** The form that registers each kind's backups (clauses 4.1.2 to 4.1.4). */
const KIND_FORMS: Record<RepositoryKind, string> = { source: 'FOR 7.5 DSE 02', database: 'FOR 7.5 DSE 03', config: 'FOR 7.5 DSE 04', files: 'FOR 7.5 DSE 04' };

/** Who keeps each target's copy (clause 4.1.6). */
const HOLDERS = { primary: 'JAA', secondary: 'CSC' } as const;
const TARGET_NAMES = { primary: 'primario', secondary: 'secundario' } as const;

/** The sticker's size: a common label for an external disk. */
export const STICKER_MM = { width: 100, height: 60 } as const;

export interface LabelInput {
  summary: SnapshotSummary;
  /** sha256 of the stored snapshot.yaml. */
  summaryDigest: string;
  /** sha256 of the stored manifest.jsonl. */
  manifestDigest: string;
  target: 'primary' | 'secondary';
  /** The backup record that recorded the snapshot, when there is one. */
  record: { seq: number; path: string } | undefined;
  /** The inventory's device that holds the target, when one is listed. */
  device: DeviceConfig | undefined;
  timeZone: string;
}

export interface Label {
  procedure: 'PRO 7.5 DSE 02';
  clause: '4.2.2';
  /** The form the backup is registered on. */
  form: string;
  host: string;
  repository: string;
  kind: RepositoryKind;
  kindName: string;
  snapshot: string;
  /** `<host>/<repository>/snapshots/<id>` on the target. */
  location: string;
  started: string;
  finished: string;
  timezone: string;
  /** The start as a person reads it in the host's zone: "2026-11-22 03:15 (UTC-06:00)". */
  made: string;
  size: { bytes: number; files: number };
  verification: string;
  target: 'primary' | 'secondary';
  holder: 'JAA' | 'CSC';
  device: { label: string; location: string; capacity: string } | null;
  record: { seq: number; path: string } | null;
  manifest: string;
  summary: string;
}

/** "2026-11-22 03:15 (UTC-06:00)": ASCII only, so the PDF's fonts print all of it. */
function wallTime(iso: string, zone: string): string {
  const t = new Date(iso).getTime();
  const offset = offsetAt(zone, t);
  const minutes = Math.abs(offset) / 60_000;
  const sign = offset < 0 ? '-' : '+';
  return `${new Date(t + offset).toISOString().slice(0, 16).replace('T', ' ')} (UTC${sign}${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')})`;
}

export function labelOf(input: LabelInput): Label {
  const { summary: s, device } = input;
  return {
    procedure: 'PRO 7.5 DSE 02',
    clause: '4.2.2',
    form: KIND_FORMS[s.kind],
    host: s.host,
    repository: s.repository,
    kind: s.kind,
    kindName: KIND_NAMES[s.kind],
    snapshot: s.id,
    location: `${s.host}/${s.repository}/snapshots/${s.id}`,
    started: s.started,
    finished: s.finished,
    timezone: input.timeZone,
    made: wallTime(s.started, input.timeZone),
    size: { bytes: s.size.bytes, files: s.size.files },
    verification: s.verification.level,
    target: input.target,
    holder: HOLDERS[input.target],
    device: device ? { label: device.label, location: device.location, capacity: device.capacity } : null,
    record: input.record ?? null,
    manifest: input.manifestDigest,
    summary: input.summaryDigest,
  };
}

const copyText = (l: Label) => `${l.holder} (destino ${TARGET_NAMES[l.target]} / ${l.target} target)`;
const deviceText = (d: NonNullable<Label['device']>) => `${d.label} · ${d.location} · ${d.capacity}`;
const recordText = (l: Label) => (l.record ? `${l.host} n.º ${l.record.seq}` : 'sin registro aún / not recorded yet');

/** The label as text, one field a line, for a terminal or a form. */
export function labelText(l: Label): string {
  const rows: [string, string][] = [
    ['Servidor / host', l.host],
    ['Repositorio / repository', l.repository],
    ['Tipo / kind', `${l.kindName} (${l.kind}), registrado en / registered on ${l.form}`],
    ['Respaldo / snapshot', l.snapshot],
    ['Fecha / date', `${l.made}, ${l.timezone}`],
    ['Tamaño / size', `${formatBytes(l.size.bytes)} (${l.size.bytes} bytes), ${l.size.files} archivos / files`],
    ['Verificación / verified', l.verification],
    ['Copia / copy', copyText(l)],
    ['Dispositivo / device', l.device ? deviceText(l.device) : 'no listado en "devices" / not in the inventory'],
    ['Ruta / path', l.location],
    ['Registro / record', l.record ? `${recordText(l)} (${l.record.path})` : recordText(l)],
    ['Manifiesto / manifest', l.manifest],
    ['Resumen / summary', `${l.summary} (snapshot.yaml)`],
  ];
  const width = Math.max(...rows.map(([caption]) => caption.length));
  return [`Etiqueta de respaldo / backup label (${l.procedure}, ${l.clause})`, ...rows.map(([caption, value]) => `  ${caption.padEnd(width)}  ${value}`)].join('\n');
}

/** A digest over two lines of a monospace font: "sha256:" and half the hex, then the other half under it. */
const digestLines = (digest: string): string[] => [digest.slice(0, 39), digest.slice(39)];

/** What the sticker shows: the fields that identify the backup on the disk, and the two digests in full. */
export function labelSticker(l: Label): Sticker {
  const rows: StickerRow[] = [
    { caption: 'Servidor / host', value: l.host },
    { caption: 'Repositorio / repository', value: l.repository },
    { caption: 'Tipo / kind', value: `${l.kindName} (${l.kind})` },
    { caption: 'Respaldo / snapshot', value: l.snapshot, font: 'mono-bold', large: true },
    { caption: 'Fecha / date', value: l.made },
    { caption: 'Tamaño / size', value: `${formatBytes(l.size.bytes)} · ${l.size.files} archivos / files` },
    { caption: 'Copia / copy', value: copyText(l) },
    ...(l.device ? [{ caption: 'Dispositivo / device', value: deviceText(l.device) }] : []),
    { caption: 'Registro / record', value: recordText(l) },
    { caption: 'Manifiesto / manifest', value: digestLines(l.manifest), font: 'mono', indent: 7 },
    { caption: 'Resumen / summary', value: digestLines(l.summary), font: 'mono', indent: 7 },
  ];
  return {
    ...STICKER_MM,
    title: 'ETIQUETA DE RESPALDO',
    titleRight: `${l.procedure} · ${l.clause}`,
    subtitle: 'Backup label · Servicios Electrónicos (DSE)',
    subtitleRight: l.form,
    rows,
    name: `Etiqueta de respaldo ${l.host}/${l.repository} ${l.snapshot}`,
    lang: 'es',
  };
}

export const labelSvg = (l: Label): string => stickerSvg(labelSticker(l));
export const labelPdf = (l: Label): Buffer => stickerPdf(labelSticker(l));
