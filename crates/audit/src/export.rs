//! Export formats for outside sinks: JSON lines (which `boveda audit verify` can read back and
//! verify) and ArcSight CEF for a SIEM over syslog.
//!
//! Both carry exactly what the event holds: ids, pseudonyms and names, never personal values.

use crate::serde_util::{self, tenant_string};
use crate::{Error, Event, Outcome, StoredEvent};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One exported line: the chain position and hash, and the event in readable form.
#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    #[serde(with = "serde_util::hex_array")]
    hash: [u8; 32],
    event: Event,
}

/// The event as one line of JSON (no trailing newline):
/// `{"seq":…,"hash":"<hex>","event":{…}}`.
///
/// The encoded bytes are not exported: the encoding is canonical, so [`from_json_line`]
/// rebuilds them exactly and the verifier checks them against the hash.
///
/// # Errors
/// [`Error::Undecodable`] if the stored bytes are not an event (export stops there; the
/// verifier will name the same event).
pub fn to_json_line(stored: &StoredEvent) -> Result<String, Error> {
    let line = Line {
        seq: stored.seq,
        hash: stored.hash,
        event: Event::decode(&stored.encoded)?,
    };
    serde_json::to_string(&line).map_err(|e| serde_util::json_error(&e))
}

/// Reads a line written by [`to_json_line`] back into a stored event for verification.
///
/// # Errors
/// [`Error::Json`] if the line is not an exported event; [`Error::Invalid`] if the event breaks
/// a limit (the verifier would then report it as modified anyway).
pub fn from_json_line(line: &str) -> Result<StoredEvent, Error> {
    let l: Line = serde_json::from_str(line).map_err(|e| serde_util::json_error(&e))?;
    l.event.check()?;
    Ok(StoredEvent {
        seq: l.seq,
        encoded: l.event.encode(),
        hash: l.hash,
    })
}

/// CEF severity (0–10) for an event: routine reads low, changes and exports higher, denials and
/// failed authentication highest.
fn severity(e: &Event) -> u8 {
    let sensitive = matches!(
        &*e.action,
        "subject.erase" | "key.rotate" | "policy.change" | "token.detokenize"
    ) || e.action.contains("export");
    match e.outcome {
        Outcome::Denied => 7,
        Outcome::Failed if e.action.starts_with("auth.") => 7,
        Outcome::Failed => 5,
        Outcome::Allowed if sensitive => 6,
        Outcome::Allowed if e.view.as_deref() == Some("plain") => 5,
        Outcome::Allowed if e.action.ends_with(".read") || e.action.starts_with("auth.") => 3,
        Outcome::Allowed => 4,
    }
}

/// Escapes a CEF header field: backslash and pipe are escaped; a header cannot span lines, so
/// CR and LF become `\r` and `\n` and other control characters a space.
fn header(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Appends ` key=value` with the value escaped as CEF extensions require: backslash and equals
/// escaped, CR and LF as `\r` and `\n`, other control characters as a space.
fn ext(out: &mut String, key: &str, value: &str) {
    if !out.ends_with('|') {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// The event as an ArcSight CEF line (no syslog header, no trailing newline):
/// `CEF:0|boveda|boveda|<version>|<action>|<action>|<severity>|<extensions>`.
///
/// Extensions use standard keys where one fits (`rt` time, `externalId` request id, `suid` and
/// `suser` principal id, `spriv` roles, `act`, `outcome`, `reason`, `duid` first subject
/// pseudonym) and labelled custom fields for the rest: `cs1` tenant, `cs2` collection, `cs3`
/// purpose, `cs4` view, `cs5` grade, `cs6` client pseudonym, `flexString1` fields,
/// `flexString2` session, `cn1` number of subjects, `cn2` number of records, `cn3` chain seq.
///
/// # Errors
/// [`Error::Undecodable`] if the stored bytes are not an event.
pub fn to_cef(stored: &StoredEvent) -> Result<String, Error> {
    let e = Event::decode(&stored.encoded)?;
    let mut out = String::with_capacity(512);
    out.push_str("CEF:0|boveda|boveda|");
    header(&mut out, env!("CARGO_PKG_VERSION"));
    out.push('|');
    header(&mut out, &e.action);
    out.push('|');
    header(&mut out, &e.action);
    // Writing to a String cannot fail.
    let _ = write!(out, "|{}|", severity(&e));
    ext(&mut out, "rt", &e.at_ms.to_string());
    ext(&mut out, "externalId", &e.request_id);
    ext(&mut out, "cn3Label", "seq");
    ext(&mut out, "cn3", &stored.seq.to_string());
    ext(&mut out, "suid", &e.principal);
    ext(&mut out, "suser", &e.principal);
    ext(&mut out, "cs1Label", "tenant");
    ext(&mut out, "cs1", &tenant_string(&e.tenant));
    if !e.roles.is_empty() {
        ext(&mut out, "spriv", &e.roles.join(","));
    }
    ext(&mut out, "act", &e.action);
    ext(&mut out, "outcome", e.outcome.as_str());
    let labelled = [
        ("cs2", "collection", e.collection.as_deref()),
        ("cs3", "purpose", e.purpose.as_deref()),
        ("cs4", "view", e.view.as_deref()),
        ("cs5", "grade", e.grade.as_deref()),
        ("flexString2", "session", e.session.as_deref()),
    ];
    for (key, label, value) in labelled {
        if let Some(v) = value {
            ext(&mut out, &format!("{key}Label"), label);
            ext(&mut out, key, v);
        }
    }
    if !e.fields.is_empty() {
        ext(&mut out, "flexString1Label", "fields");
        ext(&mut out, "flexString1", &e.fields.join(","));
    }
    if let Some(first) = e.subjects.first() {
        ext(&mut out, "duid", &hex::encode(first));
    }
    ext(&mut out, "cn1Label", "subjects");
    ext(&mut out, "cn1", &e.subjects.len().to_string());
    ext(&mut out, "cn2Label", "records");
    ext(&mut out, "cn2", &e.records.len().to_string());
    if let Some(c) = &e.client {
        ext(&mut out, "cs6Label", "client");
        ext(&mut out, "cs6", &hex::encode(c));
    }
    if let Some(r) = &e.reason {
        ext(&mut out, "reason", r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_and_extension_escaping_follow_the_cef_rules() {
        let mut h = String::new();
        header(&mut h, "a|b\\c\nd=e");
        assert_eq!(h, "a\\|b\\\\c\\nd=e");
        let mut x = String::from("|");
        ext(&mut x, "k", "a=b\\c|d\r\ne");
        assert_eq!(x, "|k=a\\=b\\\\c|d\\r\\ne");
    }
}
