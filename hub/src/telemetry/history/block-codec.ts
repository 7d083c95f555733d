// The bytes of a history block: columns (columns.ts) in a compact binary layout that a query
// reads back with a few copies, without parsing a reading at a time.
//
//   u8 version (1) | u8 flags (bit 0: tagged) | u16 columns | u32 rows
//   f64[rows] ts, little-endian, ascending
//   tagged:  u32 tag sets (after the implied '') | each: u16 length, UTF-8 key | pad to 4 | u32[rows] tag set of each row
//   columns: each: u8 name length, name (ASCII, docs/protocol.md key pattern) | u8 kind
//            kind 0: pad to 8 | f64[rows] numbers, NaN where the row has none
//            kind 1: u32 length, UTF-8 JSON array of the values, null where the row has none
// Arrays sit at offsets aligned to their element size: lmdb hands each value out in a buffer of
// its own, so a query reads them in place (typed-array views), without a copy.
import { HubError } from '../../errors.js'
import type { Column, Columns, MetricValue } from './columns.js'

const VERSION = 1
const HEADER_BYTES = 8
const TAGGED = 1
const KIND_NUMBERS = 0
const KIND_VALUES = 1

/** What a block says of itself without decoding its columns. */
export interface BlockHeader {
  readonly rows: number
  readonly minTs: number
  readonly maxTs: number
}

/** Reads a block's row count and time span (three reads, no copy). */
export function blockHeader(bytes: Uint8Array): BlockHeader {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const rows = view.readUInt32LE(4)
  return { rows, minTs: view.readDoubleLE(HEADER_BYTES), maxTs: view.readDoubleLE(HEADER_BYTES + 8 * (rows - 1)) }
}

/** Padding that brings `at` to a multiple of `size`. */
const pad = (at: number, size: number): number => (size - (at % size)) % size

/** `count` little-endian numbers of `size` bytes at `offset`: a view when aligned in memory, else a copy. */
function typed<T extends Float64Array | Uint32Array>(make: { new (buffer: ArrayBufferLike, offset: number, length: number): T; new (length: number): T }, size: number, view: Buffer, offset: number, count: number): T {
  const at = view.byteOffset + offset
  if (at % size === 0) return new make(view.buffer, at, count)
  const out = new make(count)
  new Uint8Array(out.buffer).set(view.subarray(offset, offset + size * count))
  return out
}
const floats = (view: Buffer, offset: number, count: number): Float64Array => typed(Float64Array, 8, view, offset, count)

/** Encodes columns (sorted, one row per point) as a block. */
export function encodeBlock(columns: Columns): Buffer {
  const { rows } = columns
  const tagKeys = columns.tags === undefined ? [] : columns.tagKeys.slice(1).map((key) => Buffer.from(key, 'utf8'))
  const values = new Map<string, Buffer>()
  let size = HEADER_BYTES + 8 * rows
  if (columns.tags !== undefined) {
    size += 4 + tagKeys.reduce((sum, key) => sum + 2 + key.byteLength, 0)
    size += pad(size, 4) + 4 * rows
  }
  for (const [name, column] of columns.columns) {
    size += 2 + name.length
    if (column.numeric) size += pad(size, 8) + 8 * rows
    else {
      const json = Buffer.from(JSON.stringify(Array.from(column.values, (value) => value ?? null)), 'utf8')
      values.set(name, json)
      size += 4 + json.byteLength
    }
  }
  const out = Buffer.alloc(size)
  out[0] = VERSION
  out[1] = columns.tags === undefined ? 0 : TAGGED
  out.writeUInt16LE(columns.columns.size, 2)
  out.writeUInt32LE(rows, 4)
  let at = HEADER_BYTES
  out.set(new Uint8Array(columns.ts.buffer, columns.ts.byteOffset, 8 * rows), at)
  at += 8 * rows
  if (columns.tags !== undefined) {
    out.writeUInt32LE(tagKeys.length, at)
    at += 4
    for (const key of tagKeys) {
      out.writeUInt16LE(key.byteLength, at)
      out.set(key, at + 2)
      at += 2 + key.byteLength
    }
    at += pad(at, 4)
    out.set(new Uint8Array(columns.tags.buffer, columns.tags.byteOffset, 4 * rows), at)
    at += 4 * rows
  }
  for (const [name, column] of columns.columns) {
    out[at] = name.length
    out.write(name, at + 1, 'latin1')
    at += 1 + name.length
    if (column.numeric) {
      out[at++] = KIND_NUMBERS
      at += pad(at, 8)
      out.set(new Uint8Array(column.values.buffer, column.values.byteOffset, 8 * rows), at)
      at += 8 * rows
    } else {
      out[at++] = KIND_VALUES
      const json = values.get(name) as Buffer
      out.writeUInt32LE(json.byteLength, at)
      out.set(json, at + 4)
      at += 4 + json.byteLength
    }
  }
  return out
}

/**
 * Decodes a block; with `wanted`, only those metrics' columns (the others are skipped unread).
 * @throws HubError `HUB_ERR_STORE_DAMAGED` when the bytes are not a block this version wrote.
 */
export function decodeBlock(bytes: Uint8Array, wanted?: ReadonlySet<string>): Columns {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view[0] !== VERSION) throw new HubError('HUB_ERR_STORE_DAMAGED', `a history block has version ${String(view[0])}, not ${VERSION}`)
  const columnCount = view.readUInt16LE(2)
  const rows = view.readUInt32LE(4)
  let at = HEADER_BYTES
  const ts = floats(view, at, rows)
  at += 8 * rows
  let tags: Uint32Array | undefined
  const tagKeys = ['']
  if ((view[1] as number) & TAGGED) {
    const count = view.readUInt32LE(at)
    at += 4
    for (let i = 0; i < count; i++) {
      const length = view.readUInt16LE(at)
      tagKeys.push(view.toString('utf8', at + 2, at + 2 + length))
      at += 2 + length
    }
    at += pad(at, 4)
    tags = typed(Uint32Array, 4, view, at, rows)
    at += 4 * rows
  }
  const columns = new Map<string, Column>()
  for (let i = 0; i < columnCount; i++) {
    const nameLength = view[at] as number
    const name = view.toString('latin1', at + 1, at + 1 + nameLength)
    at += 1 + nameLength
    const kind = view[at++]
    const keep = wanted === undefined || wanted.has(name)
    if (kind === KIND_NUMBERS) {
      at += pad(at, 8)
      if (keep) columns.set(name, { numeric: true, values: floats(view, at, rows) })
      at += 8 * rows
    } else {
      const length = view.readUInt32LE(at)
      if (keep) {
        const parsed = JSON.parse(view.toString('utf8', at + 4, at + 4 + length)) as Array<MetricValue | null>
        columns.set(name, { numeric: false, values: parsed.map((value) => value ?? undefined) })
      }
      at += 4 + length
    }
  }
  return { rows, ts, tags, tagKeys, columns }
}
