//! Reading every account for the large outputs (`user list`, `export`,
//! `report orphans`, `lifecycle preview`): the store is walked and each
//! record decoded on a thread of its own while the caller works on the
//! accounts decoded before (formats them, writes them to the client). On
//! this two-core machine the walk and the decode cost about what the
//! formatting costs, so the two halves run side by side.
//!
//! What is held is bounded whatever the size of the database: at most
//! `QUEUED` batches of `BATCH` accounts wait between the two threads, one
//! more is being filled and one is being handed out. A caller that stops
//! (an error, a client that went away) stops the walk at its next batch.

use super::{Error, Result, Services};
use crate::domain::Account;

/// Accounts decoded together and handed over at once (one wake-up each).
const BATCH: usize = 512;
/// Batches that may wait for the caller.
const QUEUED: usize = 4;
/// Below this many accounts wanted (`--limit`), the walk stays on the
/// caller's thread: a second thread would cost more than it saves.
const SMALL: usize = 2 * BATCH;

/// A decoded account, or the key of a record that does not decode and why.
pub(crate) type Record = std::result::Result<Account, (String, String)>;

/// The key goes with a record only when it does not decode: an account's
/// is its username, and a key string per account would be allocated on
/// the reader and freed on the other thread a million times.
fn record(key: String, account: std::result::Result<Account, String>) -> Record {
    account.map_err(|why| (key, why))
}

impl Services {
    /// Every account that decodes, in username order after `after` (from the
    /// first without it), handed to `visit` one at a time until it returns
    /// `Ok(false)` or an error (which this returns). Records that do not
    /// decode are skipped, as the listings always did (`check` names them).
    /// `wanted` is how many the caller will take at most (`None`: all).
    pub(crate) fn each_account(
        &self,
        after: Option<&str>,
        wanted: Option<usize>,
        visit: &mut dyn FnMut(Account) -> Result<bool>,
    ) -> Result<()> {
        self.each_record(after, wanted, &mut |account| match account {
            Ok(account) => visit(account),
            Err(_) => Ok(true),
        })
    }

    /// As `each_account`, with the records that do not decode as their
    /// key and why (the index build at start reports those). The
    /// start-up build walks through here too, on the same reader thread
    /// arrangement as the listings: the allocator then keeps that walk's
    /// pages for the next one, and the first big listing after a start
    /// costs what later ones do (measured at a million accounts: the first
    /// `user list --json` after a start rose +80 to +84 MB above idle when
    /// the build walked on a thread of its own, +25 to +31 MB now).
    pub(crate) fn each_record(
        &self,
        after: Option<&str>,
        wanted: Option<usize>,
        visit: &mut dyn FnMut(Record) -> Result<bool>,
    ) -> Result<()> {
        let store = self.store();
        if wanted.is_some_and(|n| n <= SMALL) {
            let mut failed = None;
            store.scan_accounts_after(
                after,
                &mut |key, account| match visit(record(key, account)) {
                    Ok(more) => more,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                },
            )?;
            return failed.map_or(Ok(()), Err);
        }
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(QUEUED);
            let reader = std::thread::Builder::new()
                .name("account-reader".into())
                .spawn_scoped(scope, move || {
                    let mut batch = Vec::with_capacity(BATCH);
                    let walked = store.scan_accounts_after(after, &mut |key, account| {
                        batch.push(record(key, account));
                        if batch.len() < BATCH {
                            return true;
                        }
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        tx.send(full).is_ok()
                    });
                    if !batch.is_empty() {
                        let _ = tx.send(batch);
                    }
                    walked
                })
                .map_err(|e| Error::Failed(format!("cannot start the account reader: {e}")))?;
            let mut outcome = Ok(());
            'batches: for batch in rx.iter() {
                for account in batch {
                    match visit(account) {
                        Ok(true) => {}
                        Ok(false) => break 'batches,
                        Err(e) => {
                            outcome = Err(e);
                            break 'batches;
                        }
                    }
                }
            }
            // The reader stops at its next hand-over once nobody receives.
            drop(rx);
            let walked = reader
                .join()
                .map_err(|_| Error::Failed("the account reader stopped unexpectedly".into()))?;
            outcome?;
            walked.map_err(Error::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Kind;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit::services;
    use crate::service::Actor;

    fn create_many(s: &Services, admin: &Actor, n: usize) {
        let rows: Vec<(String, AccountInput)> = (0..n)
            .map(|i| {
                let input = AccountInput {
                    email: Some(format!("person{i}@example.org")),
                    display_name: Some("Some One".into()),
                    kind: Some(Kind::Contractor),
                    end_date: Some(s.today() + chrono::Duration::days(30)),
                    ..Default::default()
                };
                // Not in creation order, so the order seen is the store's.
                (format!("p{:05}", (i * 7919) % 100_000), input)
            })
            .collect();
        s.create_batch(admin, &rows).unwrap();
    }

    fn names(
        s: &Services,
        after: Option<&str>,
        wanted: Option<usize>,
        stop_at: usize,
    ) -> Vec<String> {
        let mut out = Vec::new();
        s.each_account(after, wanted, &mut |a| {
            out.push(a.username);
            Ok(out.len() < stop_at)
        })
        .unwrap();
        out
    }

    #[test]
    fn every_account_comes_once_in_username_order_on_either_path() {
        let (s, _, admin) = services();
        let n = 3 * BATCH + 7;
        create_many(&s, &admin, n);
        let all = names(&s, None, None, usize::MAX);
        assert_eq!(all.len(), n + 1, "every account and the admin");
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(all, sorted, "username order, each once");
        // The small path (on the caller's thread) agrees.
        assert_eq!(names(&s, None, Some(SMALL), usize::MAX), all);
        // After a name, from the next one; a caller that stops is obeyed.
        let after = &all[BATCH + 3];
        assert_eq!(
            names(&s, Some(after), None, usize::MAX),
            all[BATCH + 4..].to_vec()
        );
        assert_eq!(names(&s, None, None, BATCH + 1), all[..BATCH + 1].to_vec());
    }

    #[test]
    fn an_error_from_the_caller_ends_the_walk_and_is_returned() {
        let (s, _, admin) = services();
        create_many(&s, &admin, 2 * BATCH);
        let mut seen = 0;
        let got = s.each_account(None, None, &mut |_| {
            seen += 1;
            if seen == 10 {
                Err(Error::Failed("the client went away".into()))
            } else {
                Ok(true)
            }
        });
        assert!(matches!(got, Err(Error::Failed(m)) if m.contains("went away")));
        assert_eq!(seen, 10);
    }

    #[test]
    fn a_record_that_does_not_decode_reaches_each_record_with_its_key_and_each_account_skips_it() {
        use crate::store::WriteBatch;
        // sled keeps what it is given; the memory store checks records.
        let (s, _, admin) = crate::service::testkit::services_on_sled();
        create_many(&s, &admin, 2 * BATCH);
        s.store()
            .commit(&WriteBatch {
                accounts_encoded: vec![("p00001x".into(), b"{not json".to_vec())],
                ..Default::default()
            })
            .unwrap();
        let total = names(&s, None, None, usize::MAX).len();
        for wanted in [None, Some(SMALL)] {
            let (mut seen, mut bad) = (0, Vec::new());
            s.each_record(None, wanted, &mut |account| {
                seen += 1;
                if let Err((key, why)) = account {
                    assert!(!why.is_empty());
                    bad.push(key);
                }
                Ok(seen < wanted.unwrap_or(usize::MAX))
            })
            .unwrap();
            assert_eq!(bad, vec!["p00001x".to_string()], "wanted {wanted:?}");
        }
        assert!(!names(&s, None, None, usize::MAX).contains(&"p00001x".to_string()));
        assert_eq!(total, 2 * BATCH + 1, "each_account skips it");
        // The index build names it.
        let err = s
            .rebuild_indexes()
            .err()
            .expect("a record that does not decode");
        assert!(err.to_string().contains("p00001x"), "{err}");
    }
}
