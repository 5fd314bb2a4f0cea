//! The create and clone form: the standard fields, the custom fields the
//! config declares and a template picker; each field is checked as it is
//! typed with the same domain rules the service applies, then a review
//! stage shows every value before anything is written.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::Config;
use crate::domain::dates::parse_date;
use crate::domain::policy::{CustomField, FieldType};
use crate::domain::validate::{check_field_value, validate_email, validate_username};
use crate::domain::{Account, Kind};
use crate::service::accounts::AccountInput;
use crate::term::input::Key;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldKey {
    Template,
    Username,
    DisplayName,
    Email,
    Kind,
    Company,
    Sponsor,
    Project,
    Start,
    End,
    Groups,
    Custom(String),
}

#[derive(Clone, Debug)]
pub struct Field {
    pub key: FieldKey,
    pub label: String,
    pub value: String,
    /// Allowed values: Left/Right cycle through them.
    pub choices: Vec<String>,
    pub required: bool,
    /// What is wrong with the value, shown beside it as it is typed.
    pub error: Option<String>,
    /// A hint shown while the field is empty.
    pub hint: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    Editing,
    /// Every value shown for review; Enter writes.
    Review,
    /// Written: the new account.
    Done(Box<Account>),
}

#[derive(Clone, Debug)]
pub struct Form {
    /// `Some(source)` when cloning.
    pub source: Option<String>,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub stage: Stage,
    /// The service's refusal on the last submit.
    pub error: Option<String>,
    /// On the done screen: what became of the notification about it.
    pub notices: Option<String>,
}

/// What the form needs to know that only the service can answer.
pub trait Lookup {
    fn account_exists(&self, name: &str) -> bool;
    fn email_taken(&self, email: &str) -> bool;
}

/// What a key did to the form.
#[derive(Debug, PartialEq, Eq)]
pub enum FormOutcome {
    /// Nothing more to do.
    Stay,
    /// Leave the form.
    Cancel,
    /// The review was accepted: write it.
    Submit,
    /// On the done screen: open the new account.
    OpenCreated(String),
}

fn field(key: FieldKey, label: &str, required: bool, hint: &'static str) -> Field {
    Field {
        key,
        label: label.to_string(),
        value: String::new(),
        choices: Vec::new(),
        required,
        error: None,
        hint,
    }
}

impl Form {
    pub fn new(config: &Config, today: NaiveDate) -> Form {
        let mut fields = Vec::new();
        if !config.templates.is_empty() {
            let mut t = field(FieldKey::Template, "Template", false, "←/→ to pick");
            t.choices = std::iter::once("(none)".to_string())
                .chain(config.templates.keys().cloned())
                .collect();
            t.value = "(none)".into();
            fields.push(t);
        }
        fields.push(field(
            FieldKey::Username,
            "Username",
            true,
            "login, e.g. jdoe",
        ));
        fields.push(field(
            FieldKey::DisplayName,
            "Display name",
            true,
            "Jane Doe",
        ));
        fields.push(field(FieldKey::Email, "Email", true, "jane@example.com"));
        let mut kind = field(FieldKey::Kind, "Kind", true, "←/→ to pick");
        kind.choices = Kind::ALL.iter().map(|k| k.to_string()).collect();
        kind.value = Kind::Contractor.to_string();
        fields.push(kind);
        fields.push(field(FieldKey::Company, "Company", false, ""));
        fields.push(field(
            FieldKey::Sponsor,
            "Sponsor",
            false,
            "an existing username",
        ));
        fields.push(field(FieldKey::Project, "Project", false, ""));
        let mut start = field(
            FieldKey::Start,
            "Start date",
            true,
            "YYYY-MM-DD, today, +7d",
        );
        start.value = today.to_string();
        fields.push(start);
        fields.push(field(
            FieldKey::End,
            "End date",
            false,
            "YYYY-MM-DD or +90d",
        ));
        fields.push(field(FieldKey::Groups, "Groups", false, "comma separated"));
        for custom in &config.custom_fields {
            let mut f = field(
                FieldKey::Custom(custom.name.clone()),
                custom.label(),
                custom.required,
                "",
            );
            if custom.field_type == FieldType::Choice {
                f.choices = std::iter::once(String::new())
                    .chain(custom.choices.iter().cloned())
                    .collect();
            }
            fields.push(f);
        }
        let focus = fields
            .iter()
            .position(|f| f.key == FieldKey::Username)
            .unwrap_or(0);
        let mut form = Form {
            source: None,
            fields,
            focus,
            stage: Stage::Editing,
            error: None,
            notices: None,
        };
        form.sync_required(config);
        form
    }

    /// The end date is required for the kinds the policy limits.
    fn sync_required(&mut self, config: &Config) {
        let kind: Option<Kind> = self.value(&FieldKey::Kind).parse().ok();
        let needs_end = kind.and_then(|k| config.policy.max_duration(k)).is_some();
        if let Some(end) = self.fields.iter_mut().find(|f| f.key == FieldKey::End) {
            end.required = needs_end;
        }
    }

    /// A form pre-filled from `source`: never its identity (username, name,
    /// email) nor its credentials; its end date keeps the same span.
    pub fn clone_of(config: &Config, today: NaiveDate, source: &Account) -> Form {
        let mut form = Form::new(config, today);
        form.source = Some(source.username.clone());
        let span = source
            .end_date
            .map(|end| (end - source.start_date).num_days());
        for f in &mut form.fields {
            f.value = match &f.key {
                FieldKey::Kind => source.kind.to_string(),
                FieldKey::Company => source.company.clone().unwrap_or_default(),
                FieldKey::Sponsor => source.sponsor.clone().unwrap_or_default(),
                FieldKey::Project => source.project.clone().unwrap_or_default(),
                FieldKey::Groups => source.groups.iter().cloned().collect::<Vec<_>>().join(", "),
                FieldKey::End => span
                    .map(|days| format!("+{}d", days.max(0)))
                    .unwrap_or_default(),
                FieldKey::Custom(name) => source.fields.get(name).cloned().unwrap_or_default(),
                _ => continue,
            };
        }
        form.sync_required(config);
        form
    }

    pub fn value(&self, key: &FieldKey) -> &str {
        self.fields
            .iter()
            .find(|f| &f.key == key)
            .map_or("", |f| f.value.as_str())
    }

    fn set(&mut self, key: &FieldKey, value: String) {
        if let Some(f) = self.fields.iter_mut().find(|f| &f.key == key) {
            f.value = value;
        }
    }

    pub fn title(&self) -> String {
        match &self.source {
            Some(s) => format!("Clone {s} into a new account"),
            None => "New account".into(),
        }
    }

    /// One key while editing or reviewing.
    pub fn handle(
        &mut self,
        key: &Key,
        config: &Config,
        today: NaiveDate,
        lookup: &dyn Lookup,
    ) -> FormOutcome {
        match &self.stage {
            Stage::Done(account) => {
                return match key {
                    Key::Enter => FormOutcome::OpenCreated(account.username.clone()),
                    Key::Esc | Key::Char('q') => FormOutcome::Cancel,
                    _ => FormOutcome::Stay,
                }
            }
            Stage::Review => {
                return match key {
                    Key::Enter | Key::Char('y') => FormOutcome::Submit,
                    Key::Esc | Key::Char('n') | Key::Backspace => {
                        self.stage = Stage::Editing;
                        FormOutcome::Stay
                    }
                    _ => FormOutcome::Stay,
                }
            }
            Stage::Editing => {}
        }
        let count = self.fields.len();
        match key {
            Key::Esc => return FormOutcome::Cancel,
            Key::Tab | Key::Down => self.focus = (self.focus + 1) % count.max(1),
            Key::BackTab | Key::Up => self.focus = (self.focus + count.max(1) - 1) % count.max(1),
            Key::Enter => {
                self.validate_all(config, today, lookup);
                match self.fields.iter().position(|f| f.error.is_some()) {
                    Some(bad) => self.focus = bad,
                    None => {
                        self.error = None;
                        self.stage = Stage::Review;
                    }
                }
            }
            Key::Left | Key::Right => {
                let forward = *key == Key::Right;
                if let Some(f) = self.fields.get_mut(self.focus) {
                    if !f.choices.is_empty() {
                        let at = f.choices.iter().position(|c| *c == f.value).unwrap_or(0);
                        let n = f.choices.len();
                        let next = if forward {
                            (at + 1) % n
                        } else {
                            (at + n - 1) % n
                        };
                        f.value = f.choices.get(next).cloned().unwrap_or_default();
                        let chosen = f.key.clone();
                        if chosen == FieldKey::Template {
                            self.apply_template(config, today);
                        }
                        self.check(self.focus, config, today, lookup);
                    }
                }
            }
            Key::Backspace => {
                if let Some(f) = self.fields.get_mut(self.focus) {
                    if f.choices.is_empty() {
                        f.value.pop();
                        self.check(self.focus, config, today, lookup);
                    }
                }
            }
            Key::Ctrl('u') => {
                if let Some(f) = self.fields.get_mut(self.focus) {
                    if f.choices.is_empty() {
                        f.value.clear();
                        self.check(self.focus, config, today, lookup);
                    }
                }
            }
            Key::Char(c) => self.type_text(&c.to_string(), config, today, lookup),
            Key::Paste(text) => {
                let line = text.lines().next().unwrap_or("").to_string();
                self.type_text(&line, config, today, lookup)
            }
            _ => {}
        }
        self.sync_required(config);
        FormOutcome::Stay
    }

    fn type_text(&mut self, text: &str, config: &Config, today: NaiveDate, lookup: &dyn Lookup) {
        if let Some(f) = self.fields.get_mut(self.focus) {
            if f.choices.is_empty() {
                f.value.push_str(text);
                self.check(self.focus, config, today, lookup);
            } else if let Some(c) = f
                .choices
                .iter()
                .find(|c| !c.is_empty() && c.starts_with(text))
                .cloned()
            {
                // Typing the first letter of a choice picks it.
                f.value = c;
                if f.key == FieldKey::Template {
                    self.apply_template(config, today);
                }
            }
        }
    }

    /// A template sets the kind, company, project, groups and end date.
    fn apply_template(&mut self, config: &Config, today: NaiveDate) {
        let Some(t) = config
            .templates
            .get(self.value(&FieldKey::Template))
            .cloned()
        else {
            return;
        };
        if let Some(kind) = t.kind {
            self.set(&FieldKey::Kind, kind.to_string());
        }
        if let Some(c) = &t.company {
            self.set(&FieldKey::Company, c.clone());
        }
        if let Some(p) = &t.project {
            self.set(&FieldKey::Project, p.clone());
        }
        if !t.groups.is_empty() {
            self.set(
                &FieldKey::Groups,
                t.groups.iter().cloned().collect::<Vec<_>>().join(", "),
            );
        }
        if let Some(days) = t.duration_days {
            let start = parse_date(self.value(&FieldKey::Start), today).unwrap_or(today);
            self.set(
                &FieldKey::End,
                (start + chrono::Duration::days(i64::from(days))).to_string(),
            );
        }
        for f in &mut self.fields {
            if let FieldKey::Custom(name) = &f.key {
                let declared = config
                    .custom_fields
                    .iter()
                    .any(|c| &c.name == name && c.required);
                f.required = declared || t.required_fields.contains(name);
            }
        }
    }

    fn validate_all(&mut self, config: &Config, today: NaiveDate, lookup: &dyn Lookup) {
        for i in 0..self.fields.len() {
            self.check(i, config, today, lookup);
        }
    }

    /// Checks field `i` with the domain's rules; the service checks again on write.
    fn check(&mut self, i: usize, config: &Config, today: NaiveDate, lookup: &dyn Lookup) {
        let kind: Option<Kind> = self.value(&FieldKey::Kind).parse().ok();
        let start = parse_date(self.value(&FieldKey::Start), today).ok();
        let Some(f) = self.fields.get(i) else { return };
        let v = f.value.trim();
        let error = if v.is_empty() {
            let end_needed = f.key == FieldKey::End
                && kind.and_then(|k| config.policy.max_duration(k)).is_some();
            (f.required || end_needed).then(|| match kind {
                Some(k) if end_needed => format!("a {k} account needs an end date"),
                _ => format!("{} is required", f.label),
            })
        } else {
            match &f.key {
                FieldKey::Template | FieldKey::Kind | FieldKey::DisplayName => None,
                FieldKey::Company | FieldKey::Project | FieldKey::Groups => None,
                FieldKey::Username => validate_username(v)
                    .err()
                    .or_else(|| lookup.account_exists(v).then(|| format!("'{v}' is taken"))),
                FieldKey::Email => validate_email(v).err().or_else(|| {
                    lookup
                        .email_taken(v)
                        .then(|| format!("'{v}' belongs to another account"))
                }),
                FieldKey::Sponsor => {
                    (!lookup.account_exists(v)).then(|| format!("no account named '{v}'"))
                }
                FieldKey::Start => parse_date(v, today).err(),
                FieldKey::End => match parse_date(v, today) {
                    Err(e) => Some(e),
                    Ok(end) => end_problem(config, kind, start.unwrap_or(today), end, today),
                },
                FieldKey::Custom(name) => {
                    custom(config, name).and_then(|c| check_field_value(c, v, today).err())
                }
            }
        };
        if let Some(f) = self.fields.get_mut(i) {
            f.error = error;
        }
    }

    /// The values as the service takes them.
    pub fn input(&self, today: NaiveDate) -> (String, AccountInput) {
        let text = |key: &FieldKey| {
            let v = self.value(key).trim().to_string();
            (!v.is_empty()).then_some(v)
        };
        let template = text(&FieldKey::Template).filter(|t| t != "(none)");
        let mut fields = BTreeMap::new();
        for f in &self.fields {
            if let FieldKey::Custom(name) = &f.key {
                if !f.value.trim().is_empty() {
                    fields.insert(name.clone(), f.value.trim().to_string());
                }
            }
        }
        let input = AccountInput {
            display_name: text(&FieldKey::DisplayName),
            email: text(&FieldKey::Email),
            kind: self.value(&FieldKey::Kind).parse().ok(),
            company: text(&FieldKey::Company),
            sponsor: text(&FieldKey::Sponsor),
            project: text(&FieldKey::Project),
            start_date: text(&FieldKey::Start).and_then(|v| parse_date(&v, today).ok()),
            end_date: text(&FieldKey::End).and_then(|v| parse_date(&v, today).ok()),
            groups: text(&FieldKey::Groups).map(|g| {
                g.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            fields,
            template,
            ..Default::default()
        };
        (self.value(&FieldKey::Username).trim().to_string(), input)
    }

    /// Label and value of every field, dates resolved, for the review stage.
    pub fn review(&self, today: NaiveDate) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|f| {
                let v = f.value.trim();
                let shown = match f.key {
                    FieldKey::Start | FieldKey::End if !v.is_empty() => {
                        parse_date(v, today).map_or_else(|_| v.to_string(), |d| d.to_string())
                    }
                    _ if v.is_empty() => "-".to_string(),
                    _ => v.to_string(),
                };
                (f.label.clone(), shown)
            })
            .collect()
    }
}

fn custom<'a>(config: &'a Config, name: &str) -> Option<&'a CustomField> {
    config.custom_fields.iter().find(|c| c.name == name)
}

fn end_problem(
    config: &Config,
    kind: Option<Kind>,
    start: NaiveDate,
    end: NaiveDate,
    today: NaiveDate,
) -> Option<String> {
    if end < start {
        return Some(format!("before the start date {start}"));
    }
    let days = kind.and_then(|k| config.policy.max_duration(k))?;
    let latest = start.max(today) + chrono::Duration::days(i64::from(days));
    (end > latest).then(|| format!("beyond the {days}-day maximum (latest {latest})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Known;
    impl Lookup for Known {
        fn account_exists(&self, name: &str) -> bool {
            name == "alice"
        }
        fn email_taken(&self, email: &str) -> bool {
            email == "alice@example.com"
        }
    }

    fn config() -> Config {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"),
        )
        .unwrap();
        Config::parse(&text, "config.example.toml", std::path::Path::new("/tmp")).unwrap()
    }

    fn typed(form: &mut Form, c: &Config, text: &str) {
        let today = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
        for ch in text.chars() {
            form.handle(&Key::Char(ch), c, today, &Known);
        }
    }

    fn at(form: &mut Form, key: FieldKey) {
        form.focus = form.fields.iter().position(|f| f.key == key).unwrap();
    }

    fn error(form: &Form, key: FieldKey) -> Option<String> {
        form.fields
            .iter()
            .find(|f| f.key == key)
            .unwrap()
            .error
            .clone()
    }

    #[test]
    fn fields_are_checked_as_they_are_typed() {
        let c = config();
        let today = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
        let mut form = Form::new(&c, today);
        at(&mut form, FieldKey::Username);
        typed(&mut form, &c, "Bob");
        assert!(error(&form, FieldKey::Username)
            .unwrap()
            .contains("invalid username"));
        form.handle(&Key::Ctrl('u'), &c, today, &Known);
        typed(&mut form, &c, "alice");
        assert_eq!(
            error(&form, FieldKey::Username).unwrap(),
            "'alice' is taken"
        );
        at(&mut form, FieldKey::Email);
        typed(&mut form, &c, "bob@");
        assert!(error(&form, FieldKey::Email).is_some());
        typed(&mut form, &c, "example.com");
        assert_eq!(error(&form, FieldKey::Email), None);
        at(&mut form, FieldKey::Custom("cost_center".into()));
        typed(&mut form, &c, "xx");
        assert!(error(&form, FieldKey::Custom("cost_center".into())).is_some());
        at(&mut form, FieldKey::End);
        typed(&mut form, &c, "+9999d");
        assert!(error(&form, FieldKey::End).unwrap().contains("maximum"));
    }

    #[test]
    fn enter_stops_at_the_first_bad_field_then_reviews_then_submits() {
        let c = config();
        let today = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
        let mut form = Form::new(&c, today);
        form.handle(&Key::Enter, &c, today, &Known);
        assert_eq!(form.stage, Stage::Editing);
        assert_eq!(form.fields[form.focus].key, FieldKey::Username);
        typed(&mut form, &c, "bob");
        form.handle(&Key::Tab, &c, today, &Known);
        typed(&mut form, &c, "Bob Builder");
        form.handle(&Key::Tab, &c, today, &Known);
        typed(&mut form, &c, "bob@example.com");
        // A contractor needs an end date.
        form.handle(&Key::Enter, &c, today, &Known);
        assert_eq!(form.fields[form.focus].key, FieldKey::End);
        typed(&mut form, &c, "+30d");
        form.handle(&Key::Enter, &c, today, &Known);
        assert_eq!(form.stage, Stage::Review);
        let review = form.review(today);
        assert!(review.contains(&("End date".into(), "2026-02-09".into())));
        assert_eq!(
            form.handle(&Key::Enter, &c, today, &Known),
            FormOutcome::Submit
        );
        let (name, input) = form.input(today);
        assert_eq!(name, "bob");
        assert_eq!(input.kind, Some(Kind::Contractor));
        assert_eq!(input.end_date, NaiveDate::from_ymd_opt(2026, 2, 9));
    }

    #[test]
    fn a_template_fills_kind_groups_and_end_and_makes_its_fields_required() {
        let c = config();
        let today = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
        let mut form = Form::new(&c, today);
        at(&mut form, FieldKey::Template);
        while form.value(&FieldKey::Template) != "vendor-support" {
            form.handle(&Key::Right, &c, today, &Known);
        }
        assert_eq!(form.value(&FieldKey::Kind), "vendor");
        assert_eq!(form.value(&FieldKey::Groups), "vendors");
        assert_eq!(form.value(&FieldKey::End), "2026-02-09");
        let nda = form
            .fields
            .iter()
            .find(|f| f.key == FieldKey::Custom("nda_signed".into()))
            .unwrap();
        assert!(nda.required);
        assert_eq!(
            form.input(today).1.template.as_deref(),
            Some("vendor-support")
        );
    }
}
