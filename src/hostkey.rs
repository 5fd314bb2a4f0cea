//! The server's ed25519 host key: generated on first use into keys/ with mode
//! 0600; refused if anyone but the owner can read it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey};

pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Loads the host key from `dir`, creating it (and `dir`, mode 0700) if absent.
/// Returns the key and whether it was just created.
pub fn ensure_host_key(dir: &Path) -> Result<(PrivateKey, bool), String> {
    let path = dir.join(HOST_KEY_FILE);
    if path.exists() {
        return load_host_key(&path).map(|k| (k, false));
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let key = create_ed25519(&path, "tenure host key")?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| format!("cannot encode host public key: {e}"))?;
    let _ = fs::write(pub_path(&path), format!("{public}\n"));
    Ok((key, true))
}

/// Makes a new ed25519 key with `comment` and writes it to `path` in
/// OpenSSH's format: mode 0600, never over an existing file, synced.
pub fn create_ed25519(path: &Path, comment: &str) -> Result<PrivateKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for {comment}: {e}"))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format!("cannot encode {comment}: {e}"))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

fn pub_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

pub fn load_host_key(path: &Path) -> Result<PrivateKey, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "host key {} has mode {mode:o}: it must be readable by its owner only (chmod 600)",
            path.display()
        ));
    }
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKey::from_openssh(text).map_err(|e| {
        format!(
            "host key {} is not an OpenSSH private key: {e}",
            path.display()
        )
    })
}

pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_with_owner_only_mode_and_refused_when_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (key, created) = ensure_host_key(dir.path()).unwrap();
        assert!(created);
        let path = dir.path().join(HOST_KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, created_again) = ensure_host_key(dir.path()).unwrap();
        assert!(!created_again);
        assert_eq!(fingerprint(&key), fingerprint(&again));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ensure_host_key(dir.path())
            .unwrap_err()
            .contains("chmod 600"));
    }
}
