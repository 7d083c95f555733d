import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appendLine, LineBuffer, MAX_INFLUX_TIME_MS, seriesKey, type FieldValue, type LineRefusal } from '../src/telemetry/influx-line.js'
import { seededRandom } from '../../test/support/hostile.js'
import { startInfluxd, type Influxd } from '../../test/support/influxd.js'

interface Good {
  readonly name: string
  readonly measurement?: string
  readonly tags: Record<string, string>
  readonly fields: Record<string, FieldValue>
  readonly line: string
  /** Tags as InfluxDB stores them when they differ from `tags` (an empty value is no tag). */
  readonly storedTags?: Record<string, string>
}

// Every fixture has its own timestamp (its index), so all of them can live in one database.
const good: readonly Good[] = [
  { name: 'integer is a float, no i suffix', tags: { device: 'd1' }, fields: { v: 21 }, line: 'telemetry,device=d1 v=21' },
  { name: 'fraction in the same field', tags: { device: 'd1' }, fields: { v: 21.5 }, line: 'telemetry,device=d1 v=21.5' },
  { name: 'huge number in exponent form', tags: { device: 'd1' }, fields: { v: 1e21 }, line: 'telemetry,device=d1 v=1e+21' },
  { name: 'smallest subnormal', tags: { device: 'd1' }, fields: { v: 5e-324 }, line: 'telemetry,device=d1 v=5e-324' },
  { name: 'negative zero keeps its sign', tags: { device: 'd1' }, fields: { v: -0 }, line: 'telemetry,device=d1 v=-0' },
  { name: 'large negative exponent form', tags: { device: 'd1' }, fields: { v: -1.5e300 }, line: 'telemetry,device=d1 v=-1.5e+300' },
  { name: 'small exponent form', tags: { device: 'd1' }, fields: { v: 1e-7 }, line: 'telemetry,device=d1 v=1e-7' },
  { name: '2^53', tags: { device: 'd1' }, fields: { v: 2 ** 53 }, line: 'telemetry,device=d1 v=9007199254740992' },
  { name: 'largest double', tags: { device: 'd1' }, fields: { v: Number.MAX_VALUE }, line: 'telemetry,device=d1 v=1.7976931348623157e+308' },
  { name: 'booleans', tags: { device: 'd1' }, fields: { on: true, off: false }, line: 'telemetry,device=d1 on=true,off=false' },
  { name: 'plain string', tags: { device: 'd1' }, fields: { s: 'hello' }, line: 'telemetry,device=d1 s="hello"' },
  { name: 'string: quote and backslash', tags: { device: 'd1' }, fields: { s: 'a "q" \\ b' }, line: 'telemetry,device=d1 s="a \\"q\\" \\\\ b"' },
  { name: 'string: trailing backslash', tags: { device: 'd1' }, fields: { s: 'x\\' }, line: 'telemetry,device=d1 s="x\\\\"' },
  { name: 'string: backslash then quote', tags: { device: 'd1' }, fields: { s: '\\"' }, line: 'telemetry,device=d1 s="\\\\\\""' },
  { name: 'string: comma space equals stay', tags: { device: 'd1' }, fields: { s: 'a,b c=d' }, line: 'telemetry,device=d1 s="a,b c=d"' },
  { name: 'string: unicode, tab, CR', tags: { device: 'd1' }, fields: { s: 'é ✓ 🚀\t\r' }, line: 'telemetry,device=d1 s="é ✓ 🚀\t\r"' },
  {
    name: 'string: a newline cannot start a point of its own',
    tags: { device: 'd1' },
    fields: { s: 'x\ntelemetry,device=victim v=666 1\n#' },
    line: 'telemetry,device=d1 s="x\ntelemetry,device=victim v=666 1\n#"',
  },
  { name: 'tag value: comma, space, equals', tags: { device: 'd1', t: 'a,b c=d' }, fields: { v: 1 }, line: 'telemetry,device=d1,t=a\\,b\\ c\\=d v=1' },
  { name: 'tag key: comma, space, equals', tags: { device: 'd1', 'k a,b=c': 'x' }, fields: { v: 1 }, line: 'telemetry,device=d1,k\\ a\\,b\\=c=x v=1' },
  { name: 'field key: comma, space, equals', tags: { device: 'd1' }, fields: { 'f a,b=c': 1 }, line: 'telemetry,device=d1 f\\ a\\,b\\=c=1' },
  { name: 'field key: a quote is escaped', tags: { device: 'd1' }, fields: { 'q"': 1 }, line: 'telemetry,device=d1 q\\"=1' },
  { name: 'field key: even backslash run before a quote', tags: { device: 'd1' }, fields: { 'r\\\\"': 1 }, line: 'telemetry,device=d1 r\\\\\\"=1' },
  { name: 'tag value: backslash quote stays', tags: { device: 'd1', t: 'x\\"' }, fields: { v: 1 }, line: 'telemetry,device=d1,t=x\\" v=1' },
  { name: 'tag value: lone backslash stays', tags: { device: 'd1', t: 'C:\\dir\\x' }, fields: { v: 1 }, line: 'telemetry,device=d1,t=C:\\dir\\x v=1' },
  { name: 'tag value: even backslash run before space', tags: { device: 'd1', t: 'a\\\\ b' }, fields: { v: 1 }, line: 'telemetry,device=d1,t=a\\\\\\ b v=1' },
  { name: 'tag value: quote, hash, unicode', tags: { device: 'd1', t: '#"q" ✓' }, fields: { v: 1 }, line: 'telemetry,device=d1,t=#"q"\\ ✓ v=1' },
  { name: 'tag value: tab and CR stay', tags: { device: 'd1', t: 'a\tb\rc' }, fields: { v: 1 }, line: 'telemetry,device=d1,t=a\tb\rc v=1' },
  {
    name: 'empty tag value is omitted',
    tags: { device: 'd1', empty: '' },
    fields: { v: 1 },
    line: 'telemetry,device=d1 v=1',
    storedTags: { device: 'd1' },
  },
  { name: 'tags are sorted', tags: { z: '1', device: 'd1', a: '2' }, fields: { v: 1 }, line: 'telemetry,a=2,device=d1,z=1 v=1' },
  { name: 'no tags', tags: {}, fields: { v: 1 }, line: 'telemetry v=1' },
  { name: 'measurement: comma and space', measurement: 'tele metry,x="y"', tags: { device: 'd1' }, fields: { v: 1 }, line: 'tele\\ metry\\,x="y",device=d1 v=1' },
]

interface Bad {
  readonly name: string
  readonly measurement?: string
  readonly tags?: Record<string, string>
  readonly fields?: Record<string, FieldValue>
  readonly ts?: number
  readonly refusal: LineRefusal
}

const bad: readonly Bad[] = [
  { name: 'newline in a tag value', tags: { t: 'a\nb' }, refusal: 'unwritable_text' },
  { name: 'newline in a tag key', tags: { 'a\nb': 'x' }, refusal: 'unwritable_text' },
  { name: 'newline in a field key', fields: { 'a\nb': 1 }, refusal: 'unwritable_text' },
  { name: 'tag value ends in a backslash', tags: { t: 'C:\\temp\\' }, refusal: 'unwritable_text' },
  { name: 'tag value ends in two backslashes', tags: { t: 'x\\\\' }, refusal: 'unwritable_text' },
  { name: 'odd backslash run before a space', tags: { t: 'a\\ b' }, refusal: 'unwritable_text' },
  { name: 'odd backslash run before an equals', tags: { t: 'a\\=b' }, refusal: 'unwritable_text' },
  { name: 'odd backslash run before a comma in a field key', fields: { 'a\\,b': 1 }, refusal: 'unwritable_text' },
  { name: 'odd backslash run before a quote in a field key', fields: { 'a\\"b': 1 }, refusal: 'unwritable_text' },
  { name: 'empty tag key', tags: { '': 'x' }, refusal: 'unwritable_text' },
  { name: 'backslash in a measurement', measurement: 'tele\\metry', refusal: 'unwritable_text' },
  { name: 'NaN', fields: { v: Number.NaN }, refusal: 'bad_value' },
  { name: 'Infinity', fields: { v: Number.POSITIVE_INFINITY }, refusal: 'bad_value' },
  { name: 'no fields', fields: {}, refusal: 'empty_fields' },
  { name: 'field key time', fields: { time: 1 }, refusal: 'reserved_key' },
  { name: 'tag key time', tags: { time: 'x' }, refusal: 'reserved_key' },
  { name: 'fractional timestamp', ts: 1.5, refusal: 'bad_timestamp' },
  { name: 'timestamp beyond 2262', ts: MAX_INFLUX_TIME_MS + 1, refusal: 'bad_timestamp' },
  { name: 'timestamp NaN', ts: Number.NaN, refusal: 'bad_timestamp' },
  { name: 'measurement starting with # (a comment)', measurement: '#telemetry', refusal: 'bad_name' },
  { name: 'empty measurement', measurement: '', refusal: 'bad_name' },
]

describe('appendLine fixtures', () => {
  it.each(good.map((fixture, index) => ({ ...fixture, ts: 1000 + index })))('$name', (fixture) => {
    const out: string[] = []
    expect(appendLine(out, fixture.measurement ?? 'telemetry', fixture.tags, fixture.fields, fixture.ts)).toBeUndefined()
    expect(out).toEqual([`${fixture.line} ${fixture.ts}`])
  })

  it.each(bad)('refuses: $name', (fixture) => {
    const out = ['before']
    const refusal = appendLine(out, fixture.measurement ?? 'telemetry', fixture.tags ?? {}, fixture.fields ?? { v: 1 }, fixture.ts ?? 1000)
    expect(refusal).toBe(fixture.refusal)
    expect(out).toEqual(['before'])
  })

  it('timestamps print exactly as String(ts) on both sides of every cached boundary', () => {
    const samples = [999_999, 1_000_000, 1_000_001, 1_699_999_999_999, 1_700_000_000_000, 1_700_000_000_001, 1_700_000_999_999]
    for (let i = 0; i < 1000; i++) samples.push(1_700_000_000_000 + i * 997_001, -1_700_000_000_000 + i * 997_001)
    const out: string[] = []
    for (const ts of samples) expect(appendLine(out, 'm', {}, { v: 1 }, ts)).toBeUndefined()
    expect(out).toEqual(samples.map((ts) => `m v=1 ${String(ts)}`))
  })

  it('writes the extreme timestamps InfluxDB accepts', () => {
    const out: string[] = []
    expect(appendLine(out, 'm', {}, { v: 1 }, MAX_INFLUX_TIME_MS)).toBeUndefined()
    expect(appendLine(out, 'm', {}, { v: 1 }, -MAX_INFLUX_TIME_MS)).toBeUndefined()
    expect(appendLine(out, 'm', {}, { v: 1 }, 0)).toBeUndefined()
    expect(out).toEqual(['m v=1 9223372036854', 'm v=1 -9223372036854', 'm v=1 0'])
  })
})

describe('LineBuffer', () => {
  const series = (device: string): Uint8Array => {
    const bytes = seriesKey('telemetry', { device })
    if (typeof bytes === 'string') throw new Error(bytes)
    return bytes
  }

  it('writes every number as String() does (digit by digit where it can), -0 with its sign', () => {
    const random = seededRandom(16)
    const values = [0, -0, 1, -1, 0.5, 0.1 + 0.2, 1.005, 20.3, 45.5, 3.3, 1e-4, 1e-5, 1e-7, 1e9, 1e9 - 1e-4, 999_999_999.9999, 123_456_789.1234]
    values.push(2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e21, 5e-324, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON)
    for (let i = 0; i < 200_000; i++) {
      const magnitude = 10 ** Math.floor(random() * 13)
      const sign = random() < 0.3 ? -1 : 1
      const scale = 10 ** Math.floor(random() * 7)
      values.push((sign * Math.round(random() * magnitude)) / scale, sign * random() * magnitude, (sign * (Math.round(random() * 1e9) + 0.5)) / scale)
    }
    const buffer = new LineBuffer(16)
    const device = series('d')
    expect(values.map((v) => buffer.point('d', device, { v }, 7)).filter((refusal) => refusal !== undefined)).toStrictEqual([])
    const written = Array.from({ length: buffer.lines }, (_, i) => buffer.line(i))
    const expected = values.map((v) => `telemetry,device=d v=${Object.is(v, -0) ? '-0' : String(v)} 7`)
    expect(written.filter((line, i) => line !== expected[i])).toStrictEqual([])
  })

  it('keeps lines, their devices and bodies of any range; a refused reading leaves nothing behind', () => {
    const buffer = new LineBuffer(16)
    expect(buffer.point('a', series('a'), { v: 1, s: 'é "x"' }, 1)).toBeUndefined()
    expect(buffer.point('b', series('b'), { time: 2 }, 2)).toBe('reserved_key')
    expect(buffer.point('b', series('b'), { v: 2, w: Number.NaN }, 2)).toBe('bad_value')
    expect(buffer.point('b', series('b'), { v: 3 }, 3.5)).toBe('bad_timestamp')
    expect(buffer.point('b', series('b'), {}, 3)).toBe('empty_fields')
    expect(buffer.point('c', series('c'), { on: true }, 3)).toBeUndefined()
    expect(buffer.point('d', series('d'), { v: -2.25 }, -4)).toBeUndefined()
    const lines = ['telemetry,device=a v=1,s="é \\"x\\"" 1', 'telemetry,device=c on=true 3', 'telemetry,device=d v=-2.25 -4']
    expect([buffer.lines, [0, 1, 2].map((i) => [buffer.line(i), buffer.device(i)])]).toStrictEqual([3, lines.map((line, i) => [line, 'acd'[i]])])
    const text = (from: number, to: number): string => Buffer.from(buffer.body(from, to)).toString('utf8')
    expect([text(0, 3), text(1, 2), text(1, 3), text(2, 2)]).toStrictEqual([lines.join('\n'), lines[1], `${lines[1]}\n${lines[2]}`, ''])
    expect(buffer.byteLength).toBe(Buffer.byteLength(lines.join('\n')) + 1)
    buffer.clear()
    expect([buffer.lines, buffer.byteLength]).toStrictEqual([0, 0])
  })
})

type Series = { name: string; columns: string[]; values: unknown[][] }

/** The series of the first statement of an InfluxDB `/query` answer. */
function seriesOf(answer: unknown): Series[] {
  const results = (answer as { results?: Array<{ series?: Series[]; error?: string }> }).results
  const first = results?.[0]
  if (first === undefined) throw new Error(`unexpected answer ${JSON.stringify(answer)}`)
  if (first.error !== undefined) throw new Error(first.error)
  return first.series ?? []
}

/** Rows of `SELECT * FROM <measurement>` as objects keyed by time, null columns left out. */
async function rows(influx: Influxd, measurement: string): Promise<Map<number, Record<string, unknown>>> {
  const quoted = measurement.replace(/\\/g, '\\\\').replace(/"/g, '\\"')
  const byTime = new Map<number, Record<string, unknown>>()
  for (const series of seriesOf(await influx.query(`SELECT * FROM "${quoted}"`, 'lp'))) {
    for (const values of series.values) {
      const row: Record<string, unknown> = {}
      series.columns.forEach((column, i) => {
        if (column !== 'time' && values[i] !== null) row[column] = values[i]
      })
      byTime.set(values[0] as number, row)
    }
  }
  return byTime
}

async function post(influx: Influxd, body: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${influx.url}/write?db=lp&precision=ms`, { method: 'POST', body })
  return { status: response.status, text: await response.text() }
}

describe('appendLine against a real influxd 1.x', () => {
  let influx: Influxd

  beforeAll(async () => {
    influx = await startInfluxd()
    await influx.query('CREATE DATABASE lp')
  })
  afterAll(async () => {
    await influx?.destroy()
  })

  it('InfluxDB parses every fixture as intended: same tags, same fields, same types', async () => {
    const out: string[] = []
    good.forEach((fixture, index) => appendLine(out, fixture.measurement ?? 'telemetry', fixture.tags, fixture.fields, 1000 + index))
    expect(await post(influx, out.join('\n'))).toEqual({ status: 204, text: '' })

    const telemetry = await rows(influx, 'telemetry')
    const other = await rows(influx, 'tele metry,x="y"')
    expect(telemetry.size + other.size).toBe(good.length)
    good.forEach((fixture, index) => {
      const stored = (fixture.measurement === undefined ? telemetry : other).get(1000 + index)
      expect(stored, fixture.name).toEqual({ ...(fixture.storedTags ?? fixture.tags), ...fixture.fields })
    })
    // -0 survives the round trip with its sign (toEqual would not tell -0 from 0).
    expect(Object.is(telemetry.get(1004)?.['v'], -0)).toBe(true)

    const fieldTypes = Object.fromEntries(
      seriesOf(await influx.query('SHOW FIELD KEYS FROM telemetry', 'lp'))[0]?.values.map(([key, type]) => [key, type]) ?? [],
    )
    // docs/telemetry.md: 21 and 21.5 are one field type.
    expect(fieldTypes).toEqual({ v: 'float', on: 'boolean', off: 'boolean', s: 'string', 'f a,b=c': 'float', 'q"': 'float', 'r\\\\"': 'float' })
  })

  it('a device string with newlines lands as exactly one point, no injected point', async () => {
    const text = 'line one\ntelemetry,device=victim v=666 2000\n#" 2000\ntelemetry,device=victim v=667 2000'
    const out: string[] = []
    appendLine(out, 'injection', { device: 'd2' }, { s: text }, 2000)
    appendLine(out, 'injection', { device: 'd3' }, { v: 1 }, 2001)
    expect(await post(influx, out.join('\n'))).toEqual({ status: 204, text: '' })
    const stored = await rows(influx, 'injection')
    expect([...stored.entries()]).toEqual([
      [2000, { device: 'd2', s: text }],
      [2001, { device: 'd3', v: 1 }],
    ])
  })

  it('random hostile texts: every line appendLine writes lands exactly, as one point, and nothing else lands', async () => {
    // A seeded generator over the characters that matter to line protocol, so a failure replays.
    let seed = 20_240_611
    const random = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31)
    const alphabet = ['\\', '"', ' ', ',', '=', '\n', 'a', '#', '\t', 'é']
    const text = (max: number): string => {
      let out = ''
      for (let n = Math.floor(random() * max); n > 0; n--) out += alphabet[Math.floor(random() * alphabet.length)]
      return out
    }
    const out: string[] = []
    const expected = new Map<number, Record<string, unknown>>()
    let refused = 0
    for (let i = 0; i < 2000; i++) {
      const tags = { device: `f${i}`, t: text(8), [`k_${text(3)}`]: text(6) }
      const fields = { [`f_${text(4)}`]: text(12), v: i }
      const ts = 10_000 + i
      if (appendLine(out, 'fuzz', tags, fields, ts) !== undefined) {
        refused++
        continue
      }
      // An empty tag value is no tag; an empty string field is a value.
      const stored: Record<string, unknown> = { ...fields }
      for (const [key, value] of Object.entries(tags)) if (value !== '') stored[key] = value
      expected.set(ts, stored)
    }
    expect(refused).toBeGreaterThan(0)
    expect(expected.size).toBeGreaterThan(400)
    expect(await post(influx, out.join('\n'))).toEqual({ status: 204, text: '' })
    const stored = await rows(influx, 'fuzz')
    expect(stored).toEqual(expected)
  })

  it('why the odd backslash run is refused: written naively, it lets a string inject a point', async () => {
    // The tag value `a\ b\="` is stored right by the tag parser, but influxd's line splitter pairs the
    // backslashes differently, then tracks quotes inside the tag set, so the newline of the string ends the line.
    expect(appendLine([], 'naive', { g: 'a\\ b\\="' }, { s: 'x' }, 3000)).toBe('unwritable_text')
    const naive = 'naive,g=a\\\\ b\\\\=" s="x\nnaive,device=victim v=666 3001\n#" 3000'
    const answer = await post(influx, naive)
    expect(answer.status).toBe(400)
    expect([...(await rows(influx, 'naive')).entries()]).toEqual([[3001, { device: 'victim', v: 666 }]])
  })

  it('why a trailing backslash and a time key are refused: InfluxDB refuses them for good', async () => {
    expect(await post(influx, 'refused,t=x\\ v=1 4000')).toMatchObject({ status: 400 })
    expect(await post(influx, 'refused,t=x\\\\ v=1 4000')).toMatchObject({ status: 400 })
    const time = await post(influx, 'refused time=1 4000')
    expect(time.status).toBe(400)
    expect(time.text).toContain('invalid field name')
    expect((await rows(influx, 'refused')).size).toBe(0)
  })
})
