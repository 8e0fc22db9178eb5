//! Serde helpers: byte arrays as lowercase hex, tenant ids in the 8-4-4-4-12 UUID layout, so that
//! exported JSON joins with the rest of the API and SIEM rules can match on plain strings.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn json_error(e: &serde_json::Error) -> crate::Error {
    // serde_json messages can quote input; keep only the category and position.
    crate::Error::Json(format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    ))
}

/// A tenant id as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) fn tenant_string(t: &[u8; 16]) -> String {
    let h = hex::encode(t);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn parse_tenant(s: &str) -> Option<[u8; 16]> {
    // Accept only the canonical lowercase layout, so JSON round-trips byte for byte.
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let compact: String = s.chars().filter(|c| *c != '-').collect();
    if compact.bytes().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(compact, &mut out).ok()?;
    Some(out)
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

pub(crate) mod tenant {
    use super::*;
    pub(crate) fn serialize<S: Serializer>(t: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&tenant_string(t))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        parse_tenant(&s).ok_or_else(|| D::Error::custom("tenant is not a lowercase uuid"))
    }
}

pub(crate) mod hex_array {
    use super::*;
    pub(crate) fn serialize<S: Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        parse_hex(&s).ok_or_else(|| D::Error::custom("expected lowercase hex of the right length"))
    }
}

pub(crate) mod hex_vec {
    use super::*;
    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(D::Error::custom("expected lowercase hex"));
        }
        hex::decode(s).map_err(|_| D::Error::custom("expected lowercase hex"))
    }
}

pub(crate) mod opt_hex32 {
    use super::*;
    pub(crate) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse_hex(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom("expected 64 lowercase hex digits")),
        }
    }
}

pub(crate) mod vec_hex32 {
    use super::*;
    use serde::ser::SerializeSeq as _;
    pub(crate) fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(&hex::encode(b))?;
        }
        seq.end()
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                parse_hex(s).ok_or_else(|| D::Error::custom("expected 64 lowercase hex digits"))
            })
            .collect()
    }
}
