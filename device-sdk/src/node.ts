// `@fleetgate/device-sdk/node`: the parts of the SDK that need Node's `node:fs`. They live outside
// index.ts so that a browser bundle of the SDK never reaches a Node built-in.
export { DEFAULT_COMPACT_AFTER_BYTES, FileQueueStore, type FileQueueStoreOptions } from './file-queue-store.js'
