//! Time-based one-time passwords (RFC 6238, on HOTP of RFC 4226) and single-use recovery codes.
//!
//! Parameters are the ones every authenticator app supports: HMAC-SHA-1, 6 digits, 30-second
//! steps, and one step of clock skew either way (RFC 6238 §5.2 recommends at most one). SHA-1 is
//! acceptable here: HOTP relies on HMAC's pseudo-randomness, which collisions do not break
//! (RFC 4226 Appendix A.2; RFC 6238 §1.2).
//!
//! This module owns code generation and checking. It keeps no state: refusing a replayed code
//! (RFC 6238 §5.2, "the verifier MUST NOT accept the second attempt of the same OTP") is the
//! caller's job, with the time step [`verify`] returns, stored per user where every node sees it;
//! [`verify_after`] does the comparison.

use crate::{Error, random_bytes};
use aws_lc_rs::{constant_time, hmac};
use std::fmt;
use zeroize::Zeroizing;

/// Digits per code.
pub const DIGITS: u32 = 6;
/// Seconds per time step (RFC 6238 §4.1, X = 30).
pub const STEP_SECONDS: u64 = 30;
/// Steps of clock skew accepted either way (RFC 6238 §5.2).
pub const WINDOW: u64 = 1;
/// Length of a generated secret: 160 bits, the HMAC-SHA-1 output size (RFC 4226 §4, R6).
pub const SECRET_LEN: usize = 20;
/// Shortest secret accepted on import: 128 bits (RFC 4226 §4, R6).
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted on import.
pub const MAX_SECRET_LEN: usize = 64;

/// A TOTP shared secret: zeroized on drop, `<redacted>` in `Debug`, no `Display`.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A fresh 160-bit secret from the operating system's generator.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        random_bytes(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Takes raw secret bytes (16 to 64).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a secret shorter than 128 bits or longer than 512.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(Error::InvalidKey("a totp secret is 16 to 64 bytes"));
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// Reads a secret in RFC 4648 base32, as stored or as typed from an app: case, spaces,
    /// dashes and `=` padding are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the text is not base32 or the secret has the wrong length.
    pub fn from_base32(text: &str) -> Result<Self, Error> {
        let bytes = base32_decode(text).ok_or(Error::InvalidKey("a totp secret is base32"))?;
        Self::from_bytes(&bytes)
    }

    /// The secret in RFC 4648 base32 without padding, for storage (sealed) or manual entry.
    ///
    /// # Security
    /// This is the secret itself; it goes to the enrolling user once and is sealed at rest.
    pub fn to_base32(&self) -> Zeroizing<String> {
        base32_encode(&self.0)
    }

    /// The secret bytes.
    ///
    /// # Security
    /// Callers must not copy the bytes anywhere that is not zeroized.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The `otpauth://totp/` enrolment URI of the Key Uri Format that authenticator apps read
    /// (label `issuer:account`, with `secret`, `issuer`, `algorithm`, `digits`, `period`).
    ///
    /// # Security
    /// The URI contains the secret; show it (or its QR code) to the enrolling user only.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let mut uri = Zeroizing::new(String::with_capacity(128));
        uri.push_str("otpauth://totp/");
        percent_encode(&mut uri, issuer);
        uri.push(':');
        percent_encode(&mut uri, account);
        uri.push_str("?secret=");
        uri.push_str(&self.to_base32());
        uri.push_str("&issuer=");
        percent_encode(&mut uri, issuer);
        uri.push_str(&format!(
            "&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
        ));
        uri
    }
}

/// The time step of a Unix time (RFC 6238 §4.2, T0 = 0).
pub fn step_at(unix_time: u64) -> u64 {
    unix_time / STEP_SECONDS
}

/// The 6-digit code for `unix_time`.
pub fn code_at(secret: &TotpSecret, unix_time: u64) -> Zeroizing<String> {
    code_with_digits(secret, step_at(unix_time), DIGITS)
}

/// Checks `code` at `unix_time`, accepting the current step and one step either way. Returns
/// the accepted time step; the caller stores it and refuses that step and earlier ones next
/// time (see [`verify_after`]). Anything but exactly six ASCII digits is refused.
pub fn verify(secret: &TotpSecret, code: &str, unix_time: u64) -> Option<u64> {
    verify_after(secret, code, unix_time, None)
}

/// As [`verify`], but refuses any step at or before `last_accepted`, the step this user last
/// used: a replayed code, or an older code from within the skew window, fails (RFC 6238 §5.2).
pub fn verify_after(
    secret: &TotpSecret,
    code: &str,
    unix_time: u64,
    last_accepted: Option<u64>,
) -> Option<u64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_time);
    let mut accepted = None;
    // Every step in the window is computed and compared in constant time, so timing says
    // nothing about which step matched.
    for step in now.saturating_sub(WINDOW)..=now.saturating_add(WINDOW) {
        let expected = code_with_digits(secret, step, DIGITS);
        let same =
            constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok();
        let fresh = last_accepted.is_none_or(|last| step > last);
        if same && fresh && accepted.is_none() {
            accepted = Some(step);
        }
    }
    accepted
}

/// HOTP (RFC 4226 §5.3): HMAC-SHA-1 over the counter, dynamic truncation, `digits` decimal
/// digits (6 to 9 are meaningful; RFC 6238's test vectors use 8).
pub(crate) fn code_with_digits(
    secret: &TotpSecret,
    counter: u64,
    digits: u32,
) -> Zeroizing<String> {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret.0);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // The low nibble of the last byte picks 4 bytes; the top bit is masked (RFC 4226 §5.4).
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let modulus = 10u64.pow(digits);
    let value = u64::from(binary) % modulus;
    Zeroizing::new(format!("{value:0width$}", width = digits as usize))
}

/// Bits of entropy in one recovery code.
pub const RECOVERY_CODE_BITS: u32 = 60;

/// `n` fresh recovery codes, `xxxx-xxxx-xxxx` in lowercase RFC 4648 base32, 60 random bits each.
/// They are shown once; store only a hash of [`normalize_recovery_code`]'s output, and delete a
/// code's hash when it is used.
///
/// # Errors
/// [`Error::Random`] if the generator fails.
pub fn recovery_codes(n: usize) -> Result<Vec<Zeroizing<String>>, Error> {
    (0..n)
        .map(|_| {
            let mut raw = Zeroizing::new([0u8; 8]);
            random_bytes(raw.as_mut())?;
            let bits = u64::from_be_bytes(*raw) >> 4; // 60 bits
            let mut code = Zeroizing::new(String::with_capacity(14));
            for i in 0..12 {
                if i == 4 || i == 8 {
                    code.push('-');
                }
                let index = (bits >> (55 - 5 * i)) & 0x1f;
                code.push(char::from(BASE32[index as usize].to_ascii_lowercase()));
            }
            Ok(code)
        })
        .collect()
}

/// A recovery code as typed, reduced to its canonical form (12 lowercase base32 characters,
/// no dashes or spaces) for hashing and comparison; `None` when it cannot be one.
pub fn normalize_recovery_code(typed: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(12));
    for c in typed.chars() {
        match c {
            '-' | ' ' => {}
            c if c.is_ascii_alphabetic() || ('2'..='7').contains(&c) => {
                out.push(c.to_ascii_lowercase());
            }
            _ => return None,
        }
    }
    (out.len() == 12).then_some(out)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 §6 base32, uppercase, without padding.
fn base32_encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 0x1f) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 0x1f) as usize]));
    }
    out
}

/// RFC 4648 §6 base32, case-insensitive, ignoring spaces, dashes and trailing `=`. Leftover bits
/// must be zero, so each secret has one spelling.
fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    let body = text.trim_end_matches('=');
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            b' ' | b'-' => continue,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    (buffer == 0 && bits < 5).then_some(out)
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: `unix_time totp_8_digits` (seed "12345678901234567890").
    const VECTORS: &str = include_str!("../tests/vectors/rfc6238-sha1.txt");

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    fn vectors() -> Vec<(u64, String)> {
        VECTORS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let mut parts = l.split_whitespace();
                let t = parts.next().unwrap().parse().unwrap();
                (t, parts.next().unwrap().to_owned())
            })
            .collect()
    }

    #[test]
    fn rfc6238_appendix_b_sha1_eight_digits() {
        let s = rfc_secret();
        let v = vectors();
        assert_eq!(v.len(), 6);
        for (t, code) in v {
            assert_eq!(*code_with_digits(&s, step_at(t), 8), code, "time {t}");
        }
    }

    #[test]
    fn rfc6238_six_digit_codes_are_the_last_six_digits() {
        let s = rfc_secret();
        for (t, code) in vectors() {
            assert_eq!(*code_at(&s, t), code[2..], "time {t}");
            assert_eq!(verify(&s, &code[2..], t), Some(step_at(t)));
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_values() {
        let s = rfc_secret();
        let expected = ["755224", "287082", "359152", "969429", "338314"];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(*code_with_digits(&s, counter as u64, 6), *code);
        }
    }

    #[test]
    fn one_step_of_skew_is_accepted_two_are_refused() {
        let s = TotpSecret::generate().unwrap();
        let t = 1_700_000_015;
        let now = step_at(t);
        for delta in [-1i64, 0, 1] {
            let at = (t as i64 + delta * STEP_SECONDS as i64) as u64;
            let code = code_at(&s, at);
            assert_eq!(verify(&s, &code, t), Some(step_at(at)), "delta {delta}");
        }
        for delta in [-2i64, 2] {
            let at = (t as i64 + delta * STEP_SECONDS as i64) as u64;
            let code = code_at(&s, at);
            // A different step's code could collide by chance (1 in 10^6); skip that case.
            if ![-1i64, 0, 1]
                .iter()
                .any(|d| *code_at(&s, (t as i64 + d * 30) as u64) == *code)
            {
                assert_eq!(verify(&s, &code, t), None, "delta {delta}");
            }
        }
        assert_eq!(verify(&s, &code_at(&s, t), t), Some(now));
    }

    #[test]
    fn a_replayed_step_is_refused() {
        let s = TotpSecret::generate().unwrap();
        let t = 1_700_000_000;
        let code = code_at(&s, t);
        let step = verify_after(&s, &code, t, None).unwrap();
        assert_eq!(verify_after(&s, &code, t, Some(step)), None);
        assert_eq!(verify_after(&s, &code, t + 29, Some(step)), None);
        // A code from the previous step, inside the window, is refused after a newer one.
        let older = code_at(&s, t - 30);
        assert_eq!(verify_after(&s, &older, t, Some(step)), None);
        // The next step's code is fine.
        let next = code_at(&s, t + 30);
        assert_eq!(verify_after(&s, &next, t + 30, Some(step)), Some(step + 1));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let s = rfc_secret();
        for code in ["", "28708", "2870820", "287 82", "28708a", "²87082"] {
            assert_eq!(verify(&s, code, 59), None, "{code:?}");
        }
    }

    #[test]
    fn early_times_do_not_underflow() {
        let s = rfc_secret();
        assert!(verify(&s, &code_at(&s, 0), 0).is_some());
    }

    #[test]
    fn base32_matches_rfc4648_section_10() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ];
        for (raw, text) in cases {
            assert_eq!(*base32_encode(raw), text);
            assert_eq!(&*base32_decode(text).unwrap(), raw);
            assert_eq!(
                &*base32_decode(&format!("{}====", text.to_lowercase())).unwrap(),
                raw
            );
        }
        assert!(base32_decode("MZ").is_none(), "non-zero leftover bits");
        assert!(base32_decode("M1").is_none());
    }

    #[test]
    fn secrets_round_trip_and_stay_redacted() {
        let s = TotpSecret::generate().unwrap();
        assert_eq!(s.expose().len(), SECRET_LEN);
        let text = s.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text).unwrap().expose(), s.expose());
        assert_eq!(format!("{s:?}"), "TotpSecret(<redacted>)");
        assert!(TotpSecret::from_base32("MZXW6YTB").is_err(), "too short");
        assert!(TotpSecret::from_base32("not base32!").is_err());
    }

    #[test]
    fn otpauth_uri_has_the_key_uri_format() {
        let s = rfc_secret();
        let uri = s.otpauth_uri("boveda Acme", "ana@example.com");
        assert_eq!(
            *uri,
            "otpauth://totp/boveda%20Acme:ana%40example.com?secret=\
             GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=boveda%20Acme&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_have_the_shape_and_normalize() {
        let codes = recovery_codes(10).unwrap();
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert_eq!(c.len(), 14);
            assert_eq!(c.matches('-').count(), 2);
            let n = normalize_recovery_code(&c.to_uppercase()).unwrap();
            assert_eq!(n.len(), 12);
            assert_eq!(*n, c.replace('-', ""));
        }
        let mut unique: Vec<_> = codes.iter().map(|c| c.to_string()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert!(normalize_recovery_code("abcd-efgh-ijk1").is_none());
        assert!(normalize_recovery_code("abcd-efgh").is_none());
    }
}
