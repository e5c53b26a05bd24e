/**
 * The built-in provider's table source: the complete set of tables it was last given, in
 * memory. The Router reads tables through the same interface it reads the store with
 * (`RouteTableSource`), so the provider drives the unchanged Router: `replace` announces a
 * change (`onChange`) and the Router reloads at once.
 */
import type { RouteTable } from "../../core/model.js";
import type { RouteTableSource } from "../../router/router.js";

type ChangeKind = Parameters<Parameters<RouteTableSource["onChange"]>[0]>[0];

export class TableFeed implements RouteTableSource {
  #tables: RouteTable[] = [];
  #version = 0;
  /** The version the Router last read: its reload after that has these tables in force. */
  #readVersion = 0;
  readonly #listeners = new Set<(what: ChangeKind) => void>();

  /** Makes `tables` the set; returns its version (see `readVersion`). */
  replace(tables: readonly RouteTable[]): number {
    // A copy: the caller may keep changing its objects; the Router compares by content.
    this.#tables = structuredClone([...tables]);
    this.#version++;
    for (const l of this.#listeners) l("routeTables");
    return this.#version;
  }

  /** The version of the set the Router read last. */
  get readVersion(): number {
    return this.#readVersion;
  }

  async listRouteTables(): Promise<RouteTable[]> {
    this.#readVersion = this.#version;
    return this.#tables;
  }

  async routeTablesFingerprint(): Promise<string> {
    return String(this.#version);
  }

  onChange(listener: (what: ChangeKind) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
