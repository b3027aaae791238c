/**
 * Output. Core code never prints: it reports events to a Reporter (restic's Printer),
 * and `main.ts` picks the renderer: a terminal with progress bars, cron (silent on
 * success, a short summary on stderr when something failed or needs a look), or JSON lines.
 */
import type { Writable } from 'node:stream';
import { formatBytes } from '../schemas/common.js';

export type ReportEvent =
  | { type: 'repo-start'; repository: string; kind: string; snapshot: string }
  | { type: 'progress'; repository: string; phase: 'copy' | 'hash' | 'verify' | 'restore'; done: number; total: number }
  | {
      type: 'repo-done';
      repository: string;
      snapshot: string;
      seq: number;
      bytes: number;
      files: number;
      changedFiles: number;
      changedBytes: number;
      level: string;
      /** Where the time went, for a new snapshot: copying, hashing and verifying, flushing to disk, publishing. */
      seconds?: Record<'copy' | 'verify' | 'flush' | 'publish', number>;
    }
  | { type: 'repo-failed'; repository: string; cause: string; hint: string; seq: number | undefined }
  | { type: 'skipped'; repository: string; reason: string }
  /** A snapshot delivered to the secondary target (CSC) and compared there; `repair`: it replaced a damaged copy. */
  | { type: 'copied'; repository: string; snapshot: string; seq: number; repair: boolean; seconds?: Record<string, number>; readEarly?: number }
  | { type: 'warning'; repository?: string; message: string }
  | { type: 'info'; message: string };

export interface Reporter {
  event(e: ReportEvent): void;
  /** Output the user asked for (a table, a report): printed in every mode, as text or as JSON. */
  result(text: string, data: unknown): void;
  /** Called once when the command ends. */
  close(): void;
}

function describe(e: ReportEvent): string | undefined {
  switch (e.type) {
    case 'repo-start':
      return `${e.repository} (${e.kind}): snapshot ${e.snapshot}`;
    case 'repo-done':
      return `${e.repository}: done, ${e.files} files, ${formatBytes(e.bytes)} (${e.changedFiles} files, ${formatBytes(e.changedBytes)} stored anew), verified: ${e.level}; record ${e.seq}`;
    case 'repo-failed':
      return `${e.repository}: FAILED: ${e.cause}\n  what to do: ${e.hint}${e.seq ? `\n  recorded as failure record ${e.seq}` : ''}`;
    case 'skipped':
      return `${e.repository}: ${e.reason}`;
    case 'copied':
      return `${e.repository}: snapshot ${e.snapshot} ${e.repair ? 'copied again to the secondary target, replacing a damaged copy' : 'copied to the secondary target'}, verified there; record ${e.seq}`;
    case 'warning':
      return `warning: ${e.repository ? `${e.repository}: ` : ''}${e.message}`;
    case 'info':
      return e.message;
    case 'progress':
      return undefined;
  }
}

/** For a person at a terminal: each step as it happens and a progress bar on stderr. */
export function terminalReporter(out: Writable & { columns?: number }, err: Writable & { columns?: number }): Reporter {
  let bar = false;
  let lastDraw = 0;
  const clearBar = () => {
    if (bar) err.write('\r\x1b[K');
    bar = false;
  };
  return {
    event(e) {
      if (e.type === 'progress') {
        const now = Date.now();
        if (now - lastDraw < 100 && e.done < e.total) return;
        lastDraw = now;
        const line =
          e.total > 0
            ? (() => {
                const width = 30;
                const ratio = Math.min(1, e.done / e.total);
                const filled = Math.round(ratio * width);
                const amount = e.phase === 'copy' ? `${formatBytes(e.done)} / ${formatBytes(e.total)}` : `${e.done} / ${e.total} ${e.phase === 'restore' ? 'databases' : 'files'}`;
                return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}%  ${amount}`;
              })()
            : `${e.done} ${e.phase === 'copy' ? 'bytes' : 'files'}`;
        err.write(`\r\x1b[K  ${e.repository} ${e.phase.padEnd(6)} ${line}`);
        bar = true;
        return;
      }
      clearBar();
      const text = describe(e);
      if (text) (e.type === 'repo-failed' || e.type === 'warning' ? err : out).write(`${text}\n`);
    },
    result(text) {
      clearBar();
      out.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    close: clearBar,
  };
}

/** For cron, which mails any output: nothing on success, a short summary on stderr otherwise. */
export function cronReporter(out: Writable, err: Writable): Reporter {
  const notes: string[] = [];
  let failures = 0;
  return {
    event(e) {
      if (e.type === 'repo-failed') failures++;
      if (e.type === 'repo-failed' || e.type === 'warning') notes.push(describe(e)!);
    },
    result(text) {
      out.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    close() {
      if (notes.length === 0) return;
      const head = failures ? `respaldo: ${failures} ${failures === 1 ? 'repository' : 'repositories'} failed` : 'respaldo: warnings';
      err.write(`${head}\n${notes.map((n) => `  ${n.replace(/\n/g, '\n  ')}`).join('\n')}\n`);
    },
  };
}

/** `--json`: one JSON object per line on stdout. */
export function jsonReporter(out: Writable): Reporter {
  return {
    event(e) {
      out.write(`${JSON.stringify({ ...e, time: new Date().toISOString() })}\n`);
    },
    result(_text, data) {
      out.write(`${JSON.stringify({ type: 'result', data })}\n`);
    },
    close() {},
  };
}

/** Shows another reporter's events as results: the demo narrates every step even when piped. */
export function narratingReporter(outer: Reporter): Reporter {
  return {
    event(e) {
      const text = describe(e);
      if (text) outer.result(`   ${text.replace(/\n/g, '\n   ')}`, e);
    },
    result: (text, data) => outer.result(text, data),
    close() {},
  };
}

/** Collects events, for tests that call commands directly. */
export function memoryReporter(): Reporter & { events: ReportEvent[]; results: unknown[]; texts: string[] } {
  const events: ReportEvent[] = [];
  const results: unknown[] = [];
  const texts: string[] = [];
  return {
    events,
    results,
    texts,
    event: (e) => void events.push(e),
    result: (text, data) => {
      texts.push(text);
      results.push(data);
    },
    close() {},
  };
}
