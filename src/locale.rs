//! What a person reads, in their own terms: the language of the console and
//! of the notices they are mailed (a catalogue of strings per language,
//! compiled in from `assets/i18n/*.toml`), and the timezone instants are
//! shown in (stored UTC, shown in the viewer's zone with the zone named).
//! Pure: no I/O, nothing global but the compiled-in catalogues.
//!
//! The catalogue is plain TOML (`[section] key = "text with {name}"`), read
//! with the `toml` crate tenure already uses, placeholders filled by the same
//! renderer as the notice templates. Two languages and short texts need
//! neither plural rules nor a message syntax; a test holds every key and
//! every placeholder to be in each language.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The languages tenure speaks. English is the default and the fallback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    #[default]
    En,
    De,
}

/// Every language: its code (what `prefs set --language` takes) and catalogue.
pub const LANGS: [(Lang, &str, &str); 2] = [
    (Lang::En, "en", include_str!("../assets/i18n/en.toml")),
    (Lang::De, "de", include_str!("../assets/i18n/de.toml")),
];

impl Lang {
    pub fn code(self) -> &'static str {
        LANGS
            .iter()
            .find(|(l, _, _)| *l == self)
            .map_or("en", |(_, c, _)| c)
    }

    /// `de`, `de-DE`, `de_AT.UTF-8` → German; anything unknown → English.
    pub fn from_code(code: Option<&str>) -> Lang {
        let Some(code) = code else {
            return Lang::En;
        };
        let base = code
            .split(['-', '_', '.'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        LANGS
            .iter()
            .find(|(_, c, _)| *c == base)
            .map_or(Lang::En, |(l, _, _)| *l)
    }

    /// Whether `code` names a language tenure has (for `prefs set`).
    pub fn known(code: &str) -> bool {
        LANGS.iter().any(|(_, c, _)| *c == code)
    }

    /// The text of `key` in this language (English if it lacks one, the key
    /// itself if nobody has it: a missing string shows, it does not panic).
    pub fn tr(self, key: &str) -> &'static str {
        let find = |lang: Lang| CATALOGUES.get(&lang).and_then(|c| c.get(key));
        match find(self).or_else(|| find(Lang::En)) {
            Some(text) => text.as_str(),
            None => missing(key),
        }
    }

    /// `tr` with `{name}` placeholders filled.
    pub fn trf(self, key: &str, vars: &[(&str, &str)]) -> String {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        crate::domain::notice::render(self.tr(key), &vars)
    }
}

/// The key, kept for the life of the process the first time it is missed.
fn missing(key: &str) -> &'static str {
    static MISSED: LazyLock<std::sync::Mutex<HashMap<String, &'static str>>> =
        LazyLock::new(Default::default);
    let mut missed = match MISSED.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    missed
        .entry(key.to_string())
        .or_insert_with(|| Box::leak(key.to_string().into_boxed_str()))
}

type Catalogue = HashMap<String, String>;

static CATALOGUES: LazyLock<HashMap<Lang, Catalogue>> = LazyLock::new(|| {
    LANGS
        .iter()
        .map(|(lang, _, text)| (*lang, parse(text).unwrap_or_default()))
        .collect()
});

/// A catalogue as `section.key` → text.
pub fn parse(text: &str) -> Result<Catalogue, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Catalogue::new();
    flatten("", &table, &mut out)?;
    Ok(out)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Catalogue) -> Result<(), String> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(s) => {
                out.insert(name, s.clone());
            }
            toml::Value::Table(t) => flatten(&name, t, out)?,
            _ => return Err(format!("{name}: expected text")),
        }
    }
    Ok(())
}

/// Where instants are shown: the viewer's IANA zone, or UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Zone(Option<Tz>);

impl Zone {
    pub const UTC: Zone = Zone(None);

    /// The zone an account chose; UTC when it chose none (or one unknown).
    pub fn named(name: Option<&str>) -> Zone {
        Zone(name.and_then(|n| n.parse::<Tz>().ok()))
    }

    /// The IANA name, or `UTC`.
    pub fn name(self) -> &'static str {
        self.0.map_or("UTC", |tz| tz.name())
    }

    fn format(self, t: DateTime<Utc>, pattern: &str) -> String {
        match self.0 {
            Some(tz) => t.with_timezone(&tz).format(pattern).to_string(),
            None => t.format(pattern).to_string(),
        }
    }

    /// `2027-03-31 14:05 CEST`: the zone's abbreviation (or offset) names it,
    /// so a time near a DST change is never ambiguous.
    pub fn minute(self, t: DateTime<Utc>) -> String {
        self.format(t, "%Y-%m-%d %H:%M %Z")
    }

    /// `2027-03-31 14:05:09 CEST`.
    pub fn second(self, t: DateTime<Utc>) -> String {
        self.format(t, "%Y-%m-%d %H:%M:%S %Z")
    }

    /// `2027-03-31 14:05:09` in a column whose heading names the zone.
    pub fn second_bare(self, t: DateTime<Utc>) -> String {
        self.format(t, "%Y-%m-%d %H:%M:%S")
    }

    /// `2027-03-31 14:05` in a column whose heading names the zone.
    pub fn minute_bare(self, t: DateTime<Utc>) -> String {
        self.format(t, "%Y-%m-%d %H:%M")
    }

    /// `03-31 14:05`, in a narrow column whose heading names the zone.
    pub fn short_bare(self, t: DateTime<Utc>) -> String {
        self.format(t, "%m-%d %H:%M")
    }

    /// The calendar day the instant falls on in this zone: `2027-03-31`.
    pub fn day(self, t: DateTime<Utc>) -> String {
        self.format(t, "%Y-%m-%d")
    }

    /// `14:05:09 CEST`.
    pub fn clock(self, t: DateTime<Utc>) -> String {
        self.format(t, "%H:%M:%S %Z")
    }

    /// `14:05:09`, in a column whose heading names the zone.
    pub fn clock_bare(self, t: DateTime<Utc>) -> String {
        self.format(t, "%H:%M:%S")
    }

    /// The short name for a column heading at `t` (`CET`, `UTC`, `+0530`…).
    pub fn abbreviation(self, t: DateTime<Utc>) -> String {
        self.format(t, "%Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(text: &str) -> BTreeSet<String> {
        let re = regex::Regex::new(r"\{([a-z_]+)\}").unwrap();
        re.captures_iter(text).map(|c| c[1].to_string()).collect()
    }

    #[test]
    fn every_key_is_in_every_language_with_the_same_placeholders() {
        let all: Vec<(&str, Catalogue)> = LANGS
            .iter()
            .map(|(_, code, text)| (*code, parse(text).expect("the catalogue parses")))
            .collect();
        let (_, english) = &all[0];
        assert!(
            english.len() > 100,
            "the console's chrome is in the catalogue"
        );
        for (code, catalogue) in &all[1..] {
            let theirs: BTreeSet<&String> = catalogue.keys().collect();
            let ours: BTreeSet<&String> = english.keys().collect();
            assert_eq!(
                ours.difference(&theirs).collect::<Vec<_>>(),
                Vec::<&&String>::new(),
                "keys missing in {code}"
            );
            assert_eq!(
                theirs.difference(&ours).collect::<Vec<_>>(),
                Vec::<&&String>::new(),
                "keys in {code} that English lacks"
            );
            for (key, text) in english {
                assert_eq!(
                    placeholders(text),
                    placeholders(&catalogue[key]),
                    "placeholders of {key} in {code}"
                );
                assert!(!catalogue[key].trim().is_empty(), "{key} empty in {code}");
            }
        }
    }

    #[test]
    fn a_language_is_picked_by_its_code_and_falls_back_to_english() {
        assert_eq!(Lang::from_code(Some("de")), Lang::De);
        assert_eq!(Lang::from_code(Some("de_AT.UTF-8")), Lang::De);
        assert_eq!(Lang::from_code(Some("fr")), Lang::En);
        assert_eq!(Lang::from_code(None), Lang::En);
        assert_eq!(Lang::De.tr("console.help.title"), "Hilfe");
        assert_eq!(Lang::De.tr("no.such.key"), "no.such.key");
        assert_eq!(
            Lang::En.trf("console.header.count", &[("count", "3")]),
            "3 accounts"
        );
    }

    #[test]
    fn instants_are_shown_in_the_viewers_zone_and_name_it() {
        let winter: DateTime<Utc> = "2026-12-02T05:30:00Z".parse().unwrap();
        let summer: DateTime<Utc> = "2026-07-02T05:30:00Z".parse().unwrap();
        let berlin = Zone::named(Some("Europe/Berlin"));
        assert_eq!(berlin.minute(winter), "2026-12-02 06:30 CET");
        assert_eq!(berlin.minute(summer), "2026-07-02 07:30 CEST");
        assert_eq!(Zone::UTC.minute(winter), "2026-12-02 05:30 UTC");
        let tokyo = Zone::named(Some("Asia/Tokyo"));
        assert_eq!(tokyo.second(winter), "2026-12-02 14:30:00 JST");
        // An instant late in the UTC day is the next calendar day east of it.
        let late: DateTime<Utc> = "2026-12-02T23:30:00Z".parse().unwrap();
        assert_eq!(berlin.day(late), "2026-12-03");
        assert_eq!(Zone::named(Some("Not/AZone")), Zone::UTC);
        assert_eq!(berlin.name(), "Europe/Berlin");
    }
}
