//! Behaviour analytics: rules over one tenant's event stream, per principal, that raise alerts
//! for a security team. Pure: the caller feeds events in time order and stores, sends and acts on
//! the alerts (step-up MFA, throttle, suspend).
//!
//! Each rule fires at most once per window for a principal (an hour for volume, subjects,
//! off-hours and exports; the sliding window for bursts, denials and MFA failures; the first
//! use for a new purpose or field set, which is then learned), so a burst yields one alert that
//! lists the events that raised it, not one alert per event. Alerts carry sequence numbers,
//! principal ids, counts, and names of purposes and fields; never a personal value.

use crate::serde_util;
use crate::{Event, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// An alert lists at most this many event sequence numbers (the most recent ones for rate
/// rules, the first ones for hourly rules); `detail` gives the full count.
pub const MAX_ALERT_EVENTS: usize = 1000;

/// Working hours in UTC: `from` inclusive to `to` exclusive, in whole hours. `from > to` wraps
/// past midnight (`{ from = 22, to = 6 }` is a night shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    /// First working hour, 0–23.
    pub from: u8,
    /// First hour after work, 0–24.
    pub to: u8,
}

impl Hours {
    fn contains(self, hour: u8) -> bool {
        if self.from <= self.to {
            (self.from..self.to).contains(&hour)
        } else {
            hour >= self.from || hour < self.to
        }
    }
}

/// Rule thresholds. Every field has a default, so a TOML or JSON file need only name the ones it
/// changes. A rule whose threshold is 0 is off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Volume: alert when an hour's events exceed this multiple of the principal's own median
    /// events per active hour over the last `baseline_days`. Default 5.
    pub volume_factor: f64,
    /// Volume: and exceed this absolute count, so quiet principals do not alert on small
    /// numbers. Default 100.
    pub volume_min: u32,
    /// Volume: days of history in the baseline. Default 7.
    pub baseline_days: u32,
    /// Volume: active hours needed in the baseline before the rule applies; a new principal
    /// has no baseline to compare with. Default 16.
    pub baseline_min_hours: u32,
    /// Distinct subjects touched by one principal in one clock hour above which to alert.
    /// Default 150.
    pub subjects_per_hour: u32,
    /// Working hours in UTC; any event outside them alerts once per hour. Default none (off),
    /// because no single window suits every tenant's time zones.
    pub working_hours: Option<Hours>,
    /// Events a principal must have before a never-seen purpose or field set alerts.
    /// Default 200.
    pub learning_events: u32,
    /// Clear (`view == "plain"`) reads and detokenizations per minute above which to alert.
    /// Default 20.
    pub clear_per_minute: u32,
    /// Denied calls per 10 minutes above which to alert. Default 10.
    pub denials_per_10_minutes: u32,
    /// Failed MFA attempts (`auth.mfa`, failed) per 10 minutes above which to alert. Default 5.
    pub mfa_failures_per_10_minutes: u32,
    /// Alert on exports (an action containing `export`), once per principal per hour.
    /// Default true.
    pub exports: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            volume_factor: 5.0,
            volume_min: 100,
            baseline_days: 7,
            baseline_min_hours: 16,
            subjects_per_hour: 150,
            working_hours: None,
            learning_events: 200,
            clear_per_minute: 20,
            denials_per_10_minutes: 10,
            mfa_failures_per_10_minutes: 5,
            exports: true,
        }
    }
}

/// Which rule raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Far more events in an hour than the principal's own baseline.
    Volume,
    /// Too many distinct subjects in an hour.
    DistinctSubjects,
    /// Activity outside working hours.
    OffHours,
    /// A purpose the principal never used before.
    NewPurpose,
    /// A set of fields the principal never touched together before.
    NewFieldSet,
    /// A burst of clear views or detokenizations.
    ClearBurst,
    /// Repeated denials.
    RepeatedDenials,
    /// Repeated MFA failures.
    RepeatedMfaFailures,
    /// An export of data or of the audit log.
    Export,
}

/// An alert for one principal, linked to the events that raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule.
    pub kind: AlertKind,
    /// The principal's id.
    pub principal: String,
    /// The tenant.
    #[serde(with = "serde_util::tenant")]
    pub tenant: [u8; 16],
    /// The time of the event that raised it, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Sequence numbers of the events that raised it (at most [`MAX_ALERT_EVENTS`]).
    pub events: Vec<u64>,
    /// What was seen, in counts, thresholds and names of purposes or fields; no personal values.
    pub detail: String,
}

/// A sliding window counter that fires once per window.
#[derive(Debug, Default)]
struct Rate {
    hits: VecDeque<(i64, u64)>,
    quiet_until: i64,
}

impl Rate {
    /// Records a hit; returns the window's sequence numbers when the count first exceeds
    /// `limit` in a window.
    fn hit(&mut self, at_ms: i64, seq: u64, window_ms: i64, limit: u32) -> Option<Vec<u64>> {
        while self
            .hits
            .front()
            .is_some_and(|(t, _)| *t <= at_ms - window_ms)
        {
            self.hits.pop_front();
        }
        self.hits.push_back((at_ms, seq));
        // Only "more than limit" matters, so the window never needs more than limit + 1 hits.
        let cap = (limit as usize + 1).min(MAX_ALERT_EVENTS);
        while self.hits.len() > cap {
            self.hits.pop_front();
        }
        if self.hits.len() > limit as usize && at_ms >= self.quiet_until {
            self.quiet_until = at_ms.saturating_add(window_ms);
            return Some(self.hits.iter().map(|(_, s)| *s).collect());
        }
        None
    }
}

/// One principal's state.
#[derive(Debug, Default)]
struct Principal {
    seen: u64,
    /// The clock hour being counted, and its events.
    hour: i64,
    hour_count: u32,
    hour_seqs: Vec<u64>,
    /// Completed active hours in the baseline window: (hour, events).
    history: VecDeque<(i64, u32)>,
    subjects: HashSet<[u8; 32], Pseudonyms>,
    subject_seqs: Vec<u64>,
    /// Hour buckets in which each hourly rule last fired (a few rules: a list is quicker to
    /// look up than a map on every event).
    fired: Vec<(AlertKind, i64)>,
    purposes: HashSet<String>,
    field_sets: HashSet<BTreeSet<String>>,
    /// The field list of the last event with fields, as given: a principal's events mostly
    /// repeat it, and a repeat needs no set built to know it is not new.
    last_fields: Vec<String>,
    clear: Rate,
    denials: Rate,
    mfa_failures: Rate,
}

impl Principal {
    /// Moves to the clock hour of a new event. Events slightly out of order stay in the
    /// current hour rather than reopening a past one.
    fn roll(&mut self, hour: i64, baseline_hours: i64) {
        if hour <= self.hour {
            return;
        }
        if self.hour_count > 0 {
            self.history.push_back((self.hour, self.hour_count));
        }
        while self
            .history
            .front()
            .is_some_and(|(h, _)| *h <= hour.saturating_sub(baseline_hours))
        {
            self.history.pop_front();
        }
        self.hour = hour;
        self.hour_count = 0;
        self.hour_seqs.clear();
        self.subjects.clear();
        self.subject_seqs.clear();
    }

    fn median(&self) -> f64 {
        let mut counts: Vec<u32> = self.history.iter().map(|(_, c)| *c).collect();
        counts.sort_unstable();
        let n = counts.len();
        match n {
            0 => 0.0,
            _ if n % 2 == 1 => f64::from(counts[n / 2]),
            _ => (f64::from(counts[n / 2 - 1]) + f64::from(counts[n / 2])) / 2.0,
        }
    }

    /// Whether an hourly rule may fire in this hour; marks it fired.
    fn once_per_hour(&mut self, kind: AlertKind) -> bool {
        match self.fired.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, h)) if *h == self.hour => false,
            Some((_, h)) => {
                *h = self.hour;
                true
            }
            None => {
                self.fired.push((kind, self.hour));
                true
            }
        }
    }

    /// Whether an hourly rule fired in this hour.
    fn fired_this_hour(&self, kind: AlertKind) -> bool {
        self.fired
            .iter()
            .any(|(k, h)| *k == kind && *h == self.hour)
    }
}

/// Per-principal behaviour analytics over an event stream.
#[derive(Debug)]
pub struct Analyzer {
    thresholds: Thresholds,
    /// Per tenant, per principal: looked up by `&str`, without a key built per event.
    principals: HashMap<[u8; 16], HashMap<String, Principal>>,
}

/// Hashes subject pseudonyms by their first eight bytes: they are HMAC outputs under the
/// tenant's audit key, uniform and not chosen by a caller who lacks it, so SipHash's
/// protection against chosen keys buys nothing here, and it costs on every event.
#[derive(Debug, Default, Clone, Copy)]
struct Pseudonyms;

/// The hasher of [`Pseudonyms`].
#[derive(Debug, Default)]
struct PseudonymHasher(u64);

impl std::hash::BuildHasher for Pseudonyms {
    type Hasher = PseudonymHasher;
    fn build_hasher(&self) -> PseudonymHasher {
        PseudonymHasher(0)
    }
}

impl std::hash::Hasher for PseudonymHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
    }
    /// The array's length prefix: the same for every pseudonym.
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

fn push_capped(v: &mut Vec<u64>, seq: u64) {
    if v.len() < MAX_ALERT_EVENTS {
        v.push(seq);
    }
}

impl Analyzer {
    /// An analyzer with no history.
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            principals: HashMap::new(),
        }
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Feeds one event (in time order) and returns the alerts it raises, usually none.
    pub fn observe(&mut self, event: &Event) -> Vec<Alert> {
        let t = &self.thresholds;
        let principals = self.principals.entry(event.tenant).or_default();
        // One lookup for a principal already known.
        if let Some(p) = principals.get_mut(&event.principal) {
            return p.observe(t, event);
        }
        principals
            .entry(event.principal.clone())
            .or_default()
            .observe(t, event)
    }
}

impl Principal {
    /// Counts an event of this principal; returns the alerts it raises.
    fn observe(&mut self, t: &Thresholds, event: &Event) -> Vec<Alert> {
        let p = self;
        let mut alerts = Vec::new();
        let mut raise = |kind: AlertKind, events: Vec<u64>, detail: String| {
            alerts.push(Alert {
                kind,
                principal: event.principal.clone(),
                tenant: event.tenant,
                at_ms: event.at_ms,
                events,
                detail,
            });
        };
        let seq = event.seq;
        let hour = event.at_ms.div_euclid(HOUR_MS);
        let baseline_hours = i64::from(t.baseline_days) * 24;
        p.roll(hour, baseline_hours);
        p.seen += 1;
        p.hour_count = p.hour_count.saturating_add(1);
        push_capped(&mut p.hour_seqs, seq);

        // Volume against the principal's own baseline.
        if t.volume_min > 0
            && p.hour_count > t.volume_min
            && p.history.len() >= t.baseline_min_hours as usize
        {
            let median = p.median();
            if f64::from(p.hour_count) > t.volume_factor * median
                && p.once_per_hour(AlertKind::Volume)
            {
                raise(
                    AlertKind::Volume,
                    p.hour_seqs.clone(),
                    format!(
                        "{} events this hour; baseline median {median} per active hour over {} hours",
                        p.hour_count,
                        p.history.len()
                    ),
                );
            }
        }

        // Distinct subjects per hour. Once fired, the hour's set stops growing.
        if t.subjects_per_hour > 0
            && !event.subjects.is_empty()
            && !p.fired_this_hour(AlertKind::DistinctSubjects)
        {
            p.subjects.extend(event.subjects.iter().copied());
            push_capped(&mut p.subject_seqs, seq);
            if p.subjects.len() > t.subjects_per_hour as usize
                && p.once_per_hour(AlertKind::DistinctSubjects)
            {
                raise(
                    AlertKind::DistinctSubjects,
                    std::mem::take(&mut p.subject_seqs),
                    format!(
                        "{} distinct subjects this hour; threshold {}",
                        p.subjects.len(),
                        t.subjects_per_hour
                    ),
                );
                p.subjects.clear();
            }
        }

        // Off-hours access.
        if let Some(hours) = t.working_hours {
            // rem_euclid keeps the hour in 0..24 for any time, including before 1970.
            let hour_of_day = u8::try_from(hour.rem_euclid(24)).unwrap_or(0);
            if !hours.contains(hour_of_day) && p.once_per_hour(AlertKind::OffHours) {
                raise(
                    AlertKind::OffHours,
                    vec![seq],
                    format!(
                        "activity at {hour_of_day:02}:00 UTC, outside {:02}:00-{:02}:00",
                        hours.from, hours.to
                    ),
                );
            }
        }

        // Never-seen purpose or field set, after the learning period.
        let learned = p.seen > u64::from(t.learning_events);
        if let Some(purpose) = &event.purpose
            && !p.purposes.contains(purpose)
        {
            p.purposes.insert(purpose.clone());
            if learned {
                raise(
                    AlertKind::NewPurpose,
                    vec![seq],
                    format!("first use of purpose {purpose:?}"),
                );
            }
        }
        if !event.fields.is_empty() && event.fields != p.last_fields {
            p.last_fields.clone_from(&event.fields);
            let set: BTreeSet<String> = event.fields.iter().cloned().collect();
            if !p.field_sets.contains(&set) {
                let names: Vec<&str> = set.iter().map(String::as_str).collect();
                let detail = format!("first use of field set [{}]", names.join(", "));
                p.field_sets.insert(set);
                if learned {
                    raise(AlertKind::NewFieldSet, vec![seq], detail);
                }
            }
        }

        // Bursts of clear views or detokenization.
        let clear = event.view.as_deref() == Some("plain") || event.action == "token.detokenize";
        if clear
            && t.clear_per_minute > 0
            && let Some(seqs) = p.clear.hit(event.at_ms, seq, MINUTE_MS, t.clear_per_minute)
        {
            raise(
                AlertKind::ClearBurst,
                seqs,
                format!(
                    "more than {} clear reads or detokenizations in one minute",
                    t.clear_per_minute
                ),
            );
        }

        // Repeated denials.
        if event.outcome == Outcome::Denied
            && t.denials_per_10_minutes > 0
            && let Some(seqs) =
                p.denials
                    .hit(event.at_ms, seq, 10 * MINUTE_MS, t.denials_per_10_minutes)
        {
            raise(
                AlertKind::RepeatedDenials,
                seqs,
                format!(
                    "more than {} denials in ten minutes",
                    t.denials_per_10_minutes
                ),
            );
        }

        // Repeated MFA failures.
        if event.action == "auth.mfa"
            && event.outcome == Outcome::Failed
            && t.mfa_failures_per_10_minutes > 0
            && let Some(seqs) = p.mfa_failures.hit(
                event.at_ms,
                seq,
                10 * MINUTE_MS,
                t.mfa_failures_per_10_minutes,
            )
        {
            raise(
                AlertKind::RepeatedMfaFailures,
                seqs,
                format!(
                    "more than {} failed MFA attempts in ten minutes",
                    t.mfa_failures_per_10_minutes
                ),
            );
        }

        // Exports.
        if t.exports && event.action.contains("export") && p.once_per_hour(AlertKind::Export) {
            raise(
                AlertKind::Export,
                vec![seq],
                format!("{} ({})", event.action, event.outcome.as_str()),
            );
        }

        alerts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hours_wrap_past_midnight() {
        let night = Hours { from: 22, to: 6 };
        assert!(night.contains(23) && night.contains(0) && night.contains(5));
        assert!(!night.contains(6) && !night.contains(12));
        let day = Hours { from: 8, to: 18 };
        assert!(day.contains(8) && !day.contains(18));
    }

    #[test]
    fn rate_fires_once_per_window_and_again_after_it() {
        let mut r = Rate::default();
        let fired: Vec<_> = (0..30)
            .filter_map(|i| r.hit(i * 1000, i as u64, 60_000, 3))
            .collect();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0], vec![0, 1, 2, 3]);
        assert!(r.hit(64_000, 99, 60_000, 3).is_some());
    }

    #[test]
    fn median_of_even_and_odd_histories() {
        let mut p = Principal {
            history: [(1, 10), (2, 30), (3, 20)].into(),
            ..Principal::default()
        };
        assert_eq!(p.median(), 20.0);
        p.history.push_back((4, 40));
        assert_eq!(p.median(), 25.0);
    }
}
