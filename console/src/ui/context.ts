import { createContext } from 'preact'
import { useContext } from 'preact/hooks'
import type { Api } from '../lib/api.js'
import type { Abilities } from '../lib/session.js'

/** What every page gets from the signed-in shell. */
export interface ConsoleSession {
  readonly api: Api
  readonly abilities: Abilities
}

/** Provided by the shell once signed in. */
export const SessionContext = createContext<ConsoleSession | undefined>(undefined)

/** The signed-in session; pages render only inside the shell, which provides it. */
export function useSession(): ConsoleSession {
  const session = useContext(SessionContext)
  if (session === undefined) throw new Error('useSession outside the signed-in shell')
  return session
}
