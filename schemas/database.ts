/**
 * What a database backup records: the engine and server, each database's dump, and the
 * test restore (verification level `restore`). Names of databases and tables appear here;
 * passwords and connection strings never do.
 */
import { z } from 'zod';
import { isoTime } from './common.js';

export const databaseEngine = z.enum(['postgresql', 'mariadb', 'sqlite']);
export type DatabaseEngine = z.infer<typeof databaseEngine>;

export const databaseDump = z
  .object({
    /** The database's name (for SQLite, its file's name). */
    name: z.string().min(1),
    /** The dump's path inside the snapshot's data/ folder. */
    file: z.string().min(1),
    /** The tool and format: `pg_dump -Fc`, `mariadb-dump | gzip`, `online backup (one read transaction)`, … */
    format: z.string().min(1),
    bytes: z.number().int().nonnegative(),
    /** Tables and their rows when the dump was taken, counted in the dump's own snapshot where the engine allows it. */
    tables: z.number().int().nonnegative(),
    rows: z.number().int().nonnegative(),
    /**
     * MariaDB: the binary-log coordinates of the dump's snapshot, where a replay of the
     * binary logs starts (absent when the server writes no binary log).
     */
    binlog: z
      .object({
        file: z.string().min(1),
        position: z.number().int().nonnegative(),
        /** The GTID position at that point (@@gtid_binlog_pos), when the server has one. */
        gtid: z.string().min(1).optional(),
        /**
         * The server's clock (UTC) when the dump's snapshot began: a replay of the binary
         * logs from these coordinates can bring the database to any later time.
         */
        time: isoTime.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type DatabaseDump = z.infer<typeof databaseDump>;

/**
 * Point-in-time recovery: where a restore starts (PostgreSQL: the snapshot's base backup;
 * MariaDB: each dump's binary-log coordinates, in `databases[].binlog`) and the state of
 * the log archive (WAL, binary logs) when the backup ended, with the window a restore can
 * reach.
 */
export const pitrInfo = z
  .object({
    /** PostgreSQL's base backup; MariaDB has none, its dumps are the starting points. */
    base: z
      .object({
        /** The base backup's folder inside the snapshot's data/. */
        file: z.string().min(1),
        format: z.string().min(1),
        bytes: z.number().int().nonnegative(),
        start_lsn: z.string().min(1),
        timeline: z.number().int().positive(),
        started: isoTime,
        /** The earliest time a restore from this base backup can reach. */
        finished: isoTime,
        checks: z.array(z.string()),
      })
      .strict()
      .optional(),
    archive: z
      .object({
        /** `<host>/<repository>/archive/wal` (or `archive/binlog`), relative to the target. */
        location: z.string().min(1),
        files: z.number().int().nonnegative(),
        bytes: z.number().int().nonnegative(),
        /** The first and last WAL segments (binary logs) archived. */
        first: z.string().nullable(),
        last: z.string().nullable(),
        /** Segments (binary logs) missing between them (at most 20 named): a restore cannot cross a gap. */
        gaps: z.array(z.string()),
        /**
         * The recoverable window: from the end of the oldest usable base backup (MariaDB: the
         * last dump of the oldest usable snapshot) to the last commit archived (MariaDB: the
         * last event of the last binary log archived).
         */
        window: z.object({ from: isoTime, to: isoTime }).strict().nullable(),
      })
      .strict(),
  })
  .strict();
export type PitrInfo = z.infer<typeof pitrInfo>;

export const databaseInfo = z
  .object({
    engine: databaseEngine,
    /** The server's version, e.g. "15.19"; for SQLite the library's. */
    version: z.string().min(1),
    /** Where the server was reached: "local socket, port 5432", "db01.example:5432", "local socket" (MariaDB); for SQLite "file". */
    server: z.string().min(1),
    databases: z.array(databaseDump),
    pitr: pitrInfo.optional(),
  })
  .strict()
  .refine((info) => !info.pitr || (info.engine === 'postgresql') === (info.pitr.base !== undefined), {
    message: 'a PostgreSQL point-in-time recovery names its base backup; a MariaDB one starts from the dumps and has none',
    path: ['pitr', 'base'],
  });
export type DatabaseInfo = z.infer<typeof databaseInfo>;

/** The test restore: each dump loaded into a throwaway instance and checked. */
export const restoreCheck = z
  .object({
    result: z.enum(['ok', 'failed']),
    /** What the dumps were restored into, e.g. "PostgreSQL 15.19 throwaway instance (initdb, private socket)". */
    instance: z.string().min(1),
    databases: z.array(
      z
        .object({
          name: z.string().min(1),
          tables: z.number().int().nonnegative(),
          rows: z.number().int().nonnegative(),
          /** Engine checks run on the restored copy: "integrity_check: ok", "row counts: match". */
          checks: z.array(z.string()),
          /** Tables whose rows differ from the source (at most 20 named). */
          mismatches: z.array(z.string()),
        })
        .strict(),
    ),
    seconds: z.number().nonnegative(),
  })
  .strict();
export type RestoreCheck = z.infer<typeof restoreCheck>;
