// Every relative link of the README and of docs/*.md points at a file of the repository and, with a
// #fragment, at a heading of that file, as GitHub renders it: the documentation is read on GitHub
// and in a checkout, never through a link that leads nowhere.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DOCS = join(ROOT, 'docs')
const FILES = ['README.md', ...readdirSync(DOCS).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)]

/** The text outside fenced code blocks and inline code spans, where a link or heading means one. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '')
}

/**
 * A heading's anchor as GitHub makes it (github-slugger): the text without its markup, lower case,
 * without punctuation and symbols (letters, marks, digits, `_`, `-` and spaces stay), spaces as `-`.
 */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .toLowerCase()
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '').replace(/ /g, '-')
}

/** The anchors of a markdown file's ATX headings; a repeated one gets `-1`, `-2`, ... as on GitHub. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  // Inline code counts in a heading's text (`## The \`listening\` line`), so only fences are removed.
  const withoutFences = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
  for (const match of withoutFences.matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const base = slug(match[1] ?? '')
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    out.add(count === 0 ? base : `${base}-${count}`)
  }
  return out
}

/** The targets of a markdown file's links and images (`[text](target)`, `[ref]: target`). */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown)
  const inline = [...text.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] ?? '')
  const references = [...text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1] ?? '')
  return [...inline, ...references]
}

/** What is wrong with each relative link of `file` (a path from the repository root), whose text is `markdown`. */
function brokenLinks(file: string, markdown = readFileSync(join(ROOT, file), 'utf8')): string[] {
  const problems: string[] = []
  for (const target of linkTargets(markdown)) {
    // Links to other sites (https:, mailto:) are not the repository's to check.
    if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(target)) continue
    const hash = target.indexOf('#')
    const pathPart = decodeURI(hash < 0 ? target : target.slice(0, hash))
    const fragment = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1))
    if (pathPart === '') {
      // `#fragment` alone: a heading of this very file.
      if (fragment !== undefined && !anchors(markdown).has(fragment)) problems.push(`${target}: no heading "#${fragment}" in ${file}`)
      continue
    }
    const resolved = join(dirname(join(ROOT, file)), pathPart)
    const shown = relative(ROOT, resolved)
    if (shown.startsWith('..')) {
      problems.push(`${target}: points outside the repository`)
      continue
    }
    if (!existsSync(resolved)) {
      problems.push(`${target}: no file ${shown}`)
      continue
    }
    if (fragment === undefined) continue
    if (!resolved.endsWith('.md')) {
      problems.push(`${target}: a #fragment on a file that is not markdown`)
      continue
    }
    if (!anchors(readFileSync(resolved, 'utf8')).has(fragment)) problems.push(`${target}: no heading "#${fragment}" in ${shown}`)
  }
  return problems
}

describe('heading anchors follow GitHub', () => {
  it.each([
    ['Hub errors (HUB_ERR_*)', 'hub-errors-hub_err_'],
    ["The hub's own figures", 'the-hubs-own-figures'],
    ['Commands, storage and recovery', 'commands-storage-and-recovery'],
    ['Telemetry (rates, §5)', 'telemetry-rates-5'],
    ['The `listening` line', 'the-listening-line'],
    ['Who can slow ingest, and who cannot', 'who-can-slow-ingest-and-who-cannot'],
    ['[Close codes](#close-codes) and more', 'close-codes-and-more'],
  ])('%s -> #%s', (heading, expected) => {
    expect(slug(heading)).toBe(expected)
  })

  it('numbers a repeated heading as GitHub does', () => {
    expect([...anchors('# A\n## How it is tested\n```sh\n# not a heading\n```\n## How it is tested\n### How it is tested ##\n')]).toEqual([
      'a',
      'how-it-is-tested',
      'how-it-is-tested-1',
      'how-it-is-tested-2',
    ])
  })
})

describe('every relative link of the documentation leads somewhere', () => {
  it('checks the README and every document of docs/', () => {
    expect(FILES).toContain('docs/configuration.md')
    expect(FILES.length).toBeGreaterThan(10)
  })

  it.each(FILES)('%s', (file) => {
    expect(brokenLinks(file)).toEqual([])
  })

  it('reads inline links, images and references, outside code', () => {
    const markdown = 'see [a](docs/nope.md), [b](#frag "title"), ![c](<img/x.png>) and `[d](e.md)`\n[ref]: ../out.md\n```\n[f](g.md)\n```\n'
    expect(linkTargets(markdown)).toEqual(['docs/nope.md', '#frag', 'img/x.png', '../out.md'])
  })

  it('names a missing file, a missing heading and a link out of the repository', () => {
    // The checker on links that must fail: a check that cannot fail would prove nothing.
    const markdown = '[a](nope.md) [b](rest.md#no-such-heading) [c](../../elsewhere.md) [d](rest.md#commands) [e](#twins) [f](#cluster) [g](https://example.com/x.md)\n\n## Twins\n'
    expect(brokenLinks('docs/example.md', markdown)).toEqual([
      'nope.md: no file docs/nope.md',
      'rest.md#no-such-heading: no heading "#no-such-heading" in docs/rest.md',
      '../../elsewhere.md: points outside the repository',
      '#cluster: no heading "#cluster" in docs/example.md',
    ])
  })
})

describe('the repository documents itself', () => {
  /** What in `text` sends a reader to a document outside the repository (the spec the hub was first built from). */
  const outsideCites = (text: string): string[] => [...text.matchAll(/CONTRACT(?:\.md)?\s*§\s*\d|\.\.\/shared\//g)].map((m) => m[0])

  it('finds a cite of a document outside the repository', () => {
    expect(outsideCites('see CONTRACT §4 and ../shared/STYLE.md, not docs/rest.md')).toEqual(['CONTRACT §4', '../shared/'])
  })

  it('has no file that cites one: docs/ says it all', () => {
    const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
      .split('\0')
      .filter((file) => /\.(ts|tsx|md|sql|sh|js|cjs|mjs|json|yml|yaml)$/.test(file) && !file.endsWith('package-lock.json') && file !== 'test/docs-links.test.ts')
    const found = files.flatMap((file) => outsideCites(readFileSync(join(ROOT, file), 'utf8')).map((cite) => `${file}: ${cite}`))
    expect(found).toEqual([])
  })
})
