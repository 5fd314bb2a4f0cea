//! TOTP per RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step of skew. A code is
//! accepted once: the caller stores the last accepted step and passes it back.

use totp_rs::{Builder, Secret, Totp};

pub const ISSUER: &str = "tenure";

pub fn new_secret() -> String {
    Secret::generate().to_base32()
}

fn build(secret_b32: &str, account: &str) -> Result<Totp, String> {
    let secret =
        Secret::try_from_base32(secret_b32).map_err(|e| format!("bad TOTP secret: {e:?}"))?;
    Builder::new()
        .with_secret(secret)
        .with_skew(1)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| format!("bad TOTP parameters: {e:?}"))
}

/// The step a code matches at `unix_time`, if any and if newer than `last_step`.
pub fn verify(
    secret_b32: &str,
    account: &str,
    code: &str,
    unix_time: u64,
    last_step: Option<u64>,
) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = build(secret_b32, account).ok()?;
    let step = totp.check(code, unix_time)?;
    match last_step {
        Some(last) if step <= last => None,
        _ => Some(step),
    }
}

/// `otpauth://totp/tenure:NAME?secret=…&issuer=tenure`
pub fn uri(secret_b32: &str, account: &str) -> Result<String, String> {
    build(secret_b32, account)?
        .to_url()
        .map_err(|e| format!("cannot build otpauth URI: {e:?}"))
}

/// The URI as a QR code drawn with Unicode half blocks (two rows per line).
pub fn qr_text(data: &str) -> Result<String, String> {
    let code =
        qrcode::QrCode::new(data.as_bytes()).map_err(|e| format!("cannot draw QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B: secret "12345678901234567890" (base32 below), SHA-1.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc_6238_vector_six_digits() {
        // The 8-digit vector at T=59 is 94287082; six digits are its last six.
        assert_eq!(verify(RFC_SECRET, "x", "287082", 59, None), Some(1));
        assert_eq!(verify(RFC_SECRET, "x", "287083", 59, None), None);
    }

    #[test]
    fn a_code_works_once_and_skew_is_one_step() {
        let step = verify(RFC_SECRET, "x", "287082", 59, None).unwrap();
        assert_eq!(verify(RFC_SECRET, "x", "287082", 59, Some(step)), None);
        assert_eq!(
            verify(RFC_SECRET, "x", "287082", 59 + 30, None),
            Some(1),
            "one step late is fine"
        );
        assert_eq!(
            verify(RFC_SECRET, "x", "287082", 59 + 90, None),
            None,
            "three steps late is not"
        );
    }

    #[test]
    fn uri_and_qr_render() {
        let u = uri(RFC_SECRET, "bob").unwrap();
        assert!(u.starts_with("otpauth://totp/tenure:bob?"), "{u}");
        assert!(u.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
        let qr = qr_text(&u).unwrap();
        assert!(qr.lines().count() > 10);
    }
}
