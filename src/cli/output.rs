//! How results look: aligned text for people, one JSON document for scripts.

use std::borrow::Cow;
use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use comfy_table::{presets::NOTHING, ContentArrangement, Table};
use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::lifecycle::{effective, Effective};
use crate::domain::{Account, AuditEvent, CustomField, SshKey};
use crate::locale::Zone;
use crate::service::groups::GroupView;
use crate::service::{Actor, Error, Result};
use crate::text::escape_text;

fn io(e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("cannot write output: {e}"))
}

pub fn print_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io)?;
    writeln!(out).map_err(io)
}

fn status_text(account: &Account, today: NaiveDate) -> String {
    match effective(account, today) {
        Effective::Disabled(reason) => format!("disabled ({reason})"),
        other => other.as_str().to_string(),
    }
}

fn days_left(end: Option<NaiveDate>, today: NaiveDate) -> Option<i64> {
    end.map(|e| (e - today).num_days())
}

fn when(t: Option<DateTime<Utc>>, zone: Zone) -> String {
    t.map_or_else(|| "never".into(), |t| zone.minute(t))
}

pub fn key_view(key: &SshKey) -> Value {
    json!({
        "fingerprint": key.fingerprint,
        "algorithm": key.algorithm,
        "comment": key.comment,
        "public_key": key.public_key,
        "added_at": key.added_at,
        "added_by": key.added_by,
        "last_used": key.last_used,
        "expires_on": key.expires_on,
    })
}

/// The account as scripts see it: no secrets, plus the effective status.
pub fn account_view(a: &Account, today: NaiveDate) -> Value {
    json!({
        "username": a.username,
        "display_name": a.display_name,
        "email": a.email,
        "kind": a.kind,
        "company": a.company,
        "sponsor": a.sponsor,
        "project": a.project,
        "start_date": a.start_date,
        "end_date": a.end_date,
        "days_left": days_left(a.end_date, today),
        "status": a.status,
        "effective_status": effective(a, today).as_str(),
        "disable_reason": a.disable_reason,
        "disable_note": a.disable_note,
        "disabled_at": a.disabled_at,
        "deleted_at": a.deleted_at,
        "groups": a.groups,
        "roles": a.roles,
        "fields": a.fields,
        "timezone": a.timezone,
        "language": a.language,
        "theme": a.theme,
        "notes": a.notes,
        "allowlist": a.allowlist,
        "inactivity_exempt": a.inactivity_exempt,
        "keys": a.credentials.keys.iter().map(key_view).collect::<Vec<_>>(),
        "password_set": a.credentials.password_hash.is_some(),
        "password_set_at": a.credentials.password_set_at,
        "password_temporary": a.credentials.password_temporary,
        "created_at": a.created_at,
        "created_by": a.created_by,
        "updated_at": a.updated_at,
        "updated_by": a.updated_by,
        "last_login": a.last_login,
        "source": a.source,
    })
}

/// `account_view` as a borrowed struct, for the large streamed outputs:
/// the same document byte for byte (fields in the sorted order a JSON
/// object of `serde_json` has) without building a `Value` per account.
/// The test `the_fast_account_view_prints_what_account_view_prints` keeps
/// the two in step.
#[derive(Serialize)]
pub struct AccountView<'a> {
    allowlist: &'a [ipnet::IpNet],
    company: &'a Option<String>,
    created_at: DateTime<Utc>,
    created_by: &'a str,
    days_left: Option<i64>,
    deleted_at: Option<DateTime<Utc>>,
    disable_note: &'a Option<String>,
    disable_reason: Option<crate::domain::DisableReason>,
    disabled_at: Option<DateTime<Utc>>,
    display_name: &'a str,
    effective_status: &'static str,
    email: &'a str,
    end_date: Option<NaiveDate>,
    fields: &'a std::collections::BTreeMap<String, String>,
    groups: &'a std::collections::BTreeSet<String>,
    inactivity_exempt: bool,
    keys: Vec<KeyView<'a>>,
    kind: crate::domain::Kind,
    language: &'a Option<String>,
    last_login: Option<DateTime<Utc>>,
    notes: &'a Option<String>,
    password_set: bool,
    password_set_at: Option<DateTime<Utc>>,
    password_temporary: bool,
    project: &'a Option<String>,
    roles: &'a std::collections::BTreeSet<crate::domain::Role>,
    source: &'a Option<crate::domain::source::SourceLink>,
    sponsor: &'a Option<String>,
    start_date: NaiveDate,
    status: crate::domain::Status,
    theme: &'a Option<String>,
    timezone: &'a Option<String>,
    updated_at: DateTime<Utc>,
    updated_by: &'a str,
    username: &'a str,
}

/// `key_view` as a borrowed struct (see `AccountView`).
#[derive(Serialize)]
struct KeyView<'a> {
    added_at: DateTime<Utc>,
    added_by: &'a str,
    algorithm: &'a str,
    comment: &'a str,
    expires_on: Option<NaiveDate>,
    fingerprint: &'a str,
    last_used: Option<DateTime<Utc>>,
    public_key: &'a str,
}

impl<'a> AccountView<'a> {
    pub fn new(a: &'a Account, today: NaiveDate) -> AccountView<'a> {
        AccountView {
            allowlist: &a.allowlist,
            company: &a.company,
            created_at: a.created_at,
            created_by: &a.created_by,
            days_left: days_left(a.end_date, today),
            deleted_at: a.deleted_at,
            disable_note: &a.disable_note,
            disable_reason: a.disable_reason,
            disabled_at: a.disabled_at,
            display_name: &a.display_name,
            effective_status: effective(a, today).as_str(),
            email: &a.email,
            end_date: a.end_date,
            fields: &a.fields,
            groups: &a.groups,
            inactivity_exempt: a.inactivity_exempt,
            keys: a
                .credentials
                .keys
                .iter()
                .map(|k| KeyView {
                    added_at: k.added_at,
                    added_by: &k.added_by,
                    algorithm: &k.algorithm,
                    comment: &k.comment,
                    expires_on: k.expires_on,
                    fingerprint: &k.fingerprint,
                    last_used: k.last_used,
                    public_key: &k.public_key,
                })
                .collect(),
            kind: a.kind,
            language: &a.language,
            last_login: a.last_login,
            notes: &a.notes,
            password_set: a.credentials.password_hash.is_some(),
            password_set_at: a.credentials.password_set_at,
            password_temporary: a.credentials.password_temporary,
            project: &a.project,
            roles: &a.roles,
            source: &a.source,
            sponsor: &a.sponsor,
            start_date: a.start_date,
            status: a.status,
            theme: &a.theme,
            timezone: &a.timezone,
            updated_at: a.updated_at,
            updated_by: &a.updated_by,
            username: &a.username,
        }
    }
}

/// Pads of the pretty layout: an account's fields inside the array, a
/// key's fields inside the account's `keys`.
const FIELD_PAD: &[u8] = b"    ";
const KEY_PAD: &[u8] = b"        ";

/// `"key": ` on its own line, after `{` or the previous value's comma.
fn json_key(buf: &mut Vec<u8>, pad: &[u8], first: bool, key: &str) {
    buf.extend_from_slice(if first { b"{\n" } else { b",\n" });
    buf.extend_from_slice(pad);
    buf.push(b'"');
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\": ");
}

/// A JSON string: copied as it is when nothing in it needs escaping (what
/// serde_json escapes: `"`, `\\` and control characters), else serde_json's own.
fn json_text(buf: &mut Vec<u8>, s: &str) -> Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *buf, s).map_err(io)
    }
}

fn json_opt_text(buf: &mut Vec<u8>, s: &Option<String>) -> Result<()> {
    match s {
        Some(s) => json_text(buf, s),
        None => {
            buf.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// A value with no line breaks of its own (a date, a time, a number, an
/// enum word, null): serde_json's compact form is its pretty form.
fn json_scalar<T: Serialize + ?Sized>(buf: &mut Vec<u8>, v: &T) -> Result<()> {
    serde_json::to_writer(&mut *buf, v).map_err(io)
}

/// A list or map at an account's field, pretty, its lines padded as deep.
fn json_nested<T: Serialize + ?Sized>(buf: &mut Vec<u8>, v: &T) -> Result<()> {
    let formatter = Nested(serde_json::ser::PrettyFormatter::new(), FIELD_PAD);
    v.serialize(&mut serde_json::Serializer::with_formatter(
        &mut *buf, formatter,
    ))
    .map_err(io)
}

impl AccountView<'_> {
    /// The view as serde_json's pretty printer writes it as an element of
    /// an array (from its `{`, every further line moved in by two), the
    /// same bytes, without serde's escaping pass over every byte of plain
    /// text. Lists and maps still go through serde (usually empty). The
    /// test `the_fast_account_view_prints_what_account_view_prints` holds
    /// the two together.
    pub fn write_element(&self, buf: &mut Vec<u8>) -> Result<()> {
        let p = FIELD_PAD;
        json_key(buf, p, true, "allowlist");
        json_nested(buf, self.allowlist)?;
        json_key(buf, p, false, "company");
        json_opt_text(buf, self.company)?;
        json_key(buf, p, false, "created_at");
        json_scalar(buf, &self.created_at)?;
        json_key(buf, p, false, "created_by");
        json_text(buf, self.created_by)?;
        json_key(buf, p, false, "days_left");
        json_scalar(buf, &self.days_left)?;
        json_key(buf, p, false, "deleted_at");
        json_scalar(buf, &self.deleted_at)?;
        json_key(buf, p, false, "disable_note");
        json_opt_text(buf, self.disable_note)?;
        json_key(buf, p, false, "disable_reason");
        json_scalar(buf, &self.disable_reason)?;
        json_key(buf, p, false, "disabled_at");
        json_scalar(buf, &self.disabled_at)?;
        json_key(buf, p, false, "display_name");
        json_text(buf, self.display_name)?;
        json_key(buf, p, false, "effective_status");
        json_text(buf, self.effective_status)?;
        json_key(buf, p, false, "email");
        json_text(buf, self.email)?;
        json_key(buf, p, false, "end_date");
        json_scalar(buf, &self.end_date)?;
        json_key(buf, p, false, "fields");
        json_nested(buf, self.fields)?;
        json_key(buf, p, false, "groups");
        json_nested(buf, self.groups)?;
        json_key(buf, p, false, "inactivity_exempt");
        json_scalar(buf, &self.inactivity_exempt)?;
        json_key(buf, p, false, "keys");
        if self.keys.is_empty() {
            buf.extend_from_slice(b"[]");
        } else {
            buf.push(b'[');
            for (i, k) in self.keys.iter().enumerate() {
                buf.extend_from_slice(if i == 0 { b"\n      " } else { b",\n      " });
                k.write_element(buf)?;
            }
            buf.extend_from_slice(b"\n    ]");
        }
        json_key(buf, p, false, "kind");
        json_scalar(buf, &self.kind)?;
        json_key(buf, p, false, "language");
        json_opt_text(buf, self.language)?;
        json_key(buf, p, false, "last_login");
        json_scalar(buf, &self.last_login)?;
        json_key(buf, p, false, "notes");
        json_opt_text(buf, self.notes)?;
        json_key(buf, p, false, "password_set");
        json_scalar(buf, &self.password_set)?;
        json_key(buf, p, false, "password_set_at");
        json_scalar(buf, &self.password_set_at)?;
        json_key(buf, p, false, "password_temporary");
        json_scalar(buf, &self.password_temporary)?;
        json_key(buf, p, false, "project");
        json_opt_text(buf, self.project)?;
        json_key(buf, p, false, "roles");
        json_nested(buf, self.roles)?;
        json_key(buf, p, false, "source");
        json_nested(buf, self.source)?;
        json_key(buf, p, false, "sponsor");
        json_opt_text(buf, self.sponsor)?;
        json_key(buf, p, false, "start_date");
        json_scalar(buf, &self.start_date)?;
        json_key(buf, p, false, "status");
        json_scalar(buf, &self.status)?;
        json_key(buf, p, false, "theme");
        json_opt_text(buf, self.theme)?;
        json_key(buf, p, false, "timezone");
        json_opt_text(buf, self.timezone)?;
        json_key(buf, p, false, "updated_at");
        json_scalar(buf, &self.updated_at)?;
        json_key(buf, p, false, "updated_by");
        json_text(buf, self.updated_by)?;
        json_key(buf, p, false, "username");
        json_text(buf, self.username)?;
        buf.extend_from_slice(b"\n  }");
        Ok(())
    }
}

impl KeyView<'_> {
    /// A key inside an account's `keys` (see `AccountView::write_element`).
    fn write_element(&self, buf: &mut Vec<u8>) -> Result<()> {
        let p = KEY_PAD;
        json_key(buf, p, true, "added_at");
        json_scalar(buf, &self.added_at)?;
        json_key(buf, p, false, "added_by");
        json_text(buf, self.added_by)?;
        json_key(buf, p, false, "algorithm");
        json_text(buf, self.algorithm)?;
        json_key(buf, p, false, "comment");
        json_text(buf, self.comment)?;
        json_key(buf, p, false, "expires_on");
        json_scalar(buf, &self.expires_on)?;
        json_key(buf, p, false, "fingerprint");
        json_text(buf, self.fingerprint)?;
        json_key(buf, p, false, "last_used");
        json_scalar(buf, &self.last_used)?;
        json_key(buf, p, false, "public_key");
        json_text(buf, self.public_key)?;
        buf.extend_from_slice(b"\n      }");
        Ok(())
    }
}

pub(super) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    t
}

/// Adds a row of values: each cell escaped, so a value can neither act on
/// the terminal nor break into a cell or line of its own.
pub(super) fn add_row(t: &mut Table, cells: Vec<String>) {
    t.add_row(
        cells
            .iter()
            .map(|c| escape_text(c).into_owned())
            .collect::<Vec<_>>(),
    );
}

/// Writes one line of plain text, escaped (see `crate::text`): the only
/// newline is the one this puts at the end.
pub fn say(out: &mut dyn Write, line: &str) -> Result<()> {
    writeln!(out, "{}", escape_text(line)).map_err(io)
}

fn write_table(out: &mut dyn Write, t: &Table) -> Result<()> {
    for line in t.lines() {
        writeln!(out, "{}", line.trim_end()).map_err(io)?;
    }
    Ok(())
}

/// A JSON array written element by element: the same bytes as
/// `print_json` of the whole list, without holding the list. Nothing is
/// written before the first element or `finish`, so a command refused
/// before its first row prints nothing on stdout.
pub struct JsonRows<'a> {
    out: &'a mut dyn Write,
    any: bool,
    /// One element, kept from row to row.
    buf: Vec<u8>,
}

/// serde_json's pretty layout with every line after the first moved in by
/// `pad`, as the value would print that deep inside the whole document
/// (an array element: two spaces). Only the structural writes (brackets,
/// commas, line breaks) go through `Indent`; strings never hold a raw newline.
struct Nested(serde_json::ser::PrettyFormatter<'static>, &'static [u8]);

/// Adds the pad after each line break a structural write ends with.
struct Indent<'w, W: ?Sized>(&'w mut W, &'static [u8]);

impl<W: Write + ?Sized> Write for Indent<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)?;
        if buf.last() == Some(&b'\n') {
            self.0.write_all(self.1)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl serde_json::ser::Formatter for Nested {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(&mut Indent(w, self.1))
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(&mut Indent(w, self.1))
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(&mut Indent(w, self.1), first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(&mut Indent(w, self.1))
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(&mut Indent(w, self.1))
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(&mut Indent(w, self.1))
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(&mut Indent(w, self.1), first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(&mut Indent(w, self.1))
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(&mut Indent(w, self.1))
    }
}

impl<'a> JsonRows<'a> {
    pub fn new(out: &'a mut dyn Write) -> Result<JsonRows<'a>> {
        Ok(JsonRows {
            out,
            any: false,
            buf: Vec::new(),
        })
    }

    pub fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.buf.clear();
        self.buf
            .extend_from_slice(if self.any { b",\n  " } else { b"[\n  " });
        self.any = true;
        let formatter = Nested(serde_json::ser::PrettyFormatter::new(), b"  ");
        value
            .serialize(&mut serde_json::Serializer::with_formatter(
                &mut self.buf,
                formatter,
            ))
            .map_err(io)?;
        self.out.write_all(&self.buf).map_err(io)
    }

    /// An account as `item` would write its `AccountView`, byte for byte,
    /// written by hand (see `AccountView::write_element`).
    pub fn account(&mut self, view: &AccountView<'_>) -> Result<()> {
        self.buf.clear();
        self.buf
            .extend_from_slice(if self.any { b",\n  " } else { b"[\n  " });
        self.any = true;
        view.write_element(&mut self.buf)?;
        self.out.write_all(&self.buf).map_err(io)
    }

    pub fn finish(self) -> Result<()> {
        self.out
            .write_all(if self.any { b"\n]\n" } else { b"[]\n" })
            .map_err(io)
    }
}

/// Rows of a plain table as they come. Up to `TABLE_BUFFER` rows are laid
/// out together (as a table of a small result always was); past that the
/// columns keep the widths of the first rows and the rest stream through.
pub struct TableRows<'a> {
    out: &'a mut dyn Write,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
    pub count: u64,
}

/// Rows laid out together before a table starts streaming.
pub const TABLE_BUFFER: usize = 1000;

impl<'a> TableRows<'a> {
    pub fn new(out: &'a mut dyn Write, header: &[&str]) -> TableRows<'a> {
        TableRows {
            out,
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            widths: None,
            count: 0,
        }
    }

    pub fn row(&mut self, cells: Vec<String>) -> Result<()> {
        self.count += 1;
        let cells: Vec<String> = cells.iter().map(|c| escape_text(c).into_owned()).collect();
        match &self.widths {
            Some(widths) => {
                let line = fixed_line(&cells, widths);
                writeln!(self.out, "{line}").map_err(io)
            }
            None => {
                self.rows.push(cells);
                if self.rows.len() >= TABLE_BUFFER {
                    self.start_streaming()?;
                }
                Ok(())
            }
        }
    }

    fn start_streaming(&mut self) -> Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        writeln!(self.out, "{}", fixed_line(&self.header, &widths)).map_err(io)?;
        for row in std::mem::take(&mut self.rows) {
            writeln!(self.out, "{}", fixed_line(&row, &widths)).map_err(io)?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    /// Ends the table: `empty` when there was no row, else the footer line.
    pub fn finish(self, empty: &str, footer: Option<String>) -> Result<()> {
        if self.count == 0 {
            return writeln!(self.out, "{empty}").map_err(io);
        }
        if self.widths.is_none() {
            let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
            let mut t = table(&header);
            for row in self.rows {
                t.add_row(row);
            }
            write_table(self.out, &t)?;
        }
        if let Some(footer) = footer {
            writeln!(self.out, "{footer}").map_err(io)?;
        }
        Ok(())
    }
}

/// One line of a streamed table, laid out as the `NOTHING` preset lays out
/// a small one: a space, the cell padded to its column, a space.
fn fixed_line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        line.push(' ');
        line.push_str(cell);
        for _ in cell.chars().count()..*width {
            line.push(' ');
        }
        line.push(' ');
    }
    line.trim_end().to_string()
}

/// The columns of the accounts table, in the console and in `user list`.
pub const ACCOUNT_COLUMNS: [&str; 8] = [
    "USERNAME",
    "NAME",
    "KIND",
    "COMPANY",
    "SPONSOR",
    "STATUS",
    "END",
    "LAST LOGIN",
];

/// Accounts as `user list` prints them, one at a time.
pub enum AccountRows<'a> {
    Json(JsonRows<'a>, NaiveDate),
    Table(TableRows<'a>, NaiveDate, Zone),
}

impl<'a> AccountRows<'a> {
    pub fn new(
        out: &'a mut dyn Write,
        today: NaiveDate,
        zone: Zone,
        json: bool,
    ) -> Result<AccountRows<'a>> {
        Ok(if json {
            AccountRows::Json(JsonRows::new(out)?, today)
        } else {
            AccountRows::Table(TableRows::new(out, &ACCOUNT_COLUMNS), today, zone)
        })
    }

    pub fn row(&mut self, a: &Account) -> Result<()> {
        match self {
            AccountRows::Json(rows, today) => rows.account(&AccountView::new(a, *today)),
            AccountRows::Table(rows, today, zone) => rows.row(account_cells(a, *today, *zone)),
        }
    }

    pub fn finish(self) -> Result<()> {
        match self {
            AccountRows::Json(rows, _) => rows.finish(),
            AccountRows::Table(rows, _, _) => {
                let footer = format!("{} account(s)", rows.count);
                rows.finish("no accounts match", Some(footer))
            }
        }
    }
}

/// The last login is the calendar day it fell on in the viewer's zone.
fn account_cells(a: &Account, today: NaiveDate, zone: Zone) -> Vec<String> {
    let end = match (a.end_date, days_left(a.end_date, today)) {
        (Some(e), Some(d)) if d >= 0 => format!("{e} ({d}d)"),
        (Some(e), _) => e.to_string(),
        _ => "-".into(),
    };
    vec![
        a.username.clone(),
        a.display_name.clone(),
        a.kind.to_string(),
        a.company.clone().unwrap_or_else(|| "-".into()),
        a.sponsor.clone().unwrap_or_else(|| "-".into()),
        status_text(a, today),
        end,
        a.last_login.map_or_else(|| "never".into(), |t| zone.day(t)),
    ]
}

/// The account, its password line (`password`: set when, temporary, expires
/// when) described by `[passwords]` when given.
pub fn print_account_password(
    out: &mut dyn Write,
    a: &Account,
    today: NaiveDate,
    zone: Zone,
    json: bool,
    password: Option<(
        &crate::domain::password_policy::PasswordPolicy,
        DateTime<Utc>,
    )>,
) -> Result<()> {
    if json {
        let mut view = account_view(a, today);
        if let Some((policy, _)) = password {
            view["password_expires_at"] = json!(a
                .credentials
                .password_hash
                .as_ref()
                .and_then(|_| policy.expires_at(a.credentials.password_set_at)));
        }
        return print_json(out, &view);
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let end = match (a.end_date, days_left(a.end_date, today)) {
        (Some(e), Some(d)) if d >= 0 => format!("{e} ({d} days left)"),
        (Some(e), Some(d)) => format!("{e} (ended {} days ago)", -d),
        _ => "-".into(),
    };
    let mut status = status_text(a, today);
    if let Some(note) = &a.disable_note {
        status = format!("{status}: {note}");
    }
    let rows: Vec<(&str, String)> = vec![
        ("username", a.username.clone()),
        ("display name", a.display_name.clone()),
        ("email", a.email.clone()),
        ("kind", a.kind.to_string()),
        ("company", opt(&a.company)),
        ("sponsor", opt(&a.sponsor)),
        ("project", opt(&a.project)),
        ("status", status),
        ("start", a.start_date.to_string()),
        ("end", end),
        ("groups", list(a.groups.iter().cloned().collect())),
        (
            "roles",
            list(a.roles.iter().map(|r| r.to_string()).collect()),
        ),
        (
            "fields",
            list(a.fields.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        ),
        ("timezone", opt(&a.timezone)),
        ("language", opt(&a.language)),
        ("theme", opt(&a.theme)),
        (
            "allowlist",
            list(a.allowlist.iter().map(|n| n.to_string()).collect()),
        ),
        (
            "keys",
            list(
                a.credentials
                    .keys
                    .iter()
                    .map(|k| {
                        format!("{} {}", k.fingerprint, k.comment)
                            .trim()
                            .to_string()
                    })
                    .collect(),
            ),
        ),
        (
            "password",
            match password {
                Some((policy, now)) => policy.describe(&a.credentials, now, zone),
                None if a.credentials.password_hash.is_some() => {
                    format!("set {}", when(a.credentials.password_set_at, zone))
                }
                None => "not set".into(),
            },
        ),
        (
            "inactivity",
            if a.inactivity_exempt {
                "exempt".into()
            } else {
                "policy applies".into()
            },
        ),
        ("notes", opt(&a.notes)),
        (
            "created",
            format!("{} by {}", when(Some(a.created_at), zone), a.created_by),
        ),
        (
            "updated",
            format!("{} by {}", when(Some(a.updated_at), zone), a.updated_by),
        ),
        ("last login", when(a.last_login, zone)),
    ];
    let mut rows = rows;
    if let Some(l) = &a.source {
        let locked: Vec<String> = l
            .owned
            .iter()
            .filter(|f| *f != "username")
            .map(|f| f.replace("group:", "group "))
            .collect();
        rows.push((
            "source",
            format!("{} {} (read-only here: {})", l.source, l.dn, list(locked)),
        ));
    }
    for (label, value) in rows {
        say(out, &format!("{label:<13} {value}"))?;
    }
    Ok(())
}

pub fn print_changed(
    out: &mut dyn Write,
    verb: &str,
    a: &Account,
    today: NaiveDate,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(out, &account_view(a, today));
    }
    let end = a
        .end_date
        .map_or_else(|| "no end date".to_string(), |e| format!("ends {e}"));
    say(
        out,
        &format!(
            "{verb} {} ({}, {}, {end})",
            a.username,
            a.kind,
            status_text(a, today)
        ),
    )
}

/// Added and last used are the days they fell on in the viewer's zone; the
/// expiry is a calendar date.
pub fn print_keys(out: &mut dyn Write, keys: &[SshKey], zone: Zone, json: bool) -> Result<()> {
    if json {
        return print_json(out, &keys.iter().map(key_view).collect::<Vec<_>>());
    }
    if keys.is_empty() {
        return writeln!(out, "no keys").map_err(io);
    }
    let mut t = table(&[
        "FINGERPRINT",
        "TYPE",
        "COMMENT",
        "ADDED",
        "LAST USED",
        "EXPIRES",
    ]);
    for k in keys {
        add_row(
            &mut t,
            vec![
                k.fingerprint.clone(),
                k.algorithm.clone(),
                if k.comment.is_empty() {
                    "-".into()
                } else {
                    k.comment.clone()
                },
                zone.day(k.added_at),
                k.last_used.map_or_else(|| "never".into(), |t| zone.day(t)),
                k.expires_on.map_or_else(|| "-".into(), |d| d.to_string()),
            ],
        );
    }
    write_table(out, &t)
}

pub fn print_sessions(
    out: &mut dyn Write,
    sessions: &[crate::service::sessions::SessionInfo],
    zone: Zone,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(out, sessions);
    }
    if sessions.is_empty() {
        return writeln!(out, "no live sessions").map_err(io);
    }
    let mut t = table(&[
        "ID",
        "ACCOUNT",
        "ADDRESS",
        "METHOD",
        "KIND",
        "STARTED",
        "LAST INPUT",
        "COMMAND",
    ]);
    for s in sessions {
        add_row(
            &mut t,
            vec![
                s.id.to_string(),
                s.account.clone(),
                s.address.clone(),
                s.method.clone(),
                format!("{:?}", s.kind).to_lowercase(),
                zone.second(s.started),
                zone.clock(s.last_input),
                s.command.clone().unwrap_or_else(|| "-".into()),
            ],
        );
    }
    write_table(out, &t)
}

/// The lifecycle plan as it comes, item by item (`lifecycle preview`):
/// the same bytes `print_plan` prints for the whole list.
pub enum PlanRows<'a> {
    Json(JsonRows<'a>),
    Table(TableRows<'a>),
}

impl<'a> PlanRows<'a> {
    pub fn new(out: &'a mut dyn Write, json: bool) -> PlanRows<'a> {
        if json {
            PlanRows::Json(JsonRows {
                out,
                any: false,
                buf: Vec::new(),
            })
        } else {
            PlanRows::Table(TableRows::new(out, &["DATE", "ACCOUNT", "ACTION", "WHY"]))
        }
    }

    pub fn row(&mut self, i: &crate::service::lifecycle::PreviewItem) -> Result<()> {
        match self {
            PlanRows::Json(rows) => rows.item(i),
            PlanRows::Table(rows) => rows.row(vec![
                i.date.to_string(),
                i.username.clone(),
                i.action.clone(),
                i.why.clone(),
            ]),
        }
    }

    pub fn finish(self, empty: &str) -> Result<()> {
        match self {
            PlanRows::Json(rows) => rows.finish(),
            PlanRows::Table(rows) => rows.finish(empty, None),
        }
    }
}

pub fn print_plan(
    out: &mut dyn Write,
    items: &[crate::service::lifecycle::PreviewItem],
    json: bool,
    empty: &str,
) -> Result<()> {
    if json {
        return print_json(out, items);
    }
    if items.is_empty() {
        return say(out, empty);
    }
    let mut t = table(&["DATE", "ACCOUNT", "ACTION", "WHY"]);
    for i in items {
        add_row(
            &mut t,
            vec![
                i.date.to_string(),
                i.username.clone(),
                i.action.clone(),
                i.why.clone(),
            ],
        );
    }
    write_table(out, &t)
}

pub fn print_requests(
    out: &mut dyn Write,
    requests: &[crate::service::requests::Request],
    zone: Zone,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(out, requests);
    }
    if requests.is_empty() {
        return writeln!(out, "no requests").map_err(io);
    }
    let mut t = table(&[
        "ID", "ACCOUNT", "KIND", "END", "STATUS", "BY", "AT", "REASON",
    ]);
    for r in requests {
        add_row(
            &mut t,
            vec![
                format!("#{}", r.id),
                r.account.clone(),
                r.kind.clone(),
                r.end_date.map_or_else(|| "-".into(), |d| d.to_string()),
                format!("{:?}", r.status).to_lowercase(),
                r.requested_by.clone(),
                zone.minute(r.requested_at),
                r.reason.clone(),
            ],
        );
    }
    write_table(out, &t)
}

/// `report orphans`, one finding at a time.
pub enum OrphanRows<'a> {
    Json(JsonRows<'a>),
    Table(TableRows<'a>),
}

impl<'a> OrphanRows<'a> {
    pub fn new(out: &'a mut dyn Write, json: bool) -> Result<OrphanRows<'a>> {
        Ok(if json {
            OrphanRows::Json(JsonRows::new(out)?)
        } else {
            OrphanRows::Table(TableRows::new(out, &["ACCOUNT", "PROBLEM", "DETAIL"]))
        })
    }

    pub fn row(&mut self, o: &crate::service::reports::Orphan) -> Result<()> {
        match self {
            OrphanRows::Json(rows) => rows.item(o),
            OrphanRows::Table(rows) => rows.row(vec![
                o.username.clone(),
                o.problem.clone(),
                o.detail.clone(),
            ]),
        }
    }

    pub fn finish(self) -> Result<()> {
        match self {
            OrphanRows::Json(rows) => rows.finish(),
            OrphanRows::Table(rows) => {
                rows.finish("no orphans: every account is accounted for", None)
            }
        }
    }
}

pub fn print_outbox(
    out: &mut dyn Write,
    entries: &[crate::service::notify::OutboxEntry],
    zone: Zone,
    json: bool,
) -> Result<()> {
    use crate::service::notify::Delivery;
    if json {
        return print_json(out, entries);
    }
    if entries.is_empty() {
        return writeln!(out, "the outbox is empty: every notice went out").map_err(io);
    }
    let mut t = table(&[
        "ID",
        "EVENT",
        "ACCOUNT",
        "TO",
        "STATE",
        "TRIES",
        "NEXT TRY",
        "LAST ERROR",
    ]);
    for e in entries {
        let to = match &e.delivery {
            Delivery::Email { to, .. } => to.join(", "),
            Delivery::Webhook { url, .. } => url.clone(),
        };
        add_row(
            &mut t,
            vec![
                format!("#{}", e.id),
                e.event.clone(),
                e.account.clone(),
                to,
                format!("{:?}", e.state).to_lowercase(),
                e.attempts.to_string(),
                zone.second(e.next_attempt),
                e.last_error.clone().unwrap_or_else(|| "-".into()),
            ],
        );
    }
    write_table(out, &t)
}

pub fn print_groups(out: &mut dyn Write, groups: &[GroupView], json: bool) -> Result<()> {
    if json {
        return print_json(out, groups);
    }
    if groups.is_empty() {
        return writeln!(out, "no groups").map_err(io);
    }
    let mut t = table(&["GROUP", "MEMBERS", "DESCRIPTION"]);
    for g in groups {
        add_row(
            &mut t,
            vec![
                g.group.name.clone(),
                g.members.len().to_string(),
                g.group.description.clone().unwrap_or_else(|| "-".into()),
            ],
        );
    }
    write_table(out, &t)
}

fn describe_change(c: &crate::domain::Change) -> String {
    let show = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("{}: {} -> {}", c.field, show(&c.old), show(&c.new))
}

#[cfg(test)]
fn print_events(out: &mut dyn Write, events: &[AuditEvent], json: bool) -> Result<()> {
    let mut rows = EventRows::new(out, Zone::UTC, json)?;
    for e in events {
        rows.row(e)?;
    }
    rows.finish()
}

/// Audit events as `audit tail` prints them, one at a time.
pub enum EventRows<'a> {
    Json(JsonRows<'a>),
    Lines(&'a mut dyn Write, u64, Zone),
}

impl<'a> EventRows<'a> {
    pub fn new(out: &'a mut dyn Write, zone: Zone, json: bool) -> Result<EventRows<'a>> {
        Ok(if json {
            EventRows::Json(JsonRows::new(out)?)
        } else {
            EventRows::Lines(out, 0, zone)
        })
    }

    pub fn row(&mut self, e: &AuditEvent) -> Result<()> {
        match self {
            EventRows::Json(rows) => rows.item(e),
            EventRows::Lines(out, n, zone) => {
                *n += 1;
                let mut line = format!(
                    "#{} {} {} {} {}",
                    e.seq,
                    zone.second(e.at),
                    e.actor,
                    e.action,
                    e.target.as_deref().unwrap_or("-")
                );
                if let Some(d) = &e.detail {
                    line.push_str(&format!(" ({d})"));
                }
                if !e.changes.is_empty() && e.action != "user.create" {
                    let changes: Vec<String> = e.changes.iter().map(describe_change).collect();
                    line.push_str(&format!(" [{}]", changes.join("; ")));
                }
                say(*out, &line)
            }
        }
    }

    pub fn finish(self) -> Result<()> {
        match self {
            EventRows::Json(rows) => rows.finish(),
            EventRows::Lines(out, 0, _) => writeln!(out, "no events").map_err(io),
            EventRows::Lines(..) => Ok(()),
        }
    }
}

pub fn print_whoami(
    out: &mut dyn Write,
    actor: &Actor,
    account: Option<&Account>,
    today: NaiveDate,
    json: bool,
) -> Result<()> {
    let roles: Vec<String> = actor.roles.iter().map(|r| r.to_string()).collect();
    if json {
        let mut v = json!({"name": actor.name, "roles": roles, "source": actor.source.to_string(), "session": actor.session});
        if let Some(a) = account {
            v["account"] = account_view(a, today);
        }
        return print_json(out, &v);
    }
    match account {
        Some(a) => {
            let end = a
                .end_date
                .map_or_else(|| "no end date".into(), |e| format!("ends {e}"));
            say(
                out,
                &format!(
                    "{} ({}), roles: {}, {}, {end}",
                    a.username,
                    a.display_name,
                    roles.join(", "),
                    status_text(a, today)
                ),
            )
        }
        None => say(
            out,
            &format!(
                "{} (offline operator on this host: all permissions), source {}",
                actor.name, actor.source
            ),
        ),
    }
}

/// `export --format csv`, row by row (the header goes with the first row,
/// so a refused export prints nothing).
pub struct CsvRows<'a> {
    w: csv::Writer<&'a mut dyn Write>,
    declared: &'a [CustomField],
    header: Option<Vec<String>>,
}

impl<'a> CsvRows<'a> {
    pub fn new(out: &'a mut dyn Write, declared: &'a [CustomField]) -> Result<CsvRows<'a>> {
        let w = csv::Writer::from_writer(out);
        let mut header: Vec<String> = [
            "username",
            "display_name",
            "email",
            "kind",
            "company",
            "sponsor",
            "project",
            "start_date",
            "end_date",
            "status",
            "disable_reason",
            "groups",
            "roles",
            "timezone",
            "language",
            "theme",
            "allowlist",
            "keys",
            "created_at",
            "last_login",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        header.extend(declared.iter().map(|f| format!("field:{}", f.name)));
        Ok(CsvRows {
            w,
            declared,
            header: Some(header),
        })
    }

    fn header(&mut self) -> Result<()> {
        match self.header.take() {
            Some(header) => self.w.write_record(&header).map_err(io),
            None => Ok(()),
        }
    }

    pub fn row(&mut self, a: &Account) -> Result<()> {
        self.header()?;
        fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> Cow<'static, str> {
            let mut out = String::new();
            for (i, item) in items.enumerate() {
                if i > 0 {
                    out.push(';');
                }
                use std::fmt::Write as _;
                let _ = write!(out, "{item}");
            }
            Cow::Owned(out)
        }
        fn text(v: &Option<String>) -> Cow<'_, str> {
            Cow::Borrowed(v.as_deref().unwrap_or_default())
        }
        // Borrowed where the account has the text: no copy per cell.
        let cells: [Cow<'_, str>; 20] = [
            Cow::Borrowed(&a.username),
            Cow::Borrowed(&a.display_name),
            Cow::Borrowed(&a.email),
            Cow::Borrowed(a.kind.as_str()),
            text(&a.company),
            text(&a.sponsor),
            text(&a.project),
            Cow::Owned(a.start_date.to_string()),
            a.end_date
                .map_or(Cow::Borrowed(""), |d| Cow::Owned(d.to_string())),
            Cow::Borrowed(a.status.as_str()),
            a.disable_reason
                .map_or(Cow::Borrowed(""), |r| Cow::Borrowed(r.as_str())),
            join(a.groups.iter()),
            join(a.roles.iter()),
            text(&a.timezone),
            text(&a.language),
            text(&a.theme),
            join(a.allowlist.iter()),
            Cow::Owned(a.credentials.keys.len().to_string()),
            Cow::Owned(a.created_at.to_rfc3339()),
            a.last_login
                .map_or(Cow::Borrowed(""), |t| Cow::Owned(t.to_rfc3339())),
        ];
        let declared = self
            .declared
            .iter()
            .map(|f| a.fields.get(&f.name).map_or("", String::as_str));
        for cell in cells.iter().map(|c| c.as_ref()).chain(declared) {
            self.w
                .write_field(formula_guard(cell).as_bytes())
                .map_err(io)?;
        }
        self.w.write_record(None::<&[u8]>).map_err(io)
    }

    pub fn finish(mut self) -> Result<()> {
        self.header()?;
        self.w.flush().map_err(io)
    }
}

/// Whether a spreadsheet would read a cell starting with `c` as a formula
/// (the OWASP CSV-injection list: `=`, `+`, `-`, `@`, tab, carriage return).
fn starts_formula(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// A CSV cell made inert for spreadsheets: a value that starts with a
/// formula character gets a leading `'`. So do values already made of
/// quotes and then such a character, so `unformula` gives every value back.
pub fn formula_guard(cell: &str) -> Cow<'_, str> {
    if cell.trim_start_matches('\'').starts_with(starts_formula) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The inverse of `formula_guard`, for CSV import: drops the one `'` that
/// export put before a value starting (after any quotes) with a formula
/// character; any other value is returned as it is.
pub fn unformula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.trim_start_matches('\'').starts_with(starts_formula) => rest,
        _ => cell,
    }
}

/// `user show`: the account, and what each connector holds for it.
pub fn print_account_with_links(
    out: &mut dyn Write,
    a: &Account,
    links: &[crate::service::connect::Link],
    hosts: &[String],
    today: NaiveDate,
    zone: Zone,
    json: bool,
    password: (
        &crate::domain::password_policy::PasswordPolicy,
        DateTime<Utc>,
    ),
) -> Result<()> {
    if json {
        let mut view = account_view(a, today);
        view["password_expires_at"] = json!(a
            .credentials
            .password_hash
            .as_ref()
            .and_then(|_| password.0.expires_at(a.credentials.password_set_at)));
        view["links"] =
            serde_json::to_value(links).map_err(|e| Error::Failed(format!("encode links: {e}")))?;
        view["hosts"] = serde_json::json!(hosts);
        return print_json(out, &view);
    }
    print_account_password(out, a, today, zone, false, Some(password))?;
    let where_ = if hosts.is_empty() {
        "-".to_string()
    } else {
        hosts.join(", ")
    };
    say(out, &format!("{:<13} {where_}", "logs in on"))?;
    let text = if links.is_empty() {
        "-".to_string()
    } else {
        links
            .iter()
            .map(|l| {
                let mut s = format!(
                    "{} {} id {}",
                    l.connector,
                    l.status.as_str(),
                    l.target_id.as_deref().unwrap_or("-")
                );
                if let Some(e) = l.last_error.as_ref().or(l.notice.as_ref()) {
                    s = format!("{s} ({e})");
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    say(out, &format!("{:<13} {text}", "links"))
}

pub fn print_connectors(
    out: &mut dyn Write,
    list: &[crate::service::connect::ConnectorSummary],
    json: bool,
) -> Result<()> {
    if json {
        return print_json(out, list);
    }
    if list.is_empty() {
        return writeln!(out, "no connectors configured").map_err(io);
    }
    let mut t = table(&[
        "NAME",
        "TYPE",
        "SCOPE",
        "IN SYNC",
        "PENDING",
        "FAILED",
        "DISPUTED",
        "JOBS",
        "LAST ERROR",
    ]);
    for c in list {
        add_row(
            &mut t,
            vec![
                c.name.clone(),
                c.kind.clone(),
                c.scope.join(","),
                c.in_sync.to_string(),
                c.pending.to_string(),
                c.failed.to_string(),
                c.disputed.to_string(),
                c.jobs_queued.to_string(),
                c.last_error.clone().unwrap_or_else(|| "-".into()),
            ],
        );
    }
    write_table(out, &t)
}

pub fn print_reconcile(
    out: &mut dyn Write,
    report: &crate::service::connect::ReconcileReport,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(out, report);
    }
    say(out, &report.summary())?;
    for note in &report.notes {
        say(out, &format!("note: {note}"))?;
    }
    if !report.rows.is_empty() {
        let mut t = table(&["ACCOUNT", "CLASS", "FIELD", "TENURE", "TARGET", "FIX"]);
        for r in &report.rows {
            let fix = if r.fixing {
                "queued"
            } else if report.dry_run {
                "-"
            } else {
                "job waiting"
            };
            if r.drift.is_empty() {
                let mut target = r.target_id.clone().unwrap_or_else(|| "(absent)".into());
                if let Some(why) = &r.why {
                    target = format!("{target}: {why}");
                }
                add_row(
                    &mut t,
                    vec![
                        r.account.clone(),
                        r.class.clone(),
                        "-".into(),
                        "-".into(),
                        target,
                        fix.into(),
                    ],
                );
            }
            for d in &r.drift {
                add_row(
                    &mut t,
                    vec![
                        r.account.clone(),
                        r.class.clone(),
                        d.field.clone(),
                        d.tenure.clone(),
                        d.target.clone(),
                        fix.into(),
                    ],
                );
            }
        }
        write_table(out, &t)?;
    }
    if !report.unmatched.is_empty() {
        say(out, "unmatched in the target (orphans):")?;
        let mut t = table(&["OBJECT", "WHY", "STATE"]);
        for u in &report.unmatched {
            let state = if u.disabled {
                "disabled now"
            } else if u.enabled {
                "enabled"
            } else {
                "disabled"
            };
            add_row(&mut t, vec![u.object.clone(), u.why.clone(), state.into()]);
        }
        write_table(out, &t)?;
    }
    Ok(())
}

pub fn print_connector_status(
    out: &mut dyn Write,
    status: &crate::service::connect::ConnectorStatus,
    zone: Zone,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(out, status);
    }
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".into(), |t| zone.second(t));
    if status.links.is_empty() {
        say(out, &format!("{}: no accounts linked yet", status.name))?;
    } else {
        let mut t = table(&[
            "ACCOUNT",
            "STATUS",
            "TARGET ID",
            "TRIES",
            "LAST ERROR / NOTICE",
            "LAST SUCCESS",
        ]);
        for l in &status.links {
            let error = match (&l.last_error, &l.notice) {
                (Some(e), _) => e.clone(),
                (None, Some(n)) => n.clone(),
                (None, None) => "-".into(),
            };
            add_row(
                &mut t,
                vec![
                    l.account.clone(),
                    l.status.as_str().to_string(),
                    l.target_id.clone().unwrap_or_else(|| "-".into()),
                    l.attempts.to_string(),
                    error,
                    fmt(l.last_success),
                ],
            );
        }
        write_table(out, &t)?;
    }
    if status.jobs.is_empty() {
        return say(out, "no jobs queued");
    }
    say(out, &format!("{} jobs queued:", status.jobs.len()))?;
    let mut t = table(&[
        "JOB",
        "ACCOUNT",
        "ACTION",
        "TRIES",
        "NEXT TRY",
        "LAST ERROR",
    ]);
    for j in &status.jobs {
        add_row(
            &mut t,
            vec![
                format!("#{}", j.id),
                j.account.clone(),
                j.action.as_str().to_string(),
                j.attempts.to_string(),
                fmt(Some(j.next_attempt)),
                j.last_error.clone().unwrap_or_else(|| "-".into()),
            ],
        );
    }
    write_table(out, &t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::requests::{Request, RequestStatus};
    use crate::service::sessions::{SessionInfo, SessionKind};
    use chrono::TimeZone;

    /// Text that would clear the screen, retitle the window and forge a line.
    const HOSTILE: &str = "x\x1b[2J\x1b]0;owned\x07\n#9999 root user.purge bob\u{9b}\u{202e}";

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
    }

    fn many(n: usize) -> Vec<Account> {
        (0..n)
            .map(|i| {
                let mut a = account();
                a.username = format!("user{i:05}");
                a.display_name = if i % 7 == 0 {
                    "A rather longer name".into()
                } else {
                    "N".into()
                };
                a
            })
            .collect()
    }

    fn streamed(accounts: &[Account], json: bool) -> String {
        let mut out = Vec::new();
        let mut rows = AccountRows::new(&mut out, at().date_naive(), Zone::UTC, json).unwrap();
        for a in accounts {
            rows.row(a).unwrap();
        }
        rows.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn streamed_json_is_byte_for_byte_the_buffered_document() {
        for n in [0, 1, 3] {
            let accounts = many(n);
            let mut buffered = Vec::new();
            let views: Vec<Value> = accounts
                .iter()
                .map(|a| account_view(a, at().date_naive()))
                .collect();
            print_json(&mut buffered, &views).unwrap();
            assert_eq!(
                streamed(&accounts, true),
                String::from_utf8(buffered).unwrap()
            );
        }
    }

    #[test]
    fn a_streamed_table_keeps_the_layout_of_a_laid_out_one() {
        // Small: laid out by comfy-table. The same rows through the streaming
        // layout give the same bytes, so a long table reads like a short one.
        let small = many(20);
        let laid_out = streamed(&small, false);
        let header = ACCOUNT_COLUMNS;
        let rows: Vec<Vec<String>> = small
            .iter()
            .map(|a| account_cells(a, at().date_naive(), Zone::UTC))
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut fixed = String::new();
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        fixed.push_str(&fixed_line(&header, &widths));
        fixed.push('\n');
        for r in &rows {
            fixed.push_str(&fixed_line(r, &widths));
            fixed.push('\n');
        }
        fixed.push_str("20 account(s)\n");
        assert_eq!(laid_out, fixed);

        // Long: streamed after the first TABLE_BUFFER rows, columns still aligned.
        let text = streamed(&many(TABLE_BUFFER + 500), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), TABLE_BUFFER + 500 + 2);
        let name_at = lines[0].find(" NAME").unwrap() + 1;
        assert!(lines[1..=TABLE_BUFFER + 500].iter().all(|l| l
            .get(name_at..)
            .is_some_and(|rest| rest.starts_with('N') || rest.starts_with('A'))));
        assert_eq!(
            lines.last().unwrap(),
            &format!("{} account(s)", TABLE_BUFFER + 500)
        );
    }

    fn account() -> Account {
        serde_json::from_value(json!({
            "username": "bob", "display_name": "Bob", "email": "bob@x.io", "kind": "contractor",
            "start_date": "2026-01-01", "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "created_by": "x",
            "updated_at": "2026-01-01T00:00:00Z", "updated_by": "x"
        }))
        .unwrap()
    }

    #[test]
    fn the_fast_account_view_prints_what_account_view_prints() {
        let today = at().date_naive();
        let bare = account();
        let mut full = account();
        full.company = Some("Acme".into());
        full.sponsor = Some("root".into());
        full.project = Some("p".into());
        full.end_date = Some(today + chrono::Duration::days(9));
        full.groups = ["b", "a"].iter().map(|g| g.to_string()).collect();
        full.roles = [crate::domain::Role::User, crate::domain::Role::Admin]
            .into_iter()
            .collect();
        full.fields = [("z".to_string(), "1".to_string()), ("a".into(), "2".into())]
            .into_iter()
            .collect();
        full.timezone = Some("Europe/Paris".into());
        full.language = Some("fr".into());
        full.theme = Some("light".into());
        full.notes = Some(HOSTILE.into());
        full.allowlist = vec!["10.0.0.0/8".parse().unwrap()];
        full.inactivity_exempt = true;
        full.credentials.keys = vec![key(), key()];
        full.credentials.keys[1].last_used = Some(at());
        full.credentials.keys[1].expires_on = Some(today);
        full.credentials.password_hash = Some("$argon2id$x".into());
        full.credentials.password_set_at = Some(at());
        full.credentials.password_temporary = true;
        full.status = crate::domain::Status::Disabled;
        full.disable_reason = Some(crate::domain::DisableReason::Manual);
        full.disable_note = Some("done".into());
        full.disabled_at = Some(at());
        full.deleted_at = Some(at());
        full.last_login = Some(at());
        full.source = Some(crate::domain::source::SourceLink {
            source: "corp".into(),
            id: "4f1c".into(),
            dn: "uid=bob,ou=people,dc=example,dc=org".into(),
            owned: ["email".to_string(), "display_name".to_string()]
                .into_iter()
                .collect(),
        });
        // Text that needs escaping in every string the view writes by hand.
        let mut odd = full.clone();
        let weird = "q\"uote \\ back \u{1} \u{7f} \u{e9}\u{1F600} \t\r\n end";
        odd.username = format!("u{weird}");
        odd.display_name = weird.into();
        odd.email = weird.into();
        odd.company = Some(weird.into());
        odd.created_by = weird.into();
        odd.updated_by = weird.into();
        odd.credentials.keys[0].comment = weird.into();
        odd.credentials.keys[0].added_by = weird.into();
        odd.fields = [(weird.to_string(), weird.to_string())]
            .into_iter()
            .collect();
        odd.groups = [weird.to_string()].into_iter().collect();
        for a in [&bare, &full, &odd] {
            let slow = serde_json::to_string_pretty(&account_view(a, today)).unwrap();
            let fast = serde_json::to_string_pretty(&AccountView::new(a, today)).unwrap();
            assert_eq!(fast, slow);
            assert!(!slow.contains("argon2"), "no secret in the view");
        }
        // Streamed as array elements (nested objects and arrays, empty ones
        // too): the bytes of the whole document printed at once.
        let mut streamed = Vec::new();
        let mut rows = JsonRows::new(&mut streamed).unwrap();
        for a in [&bare, &full, &odd, &bare] {
            rows.account(&AccountView::new(a, today)).unwrap();
        }
        rows.finish().unwrap();
        let mut three = Vec::new();
        print_json(
            &mut three,
            &[
                account_view(&bare, today),
                account_view(&full, today),
                account_view(&odd, today),
                account_view(&bare, today),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            String::from_utf8(three).unwrap()
        );
    }

    fn key() -> SshKey {
        SshKey {
            fingerprint: "SHA256:abc".into(),
            algorithm: "ssh-ed25519".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            comment: HOSTILE.into(),
            added_at: at(),
            added_by: "root".into(),
            last_used: None,
            expires_on: None,
        }
    }

    /// Stdout of a printer: no escape byte, no C1 or bidi control, and
    /// exactly `lines` lines (a value cannot add one).
    fn inert(print: impl FnOnce(&mut Vec<u8>) -> Result<()>, lines: usize) -> String {
        let mut out = Vec::new();
        print(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::text::is_unsafe_char(c)),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), lines, "{text}");
        assert!(text.contains("\\x1b[2J"), "shown escaped: {text}");
        text
    }

    #[test]
    fn key_comments_print_escaped_in_key_list_and_user_show() {
        inert(|o| print_keys(o, &[key()], Zone::UTC, false), 2);
        let mut a = account();
        a.credentials.keys.push(key());
        let today = at().date_naive();
        let text = inert(
            |o| print_account_password(o, &a, today, Zone::UTC, false, None),
            24,
        );
        assert!(text.contains("\\u{202e}"), "{text}");
    }

    #[test]
    fn audit_lines_escape_actor_target_and_detail() {
        let event = AuditEvent {
            seq: 7,
            at: at(),
            actor: HOSTILE.into(),
            source: "ssh:127.0.0.1".into(),
            session: None,
            action: "auth.fail".into(),
            target: Some(HOSTILE.into()),
            changes: vec![],
            detail: Some(HOSTILE.into()),
            prev_hash: String::new(),
            hash: String::new(),
        };
        inert(|o| print_events(o, &[event], false), 1);
    }

    #[test]
    fn session_commands_and_request_reasons_print_escaped() {
        let session = SessionInfo {
            id: 1,
            account: "bob".into(),
            address: "127.0.0.1".into(),
            method: "publickey".into(),
            fingerprint: None,
            started: at(),
            last_input: at(),
            kind: SessionKind::Exec,
            command: Some(HOSTILE.into()),
        };
        inert(|o| print_sessions(o, &[session], Zone::UTC, false), 2);
        let request = Request {
            id: 1,
            kind: "extend".into(),
            account: "bob".into(),
            end_date: Some(at().date_naive()),
            reason: HOSTILE.into(),
            requested_by: "bob".into(),
            requested_at: at(),
            status: RequestStatus::Pending,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            accounts: Vec::new(),
        };
        inert(|o| print_requests(o, &[request], Zone::UTC, false), 2);
    }

    #[test]
    fn json_output_keeps_the_value_and_escapes_it_as_json() {
        let mut out = Vec::new();
        print_keys(&mut out, &[key()], Zone::UTC, true).unwrap();
        assert!(!out.contains(&0x1b));
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back[0]["comment"], HOSTILE);
    }

    #[test]
    fn csv_cells_that_start_a_formula_get_a_quote_and_import_drops_it() {
        for (value, exported) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("plain", "plain"),
            ("'quoted", "'quoted"),
            ("a=b", "a=b"),
            ("2027-03-31", "2027-03-31"),
            ("", ""),
        ] {
            assert_eq!(formula_guard(value), exported, "{value:?}");
            assert_eq!(unformula(exported), value, "{exported:?}");
        }
        // A hand-written guard (as a spreadsheet user types it) is dropped too.
        assert_eq!(unformula("'@team"), "@team");
    }

    /// The row as export wrote it before rows borrowed their cells: a
    /// vector of owned cells, each guarded, written as one record.
    fn csv_row_as_before(a: &Account, declared: &[CustomField]) -> Vec<String> {
        let join = |v: Vec<String>| v.join(";");
        let mut row = vec![
            a.username.clone(),
            a.display_name.clone(),
            a.email.clone(),
            a.kind.to_string(),
            a.company.clone().unwrap_or_default(),
            a.sponsor.clone().unwrap_or_default(),
            a.project.clone().unwrap_or_default(),
            a.start_date.to_string(),
            a.end_date.map(|d| d.to_string()).unwrap_or_default(),
            a.status.to_string(),
            a.disable_reason.map(|r| r.to_string()).unwrap_or_default(),
            join(a.groups.iter().cloned().collect()),
            join(a.roles.iter().map(|r| r.to_string()).collect()),
            a.timezone.clone().unwrap_or_default(),
            a.language.clone().unwrap_or_default(),
            a.theme.clone().unwrap_or_default(),
            join(a.allowlist.iter().map(|n| n.to_string()).collect()),
            a.credentials.keys.len().to_string(),
            a.created_at.to_rfc3339(),
            a.last_login.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        row.extend(
            declared
                .iter()
                .map(|f| a.fields.get(&f.name).cloned().unwrap_or_default()),
        );
        row.iter().map(|c| formula_guard(c).into_owned()).collect()
    }

    #[test]
    fn csv_rows_are_byte_for_byte_what_export_wrote_before() {
        let declared: Vec<CustomField> = serde_json::from_value(json!([
            {"name": "cost_center"}, {"name": "nda"}, {"name": "absent"}
        ]))
        .unwrap();
        let mut full = account();
        full.display_name = "Bob \"the\" Builder, Jr.".into();
        full.company = Some("-minus".into());
        full.sponsor = Some("alice".into());
        full.project = Some("p\nq".into());
        full.end_date = NaiveDate::from_ymd_opt(2027, 3, 1);
        full.status = crate::domain::Status::Disabled;
        full.disable_reason = Some(crate::domain::DisableReason::Manual);
        full.groups = ["dev".to_string(), "ops".to_string()].into();
        full.roles = [crate::domain::Role::Admin, crate::domain::Role::User].into();
        full.timezone = Some("Europe/Berlin".into());
        full.language = Some("de".into());
        full.theme = Some("light".into());
        full.allowlist = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        full.credentials.keys = vec![key(), key()];
        full.last_login = Some(at());
        full.fields = [
            ("cost_center".to_string(), "=SUM(A1)".to_string()),
            ("nda".to_string(), "yes".to_string()),
        ]
        .into();
        for a in [account(), full] {
            let mut before = Vec::new();
            {
                let mut w = csv::Writer::from_writer(&mut before);
                w.write_record(csv_row_as_before(&a, &declared)).unwrap();
                w.flush().unwrap();
            }
            let mut out = Vec::new();
            let mut rows = CsvRows::new(&mut out, &declared).unwrap();
            rows.row(&a).unwrap();
            rows.finish().unwrap();
            let text = String::from_utf8(out).unwrap();
            let row = text.split_once('\n').unwrap().1;
            assert_eq!(row, String::from_utf8(before).unwrap());
        }
    }

    #[test]
    fn csv_export_guards_every_cell() {
        let mut a = account();
        a.display_name = "=cmd|' /C calc'!A0".into();
        a.company = Some("@evil".into());
        let mut out = Vec::new();
        let mut rows = CsvRows::new(&mut out, &[]).unwrap();
        rows.row(&a).unwrap();
        rows.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("'=cmd"), "{row}");
        assert!(row.contains(",'@evil,"), "{row}");
    }
}
