//! Search over every account, for the console: instant at a million rows.
//!
//! A full scan per keystroke costs 25–30 ms at a million accounts (STACK.md),
//! so the console asks an index kept in memory beside the others and updated
//! by the single writer:
//!
//! - each account is one compact row: its searchable text (username, name,
//!   email, company and project, lower-cased, one NUL after each field) and
//!   the few facts filters and sorts need;
//! - posting lists (roaring bitmaps of row ids) per byte and per trigram of
//!   that text; a trigram that ends a field is stored with the NUL, so a
//!   two-letter term is the union of the trigrams it starts. Terms of up to
//!   three bytes are answered from the postings alone; longer terms check
//!   the rows the postings leave;
//! - key fingerprints are matched by prefix in the fingerprint index;
//! - each row has a rank in username order (numbers with gaps), so putting
//!   candidates in table order is sorting numbers, not reading strings;
//! - only what the screen needs is computed: the first `need` rows in table
//!   order and a count that stops at `COUNT_CAP` when it would cost a scan;
//! - rows, their text (one shared buffer) and the email table are shared
//!   with the other indexes, which refer to rows by number.
//!
//! A query's terms (split on spaces) must all match, each a substring of one
//! field. When nothing matches, the terms are tried as subsequences
//! ("jsmth" finds "j smith"), and the hits say they are fuzzy.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;

use hashbrown::HashTable;

use chrono::NaiveDate;
use memchr::memmem;
use roaring::RoaringBitmap;

use super::index::{Indexes, Name};
use super::{Actor, Result, Services};
use crate::domain::lifecycle::{effective_of, Effective, STATUS_WORDS};
use crate::domain::{Account, DisableReason, Kind, Role, Status};
use crate::service::authz::Permission;

/// Ends every field of a row's text.
const END: u8 = 0;
/// Fields of the text, in order.
const USERNAME: usize = 0;
const NAME: usize = 1;
const EMAIL: usize = 2;
const COMPANY: usize = 3;
const PROJECT: usize = 4;
/// Up to this many candidates are put in username order by their ranks;
/// above it, the usernames are walked in order until the page is full.
/// (Small under test, so the tests take both paths.)
const SMALL: u64 = if cfg!(test) { 64 } else { 50_000 };
/// Room between neighbouring ranks (see `SearchIndex::rank`).
const RANK_GAP: u64 = 1 << 24;
/// Candidate sets this small are checked in full: their count is exact.
const EXACT_UP_TO: u64 = if cfg!(test) { 32 } else { 10_000 };
/// A count that would need a scan stops here ("1000+").
pub const COUNT_CAP: usize = if cfg!(test) { 100 } else { 1_000 };

pub type Id = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    /// False for a free slot (ids are reused). The username is the text's
    /// first field (usernames are lower-case ASCII).
    live: bool,
    /// Where the row's text is in `Texts`.
    span: Span,
    status: Status,
    reason: Option<DisableReason>,
    kind: Kind,
    start: NaiveDate,
    end: Option<NaiveDate>,
    /// Minutes since 2000-01-01 UTC; 0 when never.
    last_login: u32,
    sponsor: Option<Name>,
}

/// Field `i` of a row's text.
fn field(text: &[u8], i: usize) -> &[u8] {
    text.split(|b| *b == END).nth(i).unwrap_or_default()
}

/// Where a row's text starts in `Texts` and how long it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    at: u32,
    len: u32,
}

/// Every row's text back to back (offsets are u32: 4 GB of text, some forty
/// million accounts): a row holds a span instead of its own
/// allocation (at a million accounts, 16 bytes of pointer and the
/// allocator's rounding per row). Text left behind by a change is garbage
/// until there is as much of it as live text, then the whole is rewritten.
#[derive(Clone, Default)]
struct Texts {
    bytes: Vec<u8>,
    garbage: usize,
}

impl Texts {
    fn get(&self, span: Span) -> &[u8] {
        let (at, len) = (span.at as usize, span.len as usize);
        self.bytes.get(at..at + len).unwrap_or_default()
    }

    fn push(&mut self, text: &[u8]) -> Span {
        let span = Span {
            at: u32::try_from(self.bytes.len()).unwrap_or(u32::MAX),
            len: u32::try_from(text.len()).unwrap_or(0),
        };
        self.bytes.extend_from_slice(text);
        span
    }
}

impl Row {
    fn effective(&self, today: NaiveDate) -> Effective {
        effective_of(self.status, self.reason, self.start, self.end, today)
    }
}

fn minutes_since_2000(t: chrono::DateTime<chrono::Utc>) -> u32 {
    const Y2000: i64 = 946_684_800;
    u32::try_from(((t.timestamp() - Y2000) / 60).max(1)).unwrap_or(u32::MAX)
}

fn text_of(account: &Account) -> Vec<u8> {
    let mut text = Vec::with_capacity(64);
    let fields = [
        Some(account.username.as_str()),
        Some(account.display_name.as_str()),
        Some(account.email.as_str()),
        account.company.as_deref(),
        account.project.as_deref(),
    ];
    for field in fields {
        text.extend_from_slice(field.unwrap_or_default().to_lowercase().as_bytes());
        text.push(END);
    }
    text
}

/// The distinct trigrams of a row's text, field by field, each field's last
/// two bytes also with the NUL that ends it.
fn trigrams(text: &[u8]) -> Vec<[u8; 3]> {
    let mut out = Vec::with_capacity(text.len());
    let mut start = 0;
    for (i, b) in text.iter().enumerate() {
        if *b == END {
            // The field with its END: windows never cross into the next field.
            let field = &text[start..=i];
            for w in field.windows(3) {
                out.push([w[0], w[1], w[2]]);
            }
            start = i + 1;
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn bytes(text: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = text.iter().copied().filter(|b| *b != END).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Every account as a searchable row, with posting lists.
#[derive(Clone, Default)]
pub struct SearchIndex {
    rows: Vec<Row>,
    texts: Texts,
    /// Each row's place in username order, with gaps: comparing two rows by
    /// username is comparing two numbers (no string reads). A new name takes
    /// the middle of its neighbours' ranks; when there is no room left,
    /// every rank is renumbered (rare: 24 halvings at one spot).
    rank: Vec<u64>,
    free: Vec<Id>,
    /// Username → row, in table order (live rows only).
    by_name: BTreeMap<Name, Id>,
    /// The rows that are soft-deleted, and those disabled (kept with every
    /// change: the count of accounts not deleted is O(1), a walk to a deep
    /// page skips deleted rows without reading them, and the disabled
    /// accounts are listed without a walk).
    deleted: RoaringBitmap,
    disabled: RoaringBitmap,
    /// Hashed, not ordered: a two-letter term asks for its 256 possible
    /// third bytes, which costs less than keeping 70 million insertions
    /// ordered at start-up.
    grams: HashMap<[u8; 3], RoaringBitmap>,
    chars: BTreeMap<u8, RoaringBitmap>,
    /// Lower-cased email → row, as a table of row ids hashed by the email
    /// in the row's text (4 bytes an account instead of a second copy).
    emails: HashTable<Id>,
    hasher: RandomState,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("rows", &self.by_name.len())
            .field("trigrams", &self.grams.len())
            .finish()
    }
}

/// Equal when the same accounts have the same rows, whatever their ids,
/// and both indexes' posting lists agree with their rows.
impl PartialEq for SearchIndex {
    fn eq(&self, other: &Self) -> bool {
        self.matches_rebuilt(other) && other.postings_agree()
    }
}
impl Eq for SearchIndex {}

impl SearchIndex {
    /// For `check`: the same accounts with the same rows as one just rebuilt
    /// from the records, and this index's posting lists agree with its rows
    /// (the rebuilt one's are not checked again: they were just made).
    pub fn matches_rebuilt(&self, rebuilt: &SearchIndex) -> bool {
        let other = rebuilt;
        self.by_name.len() == other.by_name.len()
            && self
                .by_name
                .iter()
                .zip(other.by_name.iter())
                .all(|((a, ia), (b, ib))| {
                    let (ra, rb) = (&self.rows[*ia as usize], &other.rows[*ib as usize]);
                    let same_text = self.text(*ia) == other.text(*ib);
                    a == b
                        && same_text
                        && Row {
                            span: rb.span,
                            ..ra.clone()
                        } == *rb
                })
            && self.postings_agree()
    }
}

fn email_hash(hasher: &RandomState, rows: &[Row], texts: &Texts, id: Id) -> u64 {
    hasher.hash_one(field(texts.get(rows[id as usize].span), EMAIL))
}

impl SearchIndex {
    /// A row's text.
    fn text(&self, id: Id) -> &[u8] {
        self.rows
            .get(id as usize)
            .map_or(&[][..], |row| self.texts.get(row.span))
    }

    /// The interned username (shared by every index), if the account exists.
    pub fn name(&self, username: &str) -> Option<&Name> {
        self.by_name.get_key_value(username).map(|(name, _)| name)
    }

    /// Every username, in order.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.by_name.keys()
    }

    /// Usernames of accounts not deleted, in order (the SCIM and REST
    /// views, where a deleted account is gone).
    pub fn live_names(&self) -> impl Iterator<Item = &Name> {
        self.by_name.iter().filter_map(|(name, id)| {
            let row = self.rows.get(*id as usize)?;
            (row.live && row.status != Status::Deleted).then_some(name)
        })
    }

    /// How many accounts are not deleted: a kept count, no walk.
    pub fn live_count(&self) -> usize {
        self.by_name
            .len()
            .saturating_sub(self.deleted.len() as usize)
    }

    /// `take` of the not-deleted usernames in order after the first `skip`.
    /// The walk to `skip` reads only the ordered names and the deleted
    /// set, none of the rows.
    pub fn live_page(&self, skip: usize, take: usize) -> Vec<Name> {
        if self.deleted.is_empty() {
            return self.by_name.keys().skip(skip).take(take).cloned().collect();
        }
        self.by_name
            .iter()
            .filter(|(_, id)| !self.deleted.contains(**id))
            .skip(skip)
            .take(take)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The usernames that start with `prefix`, in order (a range of the
    /// ordered names, not a scan).
    pub fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Name> + 'a {
        self.by_name
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(name, _)| name)
            .take_while(move |name| name.starts_with(prefix))
    }

    /// The usernames of the accounts with this status, in order (the
    /// in-memory rows, no record read; disabled and deleted ones from
    /// their kept sets, without a walk).
    pub fn names_with_status(&self, status: Status) -> Vec<Name> {
        let kept = match status {
            Status::Disabled => Some(&self.disabled),
            Status::Deleted => Some(&self.deleted),
            _ => None,
        };
        if let Some(set) = kept {
            let mut names: Vec<Name> = set
                .iter()
                .filter_map(|id| self.name_of(id).cloned())
                .collect();
            names.sort();
            return names;
        }
        self.by_name
            .iter()
            .filter(|(_, id)| {
                self.rows
                    .get(**id as usize)
                    .is_some_and(|r| r.live && r.status == status)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The owner of a lower-cased email.
    pub fn email_owner(&self, email_lowercase: &str) -> Option<&Name> {
        let hash = self.hasher.hash_one(email_lowercase.as_bytes());
        let id = self.emails.find(hash, |id| {
            field(self.text(*id), EMAIL) == email_lowercase.as_bytes()
        })?;
        self.name_of(*id)
    }

    /// (email, owner) for every row, for `check`.
    pub fn email_pairs(&self) -> BTreeMap<Box<str>, Name> {
        self.emails
            .iter()
            .filter_map(|id| {
                let email = String::from_utf8_lossy(field(self.text(*id), EMAIL)).into_owned();
                Some((email.into_boxed_str(), self.name_of(*id)?.clone()))
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Sizes, for the benchmark: rows, trigrams, posting entries, and the
    /// bytes of text and of posting lists (roaring's serialized size).
    pub fn stats(&self) -> String {
        let text = self.texts.bytes.len() - self.texts.garbage;
        let entries: u64 = self.grams.values().map(RoaringBitmap::len).sum();
        let bytes: usize = self
            .grams
            .values()
            .map(RoaringBitmap::serialized_size)
            .sum();
        let char_bytes: usize = self
            .chars
            .values()
            .map(RoaringBitmap::serialized_size)
            .sum();
        format!(
            "{} rows, {} trigrams, {entries} trigram postings in {:.0} MB, bytes {:.1} MB, text {:.0} MB",
            self.by_name.len(),
            self.grams.len(),
            bytes as f64 / 1e6,
            char_bytes as f64 / 1e6,
            text as f64 / 1e6
        )
    }

    /// The row of `username`.
    pub fn id(&self, username: &str) -> Option<Id> {
        self.by_name.get(username).copied()
    }

    /// The username of a row.
    pub fn name_of(&self, id: Id) -> Option<&Name> {
        self.rows.get(id as usize).filter(|r| r.live)?;
        let username = std::str::from_utf8(field(self.text(id), USERNAME)).ok()?;
        self.name(username)
    }

    /// Gives back the spare capacity the posting lists grew while the index
    /// was built (each list is rewritten at its exact size), and the rows'.
    pub fn compact(&mut self) {
        for set in self.grams.values_mut().chain(self.chars.values_mut()) {
            let mut bytes = Vec::with_capacity(set.serialized_size());
            if set.serialize_into(&mut bytes).is_ok() {
                if let Ok(exact) = RoaringBitmap::deserialize_from(&bytes[..]) {
                    *set = exact;
                }
            }
        }
        self.rows.shrink_to_fit();
        self.rank.shrink_to_fit();
        self.rewrite_texts();
    }

    /// Rewrites the texts without garbage, at their exact size.
    fn rewrite_texts(&mut self) {
        let live: usize = self.texts.bytes.len() - self.texts.garbage;
        let mut fresh = Texts {
            bytes: Vec::with_capacity(live),
            garbage: 0,
        };
        for row in &mut self.rows {
            row.span = if row.live {
                fresh.push(self.texts.get(row.span))
            } else {
                Span::default()
            };
        }
        self.texts = fresh;
    }

    /// Adds (or replaces) an account's row; returns the row.
    pub fn insert(&mut self, name: &Name, account: &Account) -> Id {
        // The writer removes before it re-inserts; should it not, the old
        // row must not stay behind.
        if self.by_name.contains_key(name) {
            self.remove(name);
        }
        let text = text_of(account);
        let mut row = Row {
            live: true,
            span: Span::default(),
            status: account.status,
            reason: account.disable_reason,
            kind: account.kind,
            start: account.start_date,
            end: account.end_date,
            last_login: account.last_login.map_or(0, minutes_since_2000),
            sponsor: account.sponsor.as_deref().map(Name::from),
        };
        let id = match self.free.pop() {
            // A reused row keeps its old text when it is the same (a login,
            // a date change): no garbage.
            Some(id) => {
                let old = self.rows[id as usize].span;
                if self.texts.get(old) == &text[..] && old.len > 0 {
                    row.span = old;
                    self.texts.garbage -= old.len as usize;
                }
                id
            }
            None => {
                self.rows.push(row.clone());
                self.rank.push(0);
                (self.rows.len() - 1) as Id
            }
        };
        if row.span.len == 0 {
            row.span = self.texts.push(&text);
        }
        for gram in trigrams(&text) {
            self.grams.entry(gram).or_default().insert(id);
        }
        for b in bytes(&text) {
            self.chars.entry(b).or_default().insert(id);
        }
        match row.status {
            Status::Deleted => {
                self.deleted.insert(id);
            }
            Status::Disabled => {
                self.disabled.insert(id);
            }
            _ => {}
        }
        self.rows[id as usize] = row;
        if self.texts.garbage > 1 << 16 && self.texts.garbage * 2 > self.texts.bytes.len() {
            self.rewrite_texts();
        }
        self.by_name.insert(name.clone(), id);
        self.place(name, id);
        let SearchIndex {
            rows,
            texts,
            emails,
            hasher,
            ..
        } = self;
        let hash = email_hash(hasher, rows, texts, id);
        let email = field(texts.get(rows[id as usize].span), EMAIL);
        let same = |other: &Id| field(texts.get(rows[*other as usize].span), EMAIL) == email;
        match emails.find_entry(hash, same) {
            // Emails are unique; should two rows share one, the newer owns it.
            Ok(mut entry) => *entry.get_mut() = id,
            Err(_) => {
                emails.insert_unique(hash, id, |other| email_hash(hasher, rows, texts, *other));
            }
        }
        id
    }

    /// Gives row `id` (just added under `name`) its rank.
    fn place(&mut self, name: &Name, id: Id) {
        let before = self
            .by_name
            .range::<Name, _>(..name)
            .next_back()
            .map_or(0, |(_, p)| self.rank[*p as usize]);
        let after = self
            .by_name
            .range::<Name, _>((Bound::Excluded(name), Bound::Unbounded))
            .next()
            .map(|(_, n)| self.rank[*n as usize]);
        match after {
            None => self.rank[id as usize] = before + RANK_GAP,
            Some(after) if after - before >= 2 => {
                self.rank[id as usize] = before + (after - before) / 2
            }
            Some(_) => {
                for (i, other) in self.by_name.values().enumerate() {
                    self.rank[*other as usize] = (i as u64 + 1) * RANK_GAP;
                }
            }
        }
    }

    pub fn remove(&mut self, name: &str) {
        let Some(id) = self.by_name.remove(name) else {
            return;
        };
        if (id as usize) >= self.rows.len() {
            return;
        }
        let hash = email_hash(&self.hasher, &self.rows, &self.texts, id);
        if let Ok(entry) = self.emails.find_entry(hash, |other| *other == id) {
            entry.remove();
        }
        self.deleted.remove(id);
        self.disabled.remove(id);
        let row = &mut self.rows[id as usize];
        row.live = false;
        row.sponsor = None;
        // The text stays until the slot is reused (or rewritten): garbage.
        self.texts.garbage += row.span.len as usize;
        let text = self.texts.get(row.span).to_vec();
        for gram in trigrams(&text) {
            if let Some(set) = self.grams.get_mut(&gram) {
                set.remove(id);
                if set.is_empty() {
                    self.grams.remove(&gram);
                }
            }
        }
        for b in bytes(&text) {
            if let Some(set) = self.chars.get_mut(&b) {
                set.remove(id);
                if set.is_empty() {
                    self.chars.remove(&b);
                }
            }
        }
        self.free.push(id);
    }

    /// Every live row is in the postings of each of its trigrams and bytes,
    /// and the postings hold no other row (for `check`).
    fn postings_agree(&self) -> bool {
        let mut expected_grams: HashMap<[u8; 3], RoaringBitmap> = HashMap::new();
        let mut expected_chars: BTreeMap<u8, RoaringBitmap> = BTreeMap::new();
        for id in self.by_name.values() {
            let text = self.text(*id);
            for g in trigrams(text) {
                expected_grams.entry(g).or_default().insert(*id);
            }
            for b in bytes(text) {
                expected_chars.entry(b).or_default().insert(*id);
            }
        }
        let ranks: Vec<u64> = self
            .by_name
            .values()
            .map(|id| self.rank[*id as usize])
            .collect();
        let mut expected_deleted = RoaringBitmap::new();
        let mut expected_disabled = RoaringBitmap::new();
        for id in self.by_name.values() {
            match self.rows[*id as usize].status {
                Status::Deleted => {
                    expected_deleted.insert(*id);
                }
                Status::Disabled => {
                    expected_disabled.insert(*id);
                }
                _ => {}
            }
        }
        expected_grams == self.grams
            && expected_chars == self.chars
            && expected_deleted == self.deleted
            && expected_disabled == self.disabled
            && ranks.windows(2).all(|w| w[0] < w[1])
            && self.emails.len() == self.by_name.len()
            && self.by_name.iter().all(|(name, id)| {
                let email = String::from_utf8_lossy(field(self.text(*id), EMAIL));
                self.email_owner(&email) == Some(name)
            })
    }

    /// Rows holding `term` (lower-cased, not empty) somewhere in one field,
    /// and whether that set is exact (no row in it needs checking).
    fn candidates(&self, term: &[u8]) -> (RoaringBitmap, bool) {
        match term {
            [b] => (self.chars.get(b).cloned().unwrap_or_default(), true),
            [a, b] => {
                let mut set = RoaringBitmap::new();
                for c in 0..=u8::MAX {
                    if let Some(ids) = self.grams.get(&[*a, *b, c]) {
                        set |= ids;
                    }
                }
                (set, true)
            }
            _ => {
                let mut grams: Vec<&RoaringBitmap> = Vec::new();
                for w in term.windows(3) {
                    match self.grams.get(&[w[0], w[1], w[2]]) {
                        Some(ids) => grams.push(ids),
                        None => return (RoaringBitmap::new(), true),
                    }
                }
                // Smallest first: the intersection shrinks fastest.
                grams.sort_by_key(|ids| ids.len());
                let mut set = grams[0].clone();
                for ids in &grams[1..] {
                    set &= *ids;
                }
                (set, term.len() == 3)
            }
        }
    }

    /// Rows holding every byte of `term` (candidates for a subsequence).
    fn fuzzy_candidates(&self, term: &[u8]) -> RoaringBitmap {
        let mut set: Option<RoaringBitmap> = None;
        for b in bytes(term) {
            let ids = self.chars.get(&b).cloned().unwrap_or_default();
            set = Some(match set {
                Some(s) => s & ids,
                None => ids,
            });
        }
        set.unwrap_or_default()
    }
}

/// The accounts table's filters (`f` in the console).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub status: Option<String>,
    pub kind: Option<Kind>,
    pub sponsor: Option<String>,
    pub project: Option<String>,
    pub expiring: Option<i64>,
}

impl Filters {
    pub fn parse(text: &str) -> std::result::Result<Filters, String> {
        let mut f = Filters::default();
        for word in text.split_whitespace() {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| format!("'{word}': expected key=value"))?;
            match k {
                "status" => {
                    if !STATUS_WORDS.contains(&v) {
                        return Err(format!("status: one of {}", STATUS_WORDS.join(", ")));
                    }
                    f.status = Some(v.to_string());
                }
                "kind" => f.kind = Some(v.parse()?),
                "sponsor" => f.sponsor = Some(v.to_string()),
                "project" => f.project = Some(v.to_string()),
                "expiring" => {
                    f.expiring = Some(
                        v.parse()
                            .map_err(|_| format!("expiring: days, not '{v}'"))?,
                    )
                }
                other => return Err(format!("unknown filter '{other}'")),
            }
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.status {
            parts.push(format!("status={s}"));
        }
        if let Some(k) = self.kind {
            parts.push(format!("kind={k}"));
        }
        if let Some(s) = &self.sponsor {
            parts.push(format!("sponsor={s}"));
        }
        if let Some(p) = &self.project {
            parts.push(format!("project={p}"));
        }
        if let Some(d) = self.expiring {
            parts.push(format!("expiring={d}"));
        }
        parts.join(" ")
    }

    fn keep(&self, row: &Row, text: &[u8], today: NaiveDate) -> bool {
        let e = row.effective(today);
        let status_ok = self.status.as_deref().is_none_or(|s| e.matches(s));
        let expiring_ok = self.expiring.is_none_or(|days| {
            matches!(e, Effective::Active | Effective::Staged)
                && row
                    .end
                    .is_some_and(|end| end >= today && (end - today).num_days() <= days)
        });
        status_ok
            && expiring_ok
            && self.kind.is_none_or(|k| row.kind == k)
            && self
                .sponsor
                .as_ref()
                .is_none_or(|s| row.sponsor.as_deref() == Some(s.as_str()))
            && self
                .project
                .as_ref()
                .is_none_or(|p| field(text, PROJECT) == p.to_lowercase().as_bytes())
    }
}

/// Sort orders of the accounts table (`s` cycles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Username,
    Name,
    Kind,
    Company,
    Sponsor,
    Status,
    End,
    LastLogin,
}

impl SortKey {
    pub const ALL: [SortKey; 8] = [
        SortKey::Username,
        SortKey::Name,
        SortKey::Kind,
        SortKey::Company,
        SortKey::Sponsor,
        SortKey::Status,
        SortKey::End,
        SortKey::LastLogin,
    ];

    pub fn next(self) -> SortKey {
        let at = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL.get(at + 1).copied().unwrap_or(SortKey::Username)
    }

    pub fn column(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// What a row sorts by in this order (ties go by username, the rank).
    fn value<'a>(self, row: &'a Row, text: &'a [u8], today: NaiveDate) -> SortValue<'a> {
        match self {
            SortKey::Username => SortValue::Same,
            SortKey::Name => SortValue::Text(field(text, NAME)),
            SortKey::Kind => SortValue::Word(row.kind.as_str()),
            SortKey::Company => SortValue::Text(field(text, COMPANY)),
            SortKey::Sponsor => SortValue::Sponsor(row.sponsor.as_deref()),
            SortKey::Status => SortValue::Word(row.effective(today).as_str()),
            // No end date sorts last: it never ends.
            SortKey::End => SortValue::End(row.end.is_none(), row.end),
            SortKey::LastLogin => SortValue::Minutes(row.last_login),
        }
    }
}

/// A row's sort value, computed once per row before sorting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue<'a> {
    Same,
    Text(&'a [u8]),
    Word(&'static str),
    Sponsor(Option<&'a str>),
    End(bool, Option<NaiveDate>),
    Minutes(u32),
}

/// What the accounts table asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub text: String,
    pub filters: Filters,
    pub sort: SortKey,
    pub reverse: bool,
}

/// The first `need` matching accounts in table order, and how many match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hits {
    pub names: Vec<Name>,
    /// The number of matches, or a lower bound when `exact` is false.
    pub total: usize,
    pub exact: bool,
    /// Nothing matched as typed; these match the terms as subsequences.
    pub fuzzy: bool,
    /// The server is still building its search index (just started):
    /// nothing to show yet, ask again shortly.
    pub indexing: bool,
}

/// One query term: lower-cased for the text, as typed for fingerprints.
struct Term {
    lower: Vec<u8>,
    /// Rows with a key whose fingerprint starts with the term.
    keys: RoaringBitmap,
}

fn subsequence(needle: &[u8], hay: &[u8]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|n| it.any(|h| h == n))
}

impl Indexes {
    /// Rows whose key fingerprint starts with `term` ("SHA256:" optional).
    fn key_rows(&self, term: &str) -> RoaringBitmap {
        let body = term
            .strip_prefix("SHA256:")
            .or_else(|| term.strip_prefix("sha256:"))
            .unwrap_or(term);
        let mut ids = RoaringBitmap::new();
        if body.len() < 4 {
            return ids;
        }
        let from = format!("SHA256:{body}");
        for (fingerprint, owner) in self
            .by_fingerprint
            .range::<str, _>((Bound::Included(from.as_str()), Bound::Unbounded))
        {
            if !fingerprint.starts_with(from.as_str()) || ids.len() >= SMALL {
                break;
            }
            if let Some(id) = self.search.by_name.get(owner) {
                ids.insert(*id);
            }
        }
        ids
    }

    /// The accounts matching `query`, in table order: the first `need` of
    /// them and their count (see the module notes for the cost).
    pub fn search(
        &self,
        query: &Query,
        scope: Option<&str>,
        need: usize,
        today: NaiveDate,
    ) -> Hits {
        let terms: Vec<Term> = query
            .text
            .split_whitespace()
            .map(|t| Term {
                lower: t.to_lowercase().into_bytes(),
                keys: self.key_rows(t),
            })
            .collect();
        let hits = self.run(query, &terms, scope, need, today, false);
        if hits.total > 0 || terms.is_empty() {
            return hits;
        }
        self.run(query, &terms, scope, need, today, true)
    }

    fn run(
        &self,
        query: &Query,
        terms: &[Term],
        scope: Option<&str>,
        need: usize,
        today: NaiveDate,
        fuzzy: bool,
    ) -> Hits {
        let s = &self.search;
        // The candidate rows, and whether each still needs its text checked.
        // A sponsor's scope or filter starts from the accounts they sponsor
        // (a few rows, not a walk through all of them).
        let mut candidates: Option<RoaringBitmap> = None;
        for sponsor in [scope, query.filters.sponsor.as_deref()]
            .into_iter()
            .flatten()
        {
            let mine: RoaringBitmap = self
                .by_sponsor
                .get(sponsor)
                .into_iter()
                .flatten()
                .filter_map(|name| s.id(name))
                .collect();
            candidates = Some(match candidates {
                Some(c) => c & mine,
                None => mine,
            });
        }
        let mut check = false;
        for term in terms {
            let (mut set, exact) = if fuzzy {
                (s.fuzzy_candidates(&term.lower), term.lower.len() <= 1)
            } else {
                s.candidates(&term.lower)
            };
            check |= !exact || !term.keys.is_empty();
            set |= &term.keys;
            candidates = Some(match candidates {
                Some(c) => c & set,
                None => set,
            });
        }
        let filtered = !query.filters.is_empty() || scope.is_some();
        let finder = memmem_finders(terms);
        let keep = |id: Id| -> bool {
            let row = &s.rows[id as usize];
            if !row.live {
                return false;
            }
            let text = s.texts.get(row.span);
            if let Some(sponsor) = scope {
                if row.sponsor.as_deref() != Some(sponsor) {
                    return false;
                }
            }
            if !query.filters.keep(row, text, today) {
                return false;
            }
            !check
                || terms.iter().zip(&finder).all(|(term, f)| {
                    term.keys.contains(id)
                        || if fuzzy {
                            text.split(|b| *b == END)
                                .any(|field| subsequence(&term.lower, field))
                        } else {
                            f.find(text).is_some()
                        }
                })
        };
        let cap = need.max(COUNT_CAP);
        let mut hits = Hits {
            fuzzy,
            ..Hits::default()
        };
        // Default order: matches in username order, stopping once the page
        // is full and the count has reached its cap. Up to SMALL candidates
        // are put in order by their ranks (a sort of numbers); more are met
        // walking the names in order (cheap while matches are spread out).
        if query.sort == SortKey::Username {
            let exact_count = !filtered && !check;
            let total = match &candidates {
                Some(c) => c.len() as usize,
                None => s.by_name.len(),
            };
            // A few thousand candidates are all checked: the count is exact.
            let cap = match &candidates {
                Some(c) if c.len() <= EXACT_UP_TO => usize::MAX,
                _ => cap,
            };
            let in_order: Box<dyn Iterator<Item = Id> + '_> = match &candidates {
                Some(c) if c.len() <= SMALL => {
                    let mut ranked: Vec<(u64, Id)> =
                        c.iter().map(|id| (s.rank[id as usize], id)).collect();
                    ranked.sort_unstable();
                    if query.reverse {
                        ranked.reverse();
                    }
                    Box::new(ranked.into_iter().map(|(_, id)| id))
                }
                _ => {
                    let walk: Box<dyn Iterator<Item = &Id>> = if query.reverse {
                        Box::new(s.by_name.values().rev())
                    } else {
                        Box::new(s.by_name.values())
                    };
                    let candidates = candidates.as_ref();
                    Box::new(
                        walk.copied()
                            .filter(move |id| candidates.is_none_or(|c| c.contains(*id))),
                    )
                }
            };
            let mut count = 0usize;
            let mut stopped = false;
            for id in in_order {
                if keep(id) {
                    if hits.names.len() < need {
                        hits.names.extend(s.name_of(id).cloned());
                    } else if exact_count || count >= cap {
                        stopped = true;
                        break;
                    }
                    count += 1;
                }
            }
            (hits.total, hits.exact) = if exact_count {
                (total, true)
            } else {
                (count, !stopped)
            };
            return hits;
        }
        // Another order: every match, sorted.
        let mut ids: Vec<Id> = match &candidates {
            Some(c) => c.iter().filter(|id| keep(*id)).collect(),
            None => s.by_name.values().copied().filter(|id| keep(*id)).collect(),
        };
        hits.total = ids.len();
        hits.exact = true;
        let mut keyed: Vec<(SortValue, u64, Id)> = ids
            .iter()
            .map(|id| {
                let row = &s.rows[*id as usize];
                let value = query.sort.value(row, s.texts.get(row.span), today);
                (value, s.rank[*id as usize], *id)
            })
            .collect();
        let order = |a: &(SortValue, u64, Id), b: &(SortValue, u64, Id)| {
            let o = (a.0, a.1).cmp(&(b.0, b.1));
            if query.reverse {
                o.reverse()
            } else {
                o
            }
        };
        if keyed.len() > need {
            if need > 0 {
                keyed.select_nth_unstable_by(need - 1, order);
            }
            keyed.truncate(need);
        }
        keyed.sort_unstable_by(order);
        ids = keyed.into_iter().map(|(_, _, id)| id).collect();
        hits.names = ids
            .iter()
            .filter_map(|id| s.name_of(*id).cloned())
            .collect();
        hits
    }
}

fn memmem_finders(terms: &[Term]) -> Vec<memmem::Finder<'_>> {
    terms
        .iter()
        .map(|t| memmem::Finder::new(&t.lower))
        .collect()
}

impl Services {
    /// A number that changes whenever stored state changes: the sequence of
    /// the newest audit event (every change and every login writes one),
    /// kept in memory by the writer (this process owns the database).
    pub fn generation(&self) -> Result<u64> {
        Ok(self
            .inner
            .generation
            .load(std::sync::atomic::Ordering::Acquire))
    }

    /// The console's accounts table: the first `need` accounts matching
    /// `query` in its order, and how many match. Operators and admins search
    /// everyone; sponsors only the accounts they sponsor.
    pub fn search(&self, actor: &Actor, query: &Query, need: usize) -> Result<Hits> {
        self.authorize(actor, Permission::ListAccounts, None)?;
        let wide = actor.has(Role::Admin) || actor.has(Role::Operator);
        let scope = (!wide).then_some(actor.name.as_str());
        let today = self.today();
        if self.indexes_building() {
            return Ok(Hits {
                indexing: true,
                ..Hits::default()
            });
        }
        let guard = self.indexes()?;
        let indexes = guard
            .as_ref()
            .ok_or_else(|| super::Error::Failed("indexes not loaded".into()))?;
        Ok(indexes.search(query, scope, need, today))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::sample;
    use crate::domain::{Policy, SshKey};

    const FIRST: [&str; 8] = [
        "Anna", "Hannah", "Jean", "Jo", "Émile", "Bob", "Li", "Mariana",
    ];
    const LAST: [&str; 6] = ["Smith", "Smithers", "Okafor", "Nguyen", "Lee", "Ann"];
    const COMPANY: [&str; 4] = ["Acme", "Globex", "Initech", "Acme Annex"];

    /// A small deterministic generator (no dependency on test order).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    fn account(i: usize, rng: &mut Lcg) -> Account {
        let first = FIRST[rng.next(FIRST.len())];
        let last = LAST[rng.next(LAST.len())];
        let mut a = sample(Status::Active, "2026-01-01", None);
        let initial = first.chars().next().filter(char::is_ascii).unwrap_or('e');
        a.username = format!("{}{}{i}", initial.to_ascii_lowercase(), last.to_lowercase());
        a.display_name = format!("{first} {last}");
        a.email = format!("{}.{}.{i}@{}.example", first, last, i % 7).to_lowercase();
        a.company = (i % 5 != 0).then(|| COMPANY[rng.next(COMPANY.len())].to_string());
        a.project = (i % 3 == 0).then(|| "apollo".to_string());
        a.kind = [Kind::Contractor, Kind::Vendor, Kind::Intern][rng.next(3)];
        a.end_date = (i % 4 != 0).then(|| {
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
                + chrono::Duration::days(rng.next(90) as i64)
        });
        if i % 11 == 0 {
            a.status = Status::Disabled;
            a.disable_reason = Some(DisableReason::Manual);
        }
        a.sponsor = (i % 2 == 0).then(|| "root".to_string());
        if i % 9 == 0 {
            a.credentials.keys.push(SshKey {
                fingerprint: format!("SHA256:Key{i:05}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/"),
                ..sample_key()
            });
        }
        a
    }

    fn sample_key() -> SshKey {
        SshKey {
            fingerprint: String::new(),
            algorithm: "ssh-ed25519".into(),
            public_key: String::new(),
            comment: String::new(),
            added_at: chrono::DateTime::UNIX_EPOCH,
            added_by: "test".into(),
            last_used: None,
            expires_on: None,
        }
    }

    /// The same question answered by reading every account.
    fn plain(accounts: &[Account], query: &Query, today: NaiveDate) -> Vec<String> {
        let terms: Vec<String> = query.text.split_whitespace().map(str::to_string).collect();
        let mut out: Vec<&Account> = accounts
            .iter()
            .filter(|a| {
                let fields: Vec<String> = [
                    Some(&a.username),
                    Some(&a.display_name),
                    Some(&a.email),
                    a.company.as_ref(),
                    a.project.as_ref(),
                ]
                .into_iter()
                .flatten()
                .map(|f| f.to_lowercase())
                .collect();
                terms.iter().all(|t| {
                    fields.iter().any(|f| f.contains(&t.to_lowercase()))
                        || a.credentials.keys.iter().any(|k| {
                            t.len() >= 4 && k.fingerprint.starts_with(&format!("SHA256:{t}"))
                        })
                }) && {
                    let row = Row {
                        live: true,
                        span: Span::default(),
                        status: a.status,
                        reason: a.disable_reason,
                        kind: a.kind,
                        start: a.start_date,
                        end: a.end_date,
                        last_login: 0,
                        sponsor: a.sponsor.as_deref().map(Name::from),
                    };
                    query.filters.keep(&row, &text_of(a), today)
                }
            })
            .collect();
        out.sort_by(|a, b| a.username.cmp(&b.username));
        out.into_iter().map(|a| a.username.clone()).collect()
    }

    #[test]
    fn search_agrees_with_reading_every_account_through_changes() {
        let today = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let mut rng = Lcg(7);
        let mut indexes = Indexes::new(&Policy::default());
        let mut accounts: Vec<Account> = (0..3_000).map(|i| account(i, &mut rng)).collect();
        for a in &accounts {
            indexes.insert(a);
        }
        // Changes: some removed (their ids are reused), some renamed in place.
        for i in (0..3_000).step_by(13) {
            indexes.remove(&accounts[i]);
        }
        let mut kept: Vec<Account> = Vec::new();
        for (i, a) in accounts.drain(..).enumerate() {
            if i % 13 == 0 {
                continue;
            }
            if i % 17 == 0 {
                indexes.remove(&a);
                let mut b = a.clone();
                b.display_name = "Changed Person".into();
                indexes.insert(&b);
                kept.push(b);
            } else {
                kept.push(a);
            }
        }
        for i in 3_000..3_200 {
            let a = account(i, &mut rng);
            indexes.insert(&a);
            kept.push(a);
        }
        let queries = [
            "",
            "a",
            "é",
            "an",
            "ann",
            "anna",
            "smith",
            "smithers",
            "ann smith",
            "acme annex",
            "@3.example",
            "changed",
            "nope",
            "jo okafor",
            "key00",
            "Key00099",
            "n",
            "xq",
            "apollo",
            "e s",
            "li lee",
        ];
        let filters = [
            Filters::default(),
            Filters::parse("status=disabled").unwrap(),
            Filters::parse("kind=vendor sponsor=root").unwrap(),
            Filters::parse("expiring=30 project=apollo").unwrap(),
        ];
        let mut capped = 0;
        for text in queries {
            for f in &filters {
                for need in [0, 5, 60, 5_000] {
                    let query = Query {
                        text: text.into(),
                        filters: f.clone(),
                        ..Query::default()
                    };
                    let expected = plain(&kept, &query, today);
                    let hits = indexes.search(&query, None, need, today);
                    let got: Vec<String> = hits.names.iter().map(|n| n.to_string()).collect();
                    let want: Vec<String> = expected.iter().take(need).cloned().collect();
                    let what = format!("{text:?} {f:?} need {need}");
                    if hits.fuzzy {
                        assert!(expected.is_empty(), "{what}: fuzzy although {expected:?}");
                        continue;
                    }
                    assert_eq!(got, want, "{what}");
                    if hits.exact {
                        assert_eq!(hits.total, expected.len(), "{what}");
                    } else {
                        capped += 1;
                        assert!(hits.total >= COUNT_CAP.max(need), "{what}");
                        assert!(expected.len() > hits.total, "{what}");
                    }
                    // Backwards: the same rows from the other end.
                    let back = indexes.search(
                        &Query {
                            reverse: true,
                            ..query.clone()
                        },
                        None,
                        need,
                        today,
                    );
                    let want: Vec<String> = expected.iter().rev().take(need).cloned().collect();
                    let got: Vec<String> = back.names.iter().map(|n| n.to_string()).collect();
                    assert_eq!(got, want, "{what} reversed");
                }
            }
        }
        assert!(capped > 10, "the capped count was tried {capped} times");
        // Every other order holds the same rows.
        for sort in SortKey::ALL {
            let query = Query {
                text: "smith".into(),
                sort,
                ..Query::default()
            };
            let hits = indexes.search(&query, None, 10_000, today);
            let mut got: Vec<String> = hits.names.iter().map(|n| n.to_string()).collect();
            got.sort();
            assert_eq!(got, plain(&kept, &query, today), "{sort:?}");
        }
        // A sponsor sees only the accounts they sponsor.
        let mine = indexes.search(&Query::default(), Some("root"), 10_000, today);
        assert!(mine.total > 0);
        assert!(mine.names.iter().all(|n| kept
            .iter()
            .any(|a| &*a.username == &**n && a.sponsor.as_deref() == Some("root"))));
        // The live index equals one built from scratch.
        let mut fresh = Indexes::new(&Policy::default());
        for a in &kept {
            fresh.insert(a);
        }
        assert_eq!(indexes.search, fresh.search);
        // The email table finds every owner, and no one for a removed account's email.
        for a in &kept {
            assert_eq!(
                indexes.email_owner(&a.email_key()).as_deref(),
                Some(a.username.as_str())
            );
        }
        assert_eq!(
            indexes.email_owner(&"anna.smith.0@0.example".to_lowercase()),
            None
        );
    }

    #[test]
    fn ranks_follow_username_order_even_when_one_gap_is_split_again_and_again() {
        let mut indexes = Indexes::new(&Policy::default());
        let mut names = vec!["a".to_string(), "c".to_string()];
        // Each name sorts just after the previous one and before "c": the
        // same gap halves every time until everything is renumbered.
        for i in 1..60 {
            names.push("a".repeat(i + 1));
        }
        for (i, name) in names.iter().enumerate() {
            let mut a = sample(Status::Active, "2026-01-01", None);
            a.username = name.clone();
            a.email = format!("{name}{i}@example.com");
            indexes.insert(&a);
        }
        assert!(indexes.search.postings_agree());
        let today = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let hits = indexes.search(&Query::default(), Some("nobody"), 100, today);
        assert_eq!(hits.total, 0);
        let every = Query {
            text: "a".into(),
            ..Query::default()
        };
        // Under test the small path (sorting by rank) starts below 64 rows.
        let hits = indexes.search(&every, None, 100, today);
        // Every account matches "a" (its email is at example.com).
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        let got: Vec<String> = hits.names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            got,
            sorted.iter().map(|n| n.to_string()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn changed_texts_leave_garbage_until_it_is_rewritten_and_same_texts_none() {
        let mut indexes = Indexes::new(&Policy::default());
        let mut rng = Lcg(3);
        let mut accounts: Vec<Account> = (0..2_000).map(|i| account(i, &mut rng)).collect();
        for a in &accounts {
            indexes.insert(a);
        }
        let live = indexes.search.texts.bytes.len();
        // A login changes no text: the row keeps its span, no garbage.
        for a in accounts.iter_mut().take(500) {
            indexes.remove(a);
            a.last_login = Some(a.created_at);
            indexes.insert(a);
        }
        assert_eq!(indexes.search.texts.garbage, 0);
        assert_eq!(indexes.search.texts.bytes.len(), live);
        // Renames leave the old text behind until it is half of the whole.
        for round in 0..3 {
            for a in accounts.iter_mut() {
                indexes.remove(a);
                a.display_name = format!("Renamed-{round}-{}", a.username);
                indexes.insert(a);
            }
            let texts = &indexes.search.texts;
            assert!(
                texts.garbage * 2 <= texts.bytes.len() + 200,
                "round {round}"
            );
        }
        assert!(indexes.search.postings_agree());
        let today = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let hits = indexes.search(
            &Query {
                text: "renamed-2-".into(),
                ..Query::default()
            },
            None,
            10_000,
            today,
        );
        assert_eq!(hits.total, 2_000);
        let old = indexes.search(
            &Query {
                text: "renamed-1-".into(),
                ..Query::default()
            },
            None,
            10,
            today,
        );
        assert!(old.fuzzy || old.total == 0, "old names are gone: {old:?}");
        let mut fresh = Indexes::new(&Policy::default());
        for a in &accounts {
            fresh.insert(a);
        }
        assert_eq!(indexes.search, fresh.search);
    }

    #[test]
    fn nothing_typed_matches_so_the_terms_are_tried_as_subsequences() {
        let mut indexes = Indexes::new(&Policy::default());
        let mut a = sample(Status::Active, "2026-01-01", None);
        a.username = "jsmith".into();
        a.display_name = "Jane Smithers".into();
        indexes.insert(&a);
        let today = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let q = |text: &str| Query {
            text: text.into(),
            ..Query::default()
        };
        let exact = indexes.search(&q("smithers"), None, 10, today);
        assert!(!exact.fuzzy);
        assert_eq!(exact.total, 1);
        let loose = indexes.search(&q("jsmthrs"), None, 10, today);
        assert!(loose.fuzzy);
        assert_eq!(loose.names.len(), 1);
        // Letters out of order match nothing, even loosely.
        assert_eq!(indexes.search(&q("srehtims"), None, 10, today).total, 0);
    }

    #[test]
    fn the_kept_count_and_pages_agree_with_a_walk_as_accounts_change() {
        let mut indexes = Indexes::new(&Policy::default());
        let mut rng = Lcg(7);
        let mut accounts: Vec<Account> = (0..300).map(|i| account(i, &mut rng)).collect();
        for a in &accounts {
            indexes.insert(a);
        }
        let agree = |search: &SearchIndex| {
            let walked: Vec<Name> = search.live_names().cloned().collect();
            assert_eq!(search.live_count(), walked.len());
            for skip in [0, 1, 17, walked.len() - 5, walked.len() + 3] {
                let page = search.live_page(skip, 10);
                let expected: Vec<Name> = walked.iter().skip(skip).take(10).cloned().collect();
                assert_eq!(page, expected, "skip {skip}");
            }
        };
        agree(&indexes.search);
        assert_eq!(indexes.search.live_count(), 300);
        // Soft-delete some, undelete one, purge others, change statuses.
        for (i, a) in accounts.iter_mut().enumerate() {
            let old = a.clone();
            match i % 10 {
                0 | 3 => a.status = Status::Deleted,
                5 => a.status = Status::Disabled,
                _ => continue,
            }
            indexes.remove(&old);
            indexes.insert(a);
        }
        agree(&indexes.search);
        assert_eq!(indexes.search.live_count(), 240);
        let back = accounts[10].clone();
        accounts[10].status = Status::Active;
        indexes.remove(&back);
        indexes.insert(&accounts[10]);
        indexes.remove(&accounts[20]);
        indexes.remove(&accounts[1]);
        agree(&indexes.search);
        assert_eq!(indexes.search.live_count(), 240);
        let disabled = indexes.search.names_with_status(Status::Disabled);
        assert!(disabled.iter().all(|n| {
            accounts
                .iter()
                .any(|a| *a.username == **n && a.status == Status::Disabled)
        }));
        assert!(disabled.windows(2).all(|w| w[0] < w[1]), "in name order");
        let kept: Vec<&Account> = accounts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 20 && *i != 1)
            .map(|(_, a)| a)
            .collect();
        assert_eq!(
            disabled.len(),
            kept.iter().filter(|a| a.status == Status::Disabled).count()
        );
        // The kept sets agree with the rows (what `check` compares).
        let mut fresh = Indexes::new(&Policy::default());
        for a in &kept {
            fresh.insert(a);
        }
        assert_eq!(indexes.search, fresh.search);
        let some: String = indexes.search.names().nth(50).unwrap()[..2].to_string();
        let prefix: Vec<&Name> = indexes.search.names_with_prefix(&some).collect();
        assert!(!prefix.is_empty() && prefix.iter().all(|n| n.starts_with(&some)));
        assert_eq!(
            prefix.len(),
            indexes
                .search
                .names()
                .filter(|n| n.starts_with(&some))
                .count()
        );
        assert!(
            prefix.len() < indexes.search.len(),
            "a range, not everything"
        );
    }
}
