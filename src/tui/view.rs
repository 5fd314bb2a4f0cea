//! Drawing: read-only, no I/O. One function per screen.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::app::{status, App, Popup, Screen};
use super::keymap::KEYMAP;
use crate::domain::lifecycle::Effective;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

fn status_style(e: Effective) -> Style {
    match e {
        Effective::Active => Style::default().fg(Color::Green),
        Effective::Staged => Style::default().fg(Color::Cyan),
        Effective::Expired | Effective::Disabled(_) => Style::default().fg(Color::Red),
        Effective::Deleted => Style::default().fg(Color::DarkGray),
    }
}

pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small: {}x{} (the console needs at least {MIN_WIDTH}x{MIN_HEIGHT})",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let roles: Vec<String> = app.actor.roles.iter().map(|r| r.to_string()).collect();
    let title = format!(
        " tenure — {} ({})  {} accounts",
        app.actor.name,
        roles.join(", "),
        app.accounts.len()
    );
    frame.render_widget(
        Paragraph::new(title).style(Style::default().add_modifier(Modifier::BOLD)),
        header,
    );
    match app.screen {
        Screen::Accounts => accounts(app, frame, body),
        Screen::Detail => detail(app, frame, body),
        Screen::Lifecycle => plan(app, frame, body),
        Screen::Orphans => orphans(app, frame, body),
        Screen::Requests => requests(app, frame, body),
        Screen::Outbox => outbox(app, frame, body),
        Screen::Sessions => sessions(app, frame, body),
        Screen::Audit => audit(app, frame, body),
        Screen::Help => help(frame, body),
    }
    let bottom = if app.searching {
        Line::from(vec![
            Span::styled("/", Style::default().fg(Color::Yellow)),
            Span::raw(app.query.clone()),
            Span::raw("▏"),
        ])
    } else if let Some((error, text)) = &app.message {
        let style = if *error {
            Style::default().fg(Color::Red)
        } else {
            Style::default().fg(Color::Green)
        };
        Line::from(Span::styled(text.clone(), style))
    } else {
        Line::from(" / search  Enter open  d disable  e enable  ? help  q quit")
    };
    frame.render_widget(Paragraph::new(bottom), footer);
    if let Some(popup) = &app.popup {
        draw_popup(popup, frame, area);
    }
}

fn accounts(app: &App, frame: &mut Frame, area: Rect) {
    let header = Row::new([
        "USERNAME",
        "NAME",
        "KIND",
        "COMPANY",
        "SPONSOR",
        "STATUS",
        "END",
        "LAST LOGIN",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = app
        .visible
        .iter()
        .filter_map(|i| app.accounts.get(*i))
        .map(|a| {
            let (word, e) = status(a, app.today);
            let end = match a.end_date {
                Some(end) => {
                    let left = (end - app.today).num_days();
                    if left >= 0 {
                        format!("{end} ({left}d)")
                    } else {
                        end.to_string()
                    }
                }
                None => "-".into(),
            };
            Row::new(vec![
                Cell::from(a.username.clone()),
                Cell::from(a.display_name.clone()),
                Cell::from(a.kind.to_string()),
                Cell::from(a.company.clone().unwrap_or_else(|| "-".into())),
                Cell::from(a.sponsor.clone().unwrap_or_else(|| "-".into())),
                Cell::from(word).style(status_style(e)),
                Cell::from(end),
                Cell::from(
                    a.last_login
                        .map_or_else(|| "never".into(), |t| t.format("%Y-%m-%d").to_string()),
                ),
            ])
        });
    let widths = [
        Constraint::Length(14),
        Constraint::Fill(2),
        Constraint::Length(10),
        Constraint::Fill(1),
        Constraint::Length(10),
        Constraint::Length(20),
        Constraint::Length(18),
        Constraint::Length(10),
    ];
    let title = if app.query.is_empty() {
        " Accounts ".to_string()
    } else {
        format!(
            " Accounts matching \"{}\": {} ",
            app.query,
            app.visible.len()
        )
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected((!app.visible.is_empty()).then_some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn detail(app: &App, frame: &mut Frame, area: Rect) {
    let Some((a, events)) = &app.detail else {
        frame.render_widget(Paragraph::new("no account"), area);
        return;
    };
    let (word, e) = status(a, app.today);
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let end = a.end_date.map_or_else(
        || "-".into(),
        |d| format!("{d} ({} days left)", (d - app.today).num_days()),
    );
    let mut lines = vec![
        Line::from(vec![
            Span::raw("status        "),
            Span::styled(word, status_style(e)),
        ]),
        Line::from(format!("name          {}", a.display_name)),
        Line::from(format!("email         {}", a.email)),
        Line::from(format!(
            "kind          {}   company {}   project {}",
            a.kind,
            opt(&a.company),
            opt(&a.project)
        )),
        Line::from(format!("sponsor       {}", opt(&a.sponsor))),
        Line::from(format!("dates         start {}   end {end}", a.start_date)),
        Line::from(format!(
            "groups        {}",
            list(a.groups.iter().cloned().collect())
        )),
        Line::from(format!(
            "roles         {}",
            list(a.roles.iter().map(|r| r.to_string()).collect())
        )),
        Line::from(format!(
            "allowlist     {}",
            list(a.allowlist.iter().map(|n| n.to_string()).collect())
        )),
        Line::from(format!(
            "last login    {}",
            a.last_login.map_or_else(
                || "never".into(),
                |t| t.format("%Y-%m-%d %H:%M UTC").to_string()
            )
        )),
    ];
    if let Some(note) = &a.disable_note {
        lines.push(Line::from(format!("reason        {note}")));
    }
    let policy = &app.policy;
    let mut planned: Vec<String> = crate::domain::plan::warnings(a, policy, app.today)
        .into_iter()
        .map(|(date, days)| format!("{date} warn sponsor ({days} days left)"))
        .collect();
    if let Some(next) = crate::domain::plan::next_action(a, policy) {
        planned.push(format!(
            "{} {} — {}",
            next.due,
            next.action.describe(),
            next.why
        ));
    }
    lines.push(Line::from(format!(
        "planned       {}",
        if planned.is_empty() {
            "-".to_string()
        } else {
            planned.join("; ")
        }
    )));
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "keys",
        Style::default().add_modifier(Modifier::BOLD),
    )));
    for k in &a.credentials.keys {
        lines.push(Line::from(format!(
            "  {} {} {}",
            k.fingerprint,
            k.comment,
            k.last_used.map_or_else(
                || "never used".into(),
                |t| format!("used {}", t.format("%Y-%m-%d"))
            )
        )));
    }
    if a.credentials.keys.is_empty() {
        lines.push(Line::from("  -"));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "recent activity",
        Style::default().add_modifier(Modifier::BOLD),
    )));
    for ev in events.iter().rev() {
        lines.push(Line::from(format!(
            "  {} {} {} {}",
            ev.at.format("%Y-%m-%d %H:%M"),
            ev.actor,
            ev.action,
            ev.detail.clone().unwrap_or_default()
        )));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", a.username));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn plan(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app.plan.iter().map(|i| {
        Row::new(vec![
            i.date.to_string(),
            i.username.clone(),
            i.action.clone(),
            i.why.clone(),
        ])
    });
    let widths = [
        Constraint::Length(11),
        Constraint::Length(14),
        Constraint::Length(28),
        Constraint::Fill(1),
    ];
    let title = format!(
        " Lifecycle: {} planned action(s) in the next 30 days ",
        app.plan.len()
    );
    let table = Table::new(rows, widths)
        .header(
            Row::new(["DATE", "ACCOUNT", "ACTION", "WHY"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

fn orphans(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app.orphans.iter().map(|o| {
        Row::new(vec![
            o.username.clone(),
            o.problem.clone(),
            o.detail.clone(),
        ])
    });
    let widths = [
        Constraint::Length(14),
        Constraint::Length(18),
        Constraint::Fill(1),
    ];
    let title = format!(" Orphans: {} finding(s) ", app.orphans.len());
    let table = Table::new(rows, widths)
        .header(
            Row::new(["ACCOUNT", "PROBLEM", "DETAIL"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

fn requests(app: &App, frame: &mut Frame, area: Rect) {
    use crate::service::requests::RequestStatus;
    let pending: Vec<_> = app
        .requests
        .iter()
        .filter(|r| r.status == RequestStatus::Pending)
        .collect();
    let rows = pending.iter().map(|r| {
        Row::new(vec![
            format!("#{}", r.id),
            r.account.clone(),
            r.end_date.to_string(),
            r.requested_by.clone(),
            r.reason.clone(),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(14),
        Constraint::Length(11),
        Constraint::Length(14),
        Constraint::Fill(1),
    ];
    let title = format!(" Requests: {} pending (a approve · x deny) ", pending.len());
    let table = Table::new(rows, widths)
        .header(
            Row::new(["ID", "ACCOUNT", "END", "ASKED BY", "REASON"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(
        (!pending.is_empty()).then_some(app.selected.min(pending.len().saturating_sub(1))),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

fn outbox(app: &App, frame: &mut Frame, area: Rect) {
    use crate::service::notify::Delivery;
    let rows = app.outbox.iter().map(|e| {
        let to = match &e.delivery {
            Delivery::Email { to, .. } => to.join(", "),
            Delivery::Webhook { url, .. } => url.clone(),
        };
        Row::new(vec![
            format!("#{}", e.id),
            e.event.clone(),
            e.account.clone(),
            to,
            e.attempts.to_string(),
            e.last_error.clone().unwrap_or_else(|| "-".into()),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(15),
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    let title = format!(" Notifications not yet delivered: {} ", app.outbox.len());
    let table = Table::new(rows, widths)
        .header(
            Row::new(["ID", "EVENT", "ACCOUNT", "TO", "TRIES", "LAST ERROR"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

fn sessions(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app.sessions.iter().map(|s| {
        Row::new(vec![
            s.id.to_string(),
            s.account.clone(),
            s.address.clone(),
            s.method.clone(),
            format!("{:?}", s.kind).to_lowercase(),
            s.started.format("%Y-%m-%d %H:%M").to_string(),
            s.last_input.format("%H:%M:%S").to_string(),
        ])
    });
    let widths = [
        Constraint::Length(5),
        Constraint::Length(14),
        Constraint::Length(16),
        Constraint::Length(15),
        Constraint::Length(8),
        Constraint::Length(17),
        Constraint::Fill(1),
    ];
    let title = format!(" Live sessions: {} (K kill) ", app.sessions.len());
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                "ID",
                "ACCOUNT",
                "ADDRESS",
                "METHOD",
                "KIND",
                "STARTED",
                "LAST INPUT",
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(
        (!app.sessions.is_empty())
            .then_some(app.selected.min(app.sessions.len().saturating_sub(1))),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

fn audit(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app.audit.iter().map(|e| {
        Row::new(vec![
            format!("#{}", e.seq),
            e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone().unwrap_or_else(|| "-".into()),
            e.detail.clone().unwrap_or_default(),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(19),
        Constraint::Length(16),
        Constraint::Length(18),
        Constraint::Length(12),
        Constraint::Fill(1),
    ];
    let title = format!(
        " Audit trail, newest first — {} ",
        app.chain.clone().unwrap_or_default()
    );
    let table = Table::new(rows, widths)
        .header(
            Row::new(["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

fn help(frame: &mut Frame, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Keys (? to close) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // As many columns as the bindings need at this height.
    let per_column = usize::from(inner.height.max(1));
    let columns: Vec<&[crate::tui::keymap::Binding]> = KEYMAP.chunks(per_column).collect();
    let areas = Layout::horizontal(vec![Constraint::Fill(1); columns.len()]).split(inner);
    for (chunk, rect) in columns.iter().zip(areas.iter()) {
        let lines: Vec<Line> = chunk
            .iter()
            .map(|b| Line::from(format!(" {:<8} {}", b.label, b.help)))
            .collect();
        frame.render_widget(Paragraph::new(lines), *rect);
    }
}

fn draw_popup(popup: &Popup, frame: &mut Frame, area: Rect) {
    let (title, body) = match popup {
        Popup::Reason { target, text } => (
            format!(" Disable {target} "),
            format!("Reason: {text}▏\n\nEnter continue · Esc cancel"),
        ),
        Popup::DenyReason { id, text } => (
            format!(" Deny request #{id} "),
            format!("Reason: {text}▏\n\nEnter continue · Esc cancel"),
        ),
        Popup::Confirm { question, .. } => (
            " Confirm ".to_string(),
            format!("{question}\n\ny yes · n no"),
        ),
    };
    let width = area.width.min(70);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + area.height / 3,
        width,
        6,
    );
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(Style::default().fg(Color::Yellow));
    frame.render_widget(
        Paragraph::new(body).block(block).wrap(Wrap { trim: true }),
        rect,
    );
}
