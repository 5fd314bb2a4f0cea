//! The directory reader of `[[sources]]`: binds (StartTLS or ldaps:// over
//! rustls), then reads the whole scope with the paged results control
//! (RFC 2696), each page under the timeout. It returns every entry or an
//! error — a refused bind, a timeout, a connection lost between pages, a
//! result code other than success (a missing base DN, a size limit) — never
//! a partial list, so the service can never take a cut-short read for
//! people who left. Decisions are the service's (`service::sources`).

use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Scope, SearchEntry};

use crate::config::{SearchScope, SourceConfig};
use crate::connect::ldap::{bound, describe};
use crate::domain::source::DirEntry;
use crate::service::sources::SourceReader;

/// Reads LDAP and Active Directory sources.
#[derive(Default)]
pub struct LdapReader;

impl SourceReader for LdapReader {
    fn read(&self, source: &SourceConfig) -> Result<Vec<DirEntry>, String> {
        read_all(source)
    }
}

/// AD's objectGUID (16 bytes, the first three groups little-endian) as
/// the text AD tools print.
pub fn guid_text(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// An entry as the sync reads it: attribute names lowercased, a binary id
/// turned into text.
pub fn entry_of(source: &SourceConfig, e: SearchEntry) -> DirEntry {
    let id_attr = source.rules.id_attribute.to_ascii_lowercase();
    let mut out = DirEntry {
        dn: e.dn,
        attrs: Default::default(),
    };
    for (k, v) in e.attrs {
        let key = k.to_ascii_lowercase();
        let v = if key == id_attr && key == "objectguid" {
            v.iter()
                .map(|s| guid_text(s.as_bytes()).unwrap_or_else(|| s.clone()))
                .collect()
        } else {
            v
        };
        out.attrs.entry(key).or_default().extend(v);
    }
    for (k, v) in e.bin_attrs {
        let key = k.to_ascii_lowercase();
        let values: Vec<String> = if key == id_attr {
            v.iter()
                .map(|b| guid_text(b).unwrap_or_else(|| hex::encode(b)))
                .collect()
        } else {
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        };
        out.attrs.entry(key).or_default().extend(values);
    }
    out
}

/// The whole scope, or why not.
pub fn read_all(source: &SourceConfig) -> Result<Vec<DirEntry>, String> {
    let timeout = Duration::from_secs(source.timeout_seconds);
    let mut conn = bound(
        &source.url,
        source.starttls,
        &source.bind_dn,
        &source.bind_password_file,
        timeout,
    )?;
    let scope = match source.scope {
        SearchScope::Sub => Scope::Subtree,
        SearchScope::One => Scope::OneLevel,
    };
    let attrs = source.rules.attributes();
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(source.page_size)),
    ];
    let what = format!("search {}", source.base_dn);
    let mut stream = conn
        .with_timeout(timeout)
        .streaming_search_with(adapters, &source.base_dn, scope, &source.filter, attrs)
        .map_err(|e| describe(&what, e))?;
    let mut out = Vec::new();
    loop {
        match stream.next() {
            Ok(Some(entry)) => out.push(entry_of(source, SearchEntry::construct(entry))),
            Ok(None) => break,
            Err(e) => {
                let read = out.len();
                return Err(describe(&format!("{what} stopped after {read} entries"), e));
            }
        }
    }
    let result = stream.result();
    if result.rc != 0 {
        return Err(format!(
            "{what} ended with result {} after {} entries: {}",
            result.rc,
            out.len(),
            if result.text.is_empty() {
                "(no text)".to_string()
            } else {
                result.text.chars().take(200).collect()
            }
        ));
    }
    let _ = conn.unbind();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_guid_bytes_read_as_ad_prints_them() {
        // {6F9619FF-8B86-D011-B42D-00C04FC964FF} as stored on the wire.
        let bytes = [
            0xFF, 0x19, 0x96, 0x6F, 0x86, 0x8B, 0x11, 0xD0, 0xB4, 0x2D, 0x00, 0xC0, 0x4F, 0xC9,
            0x64, 0xFF,
        ];
        assert_eq!(
            guid_text(&bytes).unwrap(),
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        assert_eq!(guid_text(&bytes[..4]), None);
    }
}
