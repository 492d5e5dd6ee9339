//! The time criteria: `date`, `day_of_week` and `time_of_day`. They read only the
//! caller's `now`, never the clock. Bounds are `after` inclusive and `before` exclusive.

use jiff::Timestamp;
use jiff::civil::{DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use serde_json::Value;

use super::PolicyError;
use super::parse::{Loc, describe};

/// `date: {after, before}`: ISO-8601 instants; a value without an offset is UTC.
#[derive(Debug, Clone)]
pub(crate) struct DateMatcher {
    after: Option<Timestamp>,
    before: Option<Timestamp>,
}

impl DateMatcher {
    pub(crate) fn compile(v: &Value, loc: &Loc) -> Result<Self, PolicyError> {
        let obj = expect_object(v, loc, "after, before")?;
        let mut m = DateMatcher {
            after: None,
            before: None,
        };
        for (k, v) in obj {
            let at = loc.key(k);
            let ts = parse_date(v, &at)?;
            match k.as_str() {
                "after" => m.after = Some(ts),
                "before" => m.before = Some(ts),
                other => return Err(unknown_key(&at, other, "after, before")),
            }
        }
        Ok(m)
    }

    pub(crate) fn matches(&self, now: Timestamp) -> bool {
        self.after.is_none_or(|a| now >= a) && self.before.is_none_or(|b| now < b)
    }
}

fn parse_date(v: &Value, loc: &Loc) -> Result<Timestamp, PolicyError> {
    let Value::String(s) = v else {
        return Err(loc.error(format!(
            "expected an ISO-8601 date string, got {}",
            describe(v)
        )));
    };
    let s = s.trim();
    // An explicit offset or `Z` first: civil parsing would silently drop it.
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = s.parse::<DateTime>()
        && let Ok(z) = dt.to_zoned(TimeZone::UTC)
    {
        return Ok(z.timestamp());
    }
    Err(loc.error(format!(
        "invalid date {s:?}; expected ISO-8601 such as 2024-01-31, 2024-01-31T09:00:00 or 2024-01-31T09:00:00+01:00"
    )))
}

/// `day_of_week`: `*`, `mon,wed`, `mon-fri` (ranges may wrap: `fri-mon`), full or
/// three-letter English names, any case. Days are taken in UTC: the documented form
/// has no time zone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DayOfWeekMatcher {
    /// Bit `n` set when the day `n` days after Monday matches.
    days: u8,
}

impl DayOfWeekMatcher {
    pub(crate) fn compile(v: &Value, loc: &Loc) -> Result<Self, PolicyError> {
        let Value::String(s) = v else {
            return Err(loc.error(format!(
                "expected a string such as \"mon-fri\" or \"sat,sun\", got {}",
                describe(v)
            )));
        };
        let spec = s.trim();
        if spec == "*" {
            return Ok(DayOfWeekMatcher { days: 0x7f });
        }
        let mut days = 0u8;
        for part in spec.split(',') {
            let part = part.trim();
            match part.split_once('-') {
                Some((from, to)) => {
                    let from = parse_day(from.trim(), loc)?;
                    let to = parse_day(to.trim(), loc)?;
                    let mut d = from;
                    loop {
                        days |= 1 << d;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days |= 1 << parse_day(part, loc)?,
            }
        }
        Ok(DayOfWeekMatcher { days })
    }

    pub(crate) fn matches(&self, now: Timestamp) -> bool {
        let day = TimeZone::UTC.to_datetime(now).weekday();
        self.days & (1 << day.to_monday_zero_offset()) != 0
    }
}

fn parse_day(name: &str, loc: &Loc) -> Result<u8, PolicyError> {
    const DAYS: [(&str, &str, Weekday); 7] = [
        ("mon", "monday", Weekday::Monday),
        ("tue", "tuesday", Weekday::Tuesday),
        ("wed", "wednesday", Weekday::Wednesday),
        ("thu", "thursday", Weekday::Thursday),
        ("fri", "friday", Weekday::Friday),
        ("sat", "saturday", Weekday::Saturday),
        ("sun", "sunday", Weekday::Sunday),
    ];
    let lower = name.to_ascii_lowercase();
    DAYS.iter()
        .find(|(short, long, _)| lower == *short || lower == *long)
        .map(|(_, _, d)| d.to_monday_zero_offset() as u8)
        .ok_or_else(|| {
            loc.error(format!(
                "unknown day {name:?}; expected mon, tue, wed, thu, fri, sat, sun or full names"
            ))
        })
}

/// `time_of_day: {timezone, after, before}`. When `after` is later than `before` the
/// window wraps midnight (`after: 22:00, before: 06:00` is the night shift).
#[derive(Debug, Clone)]
pub(crate) struct TimeOfDayMatcher {
    tz: TimeZone,
    after: Option<Time>,
    before: Option<Time>,
}

impl TimeOfDayMatcher {
    pub(crate) fn compile(v: &Value, loc: &Loc) -> Result<Self, PolicyError> {
        const KEYS: &str = "timezone, after, before";
        let obj = expect_object(v, loc, KEYS)?;
        let mut tz = None;
        let mut after = None;
        let mut before = None;
        for (k, v) in obj {
            let at = loc.key(k);
            match k.as_str() {
                "timezone" => {
                    let Value::String(name) = v else {
                        return Err(at.error(format!(
                            "expected a time zone name such as \"Europe/Paris\", got {}",
                            describe(v)
                        )));
                    };
                    tz = Some(
                        TimeZone::get(name.trim())
                            .map_err(|_| at.error(format!("unknown time zone {name:?}")))?,
                    );
                }
                "after" => after = Some(parse_time(v, &at)?),
                "before" => before = Some(parse_time(v, &at)?),
                other => return Err(unknown_key(&at, other, KEYS)),
            }
        }
        let tz = tz.ok_or_else(|| loc.key("timezone").error("timezone is required"))?;
        if after.is_none() && before.is_none() {
            return Err(loc.error("expected at least one of after, before"));
        }
        Ok(TimeOfDayMatcher { tz, after, before })
    }

    pub(crate) fn matches(&self, now: Timestamp) -> bool {
        let t = self.tz.to_datetime(now).time();
        match (self.after, self.before) {
            (Some(a), Some(b)) if a > b => t >= a || t < b,
            (a, b) => a.is_none_or(|a| t >= a) && b.is_none_or(|b| t < b),
        }
    }
}

/// Go layouts `15:04`, `15:04:05`, `15:04:05.999999999`, `3:04PM`, `3:04 PM`, `3PM`, `3 PM`.
fn parse_time(v: &Value, loc: &Loc) -> Result<Time, PolicyError> {
    let Value::String(raw) = v else {
        return Err(loc.error(format!(
            "expected a time such as \"15:04\" or \"3:04PM\", got {}",
            describe(v)
        )));
    };
    parse_clock(raw.trim()).ok_or_else(|| {
        loc.error(format!(
            "invalid time {raw:?}; expected 15:04, 15:04:05, 3:04PM, 3:04 PM or 3 PM"
        ))
    })
}

fn parse_clock(s: &str) -> Option<Time> {
    let upper = s.to_ascii_uppercase();
    let (clock, pm) = if let Some(rest) = upper.strip_suffix("PM") {
        (rest.trim_end(), Some(true))
    } else if let Some(rest) = upper.strip_suffix("AM") {
        (rest.trim_end(), Some(false))
    } else {
        (upper.as_str(), None)
    };
    let mut parts = clock.split(':');
    let hour = number(parts.next()?, 1, 2)?;
    let minute = parts.next().map(|m| number(m, 2, 2));
    let second = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let (hour, minute, second, nanos) = match pm {
        Some(pm) => {
            // 12-hour clock: hour 1..=12, optional minutes, no seconds.
            if !(1..=12).contains(&hour) || second.is_some() {
                return None;
            }
            let minute = minute.unwrap_or(Some(0))?;
            ((hour % 12) + if pm { 12 } else { 0 }, minute, 0, 0)
        }
        None => {
            let minute = minute??;
            let (second, nanos) = match second {
                None => (0, 0),
                Some(sec) => {
                    let (whole, frac) = match sec.split_once('.') {
                        Some((w, f)) => (w, Some(f)),
                        None => (sec, None),
                    };
                    let nanos = match frac {
                        None => 0,
                        Some(f) if !f.is_empty() && f.len() <= 9 => {
                            let digits = number(f, 1, 9)?;
                            digits * 10u32.pow(9 - f.len() as u32)
                        }
                        Some(_) => return None,
                    };
                    (number(whole, 2, 2)?, nanos)
                }
            };
            (hour, minute, second, nanos)
        }
    };
    Time::new(
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second).ok()?,
        i32::try_from(nanos).ok()?,
    )
    .ok()
}

/// ASCII digits only, `min..=max` of them.
fn number(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn expect_object<'a>(
    v: &'a Value,
    loc: &Loc,
    keys: &str,
) -> Result<&'a serde_json::Map<String, Value>, PolicyError> {
    match v {
        Value::Object(obj) if !obj.is_empty() => Ok(obj),
        Value::Object(_) => Err(loc.error(format!("empty object; expected keys {keys}"))),
        other => Err(loc.error(format!(
            "expected an object with keys {keys}, got {}",
            describe(other)
        ))),
    }
}

fn unknown_key(loc: &Loc, key: &str, keys: &str) -> PolicyError {
    loc.error(format!("unknown key {key:?}; expected one of {keys}"))
}

#[cfg(test)]
mod tests {
    use super::parse_clock;
    use jiff::civil::time;

    #[test]
    fn clock_forms() {
        let cases: &[(&str, Option<jiff::civil::Time>)] = &[
            ("15:04", Some(time(15, 4, 0, 0))),
            ("15:04:05", Some(time(15, 4, 5, 0))),
            ("15:04:05.5", Some(time(15, 4, 5, 500_000_000))),
            ("15:04:05.999999999", Some(time(15, 4, 5, 999_999_999))),
            ("2:20:00", Some(time(2, 20, 0, 0))),
            ("3:04PM", Some(time(15, 4, 0, 0))),
            ("3:04 PM", Some(time(15, 4, 0, 0))),
            ("3 PM", Some(time(15, 0, 0, 0))),
            ("3PM", Some(time(15, 0, 0, 0))),
            ("3pm", Some(time(15, 0, 0, 0))),
            ("12 AM", Some(time(0, 0, 0, 0))),
            ("12PM", Some(time(12, 0, 0, 0))),
            ("12:30 AM", Some(time(0, 30, 0, 0))),
            ("0:00", Some(time(0, 0, 0, 0))),
            ("24:00", None),
            ("13 PM", None),
            ("0 AM", None),
            ("15", None),
            ("15:4", None),
            ("15:04:05.", None),
            ("15:04:05.1234567890", None),
            ("3:04:05 PM", None),
            ("noon", None),
            ("", None),
            ("-1:00", None),
            ("+1:00", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_clock(input), *want, "input {input:?}");
        }
    }
}
