import type { JSX } from 'preact'
import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'

/** Chart height in CSS pixels; default 180. */
export const CHART_HEIGHT_PX = 180

/**
 * One numeric metric over time, drawn by uPlot on a canvas (nothing device-provided becomes
 * markup). The plot is made once and fed new data on each render; it follows its box's width.
 */
export function MetricChart(props: {
  metric: string
  times: readonly number[]
  values: ReadonlyArray<number | null>
  /** The x axis's range in Unix seconds; default the data's own. */
  span?: readonly [number, number] | undefined
}): JSX.Element {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const span = useRef(props.span)
  span.current = props.span
  const data = (): uPlot.AlignedData => [props.times as number[], props.values as Array<number | null>]

  useEffect(() => {
    const element = box.current
    if (element === null) return
    const made = new uPlot(
      {
        width: Math.max(200, element.clientWidth),
        height: CHART_HEIGHT_PX,
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: true, range: (_u, min, max) => (span.current === undefined ? [min, max] : [span.current[0], span.current[1]]) } },
        axes: [{ stroke: '#5b6472' }, { stroke: '#5b6472', size: 60 }],
        // Points are drawn where they are sparse (uPlot's default), so a lone reading is visible.
        series: [{}, { label: props.metric, stroke: '#1f6feb', width: 1.5, spanGaps: true }],
      },
      data(),
      element,
    )
    plot.current = made
    const resize = new ResizeObserver(() => made.setSize({ width: Math.max(200, element.clientWidth), height: CHART_HEIGHT_PX }))
    resize.observe(element)
    return () => {
      resize.disconnect()
      made.destroy()
      plot.current = null
    }
  }, [props.metric])

  useEffect(() => {
    plot.current?.setData(data())
  }, [props.times, props.values, props.span?.[0], props.span?.[1]])

  return (
    <figure class="chart">
      <figcaption>{props.metric}</figcaption>
      <div ref={box} class="chart-box" role="img" aria-label={`${props.metric} over time, ${props.times.length} points`} data-points={props.times.length} />
    </figure>
  )
}
