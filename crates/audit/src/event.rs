//! The audit event, version 1, and its canonical binary encoding.
//!
//! An event says who did what, when, from where, to which records and subjects, why and how it
//! was shown. It must never hold a personal value: principals, records and sessions are ids;
//! subject ids and client addresses are keyed pseudonyms ([`AuditKey::pseudonym`]), because a
//! subject id or an address links to a person and the audit log outlives erasure.
//!
//! The binary encoding is what the hash chain covers, so it has exactly one form per event:
//! fields in a fixed order, version byte first, big-endian integers, every string and list
//! length-prefixed with a `u32`, every option tagged `0` (absent) or `1` (present). `decode`
//! rejects anything else, including trailing bytes, so `encode(decode(x)) == x` for every `x`
//! that decodes.

use crate::Error;
use crate::serde_util;
use boveda_crypto::SecretKey;
use boveda_crypto::sign::MacKey;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The event format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Longest string field, in bytes. Audit fields are ids, names of actions and short reasons.
pub const MAX_STRING_LEN: usize = 4096;
/// Most items in one list field (roles, records, subjects, fields): a bulk call over more
/// records is audited as several events.
pub const MAX_LIST_LEN: usize = 10_000;

/// How the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The policy allowed it and it succeeded.
    Allowed,
    /// The policy refused it.
    Denied,
    /// It was allowed but failed (a wrong MFA code, a storage error).
    Failed,
}

impl Outcome {
    fn code(self) -> u8 {
        match self {
            Outcome::Allowed => 0,
            Outcome::Denied => 1,
            Outcome::Failed => 2,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Outcome::Allowed),
            1 => Some(Outcome::Denied),
            2 => Some(Outcome::Failed),
            _ => None,
        }
    }

    /// The lowercase name used in JSON and CEF.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One audit event, format version 1. Field order here is the encoding order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Format version; always [`VERSION`] for events this crate writes.
    pub v: u8,
    /// The tenant whose chain holds the event.
    #[serde(with = "serde_util::tenant")]
    pub tenant: [u8; 16],
    /// Position in the tenant's chain, from 1, without gaps. [`crate::Chain`] assigns it.
    pub seq: u64,
    /// When it happened, milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    /// The principal's id (never a name or an email address).
    pub principal: String,
    /// What kind of principal: `user`, `service`, `operator`. (The names the code writes are
    /// borrowed, not allocated per event; decoded events own theirs.)
    pub principal_kind: Cow<'static, str>,
    /// The roles the principal acted with.
    pub roles: Vec<String>,
    /// The session id, if any; never a bearer token or a cookie.
    pub session: Option<String>,
    /// When the session last passed MFA, if it has.
    pub mfa_at_ms: Option<i64>,
    /// What was done, dotted: `record.read`, `record.write`, `subject.erase`, `key.rotate`,
    /// `auth.login`, `auth.mfa`, `policy.change`, `token.detokenize`, `audit.export`.
    pub action: Cow<'static, str>,
    /// How it ended.
    pub outcome: Outcome,
    /// The collection touched, if any.
    pub collection: Option<String>,
    /// Record ids touched.
    pub records: Vec<String>,
    /// Subject ids touched, as pseudonyms under the tenant's audit key.
    #[serde(with = "serde_util::vec_hex32")]
    pub subjects: Vec<[u8; 32]>,
    /// Field names read or written (names, never values).
    pub fields: Vec<String>,
    /// The highest sensitivity grade among the fields, if any.
    pub grade: Option<Cow<'static, str>>,
    /// The declared purpose of the access.
    pub purpose: Option<String>,
    /// How values were shown: `plain`, `masked`, `token`, `none`.
    pub view: Option<Cow<'static, str>>,
    /// The request id, to join with operational logs.
    pub request_id: String,
    /// The client address as a pseudonym under the tenant's audit key.
    #[serde(with = "serde_util::opt_hex32")]
    pub client: Option<[u8; 32]>,
    /// A short reason for a denial or failure, written by the code (a kind, never input).
    pub reason: Option<String>,
}

impl Event {
    /// An event with the fields every event has; the rest are empty. `seq` is 0 until a
    /// [`crate::Chain`] assigns it.
    pub fn new(
        tenant: [u8; 16],
        at_ms: i64,
        principal: &str,
        principal_kind: impl Into<Cow<'static, str>>,
        action: impl Into<Cow<'static, str>>,
        outcome: Outcome,
        request_id: &str,
    ) -> Self {
        Self {
            v: VERSION,
            tenant,
            seq: 0,
            at_ms,
            principal: principal.to_owned(),
            principal_kind: principal_kind.into(),
            roles: Vec::new(),
            session: None,
            mfa_at_ms: None,
            action: action.into(),
            outcome,
            collection: None,
            records: Vec::new(),
            subjects: Vec::new(),
            fields: Vec::new(),
            grade: None,
            purpose: None,
            view: None,
            request_id: request_id.to_owned(),
            client: None,
            reason: None,
        }
    }

    /// Checks the version and the size limits, which `decode` also enforces, so that every
    /// event that passes encodes to bytes that decode back to it.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first broken limit.
    pub fn check(&self) -> Result<(), Error> {
        if self.v != VERSION {
            return Err(Error::Invalid("unsupported event version"));
        }
        let strings = [
            Some(self.principal.as_str()),
            Some(&self.principal_kind),
            self.session.as_deref(),
            Some(&self.action),
            self.collection.as_deref(),
            self.grade.as_deref(),
            self.purpose.as_deref(),
            self.view.as_deref(),
            Some(self.request_id.as_str()),
            self.reason.as_deref(),
        ];
        let lists = [&self.roles, &self.records, &self.fields];
        if strings.iter().flatten().any(|s| s.len() > MAX_STRING_LEN)
            || lists
                .iter()
                .any(|l| l.iter().any(|s| s.len() > MAX_STRING_LEN))
        {
            return Err(Error::Invalid("a string field is longer than the limit"));
        }
        if lists.iter().any(|l| l.len() > MAX_LIST_LEN) || self.subjects.len() > MAX_LIST_LEN {
            return Err(Error::Invalid("a list field is longer than the limit"));
        }
        Ok(())
    }

    /// The canonical encoding. Call [`Event::check`] first (the chain does): an event over
    /// the limits still encodes, but its bytes will not decode.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(self.seq)
    }

    /// The canonical encoding of this event under sequence number `seq` (an appender encodes
    /// the event it numbers without copying it).
    pub fn encode_as(&self, seq: u64) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.encoded_len_hint()));
        w.0.push(self.v);
        w.0.extend_from_slice(&self.tenant);
        w.0.extend_from_slice(&seq.to_be_bytes());
        w.0.extend_from_slice(&self.at_ms.to_be_bytes());
        w.str(&self.principal);
        w.str(&self.principal_kind);
        w.strs(&self.roles);
        w.opt_str(self.session.as_deref());
        match self.mfa_at_ms {
            None => w.0.push(0),
            Some(t) => {
                w.0.push(1);
                w.0.extend_from_slice(&t.to_be_bytes());
            }
        }
        w.str(&self.action);
        w.0.push(self.outcome.code());
        w.opt_str(self.collection.as_deref());
        w.strs(&self.records);
        w.len(self.subjects.len());
        for s in &self.subjects {
            w.0.extend_from_slice(s);
        }
        w.strs(&self.fields);
        w.opt_str(self.grade.as_deref());
        w.opt_str(self.purpose.as_deref());
        w.opt_str(self.view.as_deref());
        w.str(&self.request_id);
        match &self.client {
            None => w.0.push(0),
            Some(c) => {
                w.0.push(1);
                w.0.extend_from_slice(c);
            }
        }
        w.opt_str(self.reason.as_deref());
        w.0
    }

    fn encoded_len_hint(&self) -> usize {
        let list = |l: &[String]| 4 + l.iter().map(|s| 4 + s.len()).sum::<usize>();
        let opt = |o: Option<&str>| 1 + o.map_or(0, |s| 4 + s.len());
        1 + 16
            + 8
            + 8
            + 8
            + self.principal.len()
            + self.principal_kind.len()
            + list(&self.roles)
            + opt(self.session.as_deref())
            + 9
            + 4
            + self.action.len()
            + 1
            + opt(self.collection.as_deref())
            + list(&self.records)
            + 4
            + 32 * self.subjects.len()
            + list(&self.fields)
            + opt(self.grade.as_deref())
            + opt(self.purpose.as_deref())
            + opt(self.view.as_deref())
            + 4
            + self.request_id.len()
            + 33
            + opt(self.reason.as_deref())
    }

    /// Decodes canonical version-1 bytes.
    ///
    /// # Errors
    /// [`Error::Undecodable`] for anything that `encode` would not have produced.
    pub fn decode(bytes: &[u8]) -> Result<Event, Error> {
        let mut r = Reader(bytes);
        let v = r.u8()?;
        if v != VERSION {
            return Err(Error::Undecodable("unknown event version"));
        }
        let tenant = r.array::<16>()?;
        let seq = u64::from_be_bytes(r.array()?);
        let at_ms = i64::from_be_bytes(r.array()?);
        let principal = r.string()?;
        let principal_kind = r.string()?.into();
        let roles = r.strings()?;
        let session = r.opt_string()?;
        let mfa_at_ms = if r.tag()? {
            Some(i64::from_be_bytes(r.array()?))
        } else {
            None
        };
        let action = r.string()?.into();
        let outcome =
            Outcome::from_code(r.u8()?).ok_or(Error::Undecodable("unknown outcome code"))?;
        let collection = r.opt_string()?;
        let records = r.strings()?;
        let n = r.list_len(32)?;
        let mut subjects = Vec::with_capacity(n);
        for _ in 0..n {
            subjects.push(r.array::<32>()?);
        }
        let fields = r.strings()?;
        let grade = r.opt_string()?.map(Cow::Owned);
        let purpose = r.opt_string()?;
        let view = r.opt_string()?.map(Cow::Owned);
        let request_id = r.string()?;
        let client = if r.tag()? {
            Some(r.array::<32>()?)
        } else {
            None
        };
        let reason = r.opt_string()?;
        if !r.0.is_empty() {
            return Err(Error::Undecodable("trailing bytes"));
        }
        Ok(Event {
            v,
            tenant,
            seq,
            at_ms,
            principal,
            principal_kind,
            roles,
            session,
            mfa_at_ms,
            action,
            outcome,
            collection,
            records,
            subjects,
            fields,
            grade,
            purpose,
            view,
            request_id,
            client,
            reason,
        })
    }

    /// Checks that `bytes` decode, exactly as [`Event::decode`] would, without allocating,
    /// and returns the tenant and sequence number. The verifier runs this on every event.
    ///
    /// # Errors
    /// [`Error::Undecodable`] exactly when `decode` fails.
    pub fn validate(bytes: &[u8]) -> Result<([u8; 16], u64), Error> {
        Self::columns(bytes).map(|c| (c.tenant, c.seq))
    }

    /// The fields a store keeps in columns to search by, read in place: checks that `bytes`
    /// decode exactly as [`Event::decode`] would, without allocating.
    ///
    /// # Errors
    /// [`Error::Undecodable`] exactly when `decode` fails.
    pub fn columns(bytes: &[u8]) -> Result<Columns<'_>, Error> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(Error::Undecodable("unknown event version"));
        }
        let tenant = r.array::<16>()?;
        let seq = u64::from_be_bytes(r.array()?);
        let at_ms = i64::from_be_bytes(r.array()?);
        let principal = r.str_bytes()?;
        r.skip_string()?; // principal_kind
        r.skip_strings()?; // roles
        r.skip_opt_string()?; // session
        if r.tag()? {
            r.take(8)?; // mfa_at_ms
        }
        let action = r.str_bytes()?;
        let outcome =
            Outcome::from_code(r.u8()?).ok_or(Error::Undecodable("unknown outcome code"))?;
        let collection = r.opt_str()?;
        r.skip_strings()?; // records
        let n = r.list_len(32)?;
        let subjects = r.take(n * 32)?; // list_len bounds n
        r.skip_strings()?; // fields
        r.skip_opt_string()?; // grade
        let purpose = r.opt_str()?;
        r.skip_opt_string()?; // view
        r.skip_string()?; // request_id
        if r.tag()? {
            r.take(32)?; // client
        }
        r.skip_opt_string()?; // reason
        if !r.0.is_empty() {
            return Err(Error::Undecodable("trailing bytes"));
        }
        Ok(Columns {
            tenant,
            seq,
            at_ms,
            principal,
            action,
            outcome,
            collection,
            purpose,
            subjects,
        })
    }

    /// Reads the version, tenant and sequence number from the fixed-size head of encoded bytes
    /// without decoding the rest.
    ///
    /// # Errors
    /// [`Error::Undecodable`] if the head is short or the version unknown.
    pub fn peek_head(bytes: &[u8]) -> Result<([u8; 16], u64), Error> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(Error::Undecodable("unknown event version"));
        }
        let tenant = r.array::<16>()?;
        let seq = u64::from_be_bytes(r.array()?);
        Ok((tenant, seq))
    }
}

/// The fields of an encoded event that stores keep in columns, borrowed from its bytes
/// ([`Event::columns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns<'a> {
    /// Tenant id.
    pub tenant: [u8; 16],
    /// Sequence number.
    pub seq: u64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Principal id.
    pub principal: &'a str,
    /// Action.
    pub action: &'a str,
    /// Outcome.
    pub outcome: Outcome,
    /// Collection.
    pub collection: Option<&'a str>,
    /// Purpose.
    pub purpose: Option<&'a str>,
    /// The subject pseudonyms, 32 bytes each, one after another.
    pub subjects: &'a [u8],
}

struct Writer(Vec<u8>);

impl Writer {
    fn len(&mut self, n: usize) {
        // Lengths past u32 cannot pass `Event::check`; saturating keeps `encode` total and
        // makes such bytes fail to decode instead of aliasing another event.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&n.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn strs(&mut self, l: &[String]) {
        self.len(l.len());
        for s in l {
            self.str(s);
        }
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Undecodable("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn tag(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::Undecodable("option tag is neither 0 nor 1")),
        }
    }
    fn raw_len(&mut self) -> Result<usize, Error> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }
    /// A list length, bounded by the limit and by what the remaining bytes could hold (each
    /// item takes at least `min_item` bytes), so hostile input cannot force a huge allocation.
    fn list_len(&mut self, min_item: usize) -> Result<usize, Error> {
        let n = self.raw_len()?;
        if n > MAX_LIST_LEN {
            return Err(Error::Undecodable("list longer than the limit"));
        }
        if n.saturating_mul(min_item) > self.0.len() {
            return Err(Error::Undecodable("truncated"));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, Error> {
        self.str_bytes().map(str::to_owned)
    }
    fn str_bytes(&mut self) -> Result<&'a str, Error> {
        let n = self.raw_len()?;
        if n > MAX_STRING_LEN {
            return Err(Error::Undecodable("string longer than the limit"));
        }
        std::str::from_utf8(self.take(n)?).map_err(|_| Error::Undecodable("string is not utf-8"))
    }
    fn skip_string(&mut self) -> Result<(), Error> {
        self.str_bytes().map(|_| ())
    }
    fn skip_strings(&mut self) -> Result<(), Error> {
        for _ in 0..self.list_len(4)? {
            self.skip_string()?;
        }
        Ok(())
    }
    fn skip_opt_string(&mut self) -> Result<(), Error> {
        self.opt_str().map(|_| ())
    }
    fn opt_str(&mut self) -> Result<Option<&'a str>, Error> {
        if self.tag()? {
            self.str_bytes().map(Some)
        } else {
            Ok(None)
        }
    }
    fn strings(&mut self) -> Result<Vec<String>, Error> {
        let n = self.list_len(4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string()?);
        }
        Ok(out)
    }
    fn opt_string(&mut self) -> Result<Option<String>, Error> {
        Ok(self.opt_str()?.map(str::to_owned))
    }
}

/// A tenant's audit key: HMAC-SHA256 that turns identifiers which could be personal (subject
/// ids, client addresses) into stable pseudonyms, so the audit log can answer "who looked at
/// this subject" without naming anyone to whoever reads it without the key.
#[derive(Debug)]
pub struct AuditKey(MacKey);

impl AuditKey {
    /// An audit key from key material.
    pub fn new(key: &SecretKey) -> Self {
        Self(MacKey::new(key))
    }

    /// An audit key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::new(&SecretKey::from_bytes(bytes))
    }

    /// The pseudonym of `value` of a given kind (`"subject"`, `"client"`). The kind is part of
    /// the input, so a subject id and an address with equal bytes get different pseudonyms.
    pub fn pseudonym(&self, kind: &str, value: &[u8]) -> [u8; 32] {
        let kind_len = u32::try_from(kind.len()).unwrap_or(u32::MAX).to_be_bytes();
        self.0.mac_parts(&[
            b"boveda/audit/pseudonym/v1\0",
            &kind_len,
            kind.as_bytes(),
            value,
        ])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn full_event() -> Event {
        Event {
            roles: vec!["support".into(), "agent".into()],
            session: Some("s-123".into()),
            mfa_at_ms: Some(1_700_000_000_000),
            collection: Some("customers".into()),
            records: vec!["r-1".into(), "r-2".into()],
            subjects: vec![[1; 32], [2; 32]],
            fields: vec!["email".into(), "phone".into()],
            grade: Some("confidential".into()),
            purpose: Some("support".into()),
            view: Some("masked".into()),
            client: Some([9; 32]),
            reason: Some("policy".into()),
            ..Event::new(
                [7; 16],
                1_700_000_001_000,
                "p-1",
                "user",
                "record.read",
                Outcome::Denied,
                "req-1",
            )
        }
    }

    #[test]
    fn encode_decode_round_trips_full_and_empty_events() {
        let full = full_event();
        assert_eq!(Event::decode(&full.encode()).unwrap(), full);
        let empty = Event::new([0; 16], -5, "", "", "", Outcome::Allowed, "");
        assert_eq!(Event::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn trailing_bytes_and_truncation_are_rejected() {
        let bytes = full_event().encode();
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Event::decode(&longer),
            Err(Error::Undecodable("trailing bytes"))
        );
        for n in 0..bytes.len() {
            assert!(
                Event::decode(&bytes[..n]).is_err(),
                "prefix of {n} bytes decoded"
            );
        }
    }

    #[test]
    fn bad_tag_and_version_are_rejected() {
        let mut bytes = full_event().encode();
        bytes[0] = 2;
        assert!(Event::decode(&bytes).is_err());
        let e = Event::new([0; 16], 0, "", "", "", Outcome::Allowed, "");
        let mut bytes = e.encode();
        // The session option tag sits after v, tenant, seq, at_ms, two empty strings and an
        // empty roles list.
        let at = 1 + 16 + 8 + 8 + 4 + 4 + 4;
        assert_eq!(bytes[at], 0);
        bytes[at] = 2;
        assert!(Event::decode(&bytes).is_err());
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate_or_panic() {
        let e = Event::new([0; 16], 0, "", "", "", Outcome::Allowed, "");
        let mut bytes = e.encode();
        // Roles count.
        let at = 1 + 16 + 8 + 8 + 4 + 4;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Event::decode(&bytes).is_err());
    }

    #[test]
    fn check_rejects_oversized_fields() {
        let mut e = full_event();
        e.principal = "x".repeat(MAX_STRING_LEN + 1);
        assert!(e.check().is_err());
        assert!(Event::decode(&e.encode()).is_err());
        let mut e = full_event();
        e.subjects = vec![[0; 32]; MAX_LIST_LEN + 1];
        assert!(e.check().is_err());
        assert!(full_event().check().is_ok());
    }

    #[test]
    fn json_round_trips_and_uses_readable_ids() {
        let e = full_event();
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"tenant\":\"07070707-0707-0707-0707-070707070707\""));
        assert!(json.contains(&hex::encode([9u8; 32])));
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_separated_by_kind() {
        let k = AuditKey::from_bytes([1; 32]);
        let other = AuditKey::from_bytes([2; 32]);
        assert_eq!(
            k.pseudonym("subject", b"s-1"),
            k.pseudonym("subject", b"s-1")
        );
        assert_ne!(
            k.pseudonym("subject", b"s-1"),
            k.pseudonym("client", b"s-1")
        );
        assert_ne!(
            k.pseudonym("subject", b"s-1"),
            other.pseudonym("subject", b"s-1")
        );
        assert_eq!(format!("{k:?}"), "AuditKey(MacKey(<redacted>))");
    }
}
