import { mergeRuns, sliceColumns, type Columns, type Run } from './columns.js'

interface Pending {
  readonly columns: Columns
  /** The first row not yet taken. */
  at: number
  readonly rank: number
}

/** The first row at or after `from` whose ts is at least `bound` (rows are in ts order). */
function firstAtOrAbove(columns: Columns, from: number, bound: number): number {
  let low = from
  let high = columns.rows
  while (low < high) {
    const middle = (low + high) >>> 1
    if ((columns.ts[middle] as number) < bound) low = middle + 1
    else high = middle
  }
  return low
}

/**
 * Merges blocks that arrive in order of their earliest ts into one stream of sorted, unique rows
 * (docs/telemetry.md: one point per ts and tag set). Once a block with earliest ts `t` is next, no later
 * block holds a row before `t`, so every pending row before `t` is final: `take(t)` hands them out.
 * Pending blocks are those whose rows reach past the next block's start: one or two in the usual
 * case, where blocks follow each other in time.
 */
export class MergeWindow {
  #pending: Pending[] = []

  /** Adds a block's rows (sorted, unique) written at `rank`: a higher rank is a later write, which wins a field. */
  push(columns: Columns, rank: number): void {
    if (columns.rows > 0) this.#pending.push({ columns, at: 0, rank })
  }

  /** The final rows before `bound` (every pending row for Infinity), as sorted, unique columns; undefined when none. */
  take(bound: number): Columns | undefined {
    const runs: Run[] = []
    for (const pending of this.#pending) {
      const end = firstAtOrAbove(pending.columns, pending.at, bound)
      if (end > pending.at) runs.push({ columns: pending.columns, start: pending.at, end, rank: pending.rank })
      pending.at = end
    }
    if (runs.length > 0) this.#pending = this.#pending.filter((pending) => pending.at < pending.columns.rows)
    if (runs.length === 0) return undefined
    const only = runs[0] as Run
    // One block alone before the bound: its rows are sorted and unique already.
    return runs.length === 1 ? sliceColumns(only.columns, only.start, only.end) : mergeRuns(runs)
  }
}
