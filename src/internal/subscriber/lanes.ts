/**
 * The hand-over from a subscriber's consume loop to its handlers, without a fiber hop per message.
 *
 * The loop pushes a whole chunk of deliveries into lanes in one synchronous step and then wakes the
 * parked workers; each worker fiber takes its next message itself (`poll`) and parks (`wait`) only
 * when its lane is empty. Messages that arrive together are therefore handled in the same turn of the
 * event loop, and their acks leave in one socket write, as they do for a raw nats.js callback.
 *
 * A lane has no bound of its own: everything in it holds one of the consume's slots, so it never
 * holds more than the subscriber's prefetch.
 */
import { Effect } from "effect"

type Resume<A> = (effect: Effect.Effect<A | undefined>) => void

// Past this many taken items the array is cut, so that a lane that never runs dry does not grow.
const COMPACT_AFTER = 1024

export class Lane<A> {
  private items: Array<A> = []
  private head = 0
  private readonly parked: Array<Resume<A>> = []
  private closed = false

  /** Queues `item`; `wake` lets parked workers at it. */
  push(item: A): void {
    this.items.push(item)
  }

  /**
   * Resumes as many parked workers as there are queued items. Called once a whole chunk is queued:
   * a resumed worker runs at once, on this call stack, and would otherwise park again after each item.
   */
  wake(): void {
    while (this.parked.length > 0 && this.head < this.items.length) {
      const resume = this.parked.shift()
      const item = this.poll()
      if (resume !== undefined) resume(Effect.succeed(item))
    }
  }

  /** The next queued item, if any. */
  poll(): A | undefined {
    if (this.head === this.items.length) return undefined
    const item = this.items[this.head]
    this.head++
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Parks until an item is pushed (`undefined` once the lane is closed). */
  readonly wait: Effect.Effect<A | undefined> = Effect.suspend(() => {
    const item = this.poll()
    if (item !== undefined || this.closed) return Effect.succeed(item)
    return Effect.callback<A | undefined>((resume) => {
      this.parked.push(resume)
      return Effect.sync(() => {
        const index = this.parked.indexOf(resume)
        if (index >= 0) this.parked.splice(index, 1)
      })
    })
  })

  /** Takes every queued item out, e.g. to give them back at shutdown. */
  drain(): ReadonlyArray<A> {
    const rest = this.items.slice(this.head)
    this.items = []
    this.head = 0
    return rest
  }

  /** No more items: parked workers and later waits get `undefined`. */
  close(): void {
    this.closed = true
    for (const resume of this.parked.splice(0)) resume(Effect.succeed(undefined))
  }
}

/** A stable lane for a key, so that one key is always handled by the same worker. */
export const laneOf = (key: string, lanes: number): number => {
  let hash = 0
  for (let i = 0; i < key.length; i++) hash = (Math.imul(hash, 31) + key.charCodeAt(i)) | 0
  return Math.abs(hash) % lanes
}
