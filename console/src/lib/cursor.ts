/** docs/protocol.md: the device id alphabet, in the byte order the registry lists ids in. */
export const ID_ALPHABET = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz'
/** docs/protocol.md: longest device id. */
export const MAX_ID_CHARS = 64

const ID_CHARS = /^[A-Za-z0-9_-]{1,64}$/

/** Whether `prefix` can start a device id (docs/protocol.md). */
export function isIdPrefix(prefix: string): boolean {
  return ID_CHARS.test(prefix)
}

/**
 * The `after` cursor (exclusive) from which the listing starts at the first id >= `prefix`: the
 * greatest valid id below `prefix`. The listing is in id order, so a search by id prefix reads
 * one page from there and stops at the first id without the prefix, at any fleet size.
 * `undefined` means "from the start".
 */
export function cursorBefore(prefix: string): string | undefined {
  if (!isIdPrefix(prefix)) throw new RangeError(`"${prefix}" cannot start a device id`)
  const head = prefix.slice(0, -1)
  const last = prefix.slice(-1)
  const index = ID_ALPHABET.indexOf(last)
  // No id lies between `head` and `head` + the smallest character, so `head` itself is the cursor.
  if (index === 0) return head === '' ? undefined : head
  const largest = ID_ALPHABET[ID_ALPHABET.length - 1] as string
  return head + (ID_ALPHABET[index - 1] as string) + largest.repeat(MAX_ID_CHARS - prefix.length)
}

/**
 * The highest audit seq, found with O(log n) one-entry reads: `hasAfter(seq)` tells whether an
 * entry follows `seq`. Gallops up to a bound, then bisects. 0 when the log is empty.
 */
export async function findLastSeq(hasAfter: (seq: number) => Promise<boolean>): Promise<number> {
  if (!(await hasAfter(0))) return 0
  let low = 0
  let high = 1
  while (await hasAfter(high)) {
    low = high
    high *= 2
  }
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2)
    if (await hasAfter(mid)) low = mid
    else high = mid
  }
  return high
}
