import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { BRIDGE_ERROR_CODES } from '@fleetgate/bridge'
import { SDK_ERROR_CODES } from '@fleetgate/device-sdk'
import { CloseCode, ERROR_FRAME_CODES, NAK_REASONS } from '@fleetgate/device-sdk/wire'
import { SIM_ERROR_CODES } from '@fleetgate/firmware-sim'
import { API_ERROR_CODES, HUB_ERROR_CODES } from '@fleetgate/hub'

const DOC = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')

/** The codes in the first column of the tables of the section headed `heading`. */
function documented(heading: string): string[] {
  const start = DOC.indexOf(`\n## ${heading}\n`)
  if (start < 0) throw new Error(`docs/errors.md has no section "## ${heading}"`)
  const end = DOC.indexOf('\n## ', start + 1)
  const section = DOC.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((match) => match[1] as string)
}

/** Sorted, so that the comparison shows what is missing on either side. */
const sorted = (codes: Iterable<string | number>): string[] => [...codes].map(String).sort()

describe('docs/errors.md lists every code of the sources, and no other', () => {
  it.each([
    ['Hub errors (HUB_ERR_*)', HUB_ERROR_CODES],
    ['Device SDK errors (SDK_ERR_*)', SDK_ERROR_CODES],
    ['Bridge errors (BRIDGE_ERR_*)', BRIDGE_ERROR_CODES],
    ['Simulator errors (SIM_ERR_*)', SIM_ERROR_CODES],
    ['REST error codes', API_ERROR_CODES],
    ['Nak reasons', NAK_REASONS],
    ['err frame codes', ERROR_FRAME_CODES],
    // 1006 is never sent, but it is what a device sees when the connection just ends.
    ['Close codes', [...Object.values(CloseCode), 1006]],
  ] as const)('%s', (heading, codes) => {
    const listed = documented(heading)
    expect(new Set(listed).size, 'a code listed twice').toBe(listed.length)
    expect(sorted(listed)).toEqual(sorted(codes))
  })

  it('names no package error code that does not exist, anywhere in the document', () => {
    const known = new Set<string>([...HUB_ERROR_CODES, ...SDK_ERROR_CODES, ...BRIDGE_ERROR_CODES, ...SIM_ERROR_CODES])
    const named = new Set([...DOC.matchAll(/\b(?:HUB|SDK|BRIDGE|SIM)_ERR_[A-Z_]+\b/g)].map((match) => match[0]))
    expect([...named].filter((code) => !known.has(code))).toEqual([])
  })
})
