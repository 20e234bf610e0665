/**
 * How many of a consume's `maxMessages` slots may be held now, given its `window` (`ConsumeOptions`):
 * the window's answer, whole, at least one and at most `maxMessages`. One rule for both brokers, so
 * that a window narrows and widens a consume the same way on each.
 */
export const slotsNow = (maxMessages: number, window: (() => number) | undefined): number => {
  if (window === undefined) return maxMessages
  const wanted = window()
  return wanted >= maxMessages ? maxMessages : Math.max(1, Math.floor(wanted))
}
