//! Directory sources on the connectors screen (`C`): each source with its
//! last run — when, outcome, counts — and its error. Loaded and drawn
//! here; `Connectors` shows it under the targets.

use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Row, Table};
use ratatui::Frame;

use super::theme::Theme;
use super::view::block;
use crate::service::sources::SourceSummary;
use crate::service::{Actor, Services};

#[derive(Default)]
pub struct Sources {
    pub list: Vec<SourceSummary>,
}

impl Sources {
    /// The configured sources (none is fine; a refusal leaves the list empty).
    pub fn load(&mut self, services: &Services, actor: &Actor) {
        self.list = if services.config().sources.is_empty() {
            Vec::new()
        } else {
            services.source_list(actor).unwrap_or_default()
        };
    }

    /// Rows it needs drawn (header, borders and one per source).
    pub fn height(&self) -> u16 {
        if self.list.is_empty() {
            0
        } else {
            self.list.len() as u16 + 3
        }
    }

    pub fn draw(&self, theme: &Theme, frame: &mut Frame, area: Rect) {
        let rows = self.list.iter().map(|s| {
            let (at, outcome, counts, error) = match &s.last_run {
                Some(r) => (
                    r.at.format("%Y-%m-%d %H:%M").to_string(),
                    r.outcome.as_str().to_string(),
                    r.summary(),
                    r.error
                        .clone()
                        .or_else(|| r.problems.first().cloned())
                        .unwrap_or_else(|| "-".into()),
                ),
                None => ("never".into(), "-".into(), "-".into(), "-".into()),
            };
            Row::new(vec![
                s.name.clone(),
                s.interval_minutes
                    .map_or_else(|| "by hand".into(), |m| format!("{m} min")),
                at,
                outcome,
                counts,
                error,
            ])
        });
        let widths = [
            Constraint::Length(12),
            Constraint::Length(8),
            Constraint::Length(17),
            Constraint::Length(9),
            Constraint::Length(62),
            Constraint::Fill(1),
        ];
        let title = format!(
            " Directory sources: {} (source sync NAME [--dry-run] on the : line) ",
            self.list.len()
        );
        let table = Table::new(rows, widths)
            .header(
                Row::new(vec![
                    "SOURCE", "EVERY", "LAST RUN", "OUTCOME", "COUNTS", "ERROR",
                ])
                .style(theme.header),
            )
            .block(block(theme, title));
        frame.render_widget(table, area);
    }
}
