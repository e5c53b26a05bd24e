/**
 * The few places where SQLite and PostgreSQL need different DDL. Everything else in the
 * migrations is written once with kysely's schema builder.
 */
import type { CreateTableBuilder } from "kysely";

export type SqlDialectName = "sqlite" | "postgres";

/**
 * Adds an auto-increment `id` primary key. SQLite needs `integer primary key autoincrement`
 * (AUTOINCREMENT, not just a rowid alias, so ids are never reused even after the highest row
 * is deleted; watchers page by id). PostgreSQL has no AUTOINCREMENT keyword: kysely would emit
 * MySQL's `auto_increment` there, so it gets an identity column instead.
 */
export function addIdColumn<TB extends string, C extends string>(
  t: CreateTableBuilder<TB, C>,
  dialect: SqlDialectName,
): CreateTableBuilder<TB, C | "id"> {
  switch (dialect) {
    case "sqlite":
      return t.addColumn("id", "integer", (c) => c.primaryKey().autoIncrement());
    case "postgres":
      return t.addColumn("id", "bigint", (c) => c.generatedByDefaultAsIdentity().primaryKey());
  }
}
