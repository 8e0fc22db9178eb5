//! Entity kinds, their Presidio names, their overlap priority and their context words.
//!
//! This module owns vocabulary only; it never looks at text.

use std::fmt;
use std::sync::Arc;

/// A kind of personal data. Built-in kinds carry Presidio's names; a custom recognizer may name
/// any other kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Entity {
    /// A person's name (`PERSON`).
    Person,
    /// An email address (`EMAIL_ADDRESS`).
    EmailAddress,
    /// A telephone number (`PHONE_NUMBER`).
    PhoneNumber,
    /// A payment card number that passes Luhn (`CREDIT_CARD`).
    CreditCard,
    /// An IBAN that passes mod-97 and its country length (`IBAN_CODE`).
    IbanCode,
    /// A US Social Security number (`US_SSN`).
    UsSsn,
    /// A Spanish DNI, the NIF of a person (`ES_NIF`).
    EsNif,
    /// A Spanish foreigner's identity number (`ES_NIE`).
    EsNie,
    /// A Chinese resident identity number, 18 characters (`CN_RESIDENT_ID`).
    CnResidentId,
    /// A Chinese passport number (`CN_PASSPORT`).
    CnPassport,
    /// An IPv4 or IPv6 address (`IP_ADDRESS`).
    IpAddress,
    /// A URL or a bare domain with a path (`URL`).
    Url,
    /// A calendar date, optionally with a time (`DATE_TIME`).
    DateTime,
    /// A street address, a postal code near its context, a city or a country (`LOCATION`).
    Location,
    /// A cryptocurrency wallet address, Bitcoin or Ethereum (`CRYPTO`).
    Crypto,
    /// A MAC address (`MAC_ADDRESS`).
    MacAddress,
    /// Any other kind, named by a custom recognizer or a deny list.
    Custom(Arc<str>),
}

/// Every built-in entity, in the order used by documentation and by `supportedentities`.
pub const BUILT_IN: [Entity; 16] = [
    Entity::Person,
    Entity::EmailAddress,
    Entity::PhoneNumber,
    Entity::CreditCard,
    Entity::IbanCode,
    Entity::UsSsn,
    Entity::EsNif,
    Entity::EsNie,
    Entity::CnResidentId,
    Entity::CnPassport,
    Entity::IpAddress,
    Entity::Url,
    Entity::DateTime,
    Entity::Location,
    Entity::Crypto,
    Entity::MacAddress,
];

impl Entity {
    /// The entity's name as Presidio spells it (`EMAIL_ADDRESS`), or the custom name.
    pub fn as_str(&self) -> &str {
        match self {
            Entity::Person => "PERSON",
            Entity::EmailAddress => "EMAIL_ADDRESS",
            Entity::PhoneNumber => "PHONE_NUMBER",
            Entity::CreditCard => "CREDIT_CARD",
            Entity::IbanCode => "IBAN_CODE",
            Entity::UsSsn => "US_SSN",
            Entity::EsNif => "ES_NIF",
            Entity::EsNie => "ES_NIE",
            Entity::CnResidentId => "CN_RESIDENT_ID",
            Entity::CnPassport => "CN_PASSPORT",
            Entity::IpAddress => "IP_ADDRESS",
            Entity::Url => "URL",
            Entity::DateTime => "DATE_TIME",
            Entity::Location => "LOCATION",
            Entity::Crypto => "CRYPTO",
            Entity::MacAddress => "MAC_ADDRESS",
            Entity::Custom(name) => name,
        }
    }

    /// The entity named `name`: a built-in one when the name is Presidio's, else a custom one.
    pub fn from_name(name: &str) -> Entity {
        BUILT_IN
            .iter()
            .find(|e| e.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Entity::Custom(Arc::from(name)))
    }

    /// Whether the entity is backed by a check digit or a strict parse, so that a match is
    /// almost never a false positive.
    pub fn is_checksum_backed(&self) -> bool {
        matches!(
            self,
            Entity::CreditCard
                | Entity::IbanCode
                | Entity::EsNif
                | Entity::EsNie
                | Entity::CnResidentId
                | Entity::IpAddress
                | Entity::MacAddress
                | Entity::EmailAddress
        )
    }

    /// Tie-break rank when two overlapping findings have the same length and score: lower wins.
    /// Identifiers with a check digit come first, then strict formats, then fuzzy kinds.
    pub(crate) fn priority(&self) -> u8 {
        match self {
            Entity::CreditCard => 0,
            Entity::IbanCode => 1,
            Entity::CnResidentId => 2,
            Entity::EsNif => 3,
            Entity::EsNie => 4,
            Entity::Crypto => 5,
            Entity::EmailAddress => 6,
            Entity::IpAddress => 7,
            Entity::MacAddress => 8,
            Entity::UsSsn => 9,
            Entity::CnPassport => 10,
            Entity::PhoneNumber => 11,
            Entity::Url => 12,
            Entity::DateTime => 13,
            Entity::Custom(_) => 14,
            Entity::Person => 15,
            Entity::Location => 16,
        }
    }

    /// Lower-case context words (en, es, zh) whose presence near a match raises its score.
    pub(crate) fn context_words(&self) -> &'static [&'static str] {
        match self {
            Entity::Person => &[
                "name",
                "called",
                "call",
                "patient",
                "customer",
                "contact",
                "dear",
                "user",
                "mr",
                "mrs",
                "ms",
                "dr",
                "nombre",
                "llamo",
                "llama",
                "llame",
                "paciente",
                "cliente",
                "contacto",
                "hola",
                "sr",
                "sra",
                "usuario",
                "姓名",
                "名叫",
                "叫",
                "我是",
                "联系人",
                "先生",
                "女士",
                "小姐",
                "老师",
                "医生",
                "经理",
                "客户",
                "患者",
            ],
            Entity::EmailAddress => &["email", "e-mail", "mail", "correo", "邮箱", "邮件", "电邮"],
            Entity::PhoneNumber => &[
                "phone",
                "tel",
                "mobile",
                "cell",
                "call",
                "fax",
                "teléfono",
                "telefono",
                "móvil",
                "movil",
                "llame",
                "llamar",
                "whatsapp",
                "电话",
                "手机",
                "联系方式",
                "致电",
            ],
            Entity::CreditCard => &[
                "card",
                "visa",
                "mastercard",
                "amex",
                "credit",
                "debit",
                "tarjeta",
                "crédito",
                "débito",
                "银行卡",
                "信用卡",
                "卡号",
                "银联",
            ],
            Entity::IbanCode => &["iban", "account", "bank", "cuenta", "banco", "账户", "账号"],
            Entity::UsSsn => &["ssn", "social security", "social"],
            Entity::EsNif => &["dni", "nif", "documento", "identidad"],
            Entity::EsNie => &["nie", "extranjero", "documento", "identidad"],
            Entity::CnResidentId => &["身份证", "证件", "公民身份", "resident id", "id card"],
            Entity::CnPassport => &["passport", "pasaporte", "护照", "证件"],
            Entity::IpAddress => &["ip", "address", "host", "server", "dirección ip", "地址"],
            Entity::Url => &["url", "link", "website", "web", "enlace", "网址", "链接"],
            Entity::DateTime => &[
                "date",
                "born",
                "birth",
                "dob",
                "fecha",
                "nacimiento",
                "nació",
                "日期",
                "出生",
                "生日",
            ],
            Entity::Location => &[
                "address",
                "live",
                "lives",
                "zip",
                "postal",
                "postcode",
                "dirección",
                "direccion",
                "domicilio",
                "vive",
                "código postal",
                "c.p.",
                "cp",
                "地址",
                "住在",
                "住址",
                "邮编",
                "邮政编码",
            ],
            Entity::Crypto => &[
                "bitcoin", "btc", "wallet", "ethereum", "eth", "cartera", "钱包",
            ],
            Entity::MacAddress => &["mac"],
            Entity::Custom(_) => &[],
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Entity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Entity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Entity::from_name(&name))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in BUILT_IN {
            assert_eq!(Entity::from_name(e.as_str()), e);
        }
        assert_eq!(Entity::from_name("EMPLOYEE_ID").as_str(), "EMPLOYEE_ID");
    }

    #[test]
    fn priorities_are_distinct() {
        let mut seen: Vec<u8> = BUILT_IN.iter().map(Entity::priority).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), BUILT_IN.len());
    }
}
