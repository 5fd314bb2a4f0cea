//! OpenSSH public key lines: parsing, the allowed algorithms, fingerprints.

use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PublicKey};

/// A key line that passed our rules, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedKey {
    pub fingerprint: String,
    pub algorithm: String,
    pub public_key: String,
    pub comment: String,
}

pub const MIN_RSA_BITS: u32 = 2048;
/// Longest key comment kept (it is shown in key lists and the console).
pub const MAX_COMMENT_CHARS: usize = 256;

/// Parses one OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
/// Accepts ed25519, ECDSA (NIST P-256/384/521) and RSA of at least 2048 bits.
pub fn parse_public_key(line: &str) -> Result<ParsedKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("no public key given (expected one OpenSSH public key line)".into());
    }
    if line.lines().count() > 1 {
        return Err("expected exactly one public key line".into());
    }
    if line.contains("PRIVATE KEY") {
        return Err("that is a private key: give the public key (the .pub file)".into());
    }
    let key = PublicKey::from_openssh(line)
        .map_err(|e| format!("not an OpenSSH public key line: {e}"))?;
    match key.key_data() {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) => {}
        KeyData::Rsa(rsa) => {
            let bits = rsa_bits(rsa.n().as_positive_bytes().unwrap_or(&[]));
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits refused: at least {MIN_RSA_BITS} bits required"
                ));
            }
        }
        other => {
            return Err(format!(
                "key type {} not accepted (use ed25519, ecdsa or rsa >= {MIN_RSA_BITS} bits)",
                other.algorithm()
            ))
        }
    }
    let comment = key.comment().to_string();
    super::validate::validate_text("key comment", &comment, MAX_COMMENT_CHARS)?;
    let mut bare = key.clone();
    bare.set_comment("");
    let public_key = bare
        .to_openssh()
        .map_err(|e| format!("cannot encode key: {e}"))?
        .trim()
        .to_string();
    Ok(ParsedKey {
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        algorithm: key.algorithm().as_str().to_string(),
        public_key,
        comment,
    })
}

fn rsa_bits(modulus: &[u8]) -> u32 {
    let mut bytes = modulus.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        None => 0,
        Some(first) => {
            let rest = bytes.count() as u32;
            rest * 8 + (8 - first.leading_zeros())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

    #[test]
    fn ed25519_line_parses_with_sha256_fingerprint() {
        let key = parse_public_key(ED25519).unwrap();
        assert_eq!(key.algorithm, "ssh-ed25519");
        assert_eq!(key.comment, "alice@laptop");
        assert!(key.fingerprint.starts_with("SHA256:"));
        assert!(!key.public_key.contains("alice@laptop"));
    }

    #[test]
    fn garbage_and_private_keys_are_refused() {
        assert!(parse_public_key("").is_err());
        assert!(parse_public_key("ssh-ed25519 notbase64").is_err());
        // Built at run time so no private-key header sits in the source.
        let private_header = format!("-----BEGIN OPENSSH {} KEY-----", "PRIVATE");
        assert!(parse_public_key(&private_header).is_err());
    }

    #[test]
    fn comments_with_escape_or_bidi_characters_are_refused() {
        let base = ED25519.trim_end_matches(" alice@laptop");
        for comment in ["x\x1b]0;owned\x07", "a\u{202e}b", "a\u{9b}2J"] {
            let err = parse_public_key(&format!("{base} {comment}")).unwrap_err();
            assert!(err.contains("key comment"), "{err}");
        }
        let long = format!("{base} {}", "c".repeat(MAX_COMMENT_CHARS + 1));
        assert!(parse_public_key(&long).is_err());
        assert!(parse_public_key(&format!("{base} Zoë's laptop")).is_ok());
    }

    #[test]
    fn rsa_bits_counts_significant_bits() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(rsa_bits(&[0x01]), 1);
        assert_eq!(rsa_bits(&[]), 0);
    }
}
