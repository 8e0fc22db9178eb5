//! Staff password hashing: Argon2id (RFC 9106) into a PHC string that carries its algorithm,
//! version, parameters and salt, so that a hash made under old parameters still verifies and
//! can be recognised for rehashing at the next login.
//!
//! This module never sees a password anywhere but the caller's `&str`: it makes no copies, and
//! argon2's working memory is zeroized (the `zeroize` feature). The strength rules for choosing
//! a password live in `boveda-policy`; this module only hashes and checks.

use crate::{Error, random_bytes};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Version};

/// Longest password accepted, in bytes: far above the 128-character policy limit (4 bytes per
/// character at most), low enough that nobody makes the hash read megabytes.
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Salt length, in bytes (RFC 9106 §3.1 recommends 16).
const SALT_LEN: usize = 16;

/// Tag length, in bytes.
const OUTPUT_LEN: usize = 32;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Params {
    /// The OWASP Password Storage Cheat Sheet's first Argon2id setting: 19 MiB, 2 passes, one
    /// lane. A login then costs tens of milliseconds on one core.
    pub const OWASP: Params = Params {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    fn argon2(&self) -> Result<Argon2<'static>, Error> {
        let p = argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|_| Error::Derivation)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }
}

impl Default for Params {
    fn default() -> Self {
        Params::OWASP
    }
}

/// Hashes `password` with a fresh 128-bit salt into a PHC string such as
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>`.
///
/// # Errors
/// [`Error::Random`] if no salt could be drawn; [`Error::Derivation`] for parameters argon2
/// refuses or a password longer than [`MAX_PASSWORD_BYTES`].
pub fn hash(password: &str, params: &Params) -> Result<String, Error> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::Derivation);
    }
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| Error::Derivation)?;
    let phc = params
        .argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| Error::Derivation)?;
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, under the parameters stored in it. The tag
/// comparison is constant-time (password-hash's `Output` equality).
///
/// # Errors
/// [`Error::InvalidKey`] when `phc` is not an Argon2id PHC string (a stored hash is damaged:
/// an operator matter, not a wrong password).
pub fn verify(password: &str, phc: &str) -> Result<bool, Error> {
    let parsed = parse(phc)?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(Error::InvalidKey("password hash parameters are not usable")),
    }
}

/// Whether a stored hash should be replaced at the next successful login: it is not Argon2id
/// version 0x13 with exactly `params`, or it cannot be read.
pub fn needs_rehash(phc: &str, params: &Params) -> bool {
    let Ok(parsed) = parse(phc) else {
        return true;
    };
    let Ok(stored) = argon2::Params::try_from(&parsed) else {
        return true;
    };
    parsed.version != Some(Version::V0x13.into())
        || stored.m_cost() != params.memory_kib
        || stored.t_cost() != params.iterations
        || stored.p_cost() != params.parallelism
        || parsed.hash.is_none_or(|h| h.len() != OUTPUT_LEN)
}

/// Spends the time of one verification without a stored hash, so that an unknown user (or a
/// locked account) costs what a wrong password costs (issue 3, item 2: same response, similar
/// time). Always `false`.
pub fn verify_unknown_user(password: &str, params: &Params) -> bool {
    let _ = hash(password, params);
    false
}

fn parse(phc: &str) -> Result<PasswordHash<'_>, Error> {
    let parsed = PasswordHash::new(phc)
        .map_err(|_| Error::InvalidKey("password hash is not a phc string"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(Error::InvalidKey("password hash is not argon2id"));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(Error::InvalidKey("password hash has no salt or tag"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
    use super::*;
    use argon2::{AssociatedData, ParamsBuilder};

    // Small parameters keep the tests fast; the OWASP ones are exercised once.
    const FAST: Params = Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// RFC 9106 §5.3, the Argon2id test vector (inputs and tag in `tests/vectors/`).
    #[test]
    fn rfc9106_argon2id_vector() {
        let text = include_str!("../tests/vectors/rfc9106-argon2id.txt");
        let field = |name: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in vector file"));
            hex::decode(line[name.len()..].trim().replace(' ', "")).unwrap()
        };
        let params = ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .data(AssociatedData::new(&field("ad:")).unwrap())
            .output_len(32)
            .build()
            .unwrap();
        let secret = field("secret:");
        let argon =
            Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut tag = [0u8; 32];
        argon
            .hash_password_into(&field("password:"), &field("salt:"), &mut tag)
            .unwrap();
        assert_eq!(tag.to_vec(), field("tag:"));
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse battery staple", &FAST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify("correct horse battery staple", &phc).unwrap());
        assert!(!verify("correct horse battery stapler", &phc).unwrap());
        assert!(!verify("", &phc).unwrap());
        assert_ne!(
            phc,
            hash("correct horse battery staple", &FAST).unwrap(),
            "salted"
        );
    }

    #[test]
    fn default_parameters_are_owasp_and_land_in_the_phc_string() {
        assert_eq!(Params::default(), Params::OWASP);
        let phc = hash("pässwörd ñ 密码 long enough", &Params::default()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("pässwörd ñ 密码 long enough", &phc).unwrap());
        assert!(!needs_rehash(&phc, &Params::OWASP));
    }

    #[test]
    fn changed_parameters_need_a_rehash() {
        let phc = hash("correct horse battery staple", &FAST).unwrap();
        assert!(!needs_rehash(&phc, &FAST));
        assert!(needs_rehash(
            &phc,
            &Params {
                iterations: 2,
                ..FAST
            }
        ));
        assert!(needs_rehash(
            &phc,
            &Params {
                memory_kib: 128,
                ..FAST
            }
        ));
        assert!(needs_rehash("garbage", &FAST));
        // An argon2i hash verifies nowhere and is always rehashed.
        let argon2i = phc.replacen("argon2id", "argon2i", 1);
        assert!(needs_rehash(&argon2i, &FAST));
        assert!(verify("correct horse battery staple", &argon2i).is_err());
    }

    #[test]
    fn damaged_hashes_are_errors_not_mismatches() {
        assert!(matches!(
            verify("x", "not a hash"),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            verify("x", "$argon2id$v=19$m=64"),
            Err(Error::InvalidKey(_))
        ));
    }

    #[test]
    fn over_long_passwords_are_refused() {
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(hash(&long, &FAST), Err(Error::Derivation));
        let phc = hash("correct horse battery staple", &FAST).unwrap();
        assert!(!verify(&long, &phc).unwrap());
        assert!(!verify_unknown_user("anything", &FAST));
    }
}
