import { useEffect, useState } from 'preact/hooks'

/** The console's pages, addressed by the URL's hash so that `/console/` is the only file path. */
export type Route =
  | { readonly page: 'fleet' }
  | { readonly page: 'device'; readonly id: string }
  | { readonly page: 'fanout' }
  | { readonly page: 'audit' }
  | { readonly page: 'hub' }
  | { readonly page: 'unknown'; readonly hash: string }

/** The route of a hash such as `#/devices/thermo-1`. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '')
  if (path === '' || path === '/' || path === '/fleet') return { page: 'fleet' }
  if (path === '/fanout') return { page: 'fanout' }
  if (path === '/audit') return { page: 'audit' }
  if (path === '/hub') return { page: 'hub' }
  const device = /^\/devices\/([^/]+)$/.exec(path)
  if (device !== null) {
    try {
      return { page: 'device', id: decodeURIComponent(device[1] as string) }
    } catch {
      return { page: 'unknown', hash }
    }
  }
  return { page: 'unknown', hash }
}

/** The hash of a device's page. */
export const deviceHref = (id: string): string => `#/devices/${encodeURIComponent(id)}`

/** The current route, following `hashchange`. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash))
  useEffect(() => {
    const update = (): void => setRoute(parseRoute(location.hash))
    addEventListener('hashchange', update)
    return () => removeEventListener('hashchange', update)
  }, [])
  return route
}
