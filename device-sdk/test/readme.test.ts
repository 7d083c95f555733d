import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

/** The ```ts blocks of a markdown text, without their fences. */
function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] ?? '')
}

describe('README', () => {
  it('shows exactly the device example that the type check compiles (device-sdk/test/readme-example.ts)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const example = readFileSync(new URL('./readme-example.ts', import.meta.url), 'utf8')
    const code = example.replace(/^(\/\/.*\n)+/, '')
    const blocks = tsBlocks(readme).filter((block) => block.includes("from '@fleetgate/device-sdk'"))
    expect(blocks).toStrictEqual([code])
    // STYLE: no `any`; the example compiles on the SDK's own types.
    expect(code).not.toMatch(/\bany\b/)
  })
})
