// Summarises a V8 .cpuprofile (what `node --cpu-prof` writes): the functions with the most self
// time, and self time by package. `npm run bench -- --profile` profiles the hub of each scenario
// and prints this; alone: `npx tsx test/bench/cpuprofile.ts FILE.cpuprofile [top]`.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: readonly number[]
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

/** One function's (or package's) self time. */
export interface HotSpot {
  readonly name: string
  readonly selfMs: number
  readonly percent: number
}

/** Stretches of the event loop busy without a break, grouped by the function that ran them. */
export interface LongTasks {
  /** The function every sample of the stretch ran under (the deepest such frame). */
  readonly entry: string
  readonly count: number
  readonly totalMs: number
  readonly maxMs: number
}

/** What `summariseProfile` finds. */
export interface ProfileSummary {
  readonly totalMs: number
  /** Self time spent idle (waiting in the event loop), in percent. */
  readonly idlePercent: number
  readonly functions: readonly HotSpot[]
  readonly packages: readonly HotSpot[]
  /** Tasks that ran LONG_TASK_MS or more at a stretch (what blocks the event loop), longest total first. */
  readonly longTasks: readonly LongTasks[]
}

/** A busy stretch at least this long counts as a long task, in ms. */
const LONG_TASK_MS = 20

const frameName = (frame: ProfileNode['callFrame']): string => {
  const file = frame.url.replace(/^.*\/(node_modules\/|hub\/|bridge\/|device-sdk\/)/, '$1')
  return `${frame.functionName || '(anonymous)'} ${file === '' ? '' : `${file}:${frame.lineNumber + 1}`}`.trim()
}

/**
 * Finds runs of LONG_TASK_MS or more where the main thread ran one task without going idle (what
 * delays every other callback, REST answers included), and names each by the deepest frame that
 * 90% of its samples ran under.
 */
function longTasks(profile: CpuProfile, byId: ReadonlyMap<number, ProfileNode>): LongTasks[] {
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const stackOf = (id: number): number[] => {
    const stack: number[] = []
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(at)
    return stack.reverse()
  }
  const groups = new Map<string, { count: number; totalMs: number; maxMs: number }>()
  const close = (samples: number[], us: number): void => {
    if (us < LONG_TASK_MS * 1000) return
    const inclusive = new Map<number, number>()
    for (const id of samples) for (const frame of new Set(stackOf(id))) inclusive.set(frame, (inclusive.get(frame) ?? 0) + 1)
    // The deepest frame under 90% of the samples that is a real function (not the root or a V8 state).
    let entry = '(mixed)'
    let depth = -1
    for (const [frame, n] of inclusive) {
      const node = byId.get(frame)
      if (node === undefined || n < 0.9 * samples.length || node.callFrame.functionName.startsWith('(')) continue
      const d = stackOf(frame).length
      if (d > depth) {
        depth = d
        entry = frameName(node.callFrame)
      }
    }
    const group = groups.get(entry) ?? { count: 0, totalMs: 0, maxMs: 0 }
    group.count++
    group.totalMs += us / 1000
    group.maxMs = Math.max(group.maxMs, us / 1000)
    groups.set(entry, group)
  }
  // A run is consecutive samples under the same task (the two frames below the root, e.g. a uWS
  // callback or `processImmediate > callback`); GC and V8 states continue the run they interrupt.
  const taskOf = (id: number): string | undefined => {
    const stack = stackOf(id)
    const first = byId.get(stack[1] ?? -1)?.callFrame
    if (first === undefined || first.functionName === '(garbage collector)' || first.functionName === '(program)') return undefined
    const second = byId.get(stack[2] ?? -1)?.callFrame
    return `${frameName(first)} > ${second === undefined ? '' : frameName(second)}`
  }
  let run: number[] = []
  let runUs = 0
  let runTask: string | undefined
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0
    if (byId.get(id)?.callFrame.functionName === '(idle)') {
      close(run, runUs)
      run = []
      runUs = 0
      runTask = undefined
      return
    }
    const task = taskOf(id)
    if (task !== undefined && runTask !== undefined && task !== runTask) {
      close(run, runUs)
      run = []
      runUs = 0
    }
    if (task !== undefined) runTask = task
    run.push(id)
    runUs += us
  })
  close(run, runUs)
  return [...groups.entries()]
    .map(([entry, g]) => ({ entry, count: g.count, totalMs: Math.round(g.totalMs), maxMs: Math.round(g.maxMs) }))
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, 8)
}

/** The package (or area) a script URL belongs to. */
function packageOf(url: string): string {
  if (url === '') return '(native / V8)'
  if (url.startsWith('node:')) return 'node internals'
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (modules?.[1] !== undefined) return modules[1]
  const workspace = /\/(hub|bridge|device-sdk|firmware-sim)\/(?:dist|src)\//.exec(url)
  if (workspace?.[1] !== undefined) return `@fleetgate/${workspace[1]}`
  return url
}

/** Self time by function and by package, highest first, `top` of each. */
export function summariseProfile(path: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  let totalUs = 0
  let idleUs = 0
  const functions = new Map<string, number>()
  const packages = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame
    if (frame === undefined) continue
    totalUs += us
    if (frame.functionName === '(idle)') {
      idleUs += us
      continue
    }
    const name = frameName(frame)
    functions.set(name, (functions.get(name) ?? 0) + us)
    const pkg = frame.functionName.startsWith('(') ? frame.functionName : packageOf(frame.url)
    packages.set(pkg, (packages.get(pkg) ?? 0) + us)
  }
  const busyUs = Math.max(1, totalUs - idleUs)
  const rank = (m: Map<string, number>): HotSpot[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 1000), percent: Number(((us / busyUs) * 100).toFixed(1)) }))
  return {
    totalMs: Math.round(totalUs / 1000),
    idlePercent: Number(((idleUs / Math.max(1, totalUs)) * 100).toFixed(1)),
    functions: rank(functions),
    packages: rank(packages),
    longTasks: longTasks(profile, byId),
  }
}

/** The summary as text lines (percentages of busy, non-idle time). */
export function formatProfile(summary: ProfileSummary): string {
  const lines = [`  total ${summary.totalMs} ms, idle ${summary.idlePercent}%; self time as % of busy time:`]
  lines.push('  by package:', ...summary.packages.slice(0, 8).map((h) => `    ${h.percent.toFixed(1).padStart(5)}%  ${h.name}`))
  lines.push('  by function:', ...summary.functions.map((h) => `    ${h.percent.toFixed(1).padStart(5)}%  ${h.name}`))
  lines.push(
    `  tasks that held the event loop >= ${LONG_TASK_MS} ms at a stretch:`,
    ...summary.longTasks.map((t) => `    ${String(t.count).padStart(5)} x, ${String(t.totalMs).padStart(6)} ms in all, longest ${String(t.maxMs).padStart(4)} ms  ${t.entry}`),
  )
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error('usage: tsx test/bench/cpuprofile.ts FILE.cpuprofile [top]')
    process.exit(2)
  }
  console.log(formatProfile(summariseProfile(file, Number(process.argv[3] ?? 20))))
}
