//! Times as people type them on the command line: unix seconds (`1767225600`, `1767225600.5`),
//! RFC 3339 (`2026-01-01T00:00:00Z`, `2026-01-01 00:00:00+01:00`, `2026-01-01`), `now`, and times
//! relative to now (`-15m`, `-2h`, `-7d`, `-1w`, `-30s`).

/// Parses `text` as a time in microseconds since the epoch; `now_us` anchors relative times.
pub fn parse_time(text: &str, now_us: u64) -> Result<u64, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now_us);
    }
    if let Some(rest) = t.strip_prefix('-') {
        let d = parse_duration(rest)?;
        return Ok(now_us.saturating_sub(d));
    }
    if let Ok(secs) = t.parse::<f64>() {
        if (0.0..1e12).contains(&secs) {
            return Ok((secs * 1e6).round() as u64);
        }
    }
    parse_rfc3339(t).ok_or_else(|| {
        format!("`{text}` is not a time: use unix seconds, RFC 3339 (2026-01-01T00:00:00Z), now, or -15m/-2h/-7d")
    })
}

/// Parses `250ms`, `30s`, `15m`, `2h`, `7d`, `1w` (or a bare number of seconds) as microseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 15m, 2h, 7d or 1w"))?;
    let micros: u64 = match unit.trim() {
        "ms" => 1_000,
        "" | "s" | "sec" | "second" | "seconds" => 1_000_000,
        "m" | "min" | "minute" | "minutes" => 60_000_000,
        "h" | "hour" | "hours" => 3_600_000_000,
        "d" | "day" | "days" => 86_400_000_000,
        "w" | "week" | "weeks" => 7 * 86_400_000_000,
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit: use ms, s, m, h, d or w"
            ))
        }
    };
    n.checked_mul(micros)
        .ok_or_else(|| format!("`{text}` is too long"))
}

fn parse_rfc3339(t: &str) -> Option<u64> {
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (date, rest) = if t.len() > 10 {
        t.split_at(10)
    } else {
        (t, "")
    };
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let mut secs_of_day = 0i64;
    let mut micros = 0i64;
    let mut offset = 0i64;
    if !rest.is_empty() {
        let rest = rest.strip_prefix(['T', 't', ' '])?;
        let (clock, zone) = match rest.find(['Z', 'z', '+', '-']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut p = hms.split(':');
        let (h, mi) = (num(p.next()?)?, num(p.next()?)?);
        let s = p.next().map_or(Some(0), num)?;
        if h > 23 || mi > 59 || s > 60 || p.next().is_some() {
            return None;
        }
        secs_of_day = h * 3600 + mi * 60 + s;
        if !frac.is_empty() {
            let digits: String = frac.chars().take(6).collect();
            micros = num(&digits)? * 10i64.pow(6 - digits.len() as u32);
        }
        offset = match zone {
            "" | "Z" | "z" => 0,
            z => {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let (oh, om) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
                sign * (num(oh)? * 3600 + num(om)? * 60)
            }
        };
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + secs_of_day - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| s * 1_000_000 + micros as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

    #[test]
    fn parses_the_forms_people_type() {
        assert_eq!(parse_time("1767225600", 0), Ok(NOW));
        assert_eq!(parse_time("1767225600.5", 0), Ok(NOW + 500_000));
        assert_eq!(parse_time("2026-01-01T00:00:00Z", 0), Ok(NOW));
        assert_eq!(parse_time("2026-01-01", 0), Ok(NOW));
        assert_eq!(parse_time("2026-01-01 01:00:00+01:00", 0), Ok(NOW));
        assert_eq!(
            parse_time("2025-12-31T23:59:59.25-00:00", 0),
            Ok(NOW - 750_000)
        );
        assert_eq!(
            parse_time("2024-02-29T12:00:00Z", 0),
            Ok(1_709_208_000_000_000)
        );
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("-15m", NOW), Ok(NOW - 900_000_000));
        assert_eq!(parse_time("-7d", NOW), Ok(NOW - 7 * 86_400_000_000));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "banana",
            "2026-13-01",
            "2026-01-01T25:00:00Z",
            "-3x",
            "-",
            "1e400",
            "2026-01-01Tnoon",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad}");
        }
    }
}
