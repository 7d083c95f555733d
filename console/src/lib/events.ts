import { decodeCommand, decodePoint, decodeTwin, type CommandRecord, type TelemetryPoint } from './api.js'
import type { TwinView } from '@fleetgate/device-sdk/wire'
import { asRecord, bool, list, record, text } from './decode.js'
import type { SseEvent } from './sse.js'

/** A live event (docs/rest.md): the JSON that MQTT carries for its type (docs/mqtt.md, docs/twins.md). */
export type HubEvent =
  | { readonly type: 'status'; readonly device: string; readonly online: boolean; readonly at: string }
  | { readonly type: 'telemetry'; readonly device: string; readonly points: TelemetryPoint[] }
  | { readonly type: 'command'; readonly device: string; readonly command: CommandRecord }
  | { readonly type: 'twin'; readonly device: string; readonly twin: TwinView }

/** Event types the console asks for. */
export type HubEventType = HubEvent['type']

/** Decodes an SSE event into a hub event; undefined for types or shapes the console does not know. */
export function decodeHubEvent(event: SseEvent): HubEvent | undefined {
  let data: unknown
  try {
    data = JSON.parse(event.data)
  } catch {
    return undefined
  }
  try {
    switch (event.type) {
      case 'status': {
        const body = record(data, 'status')
        return { type: 'status', device: text(body, 'device'), online: bool(body, 'online'), at: text(body, 'at') }
      }
      case 'telemetry': {
        const body = record(data, 'telemetry')
        // docs/mqtt.md: {device, seq, readings: [{ts, m, g?}]}
        const points = list(body, 'readings').map((reading) => {
          const r = record(reading, 'reading')
          return decodePoint({ ...(asRecord(r['m']) ?? {}), ts: r['ts'] })
        })
        return { type: 'telemetry', device: text(body, 'device'), points }
      }
      case 'command': {
        const command = decodeCommand(data)
        return { type: 'command', device: command.device, command }
      }
      case 'twin': {
        const twin = decodeTwin(data)
        return { type: 'twin', device: twin.device, twin }
      }
      default:
        return undefined
    }
  } catch {
    return undefined
  }
}

/** The `/events` URL for `types`, for `devices` (at most 100, docs/rest.md) or every device. */
export function eventsUrl(types: readonly HubEventType[], devices: readonly string[] = []): string {
  const params = new URLSearchParams()
  for (const device of devices.slice(0, 100)) params.append('device', device)
  params.set('type', types.join(','))
  return `/api/v1/events?${params.toString()}`
}
