//! Supported languages.

use crate::error::Error;

/// A language the detector has lists and context words for.
///
/// Every recognizer runs whatever the language, because real text mixes them (a Spanish email
/// with an English signature, a Chinese form with Latin names). The language decides how
/// ambiguous numeric dates are read when they are generalised and is echoed in explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Language {
    /// English.
    #[default]
    En,
    /// Spanish.
    Es,
    /// Chinese (simplified or traditional).
    Zh,
}

impl Language {
    /// Every supported language.
    pub const ALL: [Language; 3] = [Language::En, Language::Es, Language::Zh];

    /// Parse a code such as `en`, `es-ES` or `zh-CN` (case-insensitive).
    ///
    /// # Errors
    /// [`Error::UnsupportedLanguage`] for any other code.
    pub fn from_code(code: &str) -> Result<Language, Error> {
        let primary = code
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Ok(Language::En),
            "es" => Ok(Language::Es),
            "zh" => Ok(Language::Zh),
            _ => Err(Error::UnsupportedLanguage(code.chars().take(16).collect())),
        }
    }

    /// The two-letter code (`en`).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Es => "es",
            Language::Zh => "zh",
        }
    }
}

impl std::str::FromStr for Language {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Language::from_code(s)
    }
}

impl<'de> serde::Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Language::from_code(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(Language::from_code("zh-CN").ok(), Some(Language::Zh));
        assert_eq!(Language::from_code("ES").ok(), Some(Language::Es));
        assert!(matches!(
            Language::from_code("fr"),
            Err(Error::UnsupportedLanguage(_))
        ));
    }
}
