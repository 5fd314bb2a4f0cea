//! Sealed audit segments: the older part of the audit trail, moved out of
//! sled into append-only files beside it.
//!
//! sled keeps every page it has read in memory and copies each value out of
//! its page, so reading a million audit events through it cost ~500 MB and
//! most of `audit verify`'s time. The live tail of the trail stays in the
//! sled `audit` tree, written in the same transaction as the change it
//! records. A background sealer moves the oldest blocks, once there are
//! enough of them, into a segment file:
//!
//! 1. the blocks are written to `audit_segments/FIRST-LAST.seg.tmp`, fsynced,
//!    renamed into place, and the directory fsynced;
//! 2. one sled transaction removes those blocks from the `audit` tree and
//!    records the segment in `meta` (`audit_segment/FIRST`).
//!
//! A crash between the two leaves a file no index entry names: it is removed
//! on the next open (its blocks are still in sled). Readers hold `gate` for
//! reading while they walk segments then the tree, and the sealer only takes
//! it (without waiting: `try_write`) around step 2, so a reader never sees a
//! block twice or misses one.
//!
//! The blocks are the exact bytes sled held, so the hash chain is unchanged
//! and `audit verify` still catches an edited file. The file format:
//!
//! ```text
//! TENURE-AUDIT-SEGMENT 1\n
//! u64:key u32:len block          (repeated; key = the block's first seq)
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, RwLock, RwLockReadGuard};

use serde::{Deserialize, Serialize};

use super::{Result, StoreError};

const MAGIC: &[u8] = b"TENURE-AUDIT-SEGMENT 1\n";
/// Meta keys of the segment index: `audit_segment/` + the first seq, zero padded.
pub(crate) const META_PREFIX: &str = "audit_segment/";
/// Events per sealed segment unless `TENURE_AUDIT_SEGMENT_EVENTS` says
/// otherwise (the tests use small segments to exercise sealing).
const DEFAULT_EVENTS: u64 = 65_536;
const BLOCK_HEADER: u64 = 12;

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// One sealed segment as the index in meta records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// Seq of the first event (the first block's key).
    pub first: u64,
    /// Seq of the last event.
    pub last: u64,
    pub file: String,
    pub bytes: u64,
    pub blocks: u64,
}

impl SegmentInfo {
    pub fn meta_key(first: u64) -> String {
        format!("{META_PREFIX}{first:020}")
    }
}

/// Shared between the store, its readers and the sealer thread.
pub(crate) struct Segments {
    pub dir: PathBuf,
    pub gate: RwLock<()>,
    /// Events per segment.
    pub every: u64,
    /// Events always left live in sled.
    pub keep: u64,
    /// Key of the first block still in the sled tree (0: none).
    pub first_live: AtomicU64,
    /// The sealer's wake-up: (wanted, stop).
    pub wake: Mutex<(bool, bool)>,
    pub bell: Condvar,
}

impl Segments {
    pub fn new(data_dir: &Path) -> Segments {
        let every = std::env::var("TENURE_AUDIT_SEGMENT_EVENTS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n >= 2)
            .unwrap_or(DEFAULT_EVENTS);
        Segments {
            dir: data_dir.join("audit_segments"),
            gate: RwLock::new(()),
            every,
            keep: (every / 4).clamp(1, 4096),
            first_live: AtomicU64::new(0),
            wake: Mutex::new((false, false)),
            bell: Condvar::new(),
        }
    }

    pub fn read(&self) -> Result<RwLockReadGuard<'_, ()>> {
        self.gate
            .read()
            .map_err(|_| io("the audit segment lock is poisoned"))
    }

    /// Whether the live tail (ending with event `last_seq`) is long enough to seal.
    pub fn due(&self, last_seq: u64) -> bool {
        last_seq.saturating_sub(self.first_live.load(Ordering::Relaxed)) >= self.every + self.keep
    }

    pub fn ring(&self) {
        if let Ok(mut w) = self.wake.lock() {
            w.0 = true;
            self.bell.notify_all();
        }
    }

    pub fn path(&self, info: &SegmentInfo) -> PathBuf {
        self.dir.join(&info.file)
    }

    /// Removes files no index entry names (a seal cut short by a crash:
    /// its blocks are still in sled) and leftover `.tmp` files.
    pub fn remove_orphans(&self, indexed: &[SegmentInfo]) -> Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !indexed.iter().any(|s| s.file == name) {
                std::fs::remove_file(entry.path()).map_err(io)?;
            }
        }
        Ok(())
    }

    /// Writes `blocks` (key, bytes) as a durable segment file; returns its index entry.
    pub fn write(
        &self,
        first: u64,
        last: u64,
        blocks: &mut dyn Iterator<Item = Result<(u64, sled::IVec)>>,
    ) -> Result<SegmentInfo> {
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let file = format!("{first:020}-{last:020}.seg");
        let path = self.dir.join(&file);
        let tmp = self.dir.join(format!("{file}.tmp"));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io)?);
        out.write_all(MAGIC).map_err(io)?;
        let mut bytes = MAGIC.len() as u64;
        let mut count = 0u64;
        for block in blocks {
            let (key, value) = block?;
            let len = u32::try_from(value.len()).map_err(|_| io("an audit block over 4 GB"))?;
            out.write_all(&key.to_be_bytes()).map_err(io)?;
            out.write_all(&len.to_be_bytes()).map_err(io)?;
            out.write_all(&value).map_err(io)?;
            bytes += BLOCK_HEADER + value.len() as u64;
            count += 1;
        }
        let file_handle = out.into_inner().map_err(io)?;
        file_handle.sync_all().map_err(io)?;
        drop(file_handle);
        std::fs::rename(&tmp, &path).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(SegmentInfo {
            first,
            last,
            file,
            bytes,
            blocks: count,
        })
    }
}

/// A sealed segment opened for reading: its block index (key, offset, length)
/// read from the block headers, the blocks read one at a time.
pub(crate) struct SegmentReader {
    file: BufReader<File>,
    pub index: Vec<(u64, u64, u32)>,
}

impl SegmentReader {
    pub fn open(segments: &Segments, info: &SegmentInfo) -> Result<SegmentReader> {
        let name = &info.file;
        let bad = |why: String| StoreError::Corrupt {
            key: format!("audit segment {name}"),
            why,
        };
        let file = File::open(segments.path(info)).map_err(|e| bad(e.to_string()))?;
        let len = file.metadata().map_err(io)?.len();
        if len != info.bytes {
            return Err(bad(format!(
                "the file is {len} bytes, the index says {} (altered or truncated)",
                info.bytes
            )));
        }
        let mut file = BufReader::with_capacity(64 * 1024, file);
        let mut magic = vec![0u8; MAGIC.len()];
        file.read_exact(&mut magic)
            .map_err(|e| bad(e.to_string()))?;
        if magic != MAGIC {
            return Err(bad("not an audit segment (bad header)".into()));
        }
        let mut index = Vec::with_capacity(info.blocks as usize);
        let mut at = MAGIC.len() as u64;
        while at < len {
            let mut head = [0u8; BLOCK_HEADER as usize];
            file.read_exact(&mut head).map_err(|e| bad(e.to_string()))?;
            let key = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
            let size = u32::from_be_bytes(head[8..].try_into().unwrap_or_default());
            at += BLOCK_HEADER;
            if at + u64::from(size) > len {
                return Err(bad(format!("block #{key} runs past the end of the file")));
            }
            index.push((key, at, size));
            file.seek_relative(i64::from(size)).map_err(io)?;
            at += u64::from(size);
        }
        if index.len() as u64 != info.blocks || index.first().map(|b| b.0) != Some(info.first) {
            return Err(bad(format!(
                "{} blocks from #{}, the index says {} from #{} (altered)",
                index.len(),
                index.first().map_or(0, |b| b.0),
                info.blocks,
                info.first
            )));
        }
        Ok(SegmentReader { file, index })
    }

    /// Reads block `i` into `buf`.
    pub fn block(&mut self, i: usize, buf: &mut Vec<u8>) -> Result<()> {
        let (_, offset, size) = self.index[i];
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        buf.clear();
        buf.resize(size as usize, 0);
        self.file.read_exact(buf).map_err(io)
    }

    /// The position of the block holding event `seq` (0 when it is before the segment).
    pub fn position_of(&self, seq: u64) -> usize {
        self.index
            .partition_point(|(key, _, _)| *key <= seq)
            .saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_reads_back_its_blocks_and_refuses_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::new(dir.path());
        let blocks: Vec<(u64, sled::IVec)> = vec![
            (1, sled::IVec::from(&b"[one]"[..])),
            (3, sled::IVec::from(&b"[three and four]"[..])),
            (5, sled::IVec::from(&b"[five]"[..])),
        ];
        let info = segments
            .write(1, 5, &mut blocks.clone().into_iter().map(Ok))
            .unwrap();
        assert_eq!(info.blocks, 3);
        let mut reader = SegmentReader::open(&segments, &info).unwrap();
        let mut buf = Vec::new();
        for (i, (_, bytes)) in blocks.iter().enumerate() {
            reader.block(i, &mut buf).unwrap();
            assert_eq!(&buf[..], &bytes[..]);
        }
        assert_eq!(reader.position_of(0), 0);
        assert_eq!(reader.position_of(4), 1);
        assert_eq!(reader.position_of(9), 2);
        // An orphan (a seal cut short) goes; the indexed file stays.
        std::fs::write(segments.dir.join("x.seg.tmp"), b"half").unwrap();
        segments
            .remove_orphans(std::slice::from_ref(&info))
            .unwrap();
        let names: Vec<_> = std::fs::read_dir(&segments.dir).unwrap().collect();
        assert_eq!(names.len(), 1);

        let path = segments.path(&info);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = SegmentReader::open(&segments, &info).err().unwrap();
        assert!(err.to_string().contains("altered or truncated"), "{err}");
    }
}
