//! The API tokens of an account (`o` on an account): name, scope, state,
//! expiry; `d` revokes one after a confirmation. Its state and drawing live
//! here; `App` routes keys and the confirmed change to it.

use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Row, Table, TableState};
use ratatui::Frame;

use super::theme::Theme;
use super::view::block;
use crate::service::tokens::ApiToken;
use crate::service::{Actor, Services};

#[derive(Default)]
pub struct Tokens {
    /// Whose tokens these are.
    pub owner: String,
    pub list: Vec<ApiToken>,
}

impl Tokens {
    /// Reads `owner`'s tokens (the owner and admins may).
    pub fn load(&mut self, services: &Services, actor: &Actor, owner: &str) -> Result<(), String> {
        self.list = services
            .tokens_of(actor, owner)
            .map_err(|e| e.to_string())?;
        self.owner = owner.to_string();
        Ok(())
    }

    /// The token `d` would revoke on the selected row, and the question to ask.
    pub fn revoke_question(&self, selected: usize) -> Option<(String, String)> {
        let t = self.list.get(selected)?;
        Some((
            t.name.clone(),
            format!(
                "Revoke API token {} of {} (scope {})? Clients using it are refused at once.",
                t.name, t.owner, t.scope
            ),
        ))
    }

    pub fn draw(
        &self,
        (theme, lang, zone): (&Theme, crate::locale::Lang, crate::locale::Zone),
        selected: usize,
        today: chrono::NaiveDate,
        frame: &mut Frame,
        area: Rect,
    ) {
        let rows = self.list.iter().map(|t| {
            Row::new(vec![
                t.name.clone(),
                t.scope.to_string(),
                t.state(today).to_string(),
                t.expires_on
                    .map_or_else(|| "never".to_string(), |d| d.to_string()),
                t.last_used
                    .map_or_else(|| "never".to_string(), |u| zone.minute_bare(u)),
                zone.day(t.created_at),
                t.created_by.clone(),
            ])
        });
        let widths = [
            Constraint::Length(24),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(16),
            Constraint::Length(11),
            Constraint::Fill(1),
        ];
        let count = self.list.len().to_string();
        let vars = [("name", self.owner.as_str()), ("count", count.as_str())];
        let title = if self.list.is_empty() {
            lang.trf("console.tokens.none", &vars)
        } else {
            lang.trf("console.tokens.title", &vars)
        };
        let header = [
            "name",
            "scope",
            "state",
            "expires",
            "last_used",
            "created",
            "by",
        ]
        .map(|c| lang.tr(&format!("console.columns.{c}")));
        let table = Table::new(rows, widths)
            .header(Row::new(header.to_vec()).style(theme.header))
            .block(block(theme, title))
            .row_highlight_style(theme.selected);
        let mut state = TableState::default().with_selected(
            (!self.list.is_empty()).then_some(selected.min(self.list.len().saturating_sub(1))),
        );
        frame.render_stateful_widget(table, area, &mut state);
    }
}
