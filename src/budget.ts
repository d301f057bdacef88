/**
 * What one `open` or `revive` may make this process do. A handle is a few dozen bytes anyone can
 * craft: its manifest can name other manifests, and those others again, so without a budget a
 * 39-byte handle fans out into billions of opens. Every handle a call reaches is charged here
 * before it is opened, and the call fails with a coded error as soon as the budget is spent.
 */
import { codes, coded } from './errors'
import { checkLimit, getOptions } from './options'

/**
 * Manifest JSON one call may walk, over every manifest it reaches (a manifest named twice counts
 * twice): sixteen of the largest manifests a segment can carry. No container `share` makes comes
 * near it; it bounds the objects a call builds, whatever the manifests say.
 */
export const MANIFEST_BYTES = 16 << 20

/** The budget of one call. */
export class Budget {
  private segments = 0
  private bytes = 0
  private manifestBytes = 0
  /** Segment keys charged already: a segment's bytes count once per call, however often it is named. */
  private readonly seen = new Set<string>()
  readonly maxSegments: number
  readonly maxBytes: number

  constructor(
    private readonly fn: string,
    limits: { maxSegments?: number; maxBytes?: number } | undefined,
  ) {
    const o = getOptions()
    if (limits?.maxSegments !== undefined) checkLimit('maxSegments', limits.maxSegments)
    if (limits?.maxBytes !== undefined) checkLimit('maxBytes', limits.maxBytes)
    this.maxSegments = limits?.maxSegments ?? o.maxSegments
    this.maxBytes = limits?.maxBytes ?? o.maxBytes
  }

  /** Charges one handle naming segment `key` of `byteLength` bytes, before it is opened. */
  charge(key: string, byteLength: number): void {
    if (++this.segments > this.maxSegments) {
      throw coded(
        codes.NO_SPACE,
        `${this.fn}: the handle reaches more than ${this.maxSegments} segments (maxSegments); a manifest that names so many is refused before they are opened`,
      )
    }
    if (this.seen.has(key)) return
    this.seen.add(key)
    this.bytes += byteLength
    if (this.bytes > this.maxBytes) {
      throw coded(
        codes.NO_SPACE,
        `${this.fn}: the handle reaches segments of more than ${this.maxBytes} bytes in all (maxBytes); nothing more is opened`,
      )
    }
  }

  /**
   * Bytes one more segment may hold and still be charged without refusal, whatever it is (a
   * segment charged already would cost nothing): -1 when no segment may be charged any more.
   */
  get bytesLeft(): number {
    return this.segments < this.maxSegments ? this.maxBytes - this.bytes : -1
  }

  /** Charges a handle opened already in this call: its segment again, its manifest walked again. */
  again(got: { key: string; manifestLength?: number }): void {
    this.charge(got.key, 0)
    if (got.manifestLength !== undefined) this.chargeManifest(got.manifestLength)
  }

  /** Charges walking a manifest of `length` characters of JSON. */
  chargeManifest(length: number): void {
    this.manifestBytes += length
    if (this.manifestBytes > MANIFEST_BYTES) {
      throw coded(codes.BAD_HEADER, `${this.fn}: the handle's manifests hold more than ${MANIFEST_BYTES} bytes of JSON in all; no container shared by this package does`)
    }
  }
}
