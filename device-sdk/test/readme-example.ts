// The device example of README.md, type-checked with the tests (tsconfig.test.json); readme.test.ts keeps the two identical.
import { DeviceClient } from '@fleetgate/device-sdk'

const device = new DeviceClient({ url: 'ws://localhost:8080/v1/connect', deviceId: 'thermo-1', key: process.env.DEVICE_KEY! })
device.on('error', (err) => console.warn(err.code, err.message))
device.handle<{ c: number }>('set_setpoint', async ({ c }) => ({ applied: c }))  // a command handler
device.twin.on('desired', ({ desired, version }) => {                 // the twin: what operators want
  const setpoint = typeof desired['setpoint'] === 'number' ? desired['setpoint'] : 20
  device.twin.report({ setpoint }).catch((err) => console.warn(`desired v${version}:`, err.code))  // what it applied
})
await device.connect()
await device.send({ temperature: 21.5, heating: true })              // resolves once durably stored
