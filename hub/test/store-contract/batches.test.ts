// BatchStore's guarantees (hub/src/store/interfaces.ts), the same cases on lmdb and PostgreSQL.
import { describe, expect, it } from 'vitest'
import type { BatchInfo } from '../../src/store/index.js'
import { BACKENDS, useBackends } from './backends.js'

useBackends()

describe.each(BACKENDS)('BatchStore on $name', (backend) => {
  it('finds a created batch on any node at once, and after a reopen; an unknown one is undefined', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    const info: BatchInfo = { batch: '6f1c2b8e-0000-4000-8000-000000000001', name: 'reboot', targeted: 10_000, createdAt: 1_700_000_000_000 }
    await opened.stores.batches.create(info)
    expect(await peer.batches.get(info.batch)).toEqual(info)
    expect(await opened.stores.batches.get('no-such-batch')).toBeUndefined()
    const reopened = await opened.reopen()
    expect(await reopened.batches.get(info.batch)).toEqual(info)
  })
})
