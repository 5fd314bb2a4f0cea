//! The console's colours as a struct of meaningful styles (gitui's habit):
//! screens ask for `theme.danger` or `theme.status(..)`, never for red. The
//! shipped themes are TOML files in `themes/`, embedded at build time so the
//! binary needs no files beside it. `NO_COLOR` keeps the modifiers and drops
//! every colour.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use crate::domain::lifecycle::Effective;

/// The themes shipped in `themes/`, by name.
pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("unknown theme '{0}' (shipped: default, light, high-contrast)")]
    Unknown(String),
    #[error("theme {theme}: {why}")]
    Parse { theme: String, why: String },
    #[error("theme {theme}: style {style}: unknown colour '{colour}'")]
    Colour {
        theme: String,
        style: String,
        colour: String,
    },
}

/// One style as written in a theme file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleDef {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    dim: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underlined: bool,
    #[serde(default)]
    reversed: bool,
}

macro_rules! theme_styles {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Every style a screen may use. A theme file must set each one, so a
        /// style added here fails the shipped-themes test until every theme has it.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Theme {
            pub name: String,
            $($(#[doc = $doc])* pub $name: Style,)*
        }

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct StylesDef {
            $($name: StyleDef,)*
        }

        impl Theme {
            fn from_def(name: String, def: StylesDef) -> Result<Theme, ThemeError> {
                Ok(Theme {
                    $($name: def.$name.style(&name, stringify!($name))?,)*
                    name,
                })
            }

            fn map(mut self, f: impl Fn(Style) -> Style) -> Theme {
                $(self.$name = f(self.$name);)*
                self
            }
        }
    };
}

theme_styles! {
    /// Ordinary text.
    text,
    /// Less important text: hints, empty values.
    muted,
    /// The top line and block titles.
    title,
    /// Table headers.
    header,
    /// The row under the cursor.
    selected,
    /// Rows marked with Space for a bulk action.
    marked,
    border,
    /// The border of the focused block or field, and popups.
    border_focus,
    /// Key names in help and hints.
    key,
    /// Text being typed (search, prompts, form fields).
    input,
    /// A field whose value does not validate.
    invalid,
    /// A change that went through.
    ok,
    /// Errors and destructive questions.
    danger,
    /// Attention: ends soon, unsaved input.
    warning,
    status_active,
    status_staged,
    status_expired,
    status_disabled,
    status_deleted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    styles: StylesDef,
}

impl StyleDef {
    fn style(&self, theme: &str, style: &str) -> Result<Style, ThemeError> {
        let colour = |text: &Option<String>| -> Result<Option<Color>, ThemeError> {
            match text {
                None => Ok(None),
                Some(c) => c
                    .parse::<Color>()
                    .map(Some)
                    .map_err(|_| ThemeError::Colour {
                        theme: theme.to_string(),
                        style: style.to_string(),
                        colour: c.clone(),
                    }),
            }
        };
        let mut s = Style::default();
        if let Some(fg) = colour(&self.fg)? {
            s = s.fg(fg);
        }
        if let Some(bg) = colour(&self.bg)? {
            s = s.bg(bg);
        }
        for (on, m) in [
            (self.bold, Modifier::BOLD),
            (self.dim, Modifier::DIM),
            (self.italic, Modifier::ITALIC),
            (self.underlined, Modifier::UNDERLINED),
            (self.reversed, Modifier::REVERSED),
        ] {
            if on {
                s = s.add_modifier(m);
            }
        }
        Ok(s)
    }
}

impl Theme {
    /// Parses a theme file's text.
    pub fn parse(label: &str, text: &str) -> Result<Theme, ThemeError> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Parse {
            theme: label.to_string(),
            why: e.to_string(),
        })?;
        Theme::from_def(file.name, file.styles)
    }

    /// A shipped theme by name.
    pub fn named(name: &str) -> Result<Theme, ThemeError> {
        let (label, text) = SHIPPED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ThemeError::Unknown(name.to_string()))?;
        Theme::parse(label, text)
    }

    /// The theme to use for a console: the named one (default when unknown
    /// or absent), without colour when the client asked for `NO_COLOR`.
    pub fn choose(name: Option<&str>, no_color: bool) -> Theme {
        let theme = name
            .and_then(|n| Theme::named(n).ok())
            .or_else(|| Theme::named("default").ok())
            .unwrap_or_else(Theme::fallback);
        if no_color {
            theme.monochrome()
        } else {
            theme
        }
    }

    /// The same theme with every colour removed: modifiers (bold, reversed,
    /// underline) still tell the selection and the states apart.
    pub fn monochrome(self) -> Theme {
        let mut t = self.map(|s| Style {
            fg: None,
            bg: None,
            ..s
        });
        // Without colour, the selection must still show.
        if t.selected.add_modifier.is_empty() {
            t.selected = t.selected.add_modifier(Modifier::REVERSED);
        }
        t.name = format!("{} (no colour)", t.name);
        t
    }

    /// Used only if the embedded default failed to parse (the test below
    /// makes sure it does not): plain modifiers, no colour.
    fn fallback() -> Theme {
        let plain = Style::default();
        let bold = plain.add_modifier(Modifier::BOLD);
        Theme {
            name: "fallback".into(),
            text: plain,
            muted: plain,
            title: bold,
            header: bold,
            selected: plain.add_modifier(Modifier::REVERSED),
            marked: bold,
            border: plain,
            border_focus: bold,
            key: bold,
            input: plain,
            invalid: bold,
            ok: plain,
            danger: bold,
            warning: bold,
            status_active: plain,
            status_staged: plain,
            status_expired: bold,
            status_disabled: bold,
            status_deleted: plain,
        }
    }

    pub fn status(&self, e: Effective) -> Style {
        match e {
            Effective::Active => self.status_active,
            Effective::Staged => self.status_staged,
            Effective::Expired => self.status_expired,
            Effective::Disabled(_) => self.status_disabled,
            Effective::Deleted => self.status_deleted,
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::choose(None, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_theme_parses_and_names_itself() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("themes");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SHIPPED.iter().map(|(n, _)| format!("{n}.toml")).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "every file in themes/ is embedded");
        let mut known: Vec<String> = crate::domain::validate::THEMES
            .iter()
            .map(|n| format!("{n}.toml"))
            .collect();
        known.sort();
        assert_eq!(
            known, embedded,
            "accounts may choose exactly the shipped themes"
        );
        for (name, text) in SHIPPED {
            let theme = Theme::parse(name, text).unwrap();
            assert_eq!(&theme.name, name);
            // States must differ from each other in every theme.
            let states = [
                theme.status_active,
                theme.status_staged,
                theme.status_expired,
                theme.status_disabled,
                theme.status_deleted,
            ];
            for (i, a) in states.iter().enumerate() {
                for b in &states[i + 1..] {
                    assert_ne!(a, b, "{name}: two states look the same");
                }
            }
            assert_ne!(theme.selected, theme.text, "{name}: selection invisible");
        }
    }

    #[test]
    fn no_color_keeps_modifiers_and_drops_every_colour() {
        let t = Theme::choose(Some("high-contrast"), true);
        for s in [t.text, t.selected, t.danger, t.status_active, t.marked] {
            assert_eq!((s.fg, s.bg), (None, None));
        }
        assert!(t.status_disabled.add_modifier.contains(Modifier::REVERSED));
        assert!(!t.selected.add_modifier.is_empty());
    }

    #[test]
    fn a_bad_theme_says_which_style_and_colour() {
        let text = SHIPPED[0].1.replace("fg = \"green\"", "fg = \"greem\"");
        let err = Theme::parse("mine", &text).unwrap_err().to_string();
        assert!(err.contains("greem") && err.contains("ok"), "{err}");
        let missing = SHIPPED[0].1.replace("ok = { fg = \"green\" }\n", "");
        let err = Theme::parse("mine", &missing).unwrap_err().to_string();
        assert!(err.contains("missing field `ok`"), "{err}");
        assert!(Theme::named("solarized").is_err());
        assert_eq!(Theme::choose(Some("solarized"), false).name, "default");
    }
}
