//! Items put in order with bounded memory, for outputs whose order is not
//! the order the accounts are read in (`lifecycle preview`: by date, while
//! the accounts are read in username order, sequentially, which is what
//! sled reads fast). Items come in already in (username, plan) order; they
//! are kept in runs of `RUN`, each sorted by date (stably, so the username
//! and plan order stay within a date) and written to an unlinked temporary
//! file; at the end the runs are merged by (date, run), which is (date,
//! username, plan) since each run holds later usernames than the one before.
//! What is held: one run, and one buffered reader per run when merging.
//! A result that fits in one run never touches a file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use chrono::{Datelike, NaiveDate};

use super::lifecycle::PreviewItem;
use super::{Error, Result};

/// Items per run (about 200 bytes each in memory).
pub(crate) const RUN: usize = 100_000;
/// Read buffer per run while merging.
const READ_BUFFER: usize = 32 * 1024;

fn spill_error(e: std::io::Error) -> Error {
    Error::Failed(format!(
        "cannot sort the plan in a temporary file ({}): {e}",
        std::env::temp_dir().display()
    ))
}

/// Preview items by date, whatever their number.
pub(crate) struct DateRuns {
    run: usize,
    current: Vec<PreviewItem>,
    spilled: Vec<File>,
}

impl DateRuns {
    pub(crate) fn new(run: usize) -> DateRuns {
        DateRuns {
            run: run.max(1),
            current: Vec::new(),
            spilled: Vec::new(),
        }
    }

    /// Adds an item; items must come in username order.
    pub(crate) fn push(&mut self, item: PreviewItem) -> Result<()> {
        self.current.push(item);
        if self.current.len() >= self.run {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        self.current.sort_by_key(|i| i.date);
        let mut file = BufWriter::with_capacity(READ_BUFFER, scratch_file().map_err(spill_error)?);
        for item in self.current.drain(..) {
            write_item(&mut file, &item).map_err(spill_error)?;
        }
        let mut file = file.into_inner().map_err(|e| spill_error(e.into_error()))?;
        file.rewind().map_err(spill_error)?;
        self.spilled.push(file);
        Ok(())
    }

    /// Hands every item to `visit` in (date, username, plan) order; the
    /// first error `visit` returns ends it.
    pub(crate) fn finish(mut self, visit: &mut dyn FnMut(PreviewItem) -> Result<()>) -> Result<()> {
        self.current.sort_by_key(|i| i.date);
        if self.spilled.is_empty() {
            for item in self.current {
                visit(item)?;
            }
            return Ok(());
        }
        // The items still in memory are the last run.
        let mut sources: Vec<Source> = self
            .spilled
            .into_iter()
            .map(|f| Source::File(BufReader::with_capacity(READ_BUFFER, f)))
            .collect();
        sources.push(Source::Memory(self.current.into_iter()));
        let mut heads = BinaryHeap::new();
        for (run, source) in sources.iter_mut().enumerate() {
            if let Some(item) = source.next()? {
                heads.push(Reverse(Head {
                    date: item.date,
                    run,
                    item,
                }));
            }
        }
        while let Some(Reverse(Head { run, item, .. })) = heads.pop() {
            if let Some(next) = sources[run].next()? {
                heads.push(Reverse(Head {
                    date: next.date,
                    run,
                    item: next,
                }));
            }
            visit(item)?;
        }
        Ok(())
    }
}

/// The next item of each run while merging: ordered by (date, run).
struct Head {
    date: NaiveDate,
    run: usize,
    item: PreviewItem,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        (self.date, self.run) == (other.date, other.run)
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.date, self.run).cmp(&(other.date, other.run))
    }
}

enum Source {
    File(BufReader<File>),
    Memory(std::vec::IntoIter<PreviewItem>),
}

impl Source {
    fn next(&mut self) -> Result<Option<PreviewItem>> {
        match self {
            Source::Memory(items) => Ok(items.next()),
            Source::File(r) => read_item(r).map_err(spill_error),
        }
    }
}

/// A file only this process can reach: created 0600 in the temporary
/// directory and unlinked at once, so it is gone when the handle closes
/// (or the process dies).
fn scratch_file() -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "tenure-sort-{}-{n}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

fn write_text(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u32).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_item(w: &mut impl Write, item: &PreviewItem) -> std::io::Result<()> {
    w.write_all(&item.date.num_days_from_ce().to_le_bytes())?;
    write_text(w, &item.username)?;
    write_text(w, &item.action)?;
    write_text(w, &item.why)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<Option<[u8; 4]>> {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut b[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(Some(b))
}

fn read_text(r: &mut impl Read) -> std::io::Result<String> {
    let len = read_u32(r)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn read_item(r: &mut impl Read) -> std::io::Result<Option<PreviewItem>> {
    let Some(days) = read_u32(r)? else {
        return Ok(None);
    };
    let date = NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(days))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad date"))?;
    Ok(Some(PreviewItem {
        date,
        username: read_text(r)?,
        action: read_text(r)?,
        why: read_text(r)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<PreviewItem> {
        let day0 = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            // Each account: a few steps at later dates, in plan order;
            // accounts share dates.
            for step in 0..(i % 3 + 1) {
                out.push(PreviewItem {
                    username: format!("u{i:05}"),
                    date: day0 + chrono::Duration::days(((i * 31 + step * 45) % 97) as i64),
                    action: format!("step {step} \u{e9}"),
                    why: "x".repeat(i % 5),
                });
            }
        }
        out
    }

    fn sorted(run: usize, input: &[PreviewItem]) -> Vec<String> {
        let mut runs = DateRuns::new(run);
        for i in input {
            runs.push(i.clone()).unwrap();
        }
        let mut out = Vec::new();
        runs.finish(&mut |i| {
            out.push(format!("{} {} {} {}", i.date, i.username, i.action, i.why));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn spilled_runs_merge_to_the_order_of_one_stable_sort() {
        let input = items(700);
        let mut expected = input.clone();
        expected.sort_by(|a, b| (a.date, &a.username).cmp(&(b.date, &b.username)));
        let expected: Vec<String> = expected
            .iter()
            .map(|i| format!("{} {} {} {}", i.date, i.username, i.action, i.why))
            .collect();
        // In memory, in runs of many sizes (one item, uneven, exact).
        assert_eq!(sorted(RUN, &input), expected);
        for run in [1, 7, 100, input.len()] {
            assert_eq!(sorted(run, &input), expected, "runs of {run}");
        }
        assert!(sorted(5, &[]).is_empty());
    }

    #[test]
    fn a_visitor_error_ends_the_merge() {
        let mut runs = DateRuns::new(10);
        for i in items(50) {
            runs.push(i).unwrap();
        }
        let mut n = 0;
        let got = runs.finish(&mut |_| {
            n += 1;
            if n == 3 {
                Err(Error::Failed("gone".into()))
            } else {
                Ok(())
            }
        });
        assert!(got.is_err());
        assert_eq!(n, 3);
    }
}
