//! Delivery of incident notices (`[notify]`): email through an SMTP relay (lettre; `smtp://`
//! with STARTTLS when offered or `?tls=required`, `smtps://` for implicit TLS); SMS, push and
//! phone calls through the tenant's HTTPS webhooks; letters as A4 PDF files, one per recipient,
//! and the public announcement as HTML and PDF, in the outbox folder.
//!
//! Webhooks receive `POST` with header `Idempotency-Key` and the JSON body
//! `{"id", "incident_id", "channel", "language", "to", "subject", "text"}`; any 2xx is
//! success. Emails carry the same key as their `Message-ID`. Delivery is at least once: a
//! notice is claimed before it is sent and marked after, so a crash in between sends it again
//! after the lease, with the same key for the receiver to drop.

use crate::config::NotifySection;
use crate::pdf;
use boveda_core::Vault;
use boveda_core::notice::Outgoing;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

/// What delivers notices.
pub struct Notifier {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    http: reqwest::Client,
    outbox: PathBuf,
    backoff_ms: i64,
    lease_ms: i64,
}

impl Notifier {
    /// From `[notify]`; the outbox defaults to `<data_dir>/outbox`.
    ///
    /// # Errors
    /// A relay URL or sender address that does not parse.
    pub fn new(cfg: &NotifySection, data_dir: &std::path::Path) -> Result<Self, String> {
        let smtp = cfg
            .smtp_url
            .as_deref()
            .map(|u| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(u)
                    .map(|b| b.timeout(Some(Duration::from_secs(30))).build())
                    .map_err(|_| "notify.smtp_url: not an smtp:// or smtps:// URL".to_owned())
            })
            .transpose()?;
        Ok(Self {
            smtp,
            from: cfg
                .from
                .parse()
                .map_err(|_| "notify.from: not an email address".to_owned())?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            outbox: cfg
                .outbox_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("outbox")),
            backoff_ms: cfg.backoff_ms as i64,
            lease_ms: cfg.lease_seconds as i64 * 1000,
        })
    }

    fn folder(&self, o: &Outgoing) -> PathBuf {
        self.outbox
            .join(o.tenant.to_string())
            .join(o.incident.to_string())
    }

    /// Sends one notice; the error is a code fit for the audit log (no personal value).
    pub async fn deliver(&self, o: &Outgoing) -> Result<(), String> {
        match o.channel.as_str() {
            "email" => self.email(o).await,
            "sms" | "push" | "phone" => self.webhook(o).await,
            "letter" => {
                let file = self
                    .folder(o)
                    .join("letters")
                    .join(format!("{}.pdf", o.key.replace(':', "-")));
                let bytes = pdf::letter(
                    o.name.expose(),
                    o.to.expose(),
                    o.subject.expose(),
                    o.body.expose(),
                );
                write(file, bytes).await
            }
            "publish" => {
                let dir = self.folder(o);
                let html = announcement_html(&o.language, o.subject.expose(), o.body.expose());
                write(dir.join("announcement.html"), html.into_bytes()).await?;
                write(
                    dir.join("announcement.pdf"),
                    pdf::document(o.subject.expose(), o.body.expose()),
                )
                .await
            }
            _ => Err("unknown_channel".into()),
        }
    }

    async fn email(&self, o: &Outgoing) -> Result<(), String> {
        let smtp = self.smtp.as_ref().ok_or("smtp_not_configured")?;
        let to: Mailbox = o.to.expose().parse().map_err(|_| "bad_address")?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(o.subject.expose())
            .message_id(Some(format!("<{}@boveda>", o.idempotency_key)))
            .header(ContentType::TEXT_PLAIN)
            .body(o.body.expose().clone())
            .map_err(|_| "message_build")?;
        match smtp.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.status() {
                Some(code) => format!("smtp_{code}"),
                None if e.is_transient() => "smtp_transient".into(),
                None => "smtp_unreachable".into(),
            }),
        }
    }

    async fn webhook(&self, o: &Outgoing) -> Result<(), String> {
        let url = o.webhook.as_deref().ok_or("webhook_not_configured")?;
        let body = serde_json::json!({
            "id": o.idempotency_key,
            "incident_id": o.incident,
            "channel": o.channel,
            "language": o.language,
            "to": o.to.expose(),
            "subject": o.subject.expose(),
            "text": o.body.expose(),
        });
        match self
            .http
            .post(url)
            .header("Idempotency-Key", &o.idempotency_key)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("webhook_{}", r.status().as_u16())),
            Err(_) => Err("webhook_unreachable".into()),
        }
    }
}

async fn write(path: PathBuf, bytes: Vec<u8>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|_| "outbox_unwritable")?;
    }
    // Write then rename: a reader never sees half a file.
    let tmp = path.with_extension("part");
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(|_| "outbox_unwritable")?;
    tokio::fs::rename(&tmp, &path)
        .await
        .map_err(|_| "outbox_unwritable".to_owned())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The announcement as a standalone HTML page.
pub fn announcement_html(language: &str, title: &str, body: &str) -> String {
    let paragraphs: String = body
        .split("\n\n")
        .map(|p| format!("<p>{}</p>\n", escape(p).replace('\n', "<br>\n")))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;line-height:1.5;padding:0 1rem}}</style></head>\n<body>\n<h1>{t}</h1>\n{paragraphs}</body>\n</html>\n",
        escape(language),
        t = escape(title)
    )
}

/// Claims due notices, delivers them and records each outcome, until `stop`.
pub async fn notify_job(
    vault: Vault,
    notifier: Notifier,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match vault.claim_notices(50, notifier.lease_ms).await {
            Ok(batch) => {
                let busy = !batch.is_empty();
                for o in batch {
                    let result = notifier.deliver(&o).await;
                    if let Err(e) = &result {
                        tracing::warn!(incident = %o.incident, notice = %o.key, channel = %o.channel, error = %e, "notice not delivered; retrying or falling back");
                    }
                    if let Err(e) = vault.notice_result(&o, result, notifier.backoff_ms).await {
                        tracing::warn!(error = %e, notice = %o.key, "could not record a notice's delivery; it is sent again after the lease");
                    }
                }
                if busy {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not claim notices"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
