//! Notices of an incident (DESIGN.md §9, the policy's clauses 4 and 5): the plan (for each
//! subject exposed in clear, the recipient, the subject or a guardian, and the order of
//! channels, from the contact data in the vault), a public announcement for the unreachable
//! or past a threshold, regulator reports (GDPR Art. 33, PIPL Art. 57), templates in es, en
//! and zh editable per tenant, approval by a second privacy officer, and the delivery state
//! of each notice: queued, sending, sent, fell back, failed.
//!
//! Notice rows and the incident document hold ids, pseudonyms, channel names and counts, never
//! a personal value: contact data is decrypted when a notice is handed to a channel, and only
//! into the message ([`Outgoing`]), whose personal parts are [`Pii`].

use crate::incident::{Incident, from_row, handler};
use crate::principal::Caller;
use crate::vault::{TenantCache, Vault, decode_fields, now_ms};
use crate::{Error, IncidentId, SubjectId, TenantId};
use boveda_audit::{Event, Outcome};
use boveda_crypto::{FieldAad, Pii};
use boveda_store::NoticeRow;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Channels a notice can go by.
pub const CHANNELS: [&str; 5] = ["email", "sms", "push", "phone", "letter"];
/// Languages of the built-in templates.
pub const LANGUAGES: [&str; 3] = ["es", "en", "zh"];
/// Kinds of notice, each with its template.
pub const KINDS: [&str; 5] = [
    "individual",
    "guardian",
    "announcement",
    "regulator_gdpr",
    "regulator_pipl",
];
/// Attempts on one channel before falling back to the next.
pub const ATTEMPTS_PER_CHANNEL: u32 = 3;

/// Where the contact data of subjects is, field by field (names of fields of `collection`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactFields {
    /// The subject's name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number, for SMS and calls.
    pub phone: Option<String>,
    /// Push token of the subject's app.
    pub push_token: Option<String>,
    /// Postal address, for letters.
    pub address: Option<String>,
    /// Date of birth: under the jurisdiction's age, the guardian is notified instead.
    pub date_of_birth: Option<String>,
    /// Preferred language (es, en, zh).
    pub language: Option<String>,
    /// Country (ISO 3166 alpha-2), for the member state's age under GDPR.
    pub country: Option<String>,
    /// The guardian's name.
    pub guardian_name: Option<String>,
    /// The guardian's email address.
    pub guardian_email: Option<String>,
    /// The guardian's phone number.
    pub guardian_phone: Option<String>,
    /// The guardian's postal address.
    pub guardian_address: Option<String>,
}

/// A tenant's template for one kind and language: `{{placeholders}}` are filled with the
/// incident's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Subject line (email) or title (letter, announcement).
    pub subject: String,
    /// Body.
    pub body: String,
}

/// How a tenant notifies (tenant setting `notice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeSettings {
    /// The collection holding subjects' contact data.
    pub collection: String,
    /// Its fields, by role.
    #[serde(default)]
    pub fields: ContactFields,
    /// Channels in order of preference.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
    /// `gdpr` or `pipl`: the age of a minor and the remedies named.
    #[serde(default = "default_jurisdiction")]
    pub jurisdiction: String,
    /// Age under which the guardian is notified; by default 14 under PIPL, and under GDPR the
    /// member state's age (Art. 8) from the subject's country, else 16.
    #[serde(default)]
    pub minor_age: Option<u32>,
    /// Language when the subject has none.
    #[serde(default = "default_language")]
    pub language: String,
    /// Percentage of unreachable subjects at or past which everyone is told by public
    /// announcement instead of individually.
    #[serde(default = "default_percent")]
    pub public_unreachable_percent: u32,
    /// Number of individual notices at or past which individual notice is impractical and a
    /// public announcement replaces them.
    #[serde(default = "default_over")]
    pub public_over_count: u64,
    /// The controller's name, as notices sign.
    pub controller: String,
    /// Who to contact (the protection officer's address or phone).
    pub contact: String,
    /// Regulators to report to: `gdpr` or `pipl` → the email address of their inbox.
    #[serde(default)]
    pub regulators: BTreeMap<String, String>,
    /// HTTPS webhooks of the `sms`, `push` and `phone` channels.
    #[serde(default)]
    pub webhooks: BTreeMap<String, String>,
    /// Templates replacing the built-in ones, by `language.kind` (e.g. `es.individual`).
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
}

fn default_channels() -> Vec<String> {
    CHANNELS.map(str::to_owned).to_vec()
}
fn default_jurisdiction() -> String {
    "gdpr".into()
}
fn default_language() -> String {
    "es".into()
}
fn default_percent() -> u32 {
    50
}
fn default_over() -> u64 {
    100_000
}

impl NoticeSettings {
    pub(crate) fn check(&self) -> Result<(), Error> {
        if !crate::schema::valid_name(&self.collection) {
            return Err(Error::invalid("notice.collection", "collection_name"));
        }
        if self.channels.is_empty()
            || self
                .channels
                .iter()
                .any(|c| !CHANNELS.contains(&c.as_str()))
            || (1..self.channels.len()).any(|i| self.channels[..i].contains(&self.channels[i]))
        {
            return Err(Error::invalid(
                "notice.channels",
                "distinct_email_sms_push_phone_letter",
            ));
        }
        if !matches!(self.jurisdiction.as_str(), "gdpr" | "pipl") {
            return Err(Error::invalid("notice.jurisdiction", "gdpr_or_pipl"));
        }
        if !LANGUAGES.contains(&self.language.as_str()) {
            return Err(Error::invalid("notice.language", "es_en_or_zh"));
        }
        if self.public_unreachable_percent > 100 {
            return Err(Error::invalid(
                "notice.public_unreachable_percent",
                "at_most_100",
            ));
        }
        if self.controller.trim().is_empty() || self.contact.trim().is_empty() {
            return Err(Error::invalid(
                "notice.contact",
                "controller_and_contact_required",
            ));
        }
        if self
            .regulators
            .keys()
            .any(|k| !matches!(k.as_str(), "gdpr" | "pipl"))
        {
            return Err(Error::invalid("notice.regulators", "gdpr_or_pipl"));
        }
        for (channel, url) in &self.webhooks {
            if !matches!(channel.as_str(), "sms" | "push" | "phone") {
                return Err(Error::invalid("notice.webhooks", "sms_push_or_phone"));
            }
            if !webhook_allowed(url) {
                return Err(Error::invalid(
                    format!("notice.webhooks.{channel}"),
                    "https_url_or_loopback_http",
                ));
            }
        }
        for (key, t) in &self.templates {
            let ok = key
                .split_once('.')
                .is_some_and(|(l, k)| LANGUAGES.contains(&l) && KINDS.contains(&k));
            if !ok {
                return Err(Error::invalid(
                    format!("notice.templates.{key}"),
                    "language_dot_kind",
                ));
            }
            for text in [&t.subject, &t.body] {
                placeholders_known(text).map_err(|_| {
                    Error::invalid(format!("notice.templates.{key}"), "placeholder")
                })?;
            }
        }
        Ok(())
    }

    fn template(&self, language: &str, kind: &str) -> (String, String) {
        match self.templates.get(&format!("{language}.{kind}")) {
            Some(t) => (t.subject.clone(), t.body.clone()),
            None => {
                let (s, b) = builtin(language, kind);
                (s.to_owned(), b.to_owned())
            }
        }
    }
}

/// HTTPS anywhere; plain HTTP only to this machine (a local relay, tests). The server's
/// audit and alert webhooks follow the same rule.
pub fn webhook_allowed(url: &str) -> bool {
    url.starts_with("https://")
        || ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .filter_map(|host| url.strip_prefix(host))
            .any(|rest| rest.is_empty() || rest.starts_with([':', '/']))
}

/// Placeholders a template may use.
pub const PLACEHOLDERS: [&str; 17] = [
    "controller",
    "contact",
    "incident_id",
    "title",
    "what_happened",
    "cause",
    "detected_at",
    "categories",
    "impact",
    "measures",
    "advice",
    "remedies",
    "recipient_name",
    "subject_name",
    "affected_count",
    "clear_count",
    "records_count",
];

fn placeholders_known(text: &str) -> Result<(), ()> {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let end = after.find("}}").ok_or(())?;
        if !PLACEHOLDERS.contains(&after[..end].trim()) {
            return Err(());
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// Fills `{{name}}` placeholders; an unknown one is left empty (templates are checked when
/// saved).
pub fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        if let Some(v) = value(after[..end].trim()) {
            out.push_str(&v);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The built-in templates: what happened, the possible impact, the measures taken, what the
/// person can do, remedies and a contact (GDPR Art. 34(2) with Art. 33(3)(b)–(d); PIPL Art. 57).
fn builtin(language: &str, kind: &str) -> (&'static str, &'static str) {
    match (language, kind) {
        ("en", "individual") => (
            "Security incident affecting your personal data",
            "Dear {{recipient_name}},\n\nWe are writing to tell you about a security incident at {{controller}} that affected your personal data.\n\nWhat happened: {{what_happened}} (detected {{detected_at}}).\nData concerned: {{categories}}.\nPossible impact: {{impact}}\nMeasures we have taken: {{measures}}\nWhat you can do: {{advice}}\nYour rights: {{remedies}}\nContact: {{contact}}\n\n{{controller}}\nReference {{incident_id}}\n",
        ),
        ("en", "guardian") => (
            "Security incident affecting the personal data of {{subject_name}}",
            "Dear {{recipient_name}},\n\nAs the parent or guardian of {{subject_name}}, who is a minor, we are writing to tell you about a security incident at {{controller}} that affected their personal data.\n\nWhat happened: {{what_happened}} (detected {{detected_at}}).\nData concerned: {{categories}}.\nPossible impact: {{impact}}\nMeasures we have taken: {{measures}}\nWhat you can do: {{advice}}\nYour rights: {{remedies}}\nContact: {{contact}}\n\n{{controller}}\nReference {{incident_id}}\n",
        ),
        ("en", "announcement") => (
            "Public notice of a security incident at {{controller}}",
            "{{controller}} informs the public of a security incident that affected the personal data of {{affected_count}} people, some of whom we could not reach individually.\n\nWhat happened: {{what_happened}} (detected {{detected_at}}).\nData concerned: {{categories}}.\nPossible impact: {{impact}}\nMeasures we have taken: {{measures}}\nWhat you can do: {{advice}}\nYour rights: {{remedies}}\nContact: {{contact}}\n\nReference {{incident_id}}\n",
        ),
        ("en", "regulator_gdpr") => (
            "Personal data breach notification (GDPR Art. 33): {{title}}",
            "Controller: {{controller}}\nReference: {{incident_id}}\nDetected: {{detected_at}}\n\n(a) Nature of the breach: {{what_happened}} Cause: {{cause}}.\n    Categories of data: {{categories}}.\n    Approximate number of data subjects concerned: {{affected_count}} ({{clear_count}} exposed in clear).\n    Approximate number of personal data records concerned: {{records_count}}.\n(b) Data protection officer / contact point: {{contact}}\n(c) Likely consequences: {{impact}}\n(d) Measures taken or proposed: {{measures}}\n",
        ),
        ("en", "regulator_pipl") => (
            "Personal information security incident report (PIPL Art. 57): {{title}}",
            "Personal information handler: {{controller}}\nReference: {{incident_id}}\nDetected: {{detected_at}}\n\nTypes of personal information involved: {{categories}} ({{affected_count}} individuals).\nCause: {{cause}}. {{what_happened}}\nPossible harm: {{impact}}\nRemedial measures taken: {{measures}}\nMeasures individuals can take: {{advice}}\nContact: {{contact}}\n",
        ),
        ("zh", "individual") => (
            "关于您个人信息的安全事件通知",
            "尊敬的{{recipient_name}}：\n\n{{controller}}发生了一起涉及您个人信息的安全事件，特此告知。\n\n事件经过：{{what_happened}}（发现时间：{{detected_at}}）。\n涉及的信息种类：{{categories}}。\n可能造成的危害：{{impact}}\n我们已采取的补救措施：{{measures}}\n您可以采取的措施：{{advice}}\n您的权利：{{remedies}}\n联系方式：{{contact}}\n\n{{controller}}\n编号 {{incident_id}}\n",
        ),
        ("zh", "guardian") => (
            "关于{{subject_name}}个人信息的安全事件通知",
            "尊敬的{{recipient_name}}：\n\n您是未成年人{{subject_name}}的监护人。{{controller}}发生了一起涉及其个人信息的安全事件，特此告知。\n\n事件经过：{{what_happened}}（发现时间：{{detected_at}}）。\n涉及的信息种类：{{categories}}。\n可能造成的危害：{{impact}}\n我们已采取的补救措施：{{measures}}\n您可以采取的措施：{{advice}}\n您的权利：{{remedies}}\n联系方式：{{contact}}\n\n{{controller}}\n编号 {{incident_id}}\n",
        ),
        ("zh", "announcement") => (
            "{{controller}}关于个人信息安全事件的公告",
            "{{controller}}发生了一起个人信息安全事件，涉及{{affected_count}}人的个人信息，其中部分人员无法逐一通知，特此公告。\n\n事件经过：{{what_happened}}（发现时间：{{detected_at}}）。\n涉及的信息种类：{{categories}}。\n可能造成的危害：{{impact}}\n已采取的补救措施：{{measures}}\n个人可以采取的措施：{{advice}}\n您的权利：{{remedies}}\n联系方式：{{contact}}\n\n编号 {{incident_id}}\n",
        ),
        ("zh", "regulator_gdpr") => (
            "个人数据泄露通知（GDPR第33条）：{{title}}",
            "控制者：{{controller}}\n编号：{{incident_id}}\n发现时间：{{detected_at}}\n\n(a) 泄露的性质：{{what_happened}} 原因：{{cause}}。\n    数据类别：{{categories}}。\n    涉及的数据主体约数：{{affected_count}}（其中明文暴露 {{clear_count}}）。\n    涉及的个人数据记录约数：{{records_count}}。\n(b) 数据保护官/联系人：{{contact}}\n(c) 可能的后果：{{impact}}\n(d) 已采取或拟采取的措施：{{measures}}\n",
        ),
        ("zh", "regulator_pipl") => (
            "个人信息安全事件报告（《个人信息保护法》第五十七条）：{{title}}",
            "个人信息处理者：{{controller}}\n编号：{{incident_id}}\n发现时间：{{detected_at}}\n\n发生或者可能发生泄露、篡改、丢失的个人信息种类：{{categories}}（涉及{{affected_count}}人）。\n原因：{{cause}}。{{what_happened}}\n可能造成的危害：{{impact}}\n已采取的补救措施：{{measures}}\n个人可以采取的减轻危害的措施：{{advice}}\n联系方式：{{contact}}\n",
        ),
        (_, "guardian") => (
            "Incidente de seguridad que afecta a los datos personales de {{subject_name}}",
            "Estimado/a {{recipient_name}}:\n\nComo madre, padre o tutor de {{subject_name}}, menor de edad, le informamos de un incidente de seguridad en {{controller}} que ha afectado a sus datos personales.\n\nQué ha ocurrido: {{what_happened}} (detectado el {{detected_at}}).\nDatos afectados: {{categories}}.\nPosibles consecuencias: {{impact}}\nMedidas adoptadas: {{measures}}\nQué puede hacer: {{advice}}\nSus derechos: {{remedies}}\nContacto: {{contact}}\n\n{{controller}}\nReferencia {{incident_id}}\n",
        ),
        (_, "announcement") => (
            "Comunicado público sobre un incidente de seguridad en {{controller}}",
            "{{controller}} informa públicamente de un incidente de seguridad que ha afectado a los datos personales de {{affected_count}} personas, a algunas de las cuales no hemos podido avisar individualmente.\n\nQué ha ocurrido: {{what_happened}} (detectado el {{detected_at}}).\nDatos afectados: {{categories}}.\nPosibles consecuencias: {{impact}}\nMedidas adoptadas: {{measures}}\nQué puede hacer: {{advice}}\nSus derechos: {{remedies}}\nContacto: {{contact}}\n\nReferencia {{incident_id}}\n",
        ),
        (_, "regulator_gdpr") => (
            "Notificación de violación de la seguridad de los datos personales (art. 33 RGPD): {{title}}",
            "Responsable del tratamiento: {{controller}}\nReferencia: {{incident_id}}\nDetectada: {{detected_at}}\n\n(a) Naturaleza de la violación: {{what_happened}} Causa: {{cause}}.\n    Categorías de datos: {{categories}}.\n    Número aproximado de interesados afectados: {{affected_count}} ({{clear_count}} expuestos en claro).\n    Número aproximado de registros de datos personales afectados: {{records_count}}.\n(b) Delegado de protección de datos / punto de contacto: {{contact}}\n(c) Consecuencias probables: {{impact}}\n(d) Medidas adoptadas o propuestas: {{measures}}\n",
        ),
        (_, "regulator_pipl") => (
            "Informe de incidente de seguridad de información personal (art. 57 PIPL): {{title}}",
            "Encargado del tratamiento: {{controller}}\nReferencia: {{incident_id}}\nDetectado: {{detected_at}}\n\nTipos de información personal afectada: {{categories}} ({{affected_count}} personas).\nCausa: {{cause}}. {{what_happened}}\nPosibles daños: {{impact}}\nMedidas correctoras adoptadas: {{measures}}\nMedidas que pueden adoptar las personas: {{advice}}\nContacto: {{contact}}\n",
        ),
        _ => (
            "Incidente de seguridad que afecta a sus datos personales",
            "Estimado/a {{recipient_name}}:\n\nLe informamos de un incidente de seguridad en {{controller}} que ha afectado a sus datos personales.\n\nQué ha ocurrido: {{what_happened}} (detectado el {{detected_at}}).\nDatos afectados: {{categories}}.\nPosibles consecuencias: {{impact}}\nMedidas adoptadas: {{measures}}\nQué puede hacer: {{advice}}\nSus derechos: {{remedies}}\nContacto: {{contact}}\n\n{{controller}}\nReferencia {{incident_id}}\n",
        ),
    }
}

/// Name, likely impact and advice for a data category, per language.
fn category_text(language: &str, category: &str) -> (&'static str, &'static str, &'static str) {
    match (language, category) {
        ("en", "identity") => (
            "identity data",
            "identity theft or impersonation.",
            "be wary of anyone using your identity; tell us and the police of any misuse.",
        ),
        ("en", "contact") => (
            "contact details",
            "unwanted messages and phishing.",
            "do not answer messages asking for passwords or codes; we never ask for them.",
        ),
        ("en", "financial") => (
            "financial data",
            "fraudulent charges.",
            "check your bank statements and ask your bank to block your card if you see anything unusual.",
        ),
        ("en", "health") => (
            "health data",
            "disclosure of sensitive health information.",
            "tell us if you are contacted about your health data.",
        ),
        ("en", "biometric") => (
            "biometric data",
            "misuse of biometric identification.",
            "tell us if a service rejects or accepts you unexpectedly.",
        ),
        ("en", "location") => (
            "location data",
            "disclosure of where you live or go.",
            "be alert to unexpected visits or contacts.",
        ),
        ("en", "minors") => (
            "data about minors",
            "risks to a minor's privacy and safety.",
            "talk with the minor about unexpected contacts.",
        ),
        ("en", _) => (
            "other personal data",
            "misuse of personal data.",
            "stay alert to unusual messages.",
        ),
        ("zh", "identity") => (
            "身份信息",
            "身份被冒用的风险。",
            "警惕他人冒用您的身份，如发现滥用请告知我们并报警。",
        ),
        ("zh", "contact") => (
            "联系方式",
            "垃圾信息和网络钓鱼的风险。",
            "不要回复索要密码或验证码的信息，我们从不索要。",
        ),
        ("zh", "financial") => (
            "财务信息",
            "被盗刷的风险。",
            "查看银行账单，如有异常请联系银行冻结银行卡。",
        ),
        ("zh", "health") => (
            "健康信息",
            "敏感健康信息被泄露的风险。",
            "如有人就您的健康信息联系您，请告知我们。",
        ),
        ("zh", "biometric") => (
            "生物识别信息",
            "生物识别信息被滥用的风险。",
            "如服务异常地拒绝或接受您，请告知我们。",
        ),
        ("zh", "location") => (
            "位置信息",
            "住址或行踪被泄露的风险。",
            "留意陌生来访或联系。",
        ),
        ("zh", "minors") => (
            "未成年人信息",
            "未成年人隐私和安全的风险。",
            "与未成年人沟通，留意陌生联系。",
        ),
        ("zh", _) => ("其他个人信息", "个人信息被滥用的风险。", "留意异常信息。"),
        (_, "identity") => (
            "datos identificativos",
            "suplantación de identidad.",
            "desconfíe de quien use su identidad y comunique cualquier uso indebido a nosotros y a la policía.",
        ),
        (_, "contact") => (
            "datos de contacto",
            "mensajes no deseados y suplantación (phishing).",
            "no responda a mensajes que pidan contraseñas o códigos; nunca se los pediremos.",
        ),
        (_, "financial") => (
            "datos financieros",
            "cargos fraudulentos.",
            "revise sus movimientos bancarios y pida a su banco que bloquee la tarjeta si ve algo extraño.",
        ),
        (_, "health") => (
            "datos de salud",
            "revelación de información sensible de salud.",
            "avísenos si alguien le contacta sobre sus datos de salud.",
        ),
        (_, "biometric") => (
            "datos biométricos",
            "uso indebido de la identificación biométrica.",
            "avísenos si un servicio le rechaza o acepta de forma inesperada.",
        ),
        (_, "location") => (
            "datos de localización",
            "revelación de dónde vive o a dónde va.",
            "esté atento a visitas o contactos inesperados.",
        ),
        (_, "minors") => (
            "datos de menores",
            "riesgos para la privacidad y la seguridad del menor.",
            "hable con el menor sobre contactos inesperados.",
        ),
        _ => (
            "otros datos personales",
            "uso indebido de datos personales.",
            "esté atento a mensajes extraños.",
        ),
    }
}

fn measure_text(language: &str, action: &str) -> Option<&'static str> {
    Some(match (language, action) {
        ("en", "contain.revoke_principal") => {
            "the compromised account's sessions and keys were revoked"
        }
        ("en", "contain.force_password_reset") => "a password reset was forced",
        ("en", "contain.suspend_principal") => "the compromised account was suspended",
        ("en", "contain.rotate_keys") => "encryption keys were rotated",
        ("en", "contain.freeze_tenant") => "access to the data was frozen",
        ("zh", "contain.revoke_principal") => "已吊销被盗账户的会话和密钥",
        ("zh", "contain.force_password_reset") => "已强制重置密码",
        ("zh", "contain.suspend_principal") => "已停用被盗账户",
        ("zh", "contain.rotate_keys") => "已轮换加密密钥",
        ("zh", "contain.freeze_tenant") => "已冻结数据访问",
        (_, "contain.revoke_principal") => {
            "se revocaron las sesiones y claves de la cuenta comprometida"
        }
        (_, "contain.force_password_reset") => "se obligó a cambiar la contraseña",
        (_, "contain.suspend_principal") => "se suspendió la cuenta comprometida",
        (_, "contain.rotate_keys") => "se rotaron las claves de cifrado",
        (_, "contain.freeze_tenant") => "se congeló el acceso a los datos",
        _ => return None,
    })
}

fn remedies_text(language: &str, jurisdiction: &str) -> &'static str {
    match (language, jurisdiction) {
        ("en", "pipl") => {
            "you may exercise your rights of access, correction and deletion with us, and complain to the Cyberspace Administration of China or other departments performing personal information protection duties."
        }
        ("en", _) => {
            "you may exercise your rights of access, rectification, erasure and objection with us, and lodge a complaint with the data protection supervisory authority."
        }
        ("zh", "pipl") => {
            "您可以向我们行使查阅、更正、删除等权利，并可以向国家网信部门或其他履行个人信息保护职责的部门投诉、举报。"
        }
        ("zh", _) => "您可以向我们行使访问、更正、删除和反对等权利，并可以向数据保护监管机构投诉。",
        (_, "pipl") => {
            "puede ejercer ante nosotros sus derechos de acceso, rectificación y supresión, y reclamar ante la Administración del Ciberespacio de China u otros departamentos competentes."
        }
        _ => {
            "puede ejercer ante nosotros sus derechos de acceso, rectificación, supresión y oposición, y presentar una reclamación ante la Agencia Española de Protección de Datos u otra autoridad de control."
        }
    }
}

/// Ages of consent to information society services under GDPR Art. 8, by member state.
fn gdpr_age(country: Option<&str>) -> u32 {
    match country.map(str::to_ascii_uppercase).as_deref() {
        Some("BE" | "DK" | "EE" | "FI" | "LV" | "MT" | "PT" | "SE") => 13,
        Some("AT" | "BG" | "CY" | "ES" | "IT" | "LT") => 14,
        Some("CZ" | "FR" | "GR" | "SI") => 15,
        _ => 16,
    }
}

/// A person's age in whole years today, from an ISO date.
fn age(dob: &str) -> Option<u32> {
    let (y, m, d) = crate::values::parse_date(dob)?;
    let (ty, tm, td) = crate::values::today();
    let mut years = ty - y;
    if (tm, td) < (m, d) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// The plan's summary on the incident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticePlan {
    /// When it was planned, Unix milliseconds.
    pub planned_at: i64,
    /// Who planned it.
    pub planned_by: String,
    /// Who approved it (a privacy officer other than the incident's creator).
    pub approved_by: Option<String>,
    /// When, Unix milliseconds.
    pub approved_at: Option<i64>,
    /// Notices by status at planning time: individual, guardian, unreachable, not_required
    /// (masked or ciphertext only), covered (by the announcement), regulator, announcement.
    pub counts: BTreeMap<String, u64>,
    /// Why there is a public announcement, if there is one.
    pub announcement: Option<String>,
    /// Categories of data exposed.
    pub categories: Vec<String>,
    /// Subjects affected (any exposure), exposed in clear, and records (field exposures).
    pub affected: (u64, u64, u64),
}

/// One attempt at delivering a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Channel.
    pub channel: String,
    /// `sent`, `failed` or `fell_back`.
    pub outcome: String,
    /// What went wrong (a code, never a personal value).
    pub error: Option<String>,
}

/// One notice and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Unique within the incident.
    pub key: String,
    /// `individual`, `guardian`, `announcement`, `regulator_gdpr`, `regulator_pipl`.
    pub kind: String,
    /// The affected subject, for individual and guardian notices.
    pub subject_id: Option<SubjectId>,
    /// Language.
    pub language: String,
    /// Channels in order; `publish` for the announcement.
    pub channels: Vec<String>,
    /// Index of the channel in use.
    pub channel: usize,
    /// `queued`, `sending`, `sent`, `fell_back`, `failed`; or, never sent: `unreachable`,
    /// `not_required` (exposed masked or as ciphertext only), `covered` (by the
    /// announcement).
    pub status: String,
    /// Why a notice is not sent.
    pub reason: Option<String>,
    /// Attempts on the current channel.
    pub attempts: u32,
    /// Earliest time of the next attempt, Unix milliseconds.
    pub next_attempt_ms: i64,
    /// Last change, Unix milliseconds.
    pub updated_ms: i64,
    /// Every attempt.
    pub history: Vec<Attempt>,
}

impl Notice {
    /// When delivery should next take this notice up: its next attempt, or the end of the send
    /// lease of a node that claimed it; `None` once nothing more is to be done.
    fn due_ms(&self, lease_ms: i64) -> Option<i64> {
        if self.channel >= self.channels.len() {
            return None;
        }
        match self.status.as_str() {
            "queued" | "fell_back" => Some(self.next_attempt_ms),
            "sending" => Some(self.updated_ms + lease_ms),
            _ => None,
        }
    }

    fn new(key: String, kind: &str, language: &str, channels: Vec<String>, status: &str) -> Self {
        Self {
            key,
            kind: kind.to_owned(),
            subject_id: None,
            language: language.to_owned(),
            channels,
            channel: 0,
            status: status.to_owned(),
            reason: None,
            attempts: 0,
            next_attempt_ms: 0,
            updated_ms: now_ms(),
            history: Vec::new(),
        }
    }
}

/// A notice handed to a channel: its personal parts are [`Pii`].
#[derive(Debug)]
pub struct Outgoing {
    /// Tenant.
    pub tenant: TenantId,
    /// Incident.
    pub incident: IncidentId,
    /// The notice's key.
    pub key: String,
    /// A key stable across retries, for receivers to drop duplicates (Message-ID,
    /// `Idempotency-Key`).
    pub idempotency_key: String,
    /// Kind.
    pub kind: String,
    /// Channel: email, sms, push, phone, letter, publish.
    pub channel: String,
    /// Language.
    pub language: String,
    /// Address: email address, phone number, push token, postal address; empty to publish.
    pub to: Pii,
    /// Recipient's name (letters' address block).
    pub name: Pii,
    /// Subject line or title.
    pub subject: Pii,
    /// The message.
    pub body: Pii,
    /// The channel's webhook, for sms, push and phone.
    pub webhook: Option<String>,
}

/// The facts every notice of an incident shares, per language.
struct Facts {
    values: HashMap<&'static str, String>,
}

fn json<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|_| Error::Internal("notice encoding"))
}

fn parse(row: &NoticeRow) -> Result<Notice, Error> {
    serde_json::from_str(&row.doc).map_err(|_| Error::Integrity("notice document"))
}

fn date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = crate::values::civil_from_days(days);
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60
    )
}

impl Facts {
    fn new(
        incident: &Incident,
        s: &NoticeSettings,
        language: &str,
        categories: &[String],
        counts: (u64, u64, u64),
    ) -> Self {
        let texts: Vec<_> = categories
            .iter()
            .map(|c| category_text(language, c))
            .collect();
        let sep = if language == "zh" { "、" } else { ", " };
        let mut measures: Vec<&str> = incident
            .timeline
            .iter()
            .filter_map(|e| measure_text(language, &e.action))
            .collect();
        measures.dedup();
        if measures.is_empty() {
            measures.push(match language {
                "en" => "we are investigating and will keep you informed",
                "zh" => "我们正在调查，并将及时告知进展",
                _ => "estamos investigando y le mantendremos informado",
            });
        }
        let mut values = HashMap::new();
        values.insert("controller", s.controller.clone());
        values.insert("contact", s.contact.clone());
        values.insert("incident_id", incident.id.to_string());
        values.insert("title", incident.title.clone());
        values.insert("what_happened", incident.description.clone());
        values.insert("cause", incident.cause.clone().unwrap_or_default());
        values.insert("detected_at", date(incident.detected_at));
        values.insert(
            "categories",
            texts.iter().map(|t| t.0).collect::<Vec<_>>().join(sep),
        );
        values.insert(
            "impact",
            texts.iter().map(|t| t.1).collect::<Vec<_>>().join(" "),
        );
        values.insert("measures", measures.join(sep));
        values.insert(
            "advice",
            texts.iter().map(|t| t.2).collect::<Vec<_>>().join(" "),
        );
        values.insert(
            "remedies",
            remedies_text(language, &s.jurisdiction).to_owned(),
        );
        values.insert("affected_count", counts.0.to_string());
        values.insert("clear_count", counts.1.to_string());
        values.insert("records_count", counts.2.to_string());
        Self { values }
    }

    /// Renders a template with these facts and the recipient's names.
    fn render(&self, template: &str, recipient: &str, subject: &str) -> String {
        render(template, |k| match k {
            "recipient_name" => Some(recipient.to_owned()),
            "subject_name" => Some(subject.to_owned()),
            k => self.values.get(k).cloned(),
        })
    }
}

/// Renders one individual notice as delivery does (the incident's facts, then the template),
/// for the benchmark.
#[doc(hidden)]
pub fn render_sample(language: &str, recipient: &str) -> String {
    let incident: Incident = serde_json::from_value(serde_json::json!({
        "id": IncidentId::generate(), "title": "Stolen key", "description": "An API key was used from an unknown address.",
        "detected_at": 1_790_000_000_000i64, "severity": "high", "cause": "credential theft",
        "scope": {}, "state": "notifying", "owner": "x", "created_by": "x",
        "timeline": [{"at_ms": 0, "actor": "x", "action": "contain.revoke_principal", "detail": ""}]
    }))
    .unwrap_or_else(|_| unreachable!("a valid incident"));
    let s: NoticeSettings = serde_json::from_value(serde_json::json!({
        "collection": "people", "controller": "ACME S.L.", "contact": "dpo@acme.example"
    }))
    .unwrap_or_else(|_| unreachable!("valid settings"));
    let categories = ["contact".to_owned(), "financial".to_owned()];
    let facts = Facts::new(&incident, &s, language, &categories, (1000, 900, 3000));
    let (subject, body) = s.template(language, "individual");
    facts.render(&subject, recipient, recipient) + &facts.render(&body, recipient, recipient)
}

/// The contact data of one subject, decrypted from its latest record in the contact
/// collection.
struct Contact(HashMap<String, Pii>);

impl Contact {
    fn get(&self, field: Option<&String>) -> Option<&str> {
        field
            .and_then(|f| self.0.get(f))
            .map(|v| v.expose().as_str())
            .filter(|v| !v.trim().is_empty())
    }
}

/// Contact fields used for a channel, subject or guardian.
fn channel_field<'a>(f: &'a ContactFields, channel: &str, guardian: bool) -> Option<&'a String> {
    match (channel, guardian) {
        ("email", false) => f.email.as_ref(),
        ("sms" | "phone", false) => f.phone.as_ref(),
        ("push", false) => f.push_token.as_ref(),
        ("letter", false) => f.address.as_ref(),
        ("email", true) => f.guardian_email.as_ref(),
        ("sms" | "phone", true) => f.guardian_phone.as_ref(),
        ("letter", true) => f.guardian_address.as_ref(),
        _ => None,
    }
}

impl Vault {
    fn notice_settings(t: &TenantCache) -> Result<NoticeSettings, Error> {
        t.settings.notice.clone().ok_or_else(|| {
            Error::Conflict("the tenant has no `notice` settings (PUT /v1/settings)".into())
        })
    }

    /// Decrypts the contact fields of subjects (their latest record in the contact collection).
    async fn contacts(
        &self,
        tenant: TenantId,
        t: &mut Arc<TenantCache>,
        s: &NoticeSettings,
        subjects: &[SubjectId],
    ) -> Result<HashMap<SubjectId, Contact>, Error> {
        let rows = self
            .st("subject_records")
            .subject_records(tenant, &s.collection, subjects)
            .await?;
        let deks = self.deks(tenant, t, subjects).await?;
        let wanted = Self::contact_field_names(s);
        let mut out = HashMap::new();
        for row in rows {
            let Some(dek) = deks.get(&row.subject) else {
                continue;
            };
            let mut values = HashMap::new();
            for (name, ct) in decode_fields(&row.sealed)? {
                if !wanted.contains(&name) {
                    continue;
                }
                let aad = FieldAad {
                    tenant: tenant.as_bytes(),
                    collection: &row.collection,
                    record: row.id.as_bytes(),
                    field: &name,
                };
                let plain = dek.open(&ct, &aad)?.into_string()?;
                values.insert(name, plain);
            }
            // Later records replace earlier ones.
            out.insert(row.subject, Contact(values));
        }
        Ok(out)
    }

    fn contact_field_names(s: &NoticeSettings) -> Vec<String> {
        let f = &s.fields;
        [
            &f.name,
            &f.email,
            &f.phone,
            &f.push_token,
            &f.address,
            &f.date_of_birth,
            &f.language,
            &f.country,
            &f.guardian_name,
            &f.guardian_email,
            &f.guardian_phone,
            &f.guardian_address,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    /// A system event of notice delivery (principal `boveda`).
    fn notice_event(
        t: &TenantCache,
        tenant: TenantId,
        s: &NoticeSettings,
        action: &'static str,
        outcome: Outcome,
        subjects: &[SubjectId],
        reason: String,
    ) -> Event {
        let e = Event::new(
            *tenant.as_bytes(),
            now_ms(),
            "boveda",
            "system",
            action,
            outcome,
            "notice-delivery",
        );
        let mut e = Self::access(
            e,
            t,
            &s.collection,
            Vec::new(),
            subjects,
            Self::contact_field_names(s),
            Some("incident_notification"),
            Some(crate::View::Plain),
        );
        e.reason = Some(reason);
        e
    }

    /// Plans the notices of an incident from its blast radius and the contact data in the
    /// vault: one per subject exposed in clear (to the guardian for a minor), a public
    /// announcement for the unreachable or past the threshold, and one report per regulator.
    /// Subjects exposed only masked or as ciphertext are listed as not requiring notice (GDPR
    /// Art. 34(3)(a), PIPL Art. 57). Planning is done once per incident.
    ///
    /// # Errors
    /// [`Error::Conflict`] when already planned or without notice settings.
    pub async fn plan_notices(
        &self,
        caller: &Caller,
        id: IncidentId,
    ) -> Result<Vec<Notice>, Error> {
        let tenant = handler(caller)?;
        let incident = self.incident(caller, id).await?;
        if incident.notice_plan.is_some() {
            return Err(Error::Conflict(
                "the notices of this incident are planned already".into(),
            ));
        }
        let mut t = self.cached(tenant).await?;
        let s = Self::notice_settings(&t)?;
        // Fresh from the log, not the copy kept for paging.
        let row = self
            .st("incident")
            .incident(tenant, id)
            .await?
            .ok_or(Error::NotFound("incident"))?;
        let radius = self.compute_blast_radius(tenant, &row).await?;
        let clear: Vec<SubjectId> = radius
            .subjects
            .iter()
            .filter(|x| x.exposure == "clear")
            .filter_map(|x| x.subject_id)
            .collect();
        // Reading contact data is an access: audited before anything is decrypted.
        let mut e = self.event(caller, tenant, Some(&t), "notice.plan", Outcome::Allowed);
        e = Self::access(
            e,
            &t,
            &s.collection,
            Vec::new(),
            &clear,
            Self::contact_field_names(&s),
            Some("incident_notification"),
            Some(crate::View::Plain),
        );
        e.reason = Some(format!("incident {id}"));
        self.audit(vec![e]).await?;
        let mut contacts = HashMap::new();
        for chunk in clear.chunks(1000) {
            contacts.extend(self.contacts(tenant, &mut t, &s, chunk).await?);
        }

        let mut notices = Vec::new();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for x in &radius.subjects {
            let key = format!("subject:{}", x.pseudonym);
            let mut n = Notice::new(key, "individual", &s.language, Vec::new(), "queued");
            n.subject_id = x.subject_id;
            if x.exposure != "clear" {
                n.status = "not_required".into();
                n.reason = Some(format!("exposed {} only", x.exposure.replace('_', " ")));
            } else if let Some(c) = x.subject_id.and_then(|sid| contacts.get(&sid)) {
                if let Some(l) = c.get(s.fields.language.as_ref())
                    && LANGUAGES.contains(&l)
                {
                    n.language = l.to_owned();
                }
                let limit = s
                    .minor_age
                    .unwrap_or_else(|| match s.jurisdiction.as_str() {
                        "pipl" => 14,
                        _ => gdpr_age(c.get(s.fields.country.as_ref())),
                    });
                let minor = c
                    .get(s.fields.date_of_birth.as_ref())
                    .and_then(age)
                    .is_some_and(|a| a < limit);
                if minor {
                    n.kind = "guardian".into();
                }
                n.channels = s
                    .channels
                    .iter()
                    .filter(|ch| c.get(channel_field(&s.fields, ch, minor)).is_some())
                    .filter(|ch| {
                        ch.as_str() == "email"
                            || ch.as_str() == "letter"
                            || s.webhooks.contains_key(ch.as_str())
                    })
                    .cloned()
                    .collect();
                if n.channels.is_empty() {
                    n.status = "unreachable".into();
                    n.reason = Some("no usable contact data".into());
                }
            } else {
                n.status = "unreachable".into();
                n.reason = Some("no contact record".into());
            }
            notices.push(n);
        }
        let individual = notices
            .iter()
            .filter(|n| n.status != "not_required")
            .count() as u64;
        let unreachable = notices.iter().filter(|n| n.status == "unreachable").count() as u64;
        // Past either threshold, individual notice is impractical: the announcement replaces it.
        let over_count = individual > 0 && individual >= s.public_over_count;
        let over_share = unreachable > 0
            && unreachable * 100 >= u64::from(s.public_unreachable_percent) * individual;
        let announcement = if over_count {
            Some(format!(
                "{individual} individual notices reach the threshold of {}",
                s.public_over_count
            ))
        } else if over_share {
            Some(format!(
                "{unreachable} of {individual} subjects unreachable, at or past {} %",
                s.public_unreachable_percent
            ))
        } else if unreachable > 0 {
            Some(format!("{unreachable} subjects unreachable"))
        } else {
            None
        };
        if over_count || over_share {
            for n in notices.iter_mut().filter(|n| n.status == "queued") {
                n.status = "covered".into();
                n.reason = Some("told by public announcement".into());
            }
        }
        if announcement.is_some() {
            let mut n = Notice::new(
                "announcement".into(),
                "announcement",
                &s.language,
                vec!["publish".into()],
                "queued",
            );
            n.reason.clone_from(&announcement);
            notices.push(n);
        }
        for j in s.regulators.keys() {
            notices.push(Notice::new(
                format!("regulator:{j}"),
                &format!("regulator_{j}"),
                if j == "pipl" { "zh" } else { &s.language },
                vec!["email".into()],
                "queued",
            ));
        }
        for n in &notices {
            let label = match (n.status.as_str(), n.kind.as_str()) {
                ("queued", k) => k,
                (st, _) => st,
            };
            *counts.entry(label.to_owned()).or_default() += 1;
        }
        let rows = notices
            .iter()
            .map(|n| {
                Ok(NoticeRow {
                    tenant,
                    incident: id,
                    key: n.key.clone(),
                    doc: json(n)?,
                    version: 1,
                    due_ms: n.due_ms(0),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        for chunk in rows.chunks(5000) {
            self.st("insert_notices").insert_notices(chunk).await?;
        }
        let actor = caller.principal.id.to_string();
        let plan = NoticePlan {
            planned_at: now_ms(),
            planned_by: actor,
            approved_by: None,
            approved_at: None,
            counts: counts.clone(),
            announcement,
            categories: radius.by_category.keys().cloned().collect(),
            affected: (
                radius.subjects.len() as u64,
                radius.clear,
                radius
                    .subjects
                    .iter()
                    .map(|x| x.counts.iter().map(|(_, n)| n).sum::<u64>())
                    .sum(),
            ),
        };
        let detail = counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.change_incident(caller, id, "notices.planned", detail, move |i| {
            if i.notice_plan.is_some() {
                return Err(Error::Conflict(
                    "the notices of this incident are planned already".into(),
                ));
            }
            i.notice_plan = Some(plan.clone());
            Ok(())
        })
        .await?;
        Ok(notices)
    }

    /// Approves the notice plan: only a privacy officer other than the incident's creator.
    /// Notices leave only after this.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for anyone else, [`Error::Conflict`] without a plan.
    pub async fn approve_notices(
        &self,
        caller: &Caller,
        id: IncidentId,
    ) -> Result<Incident, Error> {
        handler(caller)?;
        if !caller.principal.has_role("privacy_officer") {
            return Err(Error::Forbidden(
                "only a privacy officer approves notices".into(),
            ));
        }
        let me = caller.principal.id.to_string();
        self.change_incident(caller, id, "notices.approved", String::new(), |i| {
            if i.created_by == me {
                return Err(Error::Forbidden(
                    "a privacy officer other than the incident's creator approves its notices"
                        .into(),
                ));
            }
            let plan = i.notice_plan.as_mut().ok_or_else(|| {
                Error::Conflict("plan the notices first: POST .../notices/plan".into())
            })?;
            if plan.approved_by.is_some() {
                return Err(Error::Conflict("the notices are approved already".into()));
            }
            plan.approved_by = Some(me.clone());
            plan.approved_at = Some(now_ms());
            if i.state == "open" || i.state == "contained" {
                i.state = "notifying".into();
            }
            Ok(())
        })
        .await
    }

    /// An incident's notices with their delivery state.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`].
    pub async fn notices(&self, caller: &Caller, id: IncidentId) -> Result<Vec<Notice>, Error> {
        let tenant = handler(caller)?;
        self.incident(caller, id).await?;
        self.st("notices")
            .notices(tenant, id)
            .await?
            .iter()
            .map(parse)
            .collect()
    }

    /// The regulator's report of an incident (`gdpr`: Art. 33(3); `pipl`: Art. 57), as data and
    /// as the rendered text.
    ///
    /// # Errors
    /// [`Error::Invalid`] for another jurisdiction; [`Error::Conflict`] without settings.
    pub async fn regulator_report(
        &self,
        caller: &Caller,
        id: IncidentId,
        jurisdiction: &str,
        language: Option<&str>,
    ) -> Result<serde_json::Value, Error> {
        let tenant = handler(caller)?;
        if !matches!(jurisdiction, "gdpr" | "pipl") {
            return Err(Error::invalid("jurisdiction", "gdpr_or_pipl"));
        }
        let incident = self.incident(caller, id).await?;
        let t = self.cached(tenant).await?;
        let s = Self::notice_settings(&t)?;
        let radius = self.blast_radius(caller, id, false).await?;
        let language = language.unwrap_or(if jurisdiction == "pipl" {
            "zh"
        } else {
            &s.language
        });
        if !LANGUAGES.contains(&language) {
            return Err(Error::invalid("language", "es_en_or_zh"));
        }
        let categories: Vec<String> = radius.by_category.keys().cloned().collect();
        let records: u64 = radius
            .subjects
            .iter()
            .map(|x| x.counts.iter().map(|(_, n)| n).sum::<u64>())
            .sum();
        let counts = (radius.subjects.len() as u64, radius.clear, records);
        let facts = Facts::new(&incident, &s, language, &categories, counts);
        let (subject, body) = s.template(language, &format!("regulator_{jurisdiction}"));
        let v = |k: &str| facts.values.get(k).cloned().unwrap_or_default();
        let fields = if jurisdiction == "gdpr" {
            serde_json::json!({
                "nature": v("what_happened"),
                "cause": v("cause"),
                "categories_of_data": categories,
                "approximate_subjects": counts.0,
                "subjects_exposed_in_clear": radius.clear,
                "subjects_masked_only": radius.masked_only,
                "subjects_ciphertext_only": radius.ciphertext_only,
                "approximate_records": records,
                "dpo_contact": s.contact,
                "likely_consequences": v("impact"),
                "measures": v("measures"),
            })
        } else {
            serde_json::json!({
                "types_of_information": categories,
                "individuals": counts.0,
                "cause": v("cause"),
                "description": v("what_happened"),
                "possible_harm": v("impact"),
                "remedial_measures": v("measures"),
                "individual_measures": v("advice"),
                "contact": s.contact,
            })
        };
        Ok(serde_json::json!({
            "jurisdiction": jurisdiction,
            "incident_id": id,
            "controller": s.controller,
            "detected_at": incident.detected_at,
            "language": language,
            "fields": fields,
            "subject": facts.render(&subject, "", ""),
            "text": facts.render(&body, "", ""),
        }))
    }

    /// Claims notices due for delivery across tenants (approved plans of incidents not closed):
    /// each moves to `sending` with compare-and-swap, so one node sends it. A notice left in
    /// `sending` by a node that died is claimed again after `lease_ms`. The returned messages
    /// hold the contact data, decrypted now; the claim is audited before that.
    ///
    /// # Errors
    /// Store errors.
    pub async fn claim_notices(&self, limit: usize, lease_ms: i64) -> Result<Vec<Outgoing>, Error> {
        let now = now_ms();
        let mut out = Vec::new();
        for tr in self.st("tenants").tenants().await? {
            let tenant = tr.id;
            let mut t = self.cached(tenant).await?;
            let Some(s) = t.settings.notice.clone() else {
                continue;
            };
            for irow in self.st("incidents").incidents(tenant).await? {
                let incident = from_row(&irow)?;
                let approved = incident
                    .notice_plan
                    .as_ref()
                    .is_some_and(|p| p.approved_by.is_some());
                if !approved || incident.state == "closed" {
                    continue;
                }
                let mut claimed = Vec::new();
                let due = self
                    .st("due_notices")
                    .due_notices(tenant, incident.id, now, limit - out.len())
                    .await?;
                for row in due {
                    let mut n = parse(&row)?;
                    if n.due_ms(lease_ms).is_none_or(|d| d > now) {
                        // The column says due, the document does not (a row migrated from
                        // before the column, or changed by an older node): set the column
                        // from the document, so that the row stops coming first.
                        let fixed = NoticeRow {
                            due_ms: n.due_ms(lease_ms),
                            version: row.version + 1,
                            ..row.clone()
                        };
                        self.st("update_notice")
                            .update_notice(&fixed, row.version)
                            .await?;
                        continue;
                    }
                    n.status = "sending".into();
                    n.updated_ms = now;
                    let next = NoticeRow {
                        doc: json(&n)?,
                        version: row.version + 1,
                        due_ms: n.due_ms(lease_ms),
                        ..row.clone()
                    };
                    if self
                        .st("update_notice")
                        .update_notice(&next, row.version)
                        .await?
                    {
                        claimed.push(n);
                    }
                }
                if claimed.is_empty() {
                    continue;
                }
                let subjects: Vec<SubjectId> =
                    claimed.iter().filter_map(|n| n.subject_id).collect();
                self.audit(vec![Self::notice_event(
                    &t,
                    tenant,
                    &s,
                    "notice.send",
                    Outcome::Allowed,
                    &subjects,
                    format!("incident {}: {} notices", incident.id, claimed.len()),
                )])
                .await?;
                let contacts = self.contacts(tenant, &mut t, &s, &subjects).await?;
                for n in claimed {
                    let (key, channel) = (n.key.clone(), n.channels[n.channel].clone());
                    match Self::message(&incident, &s, &contacts, n, tenant) {
                        Ok(m) => out.push(m),
                        // A notice that cannot be written (its subject was erased since the
                        // plan) fails alone; the others still go.
                        Err(e) => {
                            tracing::warn!(incident = %incident.id, error = %e, "a notice cannot be composed; it is marked failed");
                            self.fail_notice(tenant, incident.id, &key, &channel, &e)
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Marks a claimed notice failed for good, with the error's kind (never a value).
    async fn fail_notice(
        &self,
        tenant: TenantId,
        incident: IncidentId,
        key: &str,
        channel: &str,
        e: &Error,
    ) -> Result<(), Error> {
        let Some(row) = self.st("notice").notice(tenant, incident, key).await? else {
            return Ok(());
        };
        let mut n = parse(&row)?;
        let now = now_ms();
        n.status = "failed".into();
        n.updated_ms = now;
        n.history.push(Attempt {
            at_ms: now,
            channel: channel.to_owned(),
            outcome: "failed".into(),
            error: Some(format!("cannot be composed: {e}")),
        });
        let next = NoticeRow {
            doc: json(&n)?,
            version: row.version + 1,
            due_ms: n.due_ms(0),
            ..row
        };
        self.st("update_notice")
            .update_notice(&next, row.version)
            .await?;
        Ok(())
    }

    fn message(
        incident: &Incident,
        s: &NoticeSettings,
        contacts: &HashMap<SubjectId, Contact>,
        n: Notice,
        tenant: TenantId,
    ) -> Result<Outgoing, Error> {
        let plan = incident.notice_plan.clone().unwrap_or_default();
        let facts = Facts::new(incident, s, &n.language, &plan.categories, plan.affected);
        let channel = n.channels[n.channel].clone();
        let (subject_t, body_t) = s.template(&n.language, &n.kind);
        let guardian = n.kind == "guardian";
        let (to, name, subject_name) = match n.kind.as_str() {
            "individual" | "guardian" => {
                let c = n
                    .subject_id
                    .and_then(|sid| contacts.get(&sid))
                    .ok_or(Error::NotFound("contact record"))?;
                let to = c
                    .get(channel_field(&s.fields, &channel, guardian))
                    .unwrap_or_default()
                    .to_owned();
                let subject_name = c.get(s.fields.name.as_ref()).unwrap_or_default().to_owned();
                let name = if guardian {
                    c.get(s.fields.guardian_name.as_ref())
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    subject_name.clone()
                };
                (to, name, subject_name)
            }
            k if k.starts_with("regulator_") => (
                s.regulators
                    .get(k.trim_start_matches("regulator_"))
                    .cloned()
                    .unwrap_or_default(),
                String::new(),
                String::new(),
            ),
            _ => (String::new(), String::new(), String::new()),
        };
        Ok(Outgoing {
            tenant,
            incident: incident.id,
            idempotency_key: format!("{}.{}", incident.id, n.key.replace(':', ".")),
            key: n.key.clone(),
            kind: n.kind.clone(),
            webhook: s.webhooks.get(&channel).cloned(),
            channel,
            language: n.language.clone(),
            subject: Pii::new(facts.render(&subject_t, &name, &subject_name)),
            body: Pii::new(facts.render(&body_t, &name, &subject_name)),
            to: Pii::new(to),
            name: Pii::new(name),
        })
    }

    /// Records how a delivery went: sent; or failed, retried with exponential backoff
    /// (`backoff_ms` × 2^attempt) up to [`ATTEMPTS_PER_CHANNEL`] times, then falling back to the
    /// next channel, and failed when none is left. Audited; the error is a code, never a
    /// personal value.
    ///
    /// # Errors
    /// Store errors.
    pub async fn notice_result(
        &self,
        o: &Outgoing,
        result: Result<(), String>,
        backoff_ms: i64,
    ) -> Result<(), Error> {
        let t = self.cached(o.tenant).await?;
        let s = Self::notice_settings(&t)?;
        for _ in 0..8 {
            let Some(row) = self
                .st("notice")
                .notice(o.tenant, o.incident, &o.key)
                .await?
            else {
                return Ok(());
            };
            let mut n = parse(&row)?;
            let now = now_ms();
            let outcome = match &result {
                Ok(()) => {
                    n.status = "sent".into();
                    "sent"
                }
                Err(_) => {
                    n.attempts += 1;
                    if n.attempts < ATTEMPTS_PER_CHANNEL {
                        n.status = if n.channel > 0 { "fell_back" } else { "queued" }.into();
                        n.next_attempt_ms = now + backoff_ms * (1 << n.attempts);
                        "failed"
                    } else if n.channel + 1 < n.channels.len() {
                        n.channel += 1;
                        n.attempts = 0;
                        n.status = "fell_back".into();
                        n.next_attempt_ms = now;
                        "fell_back"
                    } else {
                        n.status = "failed".into();
                        "failed"
                    }
                }
            };
            n.updated_ms = now;
            n.history.push(Attempt {
                at_ms: now,
                channel: o.channel.clone(),
                outcome: outcome.to_owned(),
                error: result.as_ref().err().cloned(),
            });
            let next = NoticeRow {
                doc: json(&n)?,
                version: row.version + 1,
                due_ms: n.due_ms(0),
                ..row.clone()
            };
            if self
                .st("update_notice")
                .update_notice(&next, row.version)
                .await?
            {
                metrics::counter!("boveda_notices_total", "channel" => o.channel.clone(), "outcome" => outcome).increment(1);
                let subjects: Vec<SubjectId> = n.subject_id.into_iter().collect();
                self.audit(vec![Self::notice_event(
                    &t,
                    o.tenant,
                    &s,
                    if result.is_ok() {
                        "notice.sent"
                    } else {
                        "notice.failed"
                    },
                    if result.is_ok() {
                        Outcome::Allowed
                    } else {
                        Outcome::Failed
                    },
                    &subjects,
                    format!(
                        "incident {}: {} via {}{}",
                        o.incident,
                        o.key,
                        o.channel,
                        result
                            .as_ref()
                            .err()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ),
                )])
                .await?;
                return Ok(());
            }
        }
        Err(Error::Conflict("the notice changed concurrently".into()))
    }
}
