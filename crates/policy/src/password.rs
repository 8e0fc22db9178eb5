//! Rules for choosing a staff password, after NIST SP 800-63B §5.1.1.2: a length window, a
//! blocklist of common passwords, a strength estimate (zxcvbn) and no personal context; no
//! composition rules (mixtures of character classes), which the same section advises against.
//!
//! It only judges. It never stores, logs or returns the password, and no message contains it.
//! Hashing is `boveda_crypto::password`.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;
use zeroize::Zeroizing;

/// Fewest characters (Unicode scalar values) accepted. SP 800-63B asks for at least 8; the
/// seed's clause 3 asks for 12.
pub const MIN_CHARS: usize = 12;
/// Most characters accepted. SP 800-63B asks verifiers to allow at least 64; a password is
/// never truncated, so a longer one is refused rather than cut.
pub const MAX_CHARS: usize = 128;
/// Lowest zxcvbn score accepted (0–4; 3 means more than 10^8 guesses are needed).
pub const MIN_SCORE: u8 = 3;
/// Shortest part of a name or email local part that is looked for inside a password.
pub const MIN_PERSONAL_PART: usize = 3;

/// The shipped list of common passwords, lowercase, one per line (see `data/README.md`).
const BLOCKLIST_TEXT: &str = include_str!("../data/common-passwords.txt");

static BLOCKLIST: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| BLOCKLIST_TEXT.lines().filter(|l| !l.is_empty()).collect());

/// How many passwords the blocklist holds.
pub fn blocklist_len() -> usize {
    BLOCKLIST.len()
}

/// The rule a password failed. `Display` says which, and never shows the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordRule {
    /// Fewer than [`MIN_CHARS`] characters.
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More than [`MAX_CHARS`] characters.
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// In the list of common passwords (case-insensitive).
    Common,
    /// Contains a part of the user's name.
    ContainsName,
    /// Contains the local part of the user's email, or a part of it.
    ContainsEmail,
    /// The strength estimate is below [`MIN_SCORE`].
    Weak {
        /// The zxcvbn score, 0–4.
        score: u8,
        /// The minimum.
        min: u8,
    },
}

impl fmt::Display for PasswordRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordRule::TooShort { min } => write!(f, "too short: at least {min} characters"),
            PasswordRule::TooLong { max } => write!(f, "too long: at most {max} characters"),
            PasswordRule::Common => f.write_str("too common: it is in a list of common passwords"),
            PasswordRule::ContainsName => f.write_str("contains your name"),
            PasswordRule::ContainsEmail => f.write_str("contains your email address"),
            PasswordRule::Weak { score, min } => write!(
                f,
                "too easy to guess: strength {score} of 4, at least {min} is needed"
            ),
        }
    }
}

impl std::error::Error for PasswordRule {}

/// Checks a new password for `user_name` with address `email`. Rules, in order: length (in
/// Unicode scalar values, so `ñ` and `密` count one each), blocklist, name, email, strength
/// (zxcvbn, with the name and email as user inputs; zxcvbn looks at the first 100 characters).
///
/// # Errors
/// The first [`PasswordRule`] the password fails.
pub fn check(password: &str, user_name: &str, email: &str) -> Result<(), PasswordRule> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRule::TooShort { min: MIN_CHARS });
    }
    if chars > MAX_CHARS {
        return Err(PasswordRule::TooLong { max: MAX_CHARS });
    }
    let lower = Zeroizing::new(password.to_lowercase());
    if BLOCKLIST.contains(lower.as_str()) {
        return Err(PasswordRule::Common);
    }
    if parts(user_name).any(|p| lower.contains(p.as_str())) {
        return Err(PasswordRule::ContainsName);
    }
    let local = email.rsplit_once('@').map_or(email, |(local, _)| local);
    let whole = std::iter::once(local.to_lowercase()).filter(|l| l.chars().count() >= 3);
    if whole
        .chain(parts(local))
        .any(|p| lower.contains(p.as_str()))
    {
        return Err(PasswordRule::ContainsEmail);
    }
    let score = u8::from(zxcvbn::zxcvbn(password, &[user_name, local, email]).score());
    if score < MIN_SCORE {
        return Err(PasswordRule::Weak {
            score,
            min: MIN_SCORE,
        });
    }
    Ok(())
}

/// Lowercase parts of a name or local part, split at anything that is not a letter or digit,
/// of at least [`MIN_PERSONAL_PART`] characters.
fn parts(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|p| p.chars().count() >= MIN_PERSONAL_PART)
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
    use super::*;

    const NAME: &str = "Ana María García";
    const EMAIL: &str = "ana.garcia@example.com";

    #[test]
    fn the_blocklist_is_large_and_lowercase() {
        assert!(blocklist_len() >= 10_000, "{}", blocklist_len());
        assert!(BLOCKLIST.contains("password"));
        assert!(BLOCKLIST.contains("qwertyuiop12"));
        assert!(BLOCKLIST_TEXT.lines().all(|l| l == l.to_lowercase()));
        assert!(BLOCKLIST_TEXT.len() < 1_000_000);
    }

    #[test]
    fn short_passwords_are_refused_by_length() {
        assert_eq!(
            check("Tr0ub4dor&3", NAME, EMAIL),
            Err(PasswordRule::TooShort { min: 12 })
        );
        assert_eq!(
            PasswordRule::TooShort { min: 12 }.to_string(),
            "too short: at least 12 characters"
        );
        // Eleven characters of three bytes each are still eleven characters.
        assert_eq!(
            check(&"密".repeat(11), NAME, EMAIL),
            Err(PasswordRule::TooShort { min: 12 })
        );
    }

    #[test]
    fn blocklisted_passwords_are_refused_whatever_the_case() {
        for p in [
            "Password1990",
            "QWERTYUIOP12",
            "iloveyou1234",
            "123456789012",
        ] {
            assert_eq!(check(p, NAME, EMAIL), Err(PasswordRule::Common), "{p}");
        }
        assert_eq!(
            PasswordRule::Common.to_string(),
            "too common: it is in a list of common passwords"
        );
    }

    #[test]
    fn weak_passwords_are_refused_by_strength() {
        for p in ["abcdefgh12345", "aaaaaaaaaaaaab"] {
            let r = check(p, NAME, EMAIL);
            assert!(
                matches!(r, Err(PasswordRule::Weak { min: 3, .. })),
                "{p}: {r:?}"
            );
        }
        let r = check("monkeymonkey7", NAME, EMAIL);
        assert!(matches!(r, Err(PasswordRule::Weak { .. })), "{r:?}");
        assert!(
            r.unwrap_err()
                .to_string()
                .starts_with("too easy to guess: strength ")
        );
    }

    #[test]
    fn personal_information_is_refused() {
        assert_eq!(
            check("xq7-García-lumen-vortex", NAME, EMAIL),
            Err(PasswordRule::ContainsName)
        );
        assert_eq!(
            check("xq7 MARÍA lumen vortex", NAME, EMAIL),
            Err(PasswordRule::ContainsName)
        );
        assert_eq!(
            check("lumen-ana.garcia-vortex", "Li Wei", EMAIL),
            Err(PasswordRule::ContainsEmail)
        );
        // Parts shorter than three characters are not looked for.
        assert_eq!(
            check("li-yu-quartz-nebula-fog", "Li Yu", "ly@example.com"),
            Ok(())
        );
    }

    #[test]
    fn strong_passwords_pass() {
        assert_eq!(check("correct horse battery staple", NAME, EMAIL), Ok(()));
        assert_eq!(check("ñandú-cósmico-47-tejado", NAME, EMAIL), Ok(()));
    }

    #[test]
    fn one_hundred_twenty_eight_characters_pass_unchanged_and_129_do_not() {
        let p: String = "Kq9#vLm2!xRt7&wZ4pNc"
            .chars()
            .cycle()
            .take(MAX_CHARS)
            .collect();
        assert_eq!(p.chars().count(), 128);
        let before = p.clone();
        assert_eq!(check(&p, NAME, EMAIL), Ok(()));
        assert_eq!(p, before);
        let longer = format!("{p}x");
        assert_eq!(
            check(&longer, NAME, EMAIL),
            Err(PasswordRule::TooLong { max: 128 })
        );
        assert_eq!(
            PasswordRule::TooLong { max: 128 }.to_string(),
            "too long: at most 128 characters"
        );
    }
}
