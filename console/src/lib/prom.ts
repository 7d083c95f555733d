/** One sample of a Prometheus text exposition: its labels and value. */
export interface PromSample {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Samples by metric name (a histogram's `_bucket`, `_sum`, `_count` are names of their own). */
export type PromMetrics = ReadonlyMap<string, readonly PromSample[]>

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+-?\d+)?\s*$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/y

function parseValue(text: string): number {
  switch (text) {
    case '+Inf':
      return Number.POSITIVE_INFINITY
    case '-Inf':
      return Number.NEGATIVE_INFINITY
    case 'NaN':
      return Number.NaN
    default:
      return Number(text)
  }
}

function parseLabels(body: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {}
  const inner = body.slice(1, -1)
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < inner.length) {
    const match = LABEL.exec(inner)
    if (match === null) return inner.slice(LABEL.lastIndex).trim() === '' ? labels : undefined
    labels[match[1] as string] = (match[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
  }
  return labels
}

/**
 * Parses the Prometheus text format (0.0.4) that `GET /metrics` answers. Comments and lines it
 * cannot read are skipped: a figure the console does not find is shown as missing, never guessed.
 */
export function parsePrometheus(text: string): PromMetrics {
  const metrics = new Map<string, PromSample[]>()
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    // A declared metric with no sample yet (a labelled counter nothing has counted) reads as 0.
    const declared = /^#\s*TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s/.exec(line)
    if (declared !== null && !metrics.has(declared[1] as string)) metrics.set(declared[1] as string, [])
    if (line === '' || line.startsWith('#')) continue
    const match = SAMPLE.exec(line)
    if (match === null) continue
    const labels = match[2] === undefined ? {} : parseLabels(match[2])
    if (labels === undefined) continue
    const name = match[1] as string
    const samples = metrics.get(name) ?? []
    samples.push({ labels, value: parseValue(match[3] as string) })
    metrics.set(name, samples)
  }
  return metrics
}

/** The sum of a metric's samples whose labels include `where` (0 when none match), or undefined when the hub does not expose it. */
export function promSum(metrics: PromMetrics, name: string, where: Readonly<Record<string, string>> = {}): number | undefined {
  const samples = metrics.get(name)?.filter((s) => Object.entries(where).every(([k, v]) => s.labels[k] === v))
  return samples?.reduce((sum, s) => sum + s.value, 0)
}

/** Per-second rate of a counter between two scrapes `elapsedMs` apart; undefined when unknown or reset. */
export function promRate(before: number | undefined, after: number | undefined, elapsedMs: number): number | undefined {
  if (before === undefined || after === undefined || elapsedMs <= 0 || after < before) return undefined
  return ((after - before) * 1000) / elapsedMs
}
