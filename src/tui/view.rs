//! Drawing: read-only, no I/O. One function per screen; every style comes
//! from the theme.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::app::{count_text, list_names, status, App, Popup, Screen, SortKey};
use super::form::{Field, FieldKey, Form, Stage};
use super::keymap::{Scope, KEYMAP};
use super::theme::Theme;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let t = &app.theme;
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = app.trf(
            "console.header.too_small",
            &[
                ("width", &area.width.to_string()),
                ("height", &area.height.to_string()),
                ("min_width", &MIN_WIDTH.to_string()),
                ("min_height", &MIN_HEIGHT.to_string()),
            ],
        );
        frame.render_widget(
            Paragraph::new(text)
                .style(t.warning)
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let roles: Vec<String> = app.actor.roles.iter().map(|r| r.to_string()).collect();
    let count = if app.hits.indexing {
        app.tr("console.header.indexing").to_string()
    } else {
        app.trf(
            "console.header.count",
            &[("count", &app.account_count.to_string())],
        )
    };
    let title = app.trf(
        "console.header.title",
        &[
            ("name", &app.actor.name),
            ("roles", &roles.join(", ")),
            ("count", &count),
        ],
    );
    frame.render_widget(Paragraph::new(title).style(t.title), header);
    match app.screen {
        Screen::Accounts => accounts(app, frame, body),
        Screen::Detail => detail(app, frame, body),
        Screen::Keys => keys(app, frame, body),
        Screen::Form => {
            if let Some(form) = &app.form {
                form_screen(app, form, frame, body)
            }
        }
        Screen::Lifecycle => plan(app, frame, body),
        Screen::Orphans => orphans(app, frame, body),
        Screen::Requests => requests(app, frame, body),
        Screen::Outbox => outbox(app, frame, body),
        Screen::Sessions => sessions(app, frame, body),
        Screen::Lockouts => {
            app.lockouts
                .draw((&app.theme, app.lang, app.zone), app.selected, frame, body)
        }
        Screen::Connectors => app
            .connectors
            .draw(&app.theme, app.zone, app.selected, frame, body),
        Screen::Hosts => app.hosts.draw(&app.theme, app.selected, frame, body),
        Screen::Tokens => app.tokens.draw(
            (&app.theme, app.lang, app.zone),
            app.key_selected,
            app.services.today(),
            frame,
            body,
        ),
        Screen::Audit => audit(app, frame, body),
        Screen::Help => help(app, frame, body),
    }
    frame.render_widget(Paragraph::new(footer_line(app)), footer);
    if let Some(popup) = &app.popup {
        draw_popup(app, popup, frame, body);
    }
}

fn footer_line(app: &App) -> Line<'static> {
    let t = &app.theme;
    if let Some(line) = &app.command {
        return Line::from(vec![
            Span::styled(":", t.key),
            Span::styled(line.clone(), t.input),
            Span::styled("▏", t.input),
        ]);
    }
    if app.searching {
        return Line::from(vec![
            Span::styled("/", t.key),
            Span::styled(app.query.clone(), t.input),
            Span::styled("▏", t.input),
            Span::styled(app.tr("console.hint.search_keep"), t.muted),
        ]);
    }
    if let Some((error, text)) = &app.message {
        return Line::from(Span::styled(
            text.clone(),
            if *error { t.danger } else { t.ok },
        ));
    }
    use super::keymap::Action as A;
    // Each hint names the action it starts: one the actor may not do here is
    // not offered (`App::offers`, the service's own rule).
    // The second of each is the hint's catalogue key (`console.hint.KEY`).
    let hints: &[(&str, &str, Option<A>)] = match app.screen {
        Screen::Accounts => &[
            ("/", "search", None),
            ("Enter", "open", None),
            ("d", "disable", Some(A::Disable)),
            ("x", "extend", Some(A::Extend)),
            ("n", "new", Some(A::Create)),
            ("Space", "mark", None),
            (":", "command", None),
            ("?", "help", None),
            ("q", "quit", None),
        ],
        Screen::Detail if app.self_service() => &[
            ("p", "my_keys", Some(A::Keys)),
            ("w", "password", Some(A::Password)),
            ("t", "totp", Some(A::Totp)),
            ("x", "ask_time", Some(A::Extend)),
            ("?", "help", None),
            ("q", "quit", None),
        ],
        Screen::Detail => &[
            ("Esc", "back", None),
            ("d", "disable", Some(A::Disable)),
            ("e", "enable", Some(A::Enable)),
            ("x", "extend", Some(A::Extend)),
            ("p", "keys", Some(A::Keys)),
            ("c", "clone", Some(A::Clone)),
            ("K", "kill", Some(A::Kill)),
            ("?", "help", None),
        ],
        Screen::Keys => &[
            ("a", "add_paste", Some(A::AddKey)),
            ("d", "remove", Some(A::RemoveKey)),
            ("Esc", "back", None),
        ],
        Screen::Form => match app.form.as_ref().map(|f| &f.stage) {
            Some(Stage::Review) if app.form_as_request => &[
                ("Enter", "submit_request", None),
                ("Esc", "back_to_form", None),
            ],
            Some(Stage::Review) => &[("Enter", "create", None), ("Esc", "back_to_form", None)],
            Some(Stage::Done(_)) => &[("Enter", "open_it", None), ("Esc", "back", None)],
            _ => &[
                ("Tab/↑↓", "field", None),
                ("←/→", "choose", None),
                ("Enter", "review", None),
                ("Esc", "cancel", None),
            ],
        },
        Screen::Sessions => &[
            ("K", "kill", Some(A::Kill)),
            ("Esc", "back", None),
            ("?", "help", None),
        ],
        Screen::Tokens => &[
            ("d", "revoke", Some(A::RevokeToken)),
            ("Esc", "back", None),
            ("?", "help", None),
        ],
        Screen::Lockouts => &[
            ("u", "lift", Some(A::Unlock)),
            ("Esc", "back", None),
            ("?", "help", None),
        ],
        Screen::Connectors => &[
            ("Enter", "failed_drifted", None),
            ("r", "retry", Some(A::RetryConnector)),
            ("R", "reconcile", Some(A::ReconcileConnector)),
            ("Esc", "back", None),
        ],
        Screen::Hosts => &[
            ("d", "remove", Some(A::RemoveHost)),
            ("Esc", "back", None),
            ("?", "help", None),
        ],
        Screen::Requests => &[
            ("a", "approve", Some(A::Approve)),
            ("x", "deny", Some(A::Deny)),
            ("Esc", "back", None),
        ],
        Screen::Audit => &[("f", "filter", None), ("Esc", "back", None)],
        _ => &[
            ("Esc", "back", None),
            ("?", "help", None),
            ("q", "quit", None),
        ],
    };
    let mut spans = Vec::new();
    for (k, what, action) in hints {
        if action.is_some_and(|a| !app.offers(a)) {
            continue;
        }
        spans.push(Span::styled(format!(" {k}"), t.key));
        let what = app.tr(&format!("console.hint.{what}"));
        spans.push(Span::styled(format!(" {what} "), t.muted));
    }
    Line::from(spans)
}

pub(crate) fn block<'a>(t: &Theme, title: String) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(t.border)
        .title(Span::styled(title, t.title))
}

fn end_text(app: &App, end: Option<chrono::NaiveDate>, today: chrono::NaiveDate) -> String {
    match end {
        Some(end) => {
            let left = (end - today).num_days();
            if left >= 0 {
                format!("{end} ({left}d)")
            } else {
                format!("{end} ({})", app.tr("console.accounts.past"))
            }
        }
        None => "-".into(),
    }
}

fn accounts(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    // The exec output's columns (`crate::cli::ACCOUNT_COLUMNS`) in the viewer's words.
    const COLUMNS: [&str; 8] = [
        "console.columns.username",
        "console.columns.name",
        "console.columns.kind",
        "console.columns.company",
        "console.columns.sponsor",
        "console.columns.status",
        "console.columns.end",
        "console.columns.last_login",
    ];
    // At 80 columns the company, sponsor and last login give way (the detail has them).
    let wide = area.width >= 110;
    let shown: &[usize] = if wide {
        &[0, 1, 2, 3, 4, 5, 6, 7]
    } else {
        &[0, 1, 2, 5, 6]
    };
    let widths: Vec<Constraint> = shown
        .iter()
        .map(|c| match c {
            0 => Constraint::Length(14),
            1 => Constraint::Fill(2),
            2 => Constraint::Length(10),
            3 => Constraint::Fill(1),
            4 => Constraint::Length(10),
            5 => Constraint::Length(19),
            6 => Constraint::Length(17),
            _ => Constraint::Length(10),
        })
        .collect();
    let sorted = app.sort.column();
    let header = Row::new(shown.iter().map(|i| {
        let name = app.tr(COLUMNS.get(*i).copied().unwrap_or_default());
        if *i == sorted && (app.sort != SortKey::Username || app.reverse) {
            Cell::from(format!("{name}{}", if app.reverse { "▼" } else { "▲" }))
        } else {
            Cell::from(name)
        }
    }))
    .style(t.header);
    // Only the rows that fit are built: the table may hold a great many.
    let height = usize::from(area.height.saturating_sub(3)).max(1);
    let rows = app.rows.iter().take(height).map(|a| {
        let (word, e) = status(a, app.today);
        let marked = app.marked.contains(&a.username);
        let name = if marked {
            format!("✓ {}", a.username)
        } else {
            a.username.clone()
        };
        let soon = a
            .end_date
            .is_some_and(|end| (end - app.today).num_days() <= 14);
        let mut cells = vec![
            Cell::from(name),
            Cell::from(a.display_name.clone()),
            Cell::from(a.kind.to_string()),
            Cell::from(a.company.clone().unwrap_or_else(|| "-".into())),
            Cell::from(a.sponsor.clone().unwrap_or_else(|| "-".into())),
            Cell::from(word).style(t.status(e)),
            Cell::from(end_text(app, a.end_date, app.today)).style(if soon {
                t.warning
            } else {
                t.text
            }),
            Cell::from(a.last_login.map_or_else(
                || app.tr("console.accounts.never").to_string(),
                |t| app.zone.day(t),
            )),
        ];
        if !wide {
            cells = shown
                .iter()
                .filter_map(|i| cells.get(*i).cloned())
                .collect();
        }
        let row = Row::new(cells);
        if marked {
            row.style(t.marked)
        } else {
            row
        }
    });
    let count = count_text(&app.hits);
    let vars = [("count", count.as_str()), ("query", app.query.as_str())];
    let mut title = if app.query.is_empty() {
        app.trf("console.accounts.title", &vars)
    } else if app.hits.fuzzy {
        app.trf("console.accounts.title_loose", &vars)
    } else {
        app.trf("console.accounts.title_matching", &vars)
    };
    if !app.filters.is_empty() {
        title.push_str(&format!("[{}] ", app.filters.describe()));
    }
    if !app.marked.is_empty() {
        let marked = app.marked.len().to_string();
        title.push_str(&app.trf("console.accounts.marked", &[("count", &marked)]));
    }
    let table = Table::new(rows, widths)
        .header(header)
        .block(block(t, title))
        .row_highlight_style(t.selected);
    let mut state = TableState::default().with_selected(
        app.selected
            .checked_sub(app.top)
            .filter(|_| !app.rows.is_empty()),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

fn detail(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let Some(d) = &app.detail else {
        frame.render_widget(Paragraph::new(app.tr("console.detail.none")), area);
        return;
    };
    let a = &d.account;
    let (word, e) = status(a, app.today);
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    // Labels are catalogue keys (`console.detail.*`), padded to the longest
    // in the viewer's language.
    const LABELS: [&str; 19] = [
        "status",
        "name",
        "email",
        "kind",
        "sponsor",
        "dates",
        "groups",
        "roles",
        "allowlist",
        "logs_in_on",
        "last_login",
        "links",
        "timezone",
        "language",
        "notes",
        "reason",
        "created",
        "updated",
        "password",
    ];
    let tr = |l: &str| app.tr(&format!("console.detail.{l}"));
    let width = LABELS
        .iter()
        .map(|l| tr(l).chars().count() + 1)
        .max()
        .unwrap_or(14)
        .max(14);
    let label = |l: &str| Span::styled(format!("{:<width$}", tr(l)), t.muted);
    let row = |l: &str, v: String| Line::from(vec![label(l), Span::styled(v, t.text)]);
    let end = a.end_date.map_or_else(
        || "-".into(),
        |d| {
            let days = (d - app.today).num_days().to_string();
            app.trf(
                "console.detail.days_left",
                &[("date", &d.to_string()), ("days", &days)],
            )
        },
    );
    // Fields a directory source sets are read-only here: marked [locked].
    let owns = |f: &str| a.source.as_ref().is_some_and(|l| l.owns(f));
    let lock = |f: &str, v: String| {
        if owns(f) {
            format!("{v} [locked]")
        } else {
            v
        }
    };
    let groups: Vec<String> = a
        .groups
        .iter()
        .map(|g| lock(&format!("group:{g}"), g.clone()))
        .collect();
    let mut lines = vec![
        Line::from(vec![label("status"), Span::styled(word, t.status(e))]),
        row("name", lock("display_name", a.display_name.clone())),
        row("email", lock("email", a.email.clone())),
        row(
            "kind",
            app.trf(
                "console.detail.kind_line",
                &[
                    ("kind", &a.kind.to_string()),
                    ("company", &lock("company", opt(&a.company))),
                    ("project", &lock("project", opt(&a.project))),
                ],
            ),
        ),
        row("sponsor", lock("sponsor", opt(&a.sponsor))),
        row(
            "dates",
            app.trf(
                "console.detail.dates_line",
                &[
                    ("start", &lock("start_date", a.start_date.to_string())),
                    ("end", &lock("end_date", end)),
                ],
            ),
        ),
        row("groups", list(groups)),
        row(
            "roles",
            list(a.roles.iter().map(|r| r.to_string()).collect()),
        ),
        row(
            "allowlist",
            list(a.allowlist.iter().map(|n| n.to_string()).collect()),
        ),
        row("logs_in_on", list(d.hosts.clone())),
        row(
            "last_login",
            a.last_login.map_or_else(
                || app.tr("console.detail.never").to_string(),
                |t| app.zone.minute(t),
            ),
        ),
    ];
    // Only accounts that a connector carries have links to show.
    if !d.links.is_empty() {
        let links = d
            .links
            .iter()
            .map(|l| {
                let mut s = format!(
                    "{} {} {}",
                    l.connector,
                    l.status.as_str(),
                    l.target_id.as_deref().unwrap_or("-")
                );
                if let Some(e) = &l.last_error {
                    s = format!("{s} ({e})");
                }
                s
            })
            .collect();
        lines.push(row("links", list(links)));
    }
    if let Some(l) = &a.source {
        lines.push(row(
            "source",
            format!(
                "{} {} ([locked] fields come from the directory)",
                l.source, l.dn
            ),
        ));
    }
    for (k, v) in &a.fields {
        // Custom fields keep the label the config gives them.
        let v = &lock(&format!("fields.{k}"), v.clone());
        let name = app
            .services
            .config()
            .custom_fields
            .iter()
            .find(|f| &f.name == k)
            .map_or(k.as_str(), |f| f.label());
        lines.push(Line::from(vec![
            Span::styled(format!("{name:<width$}"), t.muted),
            Span::styled(v.clone(), t.text),
        ]));
    }
    if let Some(tz) = &a.timezone {
        lines.push(row("timezone", tz.clone()));
    }
    if let Some(code) = &a.language {
        lines.push(row("language", code.clone()));
    }
    if let Some(notes) = &a.notes {
        lines.push(row("notes", notes.clone()));
    }
    if let Some(note) = &a.disable_note {
        lines.push(Line::from(vec![
            label("reason"),
            Span::styled(note.clone(), t.danger),
        ]));
    }
    let by = |at, who: &str| {
        app.trf(
            "console.detail.by",
            &[("when", &app.zone.day(at)), ("who", who)],
        )
    };
    lines.push(row("created", by(a.created_at, &a.created_by)));
    lines.push(row("updated", by(a.updated_at, &a.updated_by)));
    lines.push(row(
        "password",
        app.services
            .config()
            .passwords
            .describe(&a.credentials, app.services.now(), app.zone),
    ));
    let policy = &app.policy;
    let mut planned: Vec<String> = crate::domain::plan::warnings(a, policy, app.today)
        .into_iter()
        .map(|(date, days)| {
            app.trf(
                "console.detail.warn_sponsor",
                &[("date", &date.to_string()), ("days", &days.to_string())],
            )
        })
        .collect();
    if let Some(next) = crate::domain::plan::next_action(a, policy) {
        planned.push(format!(
            "{} {} — {}",
            next.due,
            next.action.describe(),
            next.why
        ));
    }
    lines.push(Line::from(vec![
        label("planned"),
        Span::styled(
            if planned.is_empty() {
                "-".to_string()
            } else {
                planned.join("; ")
            },
            t.warning,
        ),
    ]));
    let heading = |text: String| Line::from(Span::styled(text, t.header));
    lines.push(Line::from(""));
    let count = |n: usize| n.to_string();
    lines.push(heading(app.trf(
        "console.detail.keys",
        &[("count", &count(a.credentials.keys.len()))],
    )));
    for k in &a.credentials.keys {
        lines.push(Line::from(format!("  {}", key_line(app, k))));
    }
    lines.push(Line::from(""));
    lines.push(heading(app.trf(
        "console.detail.sessions",
        &[("count", &count(d.sessions.len()))],
    )));
    for s in &d.sessions {
        lines.push(Line::from(app.trf(
            "console.detail.session_line",
            &[
                ("id", &s.id.to_string()),
                ("kind", &format!("{:?}", s.kind).to_lowercase()),
                ("address", &s.address),
                ("method", &s.method),
                ("started", &app.zone.minute(s.started)),
            ],
        )));
    }
    lines.push(Line::from(""));
    lines.push(heading(app.tr("console.detail.activity").to_string()));
    for ev in d.events.iter().rev() {
        lines.push(Line::from(vec![
            Span::styled(format!("  {} ", app.zone.minute(ev.at)), t.muted),
            Span::styled(format!("{} {} ", ev.actor, ev.action), t.text),
            Span::styled(ev.detail.clone().unwrap_or_default(), t.muted),
        ]));
    }
    let mut title = format!(" {} ", a.username);
    if app.detail_scroll > 0 {
        let more = app.detail_scroll.to_string();
        title.push_str(&app.trf("console.detail.more_above", &[("count", &more)]));
    }
    // Scroll no further than the last line (j/k on a small terminal); a
    // wrapped line takes as many rows as its width needs.
    let width = usize::from(area.width.saturating_sub(2)).max(1);
    let total: usize = lines.iter().map(|l| l.width().max(1).div_ceil(width)).sum();
    let inner = usize::from(area.height.saturating_sub(2));
    let scroll = app.detail_scroll.min(total.saturating_sub(inner));
    let paragraph = Paragraph::new(lines)
        .block(block(t, title))
        .wrap(Wrap { trim: false })
        .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0));
    frame.render_widget(paragraph, area);
}

fn key_line(app: &App, k: &crate::domain::account::SshKey) -> String {
    let date = |key: &str, d: String| app.trf(key, &[("date", &d)]);
    format!(
        "{} {} {}  {}  {}  {}",
        k.fingerprint,
        k.algorithm,
        if k.comment.is_empty() {
            "-"
        } else {
            &k.comment
        },
        date("console.keys.added", app.zone.day(k.added_at)),
        k.last_used.map_or_else(
            || app.tr("console.keys.never_used").to_string(),
            |t| date("console.keys.used", app.zone.day(t))
        ),
        k.expires_on.map_or_else(
            || app.tr("console.keys.no_expiry").to_string(),
            |d| date("console.keys.expires", d.to_string())
        ),
    )
}

fn keys(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let Some(d) = &app.detail else { return };
    let keys = &d.account.credentials.keys;
    // At 80 columns the fingerprint needs its full width: type and dates give way.
    let wide = area.width >= 110;
    let rows = keys.iter().map(|k| {
        let expired = k.expires_on.is_some_and(|e| e < app.today);
        let expires = Cell::from(k.expires_on.map_or_else(|| "-".into(), |d| d.to_string()))
            .style(if expired { t.danger } else { t.text });
        if !wide {
            return Row::new(vec![
                Cell::from(k.fingerprint.clone()),
                Cell::from(k.comment.clone()),
                expires,
            ]);
        }
        Row::new(vec![
            Cell::from(k.fingerprint.clone()),
            Cell::from(k.algorithm.clone()),
            Cell::from(k.comment.clone()),
            Cell::from(app.zone.day(k.added_at)),
            Cell::from(k.last_used.map_or_else(
                || app.tr("console.accounts.never").to_string(),
                |t| app.zone.day(t),
            )),
            expires,
        ])
    });
    let (widths, header): (Vec<Constraint>, Vec<&str>) = if wide {
        (
            vec![
                Constraint::Length(51),
                Constraint::Length(12),
                Constraint::Fill(1),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(10),
            ],
            vec![
                "fingerprint",
                "type",
                "comment",
                "added",
                "last_used",
                "expires",
            ],
        )
    } else {
        (
            vec![
                Constraint::Length(51),
                Constraint::Fill(1),
                Constraint::Length(10),
            ],
            vec!["fingerprint", "comment", "expires"],
        )
    };
    let title = app.trf(
        "console.keys.title",
        &[
            ("name", &d.account.username),
            ("count", &keys.len().to_string()),
        ],
    );
    let header = header.into_iter().map(|c| column(app, c));
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.header))
        .block(block(t, title))
        .row_highlight_style(t.selected);
    let mut state = TableState::default().with_selected(
        (!keys.is_empty()).then_some(app.key_selected.min(keys.len().saturating_sub(1))),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

/// The catalogue name of a built-in field; custom fields keep the config's label.
fn field_name(key: &FieldKey) -> Option<&'static str> {
    Some(match key {
        FieldKey::Template => "template",
        FieldKey::Username => "username",
        FieldKey::DisplayName => "display_name",
        FieldKey::Email => "email",
        FieldKey::Kind => "kind",
        FieldKey::Company => "company",
        FieldKey::Sponsor => "sponsor",
        FieldKey::Project => "project",
        FieldKey::Start => "start",
        FieldKey::End => "end",
        FieldKey::Groups => "groups",
        FieldKey::Custom(_) => return None,
    })
}

fn field_label(app: &App, f: &Field) -> String {
    field_name(&f.key).map_or_else(
        || f.label.clone(),
        |n| app.tr(&format!("console.field.{n}")).to_string(),
    )
}

fn field_hint(app: &App, f: &Field) -> &'static str {
    match field_name(&f.key) {
        Some(n) if !f.hint.is_empty() => app.tr(&format!("console.field_hint.{n}")),
        _ => f.hint,
    }
}

fn form_title(app: &App, form: &Form) -> String {
    match &form.source {
        Some(source) => app.trf("console.form.clone_title", &[("name", source)]),
        None => app.tr("console.form.new_title").to_string(),
    }
}

fn form_screen(app: &App, form: &Form, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    match &form.stage {
        Stage::Editing => {
            let mut lines = Vec::new();
            if let Some(e) = &form.error {
                lines.push(Line::from(Span::styled(
                    app.trf("console.form.not_created", &[("error", e)]),
                    t.danger,
                )));
                lines.push(Line::from(""));
            }
            for (i, f) in form.fields.iter().enumerate() {
                let focused = i == form.focus;
                let marker = if focused { "▸ " } else { "  " };
                let star = if f.required { "*" } else { " " };
                let mut spans = vec![
                    Span::styled(marker, t.key),
                    Span::styled(
                        format!("{:<18}{star} ", field_label(app, f)),
                        if focused { t.key } else { t.muted },
                    ),
                ];
                if !f.choices.is_empty() {
                    spans.push(Span::styled(
                        format!("‹ {} ›", if f.value.is_empty() { "-" } else { &f.value }),
                        if focused { t.input } else { t.text },
                    ));
                } else if f.value.is_empty() && !focused {
                    spans.push(Span::styled(field_hint(app, f), t.muted));
                } else {
                    spans.push(Span::styled(
                        f.value.clone(),
                        if focused { t.input } else { t.text },
                    ));
                    if focused {
                        spans.push(Span::styled("▏", t.input));
                    }
                }
                if let Some(e) = &f.error {
                    spans.push(Span::styled(format!("  ✗ {e}"), t.invalid));
                } else if !f.value.trim().is_empty() && f.choices.is_empty() {
                    spans.push(Span::styled("  ✓", t.ok));
                }
                lines.push(Line::from(spans));
            }
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled(
                app.tr("console.form.footer"),
                t.muted,
            )));
            frame.render_widget(
                Paragraph::new(lines)
                    .block(block(t, format!(" {} ", form_title(app, form))))
                    .wrap(Wrap { trim: false }),
                area,
            );
        }
        Stage::Review => {
            let mut lines = vec![
                Line::from(Span::styled(app.tr("console.form.check"), t.warning)),
                Line::from(""),
            ];
            let review = form.review(app.today);
            for (f, (_, value)) in form.fields.iter().zip(review) {
                let label = field_label(app, f);
                lines.push(Line::from(vec![
                    Span::styled(format!("  {label:<20}"), t.muted),
                    Span::styled(value, t.text),
                ]));
            }
            lines.push(Line::from(""));
            lines.push(Line::from(vec![
                Span::styled(" Enter y", t.key),
                Span::styled(app.tr("console.form.create"), t.muted),
                Span::styled("Esc n", t.key),
                Span::styled(app.tr("console.form.back_to_form"), t.muted),
            ]));
            let title = app.trf(
                "console.form.review_title",
                &[("title", &form_title(app, form))],
            );
            frame.render_widget(Paragraph::new(lines).block(block(t, title)), area);
        }
        Stage::Done(a) => {
            let (word, e) = status(a, app.today);
            let label = |l: &str| format!("  {:<12}", app.tr(&format!("console.form.{l}")));
            let dates = app.trf(
                "console.detail.dates_line",
                &[
                    ("start", &a.start_date.to_string()),
                    ("end", &end_text(app, a.end_date, app.today)),
                ],
            );
            let groups = if a.groups.is_empty() {
                "-".to_string()
            } else {
                a.groups.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            let mut lines = vec![
                Line::from(Span::styled(
                    app.trf("console.form.created", &[("name", &a.username)]),
                    t.ok,
                )),
                Line::from(""),
                Line::from(vec![
                    Span::styled(label("status"), t.muted),
                    Span::styled(word, t.status(e)),
                ]),
                Line::from(format!("{}{}", label("name"), a.display_name)),
                Line::from(format!("{}{}", label("email"), a.email)),
                Line::from(format!("{}{}", label("kind"), a.kind)),
                Line::from(format!("{}{dates}", label("dates"))),
                Line::from(format!("{}{groups}", label("groups"))),
            ];
            lines.push(Line::from(format!(
                "{}{}",
                label("notices"),
                form.notices.as_deref().unwrap_or("-")
            )));
            lines.push(Line::from(""));
            lines.push(Line::from(vec![
                Span::styled(" Enter", t.key),
                Span::styled(app.tr("console.form.open_hint"), t.muted),
                Span::styled("Esc", t.key),
                Span::styled(app.tr("console.form.back"), t.muted),
            ]));
            let title = app.tr("console.form.done_title").to_string();
            frame.render_widget(Paragraph::new(lines).block(block(t, title)), area);
        }
    }
}

/// A column heading: `console.columns.NAME` in the viewer's language.
fn column(app: &App, name: &str) -> &'static str {
    app.tr(&format!("console.columns.{name}"))
}

/// Column headings from their catalogue names.
fn columns(app: &App, names: &[&str]) -> Vec<String> {
    names.iter().map(|c| column(app, c).to_string()).collect()
}

fn simple_table<'a>(
    app: &App,
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    widths: &'a [Constraint],
) -> Table<'a> {
    let t = &app.theme;
    Table::new(rows.into_iter().map(Row::new), widths.to_vec())
        .header(Row::new(header).style(t.header))
        .block(block(t, title))
        .row_highlight_style(t.selected)
}

fn plan(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app
        .plan
        .iter()
        .map(|i| {
            vec![
                i.date.to_string(),
                i.username.clone(),
                i.action.clone(),
                i.why.clone(),
            ]
        })
        .collect();
    let title = app.trf(
        "console.screens.lifecycle",
        &[("count", &app.plan.len().to_string())],
    );
    let widths = [
        Constraint::Length(11),
        Constraint::Length(14),
        Constraint::Length(28),
        Constraint::Fill(1),
    ];
    let table = simple_table(
        app,
        title,
        columns(app, &["date", "account", "action", "why"]),
        rows,
        &widths,
    );
    frame.render_widget(table, area);
}

fn orphans(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app
        .orphans
        .iter()
        .map(|o| vec![o.username.clone(), o.problem.clone(), o.detail.clone()])
        .collect();
    let widths = [
        Constraint::Length(12),
        Constraint::Length(16),
        Constraint::Fill(1),
    ];
    let title = app.trf(
        "console.screens.orphans",
        &[("count", &app.orphans.len().to_string())],
    );
    let table = simple_table(
        app,
        title,
        columns(app, &["account", "problem", "detail"]),
        rows,
        &widths,
    );
    frame.render_widget(table, area);
}

fn requests(app: &App, frame: &mut Frame, area: Rect) {
    use crate::service::requests::RequestStatus;
    let pending: Vec<_> = app
        .requests
        .iter()
        .filter(|r| r.status == RequestStatus::Pending)
        .collect();
    let rows = pending
        .iter()
        .map(|r| {
            vec![
                format!("#{}", r.id),
                r.kind.clone(),
                r.account.clone(),
                r.end_date.map_or_else(|| "-".into(), |d| d.to_string()),
                r.requested_by.clone(),
                app.zone.day(r.requested_at),
                r.reason.clone(),
            ]
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(14),
        Constraint::Length(11),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    let title = app.trf(
        "console.screens.requests",
        &[("count", &pending.len().to_string())],
    );
    let table = simple_table(
        app,
        title,
        columns(
            app,
            &["id", "kind", "account", "end", "asked_by", "on", "reason"],
        ),
        rows,
        &widths,
    );
    let mut state = TableState::default().with_selected(
        (!pending.is_empty()).then_some(app.selected.min(pending.len().saturating_sub(1))),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

fn outbox(app: &App, frame: &mut Frame, area: Rect) {
    use crate::service::notify::Delivery;
    let rows = app
        .outbox
        .iter()
        .map(|e| {
            let to = match &e.delivery {
                Delivery::Email { to, .. } => to.join(", "),
                Delivery::Webhook { url, .. } => url.clone(),
            };
            vec![
                format!("#{}", e.id),
                e.event.clone(),
                e.account.clone(),
                to,
                e.attempts.to_string(),
                e.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(15),
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    let title = app.trf(
        "console.screens.outbox",
        &[("count", &app.outbox.len().to_string())],
    );
    let table = simple_table(
        app,
        title,
        columns(
            app,
            &["id", "event", "account", "to", "tries", "last_error"],
        ),
        rows,
        &widths,
    );
    frame.render_widget(table, area);
}

fn sessions(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.account.clone(),
                s.address.clone(),
                s.method.clone(),
                format!("{:?}", s.kind).to_lowercase(),
                app.zone.minute_bare(s.started),
                app.zone.clock(s.last_input),
            ]
        })
        .collect();
    let widths = [
        Constraint::Length(4),
        Constraint::Length(12),
        Constraint::Length(15),
        Constraint::Length(13),
        Constraint::Length(7),
        Constraint::Length(16),
        Constraint::Fill(1),
    ];
    let title = app.trf(
        "console.screens.sessions",
        &[("count", &app.sessions.len().to_string())],
    );
    let table = simple_table(
        app,
        title,
        columns(
            app,
            &[
                "id",
                "account",
                "address",
                "method",
                "kind",
                "started",
                "last_input",
            ],
        ),
        rows,
        &widths,
    );
    let mut state = TableState::default().with_selected(
        (!app.sessions.is_empty())
            .then_some(app.selected.min(app.sessions.len().saturating_sub(1))),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

fn audit(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let rows = app
        .audit
        .iter()
        .map(|e| {
            vec![
                format!("#{}", e.seq),
                app.zone.second_bare(e.at),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone().unwrap_or_else(|| "-".into()),
                e.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let widths = [
        Constraint::Length(5),
        Constraint::Length(19),
        Constraint::Length(12),
        Constraint::Length(16),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    let chain = app.chain.clone().unwrap_or_default();
    let filter = if app.audit_filter.is_empty() {
        String::new()
    } else {
        format!(" [{}]", app.audit_filter)
    };
    let vars = [("filter", filter.as_str()), ("chain", chain.as_str())];
    let title = app.trf("console.screens.audit", &vars);
    // The time column names the zone the times are in.
    let at = app.audit.first().map_or_else(
        || app.zone.name().to_string(),
        |e| app.zone.abbreviation(e.at),
    );
    let mut header = columns(app, &["seq", "at", "actor", "action", "target", "detail"]);
    if let Some(heading) = header.get_mut(1) {
        *heading = format!("{heading} ({at})");
    }
    let mut table = simple_table(app, title, header, rows, &widths);
    if chain.starts_with("CHAIN BROKEN") {
        let title = app.trf("console.screens.audit_broken", &vars);
        table = table.block(block(t, title).border_style(t.danger));
    }
    let mut state = TableState::default().with_selected(
        (!app.audit.is_empty()).then_some(app.selected.min(app.audit.len().saturating_sub(1))),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

fn help(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    // The keys of the screen help was opened from come first, then the rest.
    let mut scopes: Vec<Scope> = app.help_from.scopes().to_vec();
    scopes.push(Scope::Everywhere);
    for s in [
        Scope::Accounts,
        Scope::Account,
        Scope::Keys,
        Scope::Tokens,
        Scope::Sessions,
        Scope::Lockouts,
        Scope::Connectors,
        Scope::Hosts,
        Scope::Requests,
        Scope::Audit,
    ] {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let mut lines: Vec<Line> = Vec::new();
    for scope in scopes {
        lines.push(Line::from(Span::styled(app.tr(scope.title()), t.header)));
        for b in KEYMAP.iter().filter(|b| b.scope == scope) {
            lines.push(Line::from(vec![
                Span::styled(format!(" {:<8} ", b.label), t.key),
                Span::styled(app.tr(b.help), t.text),
            ]));
        }
    }
    let inner_height = usize::from(area.height.saturating_sub(2)).max(1);
    let columns = usize::from(area.width.saturating_sub(2) / 56).max(1);
    let capacity = inner_height * columns;
    let scroll = app.help_scroll.min(lines.len().saturating_sub(capacity));
    let title = if lines.len() > capacity {
        let more = (lines.len() - capacity - scroll).to_string();
        app.trf("console.help.keys_scroll", &[("count", &more)])
    } else {
        app.tr("console.help.keys").to_string()
    };
    let b = block(t, title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let shown: Vec<Line> = lines.into_iter().skip(scroll).collect();
    let chunks: Vec<Vec<Line>> = shown
        .chunks(inner_height)
        .take(columns)
        .map(<[Line]>::to_vec)
        .collect();
    let areas = Layout::horizontal(vec![Constraint::Fill(1); columns]).split(inner);
    for (chunk, rect) in chunks.into_iter().zip(areas.iter()) {
        frame.render_widget(Paragraph::new(chunk), *rect);
    }
}

fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 3,
        width,
        height,
    )
}

fn draw_popup(app: &App, popup: &Popup, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let (title, lines, border): (String, Vec<Line>, Style) = match popup {
        Popup::Input {
            prompt,
            title,
            text,
            error,
            ..
        } => {
            let shown = if prompt.secret() {
                "•".repeat(text.chars().count())
            } else {
                text.clone()
            };
            let mut lines = vec![
                Line::from(Span::styled(app.tr(prompt.label()), t.muted)),
                Line::from(vec![
                    Span::styled("> ", t.key),
                    Span::styled(shown, t.input),
                    Span::styled("▏", t.input),
                ]),
            ];
            if let Some(temporary) = prompt.temporary() {
                let key = if temporary { "on" } else { "off" };
                let text = app.tr(&format!("console.popup.temporary_{key}"));
                lines.push(Line::from(Span::styled(text, t.key)));
            }
            if let Some(e) = error {
                lines.push(Line::from(Span::styled(e.clone(), t.invalid)));
            }
            lines.push(Line::from(vec![
                Span::styled("Enter", t.key),
                Span::styled(app.tr("console.popup.continue"), t.muted),
                Span::styled("Esc", t.key),
                Span::styled(app.tr("console.popup.cancel"), t.muted),
            ]));
            (format!(" {title} "), lines, t.border_focus)
        }
        Popup::Confirm {
            question, targets, ..
        } => {
            let mut lines = vec![Line::from(Span::styled(question.clone(), t.warning))];
            if targets.len() > 1 {
                lines.push(Line::from(""));
                for name in targets.iter().take(12) {
                    lines.push(Line::from(format!("  • {name}")));
                }
                if targets.len() > 12 {
                    let more = (targets.len() - 12).to_string();
                    lines.push(Line::from(
                        app.trf("console.popup.and_more", &[("count", &more)]),
                    ));
                }
            }
            lines.push(Line::from(""));
            lines.push(Line::from(vec![
                Span::styled("y", t.key),
                Span::styled(app.tr("console.popup.yes"), t.muted),
                Span::styled("n Esc", t.key),
                Span::styled(app.tr("console.popup.no"), t.muted),
            ]));
            let title = if targets.len() > 1 {
                app.trf(
                    "console.popup.confirm_names",
                    &[("names", &list_names(targets))],
                )
            } else {
                app.tr("console.popup.confirm").to_string()
            };
            (title, lines, t.danger)
        }
        Popup::Text {
            title,
            text,
            error,
            scroll,
        } => {
            let style = if *error { t.danger } else { t.text };
            let mut lines: Vec<Line> = text
                .lines()
                .skip(usize::from(*scroll))
                .map(|l| Line::from(Span::styled(l.to_string(), style)))
                .collect();
            lines.push(Line::from(Span::styled(
                app.tr("console.popup.scroll"),
                t.muted,
            )));
            (format!(" {title} "), lines, t.border_focus)
        }
    };
    let widest = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let width = (widest + 4).clamp(50, area.width.saturating_sub(4).max(20));
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = centred(area, width, height);
    frame.render_widget(Clear, rect);
    let b = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(title, t.title));
    frame.render_widget(
        Paragraph::new(lines).block(b).wrap(Wrap { trim: false }),
        rect,
    );
}
