//! Keyed de-identification operators: the adapters from `boveda_crypto::deid` to
//! `boveda_detect::operators::KeyedOperator`, and the one parser of operator parameters shared
//! by the Presidio-compatible API, the native API and the CLI's configuration.
//!
//! This module owns no keys: every key comes with the request or the configuration and lives
//! in zeroizing wrappers. It never puts a value, a key or a ciphertext into an error.
//!
//! ```
//! use boveda_core::deid::{Dialect, OperatorParams};
//! let p: OperatorParams = serde_json::from_str(r#"{"type": "mask", "masking_char": "*", "chars_to_mask": 4, "from_end": true}"#)?;
//! let op = p.build(Dialect::Presidio, boveda_detect::Language::En)?;
//! assert_eq!(op.name(), "mask");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use boveda_crypto::SecretKey;
use boveda_crypto::deid::{self as kd, Ff1, HashAlgorithm, PresidioKey};
use boveda_detect::Error as DetectError;
use boveda_detect::Language;
use boveda_detect::operators::{Generalisation, KeyedOperator, Operator, shift_date};
use zeroize::Zeroizing;

fn failed(operator: &str, e: &boveda_crypto::Error) -> DetectError {
    // Crypto errors name kinds only (see boveda_crypto::Error), so they are safe to pass on.
    DetectError::OperatorFailed {
        operator: operator.to_owned(),
        reason: e.to_string(),
    }
}

fn invalid(operator: &str, reason: impl Into<String>) -> DetectError {
    DetectError::InvalidOperator {
        operator: operator.to_owned(),
        reason: reason.into(),
    }
}

/// A keyed hash: lower-case hex of HMAC-SHA256 (or -SHA512) of the value.
pub struct KeyedHash {
    key: Zeroizing<Vec<u8>>,
    algorithm: HashAlgorithm,
}

impl KeyedHash {
    /// A keyed hash with `key` (at least one byte; 32 random bytes recommended).
    ///
    /// # Errors
    /// [`DetectError::InvalidOperator`] for an empty key.
    pub fn new(key: &[u8], algorithm: HashAlgorithm) -> Result<Self, DetectError> {
        if key.is_empty() {
            return Err(invalid("hash", "the key (salt) must not be empty"));
        }
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
            algorithm,
        })
    }

    /// A keyed hash with a fresh random key: consistent within one request or run, unlinkable
    /// across them.
    ///
    /// # Errors
    /// [`DetectError::OperatorFailed`] when the random generator fails.
    pub fn random(algorithm: HashAlgorithm) -> Result<Self, DetectError> {
        let k = SecretKey::generate().map_err(|e| failed("hash", &e))?;
        Self::new(k.expose(), algorithm)
    }
}

impl KeyedOperator for KeyedHash {
    fn name(&self) -> &str {
        "hash"
    }
    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        kd::keyed_hash(self.algorithm, &self.key, value.as_bytes()).map_err(|e| failed("hash", &e))
    }
}

/// Presidio's `encrypt`: AES-CBC, base64 of IV and ciphertext.
pub struct PresidioEncrypt(PresidioKey);

/// Presidio's `decrypt`, the reverse of [`PresidioEncrypt`] (and of Presidio's own output).
pub struct PresidioDecrypt(PresidioKey);

impl KeyedOperator for PresidioEncrypt {
    fn name(&self) -> &str {
        "encrypt"
    }
    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        self.0.encrypt(value).map_err(|e| failed("encrypt", &e))
    }
}

impl KeyedOperator for PresidioDecrypt {
    fn name(&self) -> &str {
        "decrypt"
    }
    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        // The caller holds the key and asked for the plaintext: this is the operator's purpose.
        let plain = self.0.open(value).map_err(|e| failed("decrypt", &e))?;
        Ok(plain.expose().clone())
    }
}

/// Authenticated encryption of a value (AES-256-GCM), base64 of nonce, ciphertext and tag.
pub struct AeadEncrypt(SecretKey);

/// The reverse of [`AeadEncrypt`].
pub struct AeadDecrypt(SecretKey);

impl KeyedOperator for AeadEncrypt {
    fn name(&self) -> &str {
        "encrypt"
    }
    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        kd::aead_seal(&self.0, value.as_bytes()).map_err(|e| failed("encrypt", &e))
    }
}

impl KeyedOperator for AeadDecrypt {
    fn name(&self) -> &str {
        "decrypt"
    }
    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        let plain = kd::aead_open(&self.0, value).map_err(|e| failed("decrypt", &e))?;
        String::from_utf8(plain.expose().clone()).map_err(|_| DetectError::OperatorFailed {
            operator: "decrypt".into(),
            reason: "the plaintext is not UTF-8".into(),
        })
    }
}

/// FF1 over the value's characters in `0-9a-z` below the radix; other characters stay.
pub struct Ff1Operator {
    ff1: Ff1,
    tweak: Vec<u8>,
}

impl KeyedOperator for Ff1Operator {
    fn name(&self) -> &str {
        "ff1"
    }
    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        self.ff1
            .encrypt_text(&self.tweak, value)
            .map_err(|e| failed("ff1", &e))
    }
}

/// A vault token: the same value in the same scope gives the same `tok_…` pseudonym.
pub struct VaultToken {
    key: SecretKey,
    scope: String,
}

impl KeyedOperator for VaultToken {
    fn name(&self) -> &str {
        "vault_token"
    }
    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        Ok(kd::vault_token(&self.key, &self.scope, value))
    }
}

/// Shift dates by a number of days derived from a key and a subject; values that do not parse
/// as a date are replaced by `<ENTITY>`, never kept.
pub struct DateShift {
    days: i64,
    language: Language,
}

impl DateShift {
    /// The shift for `subject` under `key`, in `-max_days..=max_days`.
    pub fn new(key: &SecretKey, subject: &str, max_days: u32, language: Language) -> Self {
        Self {
            days: kd::date_shift_days(key, subject, max_days),
            language,
        }
    }
}

impl KeyedOperator for DateShift {
    fn name(&self) -> &str {
        "date_shift"
    }
    fn apply(&self, entity: &str, value: &str) -> Result<String, DetectError> {
        Ok(shift_date(value, self.days, self.language).unwrap_or_else(|| format!("<{entity}>")))
    }
}

/// Which API's conventions apply when operator parameters are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// Presidio's: `encrypt`/`decrypt` are AES-CBC with a 16/24/32-character key string, and
    /// `hash` takes an optional `salt` (a random per-request key when it is absent). Only
    /// Presidio's operator names are accepted.
    Presidio,
    /// boveda's: `encrypt`/`decrypt` are AES-256-GCM with a base64 32-byte `key`, `hash` needs
    /// a base64 `key`, and `generalise`, `ff1`, `vault_token` and `date_shift` are available.
    Native,
}

/// Parameters of one operator as they arrive in JSON or TOML: `type` plus the fields that type
/// takes (Presidio's names where Presidio has the operator). Unused fields are ignored, as
/// Presidio ignores them. Holds keys: it has no `Debug` and no `Serialize`.
#[derive(Clone, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct OperatorParams {
    /// `replace`, `redact`, `mask`, `hash`, `encrypt`, `decrypt`, `keep`, and in the native
    /// dialect `generalise`, `ff1`, `vault_token`, `date_shift`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `replace`: the new text (default `<ENTITY_TYPE>`).
    pub new_value: Option<String>,
    /// `mask`: the one masking character.
    pub masking_char: Option<String>,
    /// `mask`: how many characters to mask.
    pub chars_to_mask: Option<i64>,
    /// `mask`: count from the end.
    pub from_end: Option<bool>,
    /// `hash`: `sha256` (default) or `sha512`.
    pub hash_type: Option<String>,
    /// `hash` (Presidio): the HMAC key as text.
    pub salt: Option<String>,
    /// `encrypt`/`decrypt`/`hash`/`ff1`/`vault_token`/`date_shift`: the key (Presidio: a key
    /// string; native: base64).
    pub key: Option<String>,
    /// CLI only: the name of an environment variable that holds `key`, resolved before
    /// [`OperatorParams::build`].
    pub key_env: Option<String>,
    /// `ff1`: the radix, 2..=36 (default 10).
    pub radix: Option<u32>,
    /// `ff1`: the tweak as text (default empty).
    pub tweak: Option<String>,
    /// `vault_token`: the scope of consistency (default `default`).
    pub scope: Option<String>,
    /// `date_shift`: the subject whose dates move together.
    pub subject: Option<String>,
    /// `date_shift`: the largest shift in days (default 365).
    pub max_days: Option<u32>,
    /// `generalise`: `year`, `month`, `age` or `postal`.
    pub to: Option<String>,
    /// `generalise` `age`: bucket width (default 10).
    pub width: Option<u32>,
    /// `generalise` `postal`: characters kept (default 2).
    pub keep: Option<usize>,
}

impl OperatorParams {
    /// Parameters of a given type and nothing else.
    pub fn of_kind(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            ..Self::default()
        }
    }

    /// Build the operator.
    ///
    /// # Errors
    /// [`DetectError::InvalidOperator`] naming the operator and the parameter that is missing or
    /// wrong; never the key or a value.
    pub fn build(&self, dialect: Dialect, language: Language) -> Result<Operator, DetectError> {
        let kind = self.kind.as_str();
        let native = dialect == Dialect::Native;
        let key_text = || {
            self.key
                .as_deref()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| invalid(kind, "the key parameter is required"))
        };
        let native_key = || -> Result<SecretKey, DetectError> {
            let raw = kd::key_from_base64(key_text()?).map_err(|e| invalid(kind, e.to_string()))?;
            SecretKey::from_slice(&raw)
                .map_err(|_| invalid(kind, "the key must be base64 of exactly 32 bytes"))
        };
        Ok(match kind {
            "replace" => Operator::Replace {
                new_value: self.new_value.clone(),
            },
            "redact" => Operator::Redact,
            "keep" => Operator::Keep,
            "mask" => {
                let c = self
                    .masking_char
                    .as_deref()
                    .ok_or_else(|| invalid(kind, "masking_char is required"))?;
                let n = self
                    .chars_to_mask
                    .ok_or_else(|| invalid(kind, "chars_to_mask is required"))?;
                let n = usize::try_from(n)
                    .map_err(|_| invalid(kind, "chars_to_mask must not be negative"))?;
                Operator::mask(c, n, self.from_end.unwrap_or(false))?
            }
            "hash" => {
                let algorithm = match self.hash_type.as_deref() {
                    None | Some("sha256") => HashAlgorithm::Sha256,
                    Some("sha512") => HashAlgorithm::Sha512,
                    Some(_) => return Err(invalid(kind, "hash_type must be sha256 or sha512")),
                };
                let op = if native {
                    KeyedHash::new(
                        &kd::key_from_base64(key_text()?)
                            .map_err(|e| invalid(kind, e.to_string()))?,
                        algorithm,
                    )?
                } else {
                    match self.salt.as_deref().or(self.key.as_deref()) {
                        Some(s) if !s.is_empty() => KeyedHash::new(s.as_bytes(), algorithm)?,
                        _ => KeyedHash::random(algorithm)?,
                    }
                };
                Operator::Keyed(Arc::new(op))
            }
            "encrypt" | "decrypt" => {
                let encrypt = kind == "encrypt";
                if native {
                    let k = native_key()?;
                    if encrypt {
                        Operator::Keyed(Arc::new(AeadEncrypt(k)))
                    } else {
                        Operator::Keyed(Arc::new(AeadDecrypt(k)))
                    }
                } else {
                    let k = PresidioKey::new(key_text()?).map_err(|_| {
                        invalid(
                            kind,
                            "Invalid input, key must be of length 128, 192 or 256 bits",
                        )
                    })?;
                    if encrypt {
                        Operator::Keyed(Arc::new(PresidioEncrypt(k)))
                    } else {
                        Operator::Keyed(Arc::new(PresidioDecrypt(k)))
                    }
                }
            }
            "generalise" | "generalize" if native => {
                let g = match self.to.as_deref() {
                    Some("year") => Generalisation::DateToYear,
                    Some("month") => Generalisation::DateToMonth,
                    Some("age") => Generalisation::AgeBucket {
                        width: self.width.unwrap_or(10).max(1),
                    },
                    Some("postal") => Generalisation::PostalPrefix {
                        keep: self.keep.unwrap_or(2),
                    },
                    _ => return Err(invalid(kind, "to must be year, month, age or postal")),
                };
                Operator::Generalise(g)
            }
            "ff1" if native => {
                let raw =
                    kd::key_from_base64(key_text()?).map_err(|e| invalid(kind, e.to_string()))?;
                let radix = self.radix.unwrap_or(10);
                if !(2..=36).contains(&radix) {
                    return Err(invalid(kind, "radix must be between 2 and 36"));
                }
                let ff1 = Ff1::new(&raw, radix)
                    .map_err(|_| invalid(kind, "the key must be base64 of 16, 24 or 32 bytes"))?;
                Operator::Keyed(Arc::new(Ff1Operator {
                    ff1,
                    tweak: self.tweak.clone().unwrap_or_default().into_bytes(),
                }))
            }
            "vault_token" if native => Operator::Keyed(Arc::new(VaultToken {
                key: native_key()?,
                scope: self.scope.clone().unwrap_or_else(|| "default".into()),
            })),
            "date_shift" if native => {
                let subject = self
                    .subject
                    .as_deref()
                    .ok_or_else(|| invalid(kind, "subject is required"))?;
                Operator::Keyed(Arc::new(DateShift::new(
                    &native_key()?,
                    subject,
                    self.max_days.unwrap_or(365),
                    language,
                )))
            }
            "custom" => return Err(invalid(kind, "Custom type anonymizer is not supported")),
            _ => {
                return Err(invalid(
                    "unknown",
                    if native {
                        "type must be one of replace, redact, mask, hash, encrypt, decrypt, keep, generalise, ff1, vault_token, date_shift"
                    } else {
                        "type must be one of replace, redact, mask, hash, encrypt, keep"
                    },
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use boveda_detect::Entity;
    use boveda_detect::operators::{OperatorConfig, Span, anonymize};

    fn params(json: &str) -> OperatorParams {
        serde_json::from_str(json).unwrap()
    }

    fn run(op: Operator, text: &str, value: &str, entity: Entity) -> String {
        let start = text.find(value).unwrap();
        let spans = [Span {
            entity,
            start,
            end: start + value.len(),
            score: 1.0,
        }];
        let config = OperatorConfig {
            default: op,
            ..Default::default()
        };
        anonymize(text, &spans, &config).unwrap().text
    }

    #[test]
    fn presidio_encrypt_round_trips_through_decrypt() {
        let key = r#""key": "WmZq4t7w!z%C&F)J""#;
        let enc = params(&format!(r#"{{"type": "encrypt", {key}}}"#))
            .build(Dialect::Presidio, Language::En)
            .unwrap();
        let out = run(
            enc,
            "mail ana@example.com",
            "ana@example.com",
            Entity::EmailAddress,
        );
        let cipher = out.strip_prefix("mail ").unwrap();
        let dec = params(&format!(r#"{{"type": "decrypt", {key}}}"#))
            .build(Dialect::Presidio, Language::En)
            .unwrap();
        assert_eq!(
            run(dec, &out, cipher, Entity::EmailAddress),
            "mail ana@example.com"
        );
    }

    #[test]
    fn native_operators_are_keyed_and_consistent() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let tok = params(&format!(
            r#"{{"type": "vault_token", "key": "{key}", "scope": "crm"}}"#
        ))
        .build(Dialect::Native, Language::En)
        .unwrap();
        let a = run(tok.clone(), "x 612345678", "612345678", Entity::PhoneNumber);
        assert_eq!(a, run(tok, "x 612345678", "612345678", Entity::PhoneNumber));
        assert!(a.starts_with("x tok_"));
        let ff1 = params(&format!(r#"{{"type": "ff1", "key": "{key}"}}"#))
            .build(Dialect::Native, Language::En)
            .unwrap();
        let f = run(
            ff1,
            "card 4111 1111 1111 1111",
            "4111 1111 1111 1111",
            Entity::CreditCard,
        );
        assert_eq!(f.len(), "card 4111 1111 1111 1111".len());
        let shift = params(&format!(
            r#"{{"type": "date_shift", "key": "{key}", "subject": "s1", "max_days": 10}}"#
        ))
        .build(Dialect::Native, Language::En)
        .unwrap();
        let d = run(shift, "on 2024-05-03", "2024-05-03", Entity::DateTime);
        assert_ne!(d, "on 2024-05-03");
        assert!(d.starts_with("on 2024-0"));
        let enc = params(&format!(r#"{{"type": "encrypt", "key": "{key}"}}"#))
            .build(Dialect::Native, Language::En)
            .unwrap();
        let e = run(enc, "DNI 12345678Z", "12345678Z", Entity::EsNif);
        let dec = params(&format!(r#"{{"type": "decrypt", "key": "{key}"}}"#))
            .build(Dialect::Native, Language::En)
            .unwrap();
        let cipher = e.strip_prefix("DNI ").unwrap();
        assert_eq!(run(dec, &e, cipher, Entity::EsNif), "DNI 12345678Z");
    }

    #[test]
    fn bad_parameters_name_the_rule_not_the_key() {
        let secret = "not-a-valid-key-at-all";
        for (json, dialect) in [
            (
                format!(r#"{{"type": "encrypt", "key": "{secret}"}}"#),
                Dialect::Presidio,
            ),
            (
                format!(r#"{{"type": "encrypt", "key": "{secret}"}}"#),
                Dialect::Native,
            ),
            (
                r#"{"type": "mask", "masking_char": "**", "chars_to_mask": 2}"#.into(),
                Dialect::Presidio,
            ),
            (
                r#"{"type": "mask", "masking_char": "*", "chars_to_mask": -1}"#.into(),
                Dialect::Presidio,
            ),
            (
                r#"{"type": "hash", "hash_type": "md5"}"#.into(),
                Dialect::Presidio,
            ),
            (
                r#"{"type": "ff1", "key": "AAAA"}"#.into(),
                Dialect::Presidio,
            ),
            (r#"{"type": "nope"}"#.into(), Dialect::Native),
        ] {
            let e = params(&json)
                .build(dialect, Language::En)
                .err()
                .unwrap()
                .to_string();
            assert!(!e.contains(secret), "{e}");
        }
        // Presidio's hash without a salt is consistent within one operator.
        let h = params(r#"{"type": "hash"}"#)
            .build(Dialect::Presidio, Language::En)
            .unwrap();
        let a = run(h.clone(), "a 1.2.3.4", "1.2.3.4", Entity::IpAddress);
        assert_eq!(a, run(h, "a 1.2.3.4", "1.2.3.4", Entity::IpAddress));
        assert_eq!(a.len(), 2 + 64);
    }
}
