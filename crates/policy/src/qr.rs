//! QR rendering for TOTP enrolment: the `otpauth://` URI as an SVG image for the enrolling
//! user's authenticator app. Pure: text in, SVG text out, no image libraries.
//!
//! It lives here rather than in `boveda-crypto` so that the crypto crate keeps only cipher
//! dependencies; the SVG contains the TOTP secret, so callers treat it like the secret itself
//! (send it once, to the enrolling user, never log or store it).

use crate::Error;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An SVG document showing `data` as a QR code (error correction level M, 4-module quiet
/// zone, at least 200 px wide).
///
/// # Errors
/// [`Error::Qr`] when `data` is too long for a QR code.
pub fn svg(data: &str) -> Result<String, Error> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| Error::Qr(e.to_string()))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
    use super::*;

    #[test]
    fn an_otpauth_uri_renders_as_svg() {
        let uri = "otpauth://totp/boveda:ana%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                   &issuer=boveda&algorithm=SHA1&digits=6&period=30";
        let image = svg(uri).unwrap();
        assert!(image.starts_with("<?xml"), "{}", &image[..40]);
        assert!(image.contains("<svg") && image.trim_end().ends_with("</svg>"));
        assert!(image.contains("width=\""));
    }

    #[test]
    fn too_much_data_is_an_error() {
        assert!(matches!(svg(&"x".repeat(5000)), Err(Error::Qr(_))));
    }
}
