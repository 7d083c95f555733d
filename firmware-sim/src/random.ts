// Seeded randomness: every random choice of a run (model noise, churn victims, clock skews, bad
// frames, command targets, backoff jitter) comes from a stream derived from `--seed`, so a run can
// be repeated. Streams are split by purpose so that one part's draws never shift another's.

/** A uniform random number in [0, 1). */
export type Random = () => number

/** sfc32 (Chris Doty-Humphrey's Small Fast Counter): 128 bits of state, good statistics, fast in JS. */
export function sfc32(a: number, b: number, c: number, d: number): Random {
  return () => {
    a |= 0
    b |= 0
    c |= 0
    d |= 0
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
}

/** A 32-bit hash of the arguments (MurmurHash3's finalizer over each), to derive independent seeds. */
export function mix(...values: readonly number[]): number {
  let h = 0x9e3779b9
  for (const value of values) {
    let k = Math.imul(value | 0, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    h ^= Math.imul(k, 0x1b873593)
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
    // the high part of seeds and indexes beyond 32 bits
    h ^= Math.floor(value / 4294967296) | 0
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Purposes of the streams a run draws from; each (seed, purpose, index) gives its own stream. */
export const Stream = Object.freeze({
  fleet: 1,
  model: 2,
  skew: 3,
  badFrames: 4,
  backoff: 5,
  commands: 6,
  device: 7,
  twins: 8,
})

/** The stream for `purpose` (a Stream value) of item `index` (a device's index, or 0) under `seed`. */
export function stream(seed: number, purpose: number, index = 0): Random {
  const random = sfc32(mix(seed, purpose, index, 1), mix(seed, purpose, index, 2), mix(seed, purpose, index, 3), mix(seed, purpose, index, 4))
  // sfc32 wants a few rounds to spread a seed's bits
  for (let i = 0; i < 12; i++) random()
  return random
}

/** A uniform integer in [0, n). */
export function pick(random: Random, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n))
}

/** A standard normal variate (Box-Muller), for noise. */
export function gaussian(random: Random): number {
  const u = 1 - random()
  const v = random()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
}
