//! The connectors screen (`C`): each target with its links in sync,
//! pending and failed, jobs queued, the last error and the last reconcile.
//! Enter lists the failed and drifted accounts of the selected connector;
//! `r` makes its waiting jobs due now; `R` runs a reconcile dry run and asks
//! before fixing. Its state and drawing live here; `App` routes keys and the
//! confirmed reconcile to it.

use crate::locale::Zone;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Row, Table, TableState};
use ratatui::Frame;

use super::keymap::Action;
use super::theme::Theme;
use super::view::block;
use crate::service::connect::{ConnectorSummary, LinkStatus, ReconcileBrief, ReconcileOptions};
use crate::service::{Actor, Services};

/// One account that needs a look: a failed link, or drift found by the
/// last reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trouble {
    pub account: String,
    pub what: String,
    pub detail: String,
}

/// What an action on this screen asks `App` to do.
pub enum Outcome {
    /// Show the screen (it was loaded).
    Shown,
    /// Say this line.
    Said(String),
    /// Confirm this reconcile (connector, question).
    Ask(String, String),
    Failed(String),
}

#[derive(Default)]
pub struct Connectors {
    pub list: Vec<ConnectorSummary>,
    /// The connector whose troubles are listed (after Enter).
    pub open: Option<String>,
    pub troubles: Vec<Trouble>,
    /// The directory sources, shown under the targets.
    pub sources: super::sources::Sources,
}

impl Connectors {
    pub fn load(&mut self, services: &Services, actor: &Actor) -> Result<(), String> {
        self.list = services.connector_list(actor).map_err(|e| e.to_string())?;
        self.sources.load(services, actor);
        if let Some(name) = self.open.clone() {
            self.troubles = troubles(services, actor, &name)?;
        }
        Ok(())
    }

    /// `C`, `r` and `R`.
    pub fn act(
        &mut self,
        action: Action,
        services: &Services,
        actor: &Actor,
        selected: usize,
    ) -> Outcome {
        let done = match action {
            Action::Connectors => {
                self.open = None;
                return match self.load(services, actor) {
                    Ok(()) => Outcome::Shown,
                    Err(e) => Outcome::Failed(e),
                };
            }
            Action::RetryConnector => self.retry(services, actor, selected),
            _ => {
                return match self.reconcile_question(services, actor, selected) {
                    Ok((name, question)) => Outcome::Ask(name, question),
                    Err(e) => Outcome::Failed(e),
                }
            }
        };
        let _ = self.load(services, actor);
        match done {
            Ok(line) => Outcome::Said(line),
            Err(e) => Outcome::Failed(e),
        }
    }

    pub fn rows(&self) -> usize {
        if self.open.is_some() {
            self.troubles.len()
        } else {
            self.list.len()
        }
    }

    pub fn selected_name(&self, selected: usize) -> Option<String> {
        match &self.open {
            Some(name) => Some(name.clone()),
            None => self.list.get(selected).map(|c| c.name.clone()),
        }
    }

    /// Enter: the troubles of the selected connector.
    pub fn enter(
        &mut self,
        services: &Services,
        actor: &Actor,
        selected: usize,
    ) -> Result<(), String> {
        let Some(name) = self.selected_name(selected) else {
            return Ok(());
        };
        self.troubles = troubles(services, actor, &name)?;
        self.open = Some(name);
        Ok(())
    }

    /// Esc from the troubles list goes back to the connectors; true if it did.
    pub fn back(&mut self) -> bool {
        if self.open.take().is_some() {
            self.troubles.clear();
            return true;
        }
        false
    }

    /// `r`: every waiting job of the connector due now.
    pub fn retry(
        &self,
        services: &Services,
        actor: &Actor,
        selected: usize,
    ) -> Result<String, String> {
        let name = self.selected_name(selected).ok_or("no connector")?;
        let n = services
            .connector_retry(actor, &name, None)
            .map_err(|e| e.to_string())?;
        Ok(format!("{name}: {n} jobs due now"))
    }

    /// `R`, first step: the dry run, and the question to ask before fixing.
    pub fn reconcile_question(
        &self,
        services: &Services,
        actor: &Actor,
        selected: usize,
    ) -> Result<(String, String), String> {
        let name = self.selected_name(selected).ok_or("no connector")?;
        let applier = services.applier().map_err(|e| e.to_string())?;
        let dry = services
            .connector_reconcile(
                actor,
                &name,
                ReconcileOptions {
                    dry_run: true,
                    disable_unmatched: false,
                },
                applier.as_ref(),
            )
            .map_err(|e| e.to_string())?;
        Ok((name, format!("{} — fix what differs?", dry.summary())))
    }
}

/// `R`, confirmed: the reconcile itself (unmatched objects are only reported).
pub fn reconcile(services: &Services, actor: &Actor, name: &str) -> Result<String, String> {
    let applier = services.applier().map_err(|e| e.to_string())?;
    services
        .connector_reconcile(actor, name, ReconcileOptions::default(), applier.as_ref())
        .map(|r| r.summary())
        .map_err(|e| e.to_string())
}

fn troubles(services: &Services, actor: &Actor, name: &str) -> Result<Vec<Trouble>, String> {
    let status = services
        .connector_status(actor, name)
        .map_err(|e| e.to_string())?;
    let mut out: Vec<Trouble> = status
        .links
        .iter()
        .filter(|l| {
            matches!(l.status, LinkStatus::Failed | LinkStatus::Disputed) || l.notice.is_some()
        })
        .map(|l| Trouble {
            account: l.account.clone(),
            what: match l.status {
                LinkStatus::Failed => format!("failed ×{}", l.attempts),
                LinkStatus::Disputed => "disputed".into(),
                _ => "password".into(),
            },
            detail: l
                .last_error
                .clone()
                .or_else(|| l.notice.clone())
                .unwrap_or_default(),
        })
        .collect();
    if let Ok(Some(report)) = services.last_reconcile(name) {
        out.extend(report.rows.iter().map(|r| {
            Trouble {
                account: r.account.clone(),
                what: r.class.clone(),
                detail: r
                    .drift
                    .iter()
                    .map(|d| format!("{}: {} ≠ {}", d.field, d.tenure, d.target))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        }));
        out.extend(report.unmatched.iter().map(|u| Trouble {
            account: u.object.clone(),
            what: "unmatched".into(),
            detail: u.why.clone(),
        }));
    }
    Ok(out)
}

fn last_reconcile(r: &Option<ReconcileBrief>, zone: Zone) -> String {
    match r {
        None => "never".into(),
        Some(r) => match &r.error {
            Some(e) => format!("{} failed: {e}", zone.short_bare(r.at)),
            None => format!(
                "{} {} to fix, {} unmatched",
                zone.short_bare(r.at),
                r.not_in_sync,
                r.unmatched
            ),
        },
    }
}

impl Connectors {
    pub fn draw(&self, theme: &Theme, zone: Zone, selected: usize, frame: &mut Frame, area: Rect) {
        if let Some(name) = &self.open {
            let rows = self
                .troubles
                .iter()
                .map(|t| Row::new(vec![t.account.clone(), t.what.clone(), t.detail.clone()]));
            let widths = [
                Constraint::Length(24),
                Constraint::Length(18),
                Constraint::Fill(1),
            ];
            let title = if self.troubles.is_empty() {
                format!(" {name}: nothing failed or drifted (Esc back) ")
            } else {
                format!(
                    " {name}: {} to look at (r retry, R reconcile, Esc back) ",
                    self.troubles.len()
                )
            };
            let table = Table::new(rows, widths)
                .header(Row::new(vec!["ACCOUNT", "WHAT", "DETAIL"]).style(theme.header))
                .block(block(theme, title))
                .row_highlight_style(theme.selected);
            let mut state = TableState::default().with_selected(
                (!self.troubles.is_empty())
                    .then_some(selected.min(self.troubles.len().saturating_sub(1))),
            );
            frame.render_stateful_widget(table, area, &mut state);
            return;
        }
        let area = if self.sources.height() > 0 {
            let sources = self.sources.height().min(area.height / 2);
            let below = Rect {
                y: area.y + area.height - sources,
                height: sources,
                ..area
            };
            self.sources.draw(theme, frame, below);
            Rect {
                height: area.height - sources,
                ..area
            }
        } else {
            area
        };
        let rows = self.list.iter().map(|c| {
            Row::new(vec![
                c.name.clone(),
                c.kind.clone(),
                c.in_sync.to_string(),
                c.pending.to_string(),
                c.failed.to_string(),
                c.disputed.to_string(),
                c.jobs_queued.to_string(),
                last_reconcile(&c.last_reconcile, zone),
                c.last_error.clone().unwrap_or_else(|| "-".into()),
            ])
        });
        let widths = [
            Constraint::Length(14),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(34),
            Constraint::Fill(1),
        ];
        let title = if self.list.is_empty() {
            " Connectors: none configured ".to_string()
        } else {
            format!(
                " Connectors: {} (Enter failed/drifted, r retry, R reconcile) ",
                self.list.len()
            )
        };
        let last = format!("LAST RECONCILE ({})", zone.name());
        let table = Table::new(rows, widths)
            .header(
                Row::new(vec![
                    "NAME",
                    "TYPE",
                    "IN SYNC",
                    "PENDING",
                    "FAILED",
                    "DISPUTED",
                    "JOBS",
                    last.as_str(),
                    "LAST ERROR",
                ])
                .style(theme.header),
            )
            .block(block(theme, title))
            .row_highlight_style(theme.selected);
        let mut state = TableState::default().with_selected(
            (!self.list.is_empty()).then_some(selected.min(self.list.len().saturating_sub(1))),
        );
        frame.render_stateful_widget(table, area, &mut state);
    }
}
