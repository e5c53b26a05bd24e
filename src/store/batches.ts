/**
 * Statements whose bound parameters grow with their rows (INSERT ... VALUES, IN lists) go in
 * batches: SQLite refuses more than 32,766 parameters in one statement. Each caller picks its
 * batch size from its parameters per row.
 */

/** `items` in consecutive slices of at most `size`, in order. */
export function* batches<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
