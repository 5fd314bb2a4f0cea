//! The backup format: every tree of the database, record by record, with a
//! version, a header describing what is inside, and a SHA-256 of everything
//! before the trailer, so a truncated or altered file is refused before it
//! replaces anything.
//!
//! ```text
//! TENURE-BACKUP 1\n
//! {"created":"…","audit_seq":N,"audit_hash":"…","accounts":N}\n    (header, JSON)
//! 1 u16:len tree u32:len key u32:len value                          (a record, repeated)
//! 0 u64:records [32 bytes SHA-256 of every byte before this trailer's hash]
//! ```

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8] = b"TENURE-BACKUP 1\n";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Header {
    pub created: String,
    pub audit_seq: u64,
    pub audit_hash: String,
    /// Accounts in the backup (for the person restoring it).
    pub accounts: u64,
}

/// Writes a backup, hashing as it goes.
pub struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    records: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Writer<W>> {
        let mut hash = Sha256::new();
        let mut head = MAGIC.to_vec();
        head.extend(serde_json::to_vec(header).map_err(std::io::Error::other)?);
        head.push(b'\n');
        hash.update(&head);
        out.write_all(&head)?;
        Ok(Writer {
            out,
            hash,
            records: 0,
        })
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    pub fn record(&mut self, tree: &str, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        let too_big = || std::io::Error::other("a record too large for the backup format");
        self.put(&[1])?;
        self.put(
            &u16::try_from(tree.len())
                .map_err(|_| too_big())?
                .to_be_bytes(),
        )?;
        self.put(tree.as_bytes())?;
        self.put(
            &u32::try_from(key.len())
                .map_err(|_| too_big())?
                .to_be_bytes(),
        )?;
        self.put(key)?;
        self.put(
            &u32::try_from(value.len())
                .map_err(|_| too_big())?
                .to_be_bytes(),
        )?;
        self.put(value)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer; returns how many records went in, and the output.
    pub fn finish(mut self) -> std::io::Result<(u64, W)> {
        self.put(&[0])?;
        let count = self.records;
        self.put(&count.to_be_bytes())?;
        let digest = self.hash.finalize();
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok((count, self.out))
    }
}

/// Reads a backup record by record; the checksum is checked at the end, so
/// the caller must not make anything it read visible before `finish` says Ok.
pub struct Reader<R: Read> {
    input: R,
    hash: Sha256,
    pub header: Header,
    records: u64,
}

fn bad(why: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.into())
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> std::io::Result<Reader<R>> {
        let mut magic = vec![0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(|_| bad("not a tenure backup (too short)"))?;
        if magic != MAGIC {
            if magic.starts_with(b"TENURE-BACKUP ") {
                return Err(bad(format!(
                    "backup format {} is not the supported version 1",
                    String::from_utf8_lossy(&magic[14..]).trim()
                )));
            }
            return Err(bad("not a tenure backup (no TENURE-BACKUP header)"));
        }
        let mut hash = Sha256::new();
        hash.update(&magic);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            input
                .read_exact(&mut byte)
                .map_err(|_| bad("the backup ends inside its header"))?;
            hash.update(byte);
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
            if line.len() > 64 * 1024 {
                return Err(bad("the backup's header is too long"));
            }
        }
        let header: Header =
            serde_json::from_slice(&line).map_err(|e| bad(format!("bad backup header: {e}")))?;
        Ok(Reader {
            input,
            hash,
            header,
            records: 0,
        })
    }

    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| bad("the backup is truncated"))?;
        self.hash.update(&buf);
        Ok(buf)
    }

    fn len<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| bad("the backup is truncated"))
    }

    /// The next record, or `None` at the trailer (which is then checked).
    pub fn next_record(&mut self) -> std::io::Result<Option<(String, Vec<u8>, Vec<u8>)>> {
        let kind = self.take(1)?;
        match kind.first() {
            Some(1) => {
                let n = u16::from_be_bytes(self.len::<2>()?) as usize;
                let tree = String::from_utf8(self.take(n)?)
                    .map_err(|_| bad("a tree name is not UTF-8"))?;
                let n = u32::from_be_bytes(self.len::<4>()?) as usize;
                let key = self.take(n)?;
                let n = u32::from_be_bytes(self.len::<4>()?) as usize;
                if n > 1 << 30 {
                    return Err(bad("a record longer than 1 GiB: the backup is damaged"));
                }
                let value = self.take(n)?;
                self.records += 1;
                Ok(Some((tree, key, value)))
            }
            Some(0) => {
                let count = u64::from_be_bytes(self.len::<8>()?);
                let expected = std::mem::take(&mut self.hash).finalize();
                let mut digest = [0u8; 32];
                self.input
                    .read_exact(&mut digest)
                    .map_err(|_| bad("the backup is truncated (no checksum)"))?;
                if digest.as_slice() != expected.as_slice() {
                    return Err(bad(
                        "the backup's checksum does not match: it was altered or damaged",
                    ));
                }
                if count != self.records {
                    return Err(bad(format!(
                        "the backup holds {} records but says {count}",
                        self.records
                    )));
                }
                let mut rest = [0u8; 1];
                if self.input.read(&mut rest)? != 0 {
                    return Err(bad("bytes after the end of the backup"));
                }
                Ok(None)
            }
            _ => Err(bad("the backup is damaged (unknown record kind)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let header = Header {
            created: "now".into(),
            audit_seq: 7,
            audit_hash: "abc".into(),
            accounts: 1,
        };
        let mut w = Writer::new(Vec::new(), &header).unwrap();
        w.record("accounts", b"bob", b"{\"x\":1}").unwrap();
        w.record("meta", b"k", &[0, 1, 2]).unwrap();
        let (count, bytes) = w.finish().unwrap();
        assert_eq!(count, 2);
        bytes
    }

    fn read_all(bytes: &[u8]) -> std::io::Result<Vec<(String, Vec<u8>, Vec<u8>)>> {
        let mut r = Reader::new(bytes)?;
        let mut all = Vec::new();
        while let Some(rec) = r.next_record()? {
            all.push(rec);
        }
        Ok(all)
    }

    #[test]
    fn a_backup_reads_back_record_for_record() {
        let all = read_all(&sample()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0],
            ("accounts".into(), b"bob".to_vec(), b"{\"x\":1}".to_vec())
        );
    }

    #[test]
    fn a_truncated_or_altered_backup_is_refused() {
        let bytes = sample();
        for cut in [5, 30, bytes.len() - 40, bytes.len() - 1] {
            let err = read_all(&bytes[..cut]).unwrap_err().to_string();
            assert!(
                err.contains("truncated") || err.contains("too short") || err.contains("header"),
                "cut at {cut}: {err}"
            );
        }
        let mut altered = bytes.clone();
        let at = altered.len() - 45;
        altered[at] ^= 1;
        let err = read_all(&altered).unwrap_err().to_string();
        assert!(err.contains("checksum") || err.contains("damaged"), "{err}");
        let mut longer = bytes;
        longer.push(b'x');
        assert!(read_all(&longer).is_err());
    }
}
