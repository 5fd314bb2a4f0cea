//! OpenSSH key revocation lists (KRL), the binary format sshd's
//! `RevokedKeys` reads (OpenSSH PROTOCOL.krl). tenure writes one section:
//! certificates of its user CA, revoked by serial number and by key ID.

/// "SSHKRL\n\0"
const KRL_MAGIC: u64 = 0x5353_484b_524c_0a00;
const KRL_FORMAT_VERSION: u32 = 1;
const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;
const KRL_SECTION_CERT_KEY_ID: u8 = 0x23;

/// What to revoke, for one CA.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Krl {
    /// Increases with every change (hosts can tell a newer list).
    pub version: u64,
    /// Seconds since the epoch.
    pub generated: u64,
    pub comment: String,
    /// The CA's public key in SSH wire encoding.
    pub ca_key: Vec<u8>,
    /// Revoked certificate serials (0 is not a serial: it is left out).
    pub serials: Vec<u64>,
    /// Revoked certificate key IDs.
    pub key_ids: Vec<String>,
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

impl Krl {
    /// The KRL in OpenSSH's binary format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u64(&mut out, KRL_MAGIC);
        put_u32(&mut out, KRL_FORMAT_VERSION);
        put_u64(&mut out, self.version);
        put_u64(&mut out, self.generated);
        put_u64(&mut out, 0); // flags
        put_string(&mut out, b""); // reserved
        put_string(&mut out, self.comment.as_bytes());

        let mut serials: Vec<u64> = self.serials.iter().copied().filter(|s| *s != 0).collect();
        serials.sort_unstable();
        serials.dedup();
        let mut key_ids = self.key_ids.clone();
        key_ids.sort();
        key_ids.dedup();
        if serials.is_empty() && key_ids.is_empty() {
            return out;
        }
        let mut certs = Vec::new();
        put_string(&mut certs, &self.ca_key);
        put_string(&mut certs, b""); // reserved
        if !serials.is_empty() {
            let mut list = Vec::with_capacity(serials.len() * 8);
            for s in &serials {
                put_u64(&mut list, *s);
            }
            certs.push(KRL_SECTION_CERT_SERIAL_LIST);
            put_string(&mut certs, &list);
        }
        if !key_ids.is_empty() {
            let mut ids = Vec::new();
            for id in &key_ids {
                put_string(&mut ids, id.as_bytes());
            }
            certs.push(KRL_SECTION_CERT_KEY_ID);
            put_string(&mut certs, &ids);
        }
        out.push(KRL_SECTION_CERTIFICATES);
        put_string(&mut out, &certs);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_sections_are_laid_out_as_protocol_krl_says() {
        let krl = Krl {
            version: 7,
            generated: 1_700_000_000,
            comment: "tenure".into(),
            ca_key: b"CA".to_vec(),
            serials: vec![5, 3, 0, 5],
            key_ids: vec!["bob".into()],
        };
        let bytes = krl.encode();
        assert_eq!(&bytes[..8], b"SSHKRL\n\0");
        assert_eq!(&bytes[8..12], &1u32.to_be_bytes());
        assert_eq!(&bytes[12..20], &7u64.to_be_bytes());
        // reserved (empty) and comment
        assert_eq!(&bytes[36..40], &0u32.to_be_bytes());
        assert_eq!(&bytes[40..44], &6u32.to_be_bytes());
        assert_eq!(&bytes[44..50], b"tenure");
        assert_eq!(bytes[50], KRL_SECTION_CERTIFICATES);
        let section = &bytes[55..];
        assert_eq!(
            section.len() as u32,
            u32::from_be_bytes(bytes[51..55].try_into().unwrap())
        );
        // CA key, reserved, then the serial list: 3 and 5, once each, no 0.
        assert_eq!(&section[..6], &[0, 0, 0, 2, b'C', b'A']);
        assert_eq!(section[10], KRL_SECTION_CERT_SERIAL_LIST);
        assert_eq!(&section[11..15], &16u32.to_be_bytes());
        assert_eq!(&section[15..23], &3u64.to_be_bytes());
        assert_eq!(&section[23..31], &5u64.to_be_bytes());
        assert_eq!(section[31], KRL_SECTION_CERT_KEY_ID);
        assert_eq!(&section[36..43], &[0, 0, 0, 3, b'b', b'o', b'b']);
    }

    #[test]
    fn nothing_revoked_is_a_bare_header() {
        let krl = Krl::default();
        assert_eq!(krl.encode().len(), 8 + 4 + 8 + 8 + 8 + 4 + 4);
    }
}
