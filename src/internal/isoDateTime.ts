/**
 * Reading and writing date-times the way the Python services do, as epoch milliseconds.
 *
 * Python writes `datetime.isoformat()` (`2026-11-26T12:33:37.123456+00:00`, no fraction when the
 * microseconds are zero) or pydantic's own form (`...Z`, or no offset at all for a naive value). We read
 * every one of them, treating a missing offset as UTC, and write the `isoformat()` form of a UTC value.
 *
 * The calendar arithmetic is done by hand rather than with `Date`: `Date.parse` reads an offset-less
 * date-time as local time, and `Date.UTC` maps the years 0–99 to 1900–1999.
 *
 * Not public: `Envelope.Timestamp` is the schema built on these functions.
 */

const MILLIS_PER_DAY = 86_400_000
const MILLIS_PER_HOUR = 3_600_000
const MILLIS_PER_MINUTE = 60_000

// date, then `T`/`t`/space, then hh:mm[:ss[.fraction]], then an optional `Z` or ±hh[:mm[:ss]] offset
const isoPattern =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2})(?::?(\d{2}))?)?)?$/

const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (isLeapYear(year) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146_097 + dayOfEra - 719_468
}

// The inverse of `daysFromCivil`.
const civilFromDays = (days: number): readonly [year: number, month: number, day: number] => {
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const dayOfEra = z - era * 146_097
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365
  )
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100))
  const monthIndex = Math.floor((5 * dayOfYear + 2) / 153)
  const day = dayOfYear - Math.floor((153 * monthIndex + 2) / 5) + 1
  const month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day]
}

const toInt = (digits: string | undefined): number => (digits === undefined ? 0 : Number.parseInt(digits, 10))

const ZERO = 48

// The value of `count` decimal digits at `at`, or -1 when one of them is not a digit.
const digitsAt = (text: string, at: number, count: number): number => {
  let value = 0
  for (let i = at; i < at + count; i++) {
    const digit = text.charCodeAt(i) - ZERO
    if (digit < 0 || digit > 9) return -1
    value = value * 10 + digit
  }
  return value
}

/**
 * The form Python's `isoformat()` gives a UTC value, `2026-11-26T12:33:37[.123456]+00:00` (or with `Z`),
 * read without the regular expression: it is on every message's path. `undefined` sends anything else
 * to the general parser.
 */
const parseCanonical = (text: string): number | undefined => {
  const length = text.length
  const fraction = length === 32 || length === 27
  if (!fraction && length !== 25 && length !== 20) return undefined
  const zone = fraction ? 26 : 19
  const utc =
    length - zone === 1 ? text.charCodeAt(zone) === 90 /* Z */ : text.endsWith("+00:00") && zone === length - 6
  if (!utc || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 84) return undefined
  if (text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58 || (fraction && text.charCodeAt(19) !== 46)) {
    return undefined
  }
  const year = digitsAt(text, 0, 4)
  const month = digitsAt(text, 5, 2)
  const day = digitsAt(text, 8, 2)
  const hour = digitsAt(text, 11, 2)
  const minute = digitsAt(text, 14, 2)
  const second = digitsAt(text, 17, 2)
  const millis = fraction ? digitsAt(text, 20, 3) : 0
  if (fraction && digitsAt(text, 23, 3) < 0) return undefined
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || millis < 0) return undefined
  return (
    daysFromCivil(year, month, day) * MILLIS_PER_DAY +
    hour * MILLIS_PER_HOUR +
    minute * MILLIS_PER_MINUTE +
    second * 1000 +
    millis
  )
}

/**
 * Epoch milliseconds of an ISO-8601 date-time, or `undefined` when the text is not one Python could
 * have written (or accepted). Digits below the millisecond are dropped, not rounded.
 */
export const parse = (text: string): number | undefined => {
  const canonical = parseCanonical(text)
  if (canonical !== undefined) return canonical
  const match = isoPattern.exec(text)
  if (match === null) return undefined
  const year = toInt(match[1])
  const month = toInt(match[2])
  const day = toInt(match[3])
  const hour = toInt(match[4])
  const minute = toInt(match[5])
  const second = toInt(match[6])
  const millis = match[7] === undefined ? 0 : toInt(match[7].padEnd(3, "0").slice(0, 3))
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined
  if (hour > 23 || minute > 59 || second > 59) return undefined
  let offset = 0
  if (match[9] !== undefined) {
    const offsetHours = toInt(match[10])
    const offsetMinutes = toInt(match[11])
    const offsetSeconds = toInt(match[12])
    if (offsetHours > 23 || offsetMinutes > 59 || offsetSeconds > 59) return undefined
    const magnitude = offsetHours * MILLIS_PER_HOUR + offsetMinutes * MILLIS_PER_MINUTE + offsetSeconds * 1000
    offset = match[9] === "-" ? -magnitude : magnitude
  }
  return (
    daysFromCivil(year, month, day) * MILLIS_PER_DAY +
    hour * MILLIS_PER_HOUR +
    minute * MILLIS_PER_MINUTE +
    second * 1000 +
    millis -
    offset
  )
}

const pad = (value: number, width: number): string => value.toString().padStart(width, "0")

// `YYYY-MM-DDTHH:MM:SS` of the second that starts at `epochSecond`, or `undefined` outside the years 1–9999.
const secondText = (epochSecond: number): string | undefined => {
  const days = Math.floor(epochSecond / 86_400)
  const [year, month, day] = civilFromDays(days)
  if (year < 1 || year > 9999) return undefined
  const ofDay = epochSecond - days * 86_400
  const hour = Math.floor(ofDay / 3600)
  const minute = Math.floor((ofDay % 3600) / 60)
  const second = ofDay % 60
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}`
}

const withMillis = (prefix: string, millis: number): string =>
  millis === 0 ? `${prefix}+00:00` : `${prefix}.${pad(millis, 3)}000+00:00`

/**
 * Python's `datetime.isoformat()` of an aware UTC value, or `undefined` outside the years 1–9999 that
 * Python's `datetime` can hold.
 */
export const format = (epochMillis: number): string | undefined => {
  if (!Number.isSafeInteger(epochMillis)) return undefined
  const epochSecond = Math.floor(epochMillis / 1000)
  const prefix = secondText(epochSecond)
  return prefix === undefined ? undefined : withMillis(prefix, epochMillis - epochSecond * 1000)
}

/**
 * `format` for a caller that formats many times close together (a publisher): the calendar part is
 * computed once per second.
 */
export const formatter = (): ((epochMillis: number) => string | undefined) => {
  let cachedSecond = Number.NaN
  let cachedPrefix: string | undefined
  return (epochMillis) => {
    if (!Number.isSafeInteger(epochMillis)) return undefined
    const epochSecond = Math.floor(epochMillis / 1000)
    if (epochSecond !== cachedSecond) {
      cachedPrefix = secondText(epochSecond)
      cachedSecond = epochSecond
    }
    return cachedPrefix === undefined ? undefined : withMillis(cachedPrefix, epochMillis - epochSecond * 1000)
  }
}
