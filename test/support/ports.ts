import { createServer } from 'node:net'

/**
 * A TCP port that was free on 127.0.0.1 a moment ago: the OS picks it for a throwaway listener.
 * For a child process that cannot bind port 0 and report it (mosquitto); another process may take
 * the port in between, which on a test machine is rare enough.
 */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error('freePort: the listener has no TCP address'))
        return
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)))
    })
  })
}

/**
 * A URL on which nothing listens, for a hub whose InfluxDB (or any peer) must be unreachable: a
 * connection is refused at once. Port 2 is privileged, outside the range the OS hands out for port 0,
 * and not on fetch's list of blocked ports. A port that was merely free a moment ago may be taken
 * meanwhile by another test's server, which would then receive the writes.
 */
export const UNREACHABLE_URL = 'http://127.0.0.1:2'
