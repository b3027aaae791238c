/**
 * How node runs the agent. The agent's live heap is small (its per-file tables are typed
 * arrays outside it), but V8's defaults let garbage grow to several times that before
 * collecting it: a young generation of up to 48 MB and an old one that grows by half or
 * more at a time. Tighter settings keep a backup of 200,000 files under 150 MB at the cost
 * of a few more collections. They take full effect only on node's command line, so the
 * `respaldo` script's first line and the cron line `respaldo cron` prints carry them;
 * main.ts applies them late, in part, when node was started without them.
 */
export const V8_FLAGS = ['--max-semi-space-size=1', '--heap-growing-percent=20'] as const;
