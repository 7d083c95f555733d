// TwinStore's guarantees (hub/src/store/interfaces.ts), the same cases on lmdb and PostgreSQL.
import { describe, expect, it } from 'vitest'
import type { TwinDocument } from '@fleetgate/device-sdk/wire'
import type { TwinChange, TwinRecord } from '../../src/store/index.js'
import { BACKENDS, useBackends } from './backends.js'

useBackends()

const twin = (device: string, desired: TwinDocument, desiredVersion: number): TwinRecord => ({ device, desired, desiredVersion, desiredAt: 1000 + desiredVersion, reported: {}, reportedVersion: 0 })

/** A change that adds 1 to `n` of desired and bumps the version: what Twins does, without the merge. */
const bump = (device: string) => (before: TwinRecord | undefined): TwinChange<number> => {
  const version = (before?.desiredVersion ?? 0) + 1
  const n = typeof before?.desired['n'] === 'number' ? before.desired['n'] : 0
  return { write: twin(device, { n: n + 1 }, version), outcome: version }
}

describe.each(BACKENDS)('TwinStore on $name', (backend) => {
  it('reads nothing for a device never changed, writes what a change decides, and nothing when it decides nothing', async () => {
    const { stores } = await backend.open()
    expect(await stores.twins.get('t1')).toBeUndefined()
    let seen: TwinRecord | undefined | null = null
    expect(await stores.twins.update('t1', (before) => ((seen = before), { write: undefined, outcome: 'nothing' }))).toBe('nothing')
    expect(seen).toBeUndefined()
    expect(await stores.twins.get('t1')).toBeUndefined()
    const first = twin('t1', { a: 1 }, 1)
    expect(await stores.twins.update('t1', () => ({ write: first, outcome: 'written' }))).toBe('written')
    expect(await stores.twins.get('t1')).toEqual(first)
    expect(await stores.twins.update('t1', (before) => ((seen = before), { write: undefined, outcome: 'kept' }))).toBe('kept')
    expect(seen).toEqual(first)
  })

  it('reads the desired versions of many devices at once; a device without a twin has none', async () => {
    const { stores } = await backend.open()
    await stores.twins.update('v1', () => ({ write: twin('v1', { a: 1 }, 3), outcome: undefined }))
    await stores.twins.update('v2', () => ({ write: twin('v2', {}, 0), outcome: undefined }))
    expect(await stores.twins.desiredVersions(['v1', 'v2', 'none'])).toEqual(new Map([['v1', 3], ['v2', 0]]))
    expect(await stores.twins.desiredVersions([])).toEqual(new Map())
  })

  it('keeps documents exactly: every key an own member, __proto__ and $-free oddities included', async () => {
    const { stores } = await backend.open()
    const desired = JSON.parse('{"__proto__":{"x":1},"constructor":[1,null,{"é":"😀"}],"a\\u0000b":"n\\u0000ul","deep":{"b":{"c":{"d":true}}}}') as TwinDocument
    const record = twin('t2', desired, 3)
    await stores.twins.update('t2', () => ({ write: record, outcome: undefined }))
    const read = await stores.twins.get('t2')
    expect(JSON.stringify(read)).toBe(JSON.stringify(record))
    expect(Object.keys(read?.desired ?? {})).toEqual(['__proto__', 'constructor', 'a\u0000b', 'deep'])
    expect(Object.getPrototypeOf(read?.desired)).toBe(Object.prototype)
  })

  it('applies concurrent changes of one device, from two nodes, each on the result of the other: none lost', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    const versions = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? opened.stores : peer).twins.update('t3', bump('t3'))))
    expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    expect(await opened.stores.twins.get('t3')).toMatchObject({ desired: { n: 30 }, desiredVersion: 30 })
    expect(await peer.twins.get('t3')).toMatchObject({ desired: { n: 30 }, desiredVersion: 30 })
  })

  it('removes a twin (true once, then false); a change after it starts from nothing', async () => {
    const { stores } = await backend.open()
    await stores.twins.update('t4', bump('t4'))
    await stores.twins.update('t4', bump('t4'))
    expect(await stores.twins.remove('t4')).toBe(true)
    expect(await stores.twins.remove('t4')).toBe(false)
    expect(await stores.twins.get('t4')).toBeUndefined()
    expect(await stores.twins.update('t4', bump('t4'))).toBe(1)
  })

  it('resolves changes once durable: a reopened store reads them', async () => {
    const opened = await backend.open()
    await Promise.all(['t5', 't6'].map((device) => opened.stores.twins.update(device, bump(device))))
    await opened.stores.twins.update('t5', bump('t5'))
    const reopened = await opened.reopen()
    expect(await reopened.twins.get('t5')).toMatchObject({ desired: { n: 2 }, desiredVersion: 2 })
    expect(await reopened.twins.get('t6')).toMatchObject({ desired: { n: 1 }, desiredVersion: 1 })
  })
})
