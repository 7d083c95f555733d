// The connection peer: a plain `ws` WebSocketServer that accepts every connection and holds it,
// with nothing per connection beyond what `ws` keeps itself. Run as its own process by the
// benchmark; it answers `ports` over IPC.
import { WebSocketServer } from 'ws'
import { serve } from '../procs.js'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/connect', perMessageDeflate: false })
await new Promise<void>((resolve) => wss.once('listening', resolve))
wss.on('connection', (ws) => {
  ws.on('error', () => undefined)
})

serve({
  ports: () => ({ http: (wss.address() as { port: number }).port }),
  clients: () => wss.clients.size,
})
