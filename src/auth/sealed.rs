//! Secrets at rest: TOTP seeds are sealed with ChaCha20-Poly1305 under a
//! 32-byte key kept in keys/ (mode 0600), so a copy of the database alone
//! does not give away second factors.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

pub const KEY_FILE: &str = "at_rest.key";
const PREFIX: &str = "sealed1:";

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// Loads the key from `dir`, creating it on first use.
    pub fn load_or_create(dir: &Path) -> Result<Sealer, String> {
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
            let created = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match created {
                Ok(mut file) => file
                    .write_all(&key)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                // Someone else made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        let mode = fs::metadata(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} must be readable by its owner only (chmod 600)",
                path.display()
            ));
        }
        let key = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if key.len() != 32 {
            return Err(format!("{} is not a 32-byte key", path.display()));
        }
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    pub fn seal(&self, plain: &str) -> Result<String, String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| "cannot seal a secret".to_string())?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
        ))
    }

    /// Opens a sealed value; a value without the prefix is taken as plain.
    pub fn open(&self, stored: &str) -> Result<String, String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| "a sealed secret is damaged".to_string())?;
        if bytes.len() < 12 {
            return Err("a sealed secret is damaged".into());
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| {
                "a sealed secret does not open with this key (keys/at_rest.key replaced?)"
                    .to_string()
            })?;
        String::from_utf8(plain).map_err(|_| "a sealed secret is damaged".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::load_or_create(dir.path()).unwrap();
        let sealed = sealer.seal("GEZDGNBVGY3TQOJQ").unwrap();
        assert!(sealed.starts_with("sealed1:") && !sealed.contains("GEZDGNBVGY3TQOJQ"));
        assert_eq!(sealer.open(&sealed).unwrap(), "GEZDGNBVGY3TQOJQ");
        assert_eq!(
            Sealer::load_or_create(dir.path())
                .unwrap()
                .open(&sealed)
                .unwrap(),
            "GEZDGNBVGY3TQOJQ"
        );
        let other = tempfile::tempdir().unwrap();
        assert!(Sealer::load_or_create(other.path())
            .unwrap()
            .open(&sealed)
            .is_err());
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
