import type { JSX } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { Api } from './lib/api.js'
import { describeError } from './lib/errors.js'
import { abilitiesOf, clearToken, probeScope, storedToken, storeToken } from './lib/session.js'
import { AuditPage } from './pages/audit.js'
import { DevicePage } from './pages/device.js'
import { FanOutPage } from './pages/fanout.js'
import { FleetPage } from './pages/fleet.js'
import { HubPage } from './pages/hub.js'
import { SignIn } from './pages/signin.js'
import { SessionContext, useSession, type ConsoleSession } from './ui/context.js'
import { useRoute, type Route } from './ui/route.js'

/** Signs in (with the tab's kept token when there is one) and shows the shell. */
export function App(): JSX.Element {
  const [session, setSession] = useState<ConsoleSession | undefined>(undefined)
  const [resuming, setResuming] = useState(storedToken() !== undefined)
  const [notice, setNotice] = useState('')

  const signOut = (why: string): void => {
    clearToken()
    setSession(undefined)
    setNotice(why)
  }
  const signIn = async (token: string): Promise<void> => {
    const api = new Api({ token, onUnauthorized: () => signOut('The hub no longer accepts this token. Sign in again.') })
    const scope = await probeScope(new Api({ token }))
    storeToken(token)
    setNotice('')
    setSession({ api, abilities: abilitiesOf(scope) })
  }

  useEffect(() => {
    const token = storedToken()
    if (token === undefined) return
    signIn(token)
      .catch((err: unknown) => signOut(`Could not resume the session: ${describeError(err)}`))
      .finally(() => setResuming(false))
  }, [])

  if (session === undefined) {
    if (resuming) return <p class="loading">Signing in…</p>
    return <SignIn onSignIn={signIn} notice={notice} />
  }
  return (
    <SessionContext.Provider value={session}>
      <Shell session={session} onSignOut={() => signOut('Signed out.')} />
    </SessionContext.Provider>
  )
}

const TITLES: Record<Route['page'], string> = { fleet: 'Fleet', device: 'Device', fanout: 'Fan-out', audit: 'Audit log', hub: 'Hub', unknown: 'Not found' }

function Shell(props: { session: ConsoleSession; onSignOut: () => void }): JSX.Element {
  const route = useRoute()
  const main = useRef<HTMLElement>(null)
  const { abilities } = props.session
  useEffect(() => {
    document.title = `${route.page === 'device' ? route.id : TITLES[route.page]} · Fleetgate`
    // Moves keyboard and screen-reader focus to the new page, as a full page load would.
    main.current?.querySelector<HTMLElement>('h1')?.focus()
  }, [route])
  const link = (href: string, label: string, current: boolean): JSX.Element => (
    <a href={href} aria-current={current ? 'page' : undefined}>
      {label}
    </a>
  )
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.querySelector<HTMLElement>('h1')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Fleetgate</span>
        <nav aria-label="Pages">
          {link('#/fleet', 'Fleet', route.page === 'fleet' || route.page === 'device')}
          {abilities.operate ? link('#/fanout', 'Fan-out', route.page === 'fanout') : null}
          {abilities.administer ? link('#/audit', 'Audit', route.page === 'audit') : null}
          {link('#/hub', 'Hub', route.page === 'hub')}
        </nav>
        <span class="who" data-testid="scope">
          {abilities.scope}
        </span>
        <button type="button" onClick={props.onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main}>
        <Page route={route} />
      </main>
    </>
  )
}

function Page(props: { route: Route }): JSX.Element {
  const { abilities } = useSession()
  switch (props.route.page) {
    case 'fleet':
      return <FleetPage />
    case 'device':
      return <DevicePage key={props.route.id} id={props.route.id} />
    case 'fanout':
      return abilities.operate ? <FanOutPage /> : <NotAllowed what="Fan-out" />
    case 'audit':
      return abilities.administer ? <AuditPage /> : <NotAllowed what="The audit log" />
    case 'hub':
      return <HubPage />
    case 'unknown':
      return (
        <section>
          <h1 tabIndex={-1}>Not found</h1>
          <p>
            No page at <code>{props.route.hash}</code>. <a href="#/fleet">Go to the fleet</a>.
          </p>
        </section>
      )
  }
}

function NotAllowed(props: { what: string }): JSX.Element {
  const { abilities } = useSession()
  return (
    <section>
      <h1 tabIndex={-1}>Not available</h1>
      <p>
        {props.what} needs a higher scope than this token's ({abilities.scope}).
      </p>
    </section>
  )
}
