//! Backups: a consistent snapshot of every record, taken while the server
//! keeps serving. Writers wait while the snapshot is spooled to a file next
//! to the database (seconds at a million accounts); reads and the stream to
//! the client do not hold anyone up.

use std::io::{BufWriter, Write};

use super::authz::Permission;
use super::{Actor, Error, Result, Services};
use crate::store::backup::{Header, Writer};

/// What a backup wrote.
#[derive(Clone, Debug)]
pub struct BackupSummary {
    pub records: u64,
    pub bytes: u64,
    pub audit_seq: u64,
}

impl Services {
    /// Writes a backup of every record to `out` (admin only), and records
    /// that it was taken.
    pub fn backup(&self, actor: &Actor, out: &mut dyn Write) -> Result<BackupSummary> {
        self.authorize(actor, Permission::Backup, None)?;
        let data_dir = self.config().server.data_dir.clone();
        let spool = data_dir.with_extension(format!(
            "backup-{}-{}.tmp",
            std::process::id(),
            self.now().timestamp_nanos_opt().unwrap_or(0)
        ));
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            Error::Failed(format!("backup: {what} {}: {e}", spool.display()))
        };
        // The header counts the accounts from the indexes (built first:
        // building them takes the writer lock this holds).
        drop(self.indexes()?);
        let taken = (|| -> Result<(u64, u64)> {
            // No writer may commit while the snapshot is read: it is one
            // point in the audit chain, every record as of that point.
            let head = self.lock_writer()?;
            let accounts = self
                .read_indexes()?
                .as_ref()
                .map_or(0, |i| i.count() as u64);
            let header = Header {
                created: self.now().to_rfc3339(),
                audit_seq: head.seq,
                audit_hash: head.hash.clone(),
                accounts,
            };
            let file = std::fs::File::create(&spool).map_err(|e| failed("cannot create", &e))?;
            let mut writer = Writer::new(BufWriter::with_capacity(1 << 20, file), &header)
                .map_err(|e| failed("cannot write", &e))?;
            self.store()
                .export(&mut |tree, key, value| writer.record(tree, key, value))?;
            let (records, buffered) = writer.finish().map_err(|e| failed("cannot write", &e))?;
            let file = buffered
                .into_inner()
                .map_err(|e| failed("cannot write", &e.error()))?;
            file.sync_all().map_err(|e| failed("cannot sync", &e))?;
            Ok((records, head.seq))
        })();
        let streamed = taken.and_then(|(records, audit_seq)| {
            let mut file = std::fs::File::open(&spool).map_err(|e| failed("cannot read", &e))?;
            let bytes = std::io::copy(&mut file, out)
                .map_err(|e| Error::Failed(format!("backup: cannot send it: {e}")))?;
            Ok(BackupSummary {
                records,
                bytes,
                audit_seq,
            })
        });
        let _ = std::fs::remove_file(&spool);
        let summary = streamed?;
        let detail = format!(
            "{} records, {} bytes, as of audit event #{}",
            summary.records, summary.bytes, summary.audit_seq
        );
        self.write(actor, |tx| {
            tx.event("backup", None, vec![], Some(detail.clone()));
            Ok(())
        })?;
        Ok(summary)
    }
}
