//! Date input as people type it: `2027-03-31`, `today`, `+90d`, `+6w`, `+3m`, `+1y`.

use chrono::{Duration, Months, NaiveDate};

/// Parses a date relative to `today`. Errors are one line, for people.
pub fn parse_date(input: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let text = input.trim();
    if text.eq_ignore_ascii_case("today") {
        return Ok(today);
    }
    if let Some(rest) = text.strip_prefix('+') {
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, unit) = rest.split_at(split);
        let n: u32 = digits
            .parse()
            .map_err(|_| format!("invalid date '{text}': expected +N followed by d, w, m or y"))?;
        let date = match unit {
            "d" | "" => today.checked_add_signed(Duration::days(i64::from(n))),
            "w" => today.checked_add_signed(Duration::weeks(i64::from(n))),
            "m" => today.checked_add_months(Months::new(n)),
            "y" => n
                .checked_mul(12)
                .and_then(|months| today.checked_add_months(Months::new(months))),
            _ => None,
        };
        return date
            .ok_or_else(|| format!("invalid date '{text}': expected +N followed by d, w, m or y"));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("invalid date '{text}': expected YYYY-MM-DD (e.g. 2027-03-31)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn parses_iso_relative_and_today() {
        let today = day("2026-11-22");
        assert_eq!(parse_date("2027-03-31", today), Ok(day("2027-03-31")));
        assert_eq!(parse_date("today", today), Ok(today));
        assert_eq!(parse_date("+10d", today), Ok(day("2026-12-02")));
        assert_eq!(parse_date("+2w", today), Ok(day("2026-12-06")));
        assert_eq!(parse_date("+3m", today), Ok(day("2027-02-22")));
        assert_eq!(parse_date("+1y", today), Ok(day("2027-11-22")));
    }

    #[test]
    fn rejects_nonsense_with_a_hint() {
        let today = day("2026-11-22");
        for bad in ["2027-02-30", "31/03/2027", "+x", "+5q", ""] {
            let err = parse_date(bad, today).unwrap_err();
            assert!(err.starts_with("invalid date"), "{bad}: {err}");
        }
    }
}
