//! Timestamps as devices write them: RFC 3339 text and numbers since the Unix epoch in
//! seconds, milliseconds or microseconds.

use chrono::DateTime;

/// Parses an RFC 3339 time, such as `2026-01-01T00:00:00Z`, into milliseconds since the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|time| time.timestamp_millis())
}

/// Converts a numeric epoch timestamp to milliseconds by its magnitude: below 1e11 it is
/// seconds, below 1e14 milliseconds, below 1e17 microseconds, and anything larger, zero or
/// negative is rejected. Seconds may carry a fraction.
///
/// The bands cannot overlap for real dates: 1e11 s is the year 5138, and 1e11 ms is 1973.
pub fn epoch_number_to_ms(number: f64) -> Result<i64, String> {
    if !number.is_finite() {
        return Err(format!("timestamp {number} is not a finite number"));
    }
    if number <= 0.0 {
        return Err(format!("timestamp {number} is not after the Unix epoch"));
    }
    let ms = if number < 1e11 {
        number * 1000.0
    } else if number < 1e14 {
        number
    } else if number < 1e17 {
        number / 1000.0
    } else {
        return Err(format!(
            "timestamp {number} is too large for seconds, milliseconds or microseconds"
        ));
    };
    Ok(ms.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_units_by_magnitude() {
        let expected = 1_648_731_311_000;
        assert_eq!(epoch_number_to_ms(1_648_731_311.0), Ok(expected));
        assert_eq!(epoch_number_to_ms(1_648_731_311_000.0), Ok(expected));
        assert_eq!(epoch_number_to_ms(1_648_731_311_000_000.0), Ok(expected));
        assert!(epoch_number_to_ms(0.0).is_err());
        assert!(epoch_number_to_ms(-1.0).is_err());
        assert!(epoch_number_to_ms(f64::NAN).is_err());
        assert!(epoch_number_to_ms(1e18).is_err());
    }
}
