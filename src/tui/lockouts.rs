//! The login lockouts screen (`B`): who is locked out after failed password
//! or code attempts, until when and why; `u` lifts one after a confirmation.
//! Its state and drawing live here; `App` routes keys and the confirmed
//! change to it.

use crate::locale::{Lang, Zone};
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Row, Table, TableState};
use ratatui::Frame;

use super::theme::Theme;
use super::view::block;
use crate::service::login::Lockout;
use crate::service::{Actor, Services};

#[derive(Default)]
pub struct Lockouts {
    pub list: Vec<Lockout>,
}

impl Lockouts {
    /// Reads the current lockouts (operators and admins may).
    pub fn load(&mut self, services: &Services, actor: &Actor) -> Result<(), String> {
        self.list = services.auth_lockouts(actor).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// What `u` would unlock on the selected row, and the question to ask.
    pub fn unlock_question(&self, selected: usize, zone: Zone) -> Option<(String, String)> {
        let l = self.list.get(selected)?;
        Some((
            l.who.clone(),
            format!(
                "Lift the lockout of {} {} (until {})?",
                l.kind,
                l.who,
                zone.clock(l.until)
            ),
        ))
    }

    pub fn draw(
        &self,
        (theme, lang, zone): (&Theme, Lang, Zone),
        selected: usize,
        frame: &mut Frame,
        area: Rect,
    ) {
        let rows = self.list.iter().map(|l| {
            Row::new(vec![
                l.kind.clone(),
                l.who.clone(),
                zone.second(l.until),
                l.why.clone(),
            ])
        });
        let widths = [
            Constraint::Length(8),
            Constraint::Length(40),
            Constraint::Length(24),
            Constraint::Fill(1),
        ];
        let title = if self.list.is_empty() {
            lang.tr("console.lockouts.none").to_string()
        } else {
            let count = self.list.len().to_string();
            lang.trf("console.lockouts.title", &[("count", &count)])
        };
        let header =
            ["kind", "who", "until", "why"].map(|c| lang.tr(&format!("console.columns.{c}")));
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
