//! Check-digit and format rules for identifiers: Luhn, IBAN mod-97, Chinese resident ids
//! (GB 11643, ISO 7064 MOD 11-2), Spanish DNI/NIE and US SSN.
//!
//! Every function takes an already compacted value (no spaces or dashes) and never panics.

/// Luhn check (ISO/IEC 7812-1) over ASCII digits; false for anything that is not all digits.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The IBAN length of a country (ISO 13616 registry), or `None` for a country without IBANs.
pub fn iban_length(country: &str) -> Option<usize> {
    let len = match country {
        "AD" => 24,
        "AE" => 23,
        "AL" => 28,
        "AT" => 20,
        "AZ" => 28,
        "BA" => 20,
        "BE" => 16,
        "BG" => 22,
        "BH" => 22,
        "BI" => 27,
        "BR" => 29,
        "BY" => 28,
        "CH" => 21,
        "CR" => 22,
        "CY" => 28,
        "CZ" => 24,
        "DE" => 22,
        "DJ" => 27,
        "DK" => 18,
        "DO" => 28,
        "EE" => 20,
        "EG" => 29,
        "ES" => 24,
        "FI" => 18,
        "FK" => 18,
        "FO" => 18,
        "FR" => 27,
        "GB" => 22,
        "GE" => 22,
        "GI" => 23,
        "GL" => 18,
        "GR" => 27,
        "GT" => 28,
        "HN" => 28,
        "HR" => 21,
        "HU" => 28,
        "IE" => 22,
        "IL" => 23,
        "IQ" => 23,
        "IS" => 26,
        "IT" => 27,
        "JO" => 30,
        "KW" => 30,
        "KZ" => 20,
        "LB" => 28,
        "LC" => 32,
        "LI" => 21,
        "LT" => 20,
        "LU" => 20,
        "LV" => 21,
        "LY" => 25,
        "MC" => 27,
        "MD" => 24,
        "ME" => 22,
        "MK" => 19,
        "MN" => 20,
        "MR" => 27,
        "MT" => 31,
        "MU" => 30,
        "NI" => 28,
        "NL" => 18,
        "NO" => 15,
        "OM" => 23,
        "PK" => 24,
        "PL" => 28,
        "PS" => 29,
        "PT" => 25,
        "QA" => 29,
        "RO" => 24,
        "RS" => 22,
        "RU" => 33,
        "SA" => 24,
        "SC" => 31,
        "SD" => 18,
        "SE" => 24,
        "SI" => 19,
        "SK" => 24,
        "SM" => 27,
        "SO" => 23,
        "ST" => 25,
        "SV" => 28,
        "TL" => 23,
        "TN" => 24,
        "TR" => 26,
        "UA" => 29,
        "VA" => 22,
        "VG" => 24,
        "XK" => 20,
        "YE" => 30,
        _ => return None,
    };
    Some(len)
}

/// IBAN validity: upper-case compact form, the country's registered length and mod-97 == 1
/// (ISO 13616-1).
pub fn iban_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 5
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        return false;
    }
    if !b[0].is_ascii_uppercase() || !b[1].is_ascii_uppercase() {
        return false;
    }
    if !b[2].is_ascii_digit() || !b[3].is_ascii_digit() {
        return false;
    }
    if iban_length(&iban[..2]) != Some(b.len()) {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            let v = u32::from(c - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

/// Chinese resident identity number (GB 11643-1999): 17 digits, a valid birth date and the
/// ISO 7064 MOD 11-2 check character (`0`-`9` or `X`).
pub fn cn_resident_id_valid(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let digit = |i: usize| u32::from(b[i] - b'0');
    let year = (0..4).fold(0, |acc, i| acc * 10 + digit(6 + i));
    let month = digit(10) * 10 + digit(11);
    let day = digit(12) * 10 + digit(13);
    // GB 11643's own example holder was born in 1880, so the range starts in 1800.
    if !(1800..=2100).contains(&year) || !date_exists(year, month, day) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = (0..17).map(|i| digit(i) * WEIGHTS[i]).sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    b[17] == check
}

/// Whether a Gregorian calendar date exists.
pub fn date_exists(year: u32, month: u32, day: u32) -> bool {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spanish DNI: eight digits and the control letter (number mod 23).
pub fn es_dni_valid(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 9 || !b[..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n: u32 = b[..8]
        .iter()
        .fold(0, |acc, c| acc * 10 + u32::from(c - b'0'));
    b[8] == DNI_LETTERS[(n % 23) as usize]
}

/// Spanish NIE: `X`, `Y` or `Z` (standing for 0, 1, 2), seven digits and the control letter.
pub fn es_nie_valid(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 9 || !b[1..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let lead = match b[0] {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        _ => return false,
    };
    let n: u32 = b[1..8]
        .iter()
        .fold(lead, |acc, c| acc * 10 + u32::from(c - b'0'));
    b[8] == DNI_LETTERS[(n % 23) as usize]
}

/// US Social Security number, nine digits: area not 000, 666 or 9xx; group not 00; serial not
/// 0000.
pub fn us_ssn_valid(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = &id[..3];
    area != "000" && area != "666" && b[0] != b'9' && &id[3..5] != "00" && &id[5..] != "0000"
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_a_changed_digit() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("6212345678901265")); // UnionPay test number
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("41111111a1111111"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn iban_checks_length_and_mod97() {
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("ES9121000418450200051332"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("GB82WEST12345698765433"));
        assert!(!iban_valid("GB82WEST1234569876543"));
        assert!(!iban_valid("ZZ82WEST12345698765432"));
    }

    #[test]
    fn cn_resident_id_checks_mod_11_2_and_date() {
        assert!(cn_resident_id_valid("11010519491231002X"));
        assert!(cn_resident_id_valid("440524188001010014"));
        assert!(!cn_resident_id_valid("110105194912310021"));
        assert!(!cn_resident_id_valid("11010519491331002X"));
        assert!(!cn_resident_id_valid("11010519491231002"));
    }

    #[test]
    fn spanish_dni_and_nie_letters() {
        assert!(es_dni_valid("12345678Z"));
        assert!(!es_dni_valid("12345678A"));
        assert!(es_nie_valid("X1234567L"));
        assert!(es_nie_valid("Y1234567X"));
        assert!(!es_nie_valid("X1234567A"));
        assert!(!es_nie_valid("W1234567L"));
    }

    #[test]
    fn us_ssn_rules() {
        assert!(us_ssn_valid("123456789"));
        assert!(!us_ssn_valid("000456789"));
        assert!(!us_ssn_valid("666456789"));
        assert!(!us_ssn_valid("923456789"));
        assert!(!us_ssn_valid("123006789"));
        assert!(!us_ssn_valid("123450000"));
    }

    #[test]
    fn dates_that_do_not_exist() {
        assert!(date_exists(2024, 2, 29));
        assert!(!date_exists(2023, 2, 29));
        assert!(!date_exists(1900, 2, 29));
        assert!(date_exists(2000, 2, 29));
        assert!(!date_exists(2023, 4, 31));
        assert!(!date_exists(2023, 13, 1));
    }
}
