//! E.164 phone normalisation (ITU-T E.164): `+` country code and national significant number,
//! at most 15 digits. National input is read in a configured default region, with its trunk
//! prefix dropped. The region table covers the regions boveda's users start with; numbers in
//! international form from any other country are accepted on the E.164 length rule alone.

/// One region's numbering facts.
struct Region {
    iso: &'static str,
    code: &'static str,
    trunk: &'static str,
    /// Allowed lengths of the national significant number.
    nsn: (usize, usize),
}

const REGIONS: &[Region] = &[
    Region {
        iso: "CN",
        code: "86",
        trunk: "0",
        nsn: (9, 11),
    },
    Region {
        iso: "ES",
        code: "34",
        trunk: "",
        nsn: (9, 9),
    },
    Region {
        iso: "US",
        code: "1",
        trunk: "1",
        nsn: (10, 10),
    },
    Region {
        iso: "CA",
        code: "1",
        trunk: "1",
        nsn: (10, 10),
    },
    Region {
        iso: "GB",
        code: "44",
        trunk: "0",
        nsn: (9, 10),
    },
    Region {
        iso: "DE",
        code: "49",
        trunk: "0",
        nsn: (6, 13),
    },
    Region {
        iso: "FR",
        code: "33",
        trunk: "0",
        nsn: (9, 9),
    },
    Region {
        iso: "IT",
        code: "39",
        trunk: "",
        nsn: (6, 11),
    },
    Region {
        iso: "PT",
        code: "351",
        trunk: "",
        nsn: (9, 9),
    },
    Region {
        iso: "MX",
        code: "52",
        trunk: "",
        nsn: (10, 10),
    },
    Region {
        iso: "AR",
        code: "54",
        trunk: "0",
        nsn: (10, 11),
    },
    Region {
        iso: "CO",
        code: "57",
        trunk: "",
        nsn: (8, 10),
    },
    Region {
        iso: "BR",
        code: "55",
        trunk: "0",
        nsn: (10, 11),
    },
    Region {
        iso: "HK",
        code: "852",
        trunk: "",
        nsn: (8, 8),
    },
    Region {
        iso: "MO",
        code: "853",
        trunk: "",
        nsn: (8, 8),
    },
    Region {
        iso: "TW",
        code: "886",
        trunk: "0",
        nsn: (8, 9),
    },
    Region {
        iso: "JP",
        code: "81",
        trunk: "0",
        nsn: (9, 10),
    },
    Region {
        iso: "SG",
        code: "65",
        trunk: "",
        nsn: (8, 8),
    },
    Region {
        iso: "IN",
        code: "91",
        trunk: "0",
        nsn: (10, 10),
    },
    Region {
        iso: "AU",
        code: "61",
        trunk: "0",
        nsn: (9, 9),
    },
];

/// Whether boveda knows a region for default-region parsing.
pub fn known_region(iso: &str) -> bool {
    REGIONS.iter().any(|r| r.iso == iso)
}

/// Why a phone number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneError {
    /// Characters other than digits, spaces, `+`, `-`, `.`, `(` and `)`.
    Characters,
    /// Wrong number of digits for the region or for E.164.
    Length,
}

/// Normalises to E.164 (`+8613812345678`).
///
/// # Errors
/// [`PhoneError`] naming the rule that failed.
pub fn normalise(input: &str, default_region: &str) -> Result<String, PhoneError> {
    let trimmed = input.trim();
    let (international, rest) = match trimmed.strip_prefix('+') {
        Some(r) => (true, r),
        None => match trimmed.strip_prefix("00") {
            Some(r) => (true, r),
            None => (false, trimmed),
        },
    };
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(PhoneError::Characters),
        }
    }
    if international {
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneError::Length);
        }
        if let Some(r) = region_of(&digits) {
            let nsn = digits.len() - r.code.len();
            if nsn < r.nsn.0 || nsn > r.nsn.1 {
                return Err(PhoneError::Length);
            }
        }
        return Ok(format!("+{digits}"));
    }
    let region = REGIONS
        .iter()
        .find(|r| r.iso == default_region)
        .ok_or(PhoneError::Length)?;
    let mut nsn = digits.as_str();
    if !region.trunk.is_empty() && nsn.len() > region.nsn.1 {
        nsn = nsn.strip_prefix(region.trunk).unwrap_or(nsn);
    } else if !region.trunk.is_empty() && nsn.starts_with(region.trunk) && region.trunk == "0" {
        nsn = &nsn[1..];
    }
    if nsn.len() < region.nsn.0 || nsn.len() > region.nsn.1 || region.code.len() + nsn.len() > 15 {
        return Err(PhoneError::Length);
    }
    Ok(format!("+{}{nsn}", region.code))
}

/// The known region whose calling code starts these international digits (longest match).
fn region_of(digits: &str) -> Option<&'static Region> {
    REGIONS
        .iter()
        .filter(|r| digits.starts_with(r.code))
        .max_by_key(|r| r.code.len())
}

/// The masked form of a normalised number: `+86 138****5678`. The calling code stays; of the
/// national number at least four middle digits are hidden, at most three lead and four trail.
pub fn mask(e164: &str) -> String {
    let digits = e164.trim_start_matches('+');
    let code_len = region_of(digits).map_or_else(
        || digits.len().saturating_sub(10).clamp(1, 3),
        |r| r.code.len(),
    );
    let (code, nsn) = digits.split_at(code_len.min(digits.len()));
    let n = nsn.chars().count();
    let first = 3.min(n.saturating_sub(4) / 2);
    let last = 4.min(n.saturating_sub(first + 4));
    let hidden = n - first - last;
    format!(
        "+{code} {}{}{}",
        &nsn[..first],
        "*".repeat(hidden),
        &nsn[n - last..]
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn national_numbers_take_the_default_region() {
        assert_eq!(normalise("138 1234 5678", "CN").unwrap(), "+8613812345678");
        assert_eq!(normalise("010-12345678", "CN").unwrap(), "+861012345678");
        assert_eq!(normalise("612 345 678", "ES").unwrap(), "+34612345678");
        assert_eq!(normalise("(415) 555-2671", "US").unwrap(), "+14155552671");
        assert_eq!(normalise("1 415 555 2671", "US").unwrap(), "+14155552671");
    }

    #[test]
    fn international_numbers_keep_their_country() {
        assert_eq!(normalise("+34 612 34 56 78", "CN").unwrap(), "+34612345678");
        assert_eq!(
            normalise("0086 13812345678", "ES").unwrap(),
            "+8613812345678"
        );
        assert_eq!(normalise("+41 44 668 18 00", "CN").unwrap(), "+41446681800");
    }

    #[test]
    fn bad_numbers_name_the_rule() {
        assert_eq!(
            normalise("138-1234-567a", "CN"),
            Err(PhoneError::Characters)
        );
        assert_eq!(normalise("12345", "CN"), Err(PhoneError::Length));
        assert_eq!(normalise("+34 6123", "CN"), Err(PhoneError::Length));
        assert_eq!(
            normalise("+1234567890123456", "CN"),
            Err(PhoneError::Length)
        );
    }

    #[test]
    fn masks_hide_the_middle() {
        assert_eq!(mask("+8613812345678"), "+86 138****5678");
        assert_eq!(mask("+34612345678"), "+34 61****678");
        assert_eq!(mask("+14155552671"), "+1 415****671");
    }
}
