/** "12 s ago", "3 min ago", "2 h ago", "4 d ago"; "in the future" for clock skew. */
export function ago(ms: number, now: number): string {
  const seconds = Math.round((now - ms) / 1000)
  if (seconds < -5) return 'in the future'
  if (seconds < 60) return `${Math.max(0, seconds)} s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`
  return `${Math.floor(seconds / 86_400)} d ago`
}

/** An ISO time as local date and time, seconds included; the text itself when it is not a time. */
export function dateTime(iso: string | number): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return String(iso)
  return date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' })
}

/** Whole numbers with thousands separators. */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

/** Bytes in B, KiB, MiB, GiB. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`
}

/** A metric value as text: numbers trimmed to 6 significant digits, booleans and text as they are. */
export function metricText(value: number | boolean | string): string {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)))
  return String(value)
}

/** Any JSON value as indented text, for `<pre>` (rendered as text, never as HTML). */
export function jsonText(value: unknown): string {
  return value === undefined ? '' : JSON.stringify(value, null, 2)
}
