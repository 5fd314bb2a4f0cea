//! The hosts screen (`H`): the registered target servers, their groups and
//! key, and who may log in on the selected one; `d` removes a host after a
//! confirmation. Its state and drawing live here; `App` routes keys and the
//! confirmed change to it.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::theme::Theme;
use super::view::block;
use crate::service::hosts::HostView;
use crate::service::{Actor, Services};

#[derive(Default)]
pub struct Hosts {
    /// Each host with who may log in there (read once per load: drawing
    /// does no I/O).
    pub list: Vec<HostView>,
}

impl Hosts {
    /// Reads the hosts and their logins (operators and admins may).
    pub fn load(&mut self, services: &Services, actor: &Actor) -> Result<(), String> {
        let names = services.host_list(actor).map_err(|e| e.to_string())?;
        self.list = names
            .iter()
            .map(|h| {
                services
                    .host_show(actor, &h.name)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// What `d` would remove on the selected row, and the question to ask.
    pub fn remove_question(&self, selected: usize) -> Option<(String, String)> {
        let h = self.list.get(selected)?;
        let n = h.logins.as_ref().map_or(0, Vec::len);
        Some((
            h.name.clone(),
            format!(
                "Remove host {}? Its key stops working at once; {n} account(s) may log in there now.",
                h.name
            ),
        ))
    }

    pub fn draw(&self, theme: &Theme, selected: usize, frame: &mut Frame, area: Rect) {
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).areas(area);
        let rows = self.list.iter().map(|h| {
            Row::new(vec![
                h.name.clone(),
                h.status.clone(),
                h.groups.join(","),
                h.logins.as_ref().map_or(0, Vec::len).to_string(),
                h.fingerprint.clone().unwrap_or_default(),
            ])
        });
        let widths = [
            Constraint::Length(20),
            Constraint::Length(9),
            Constraint::Length(20),
            Constraint::Length(7),
            Constraint::Fill(1),
        ];
        let title = if self.list.is_empty() {
            " Hosts: none (register one with: host add NAME --group G) ".to_string()
        } else {
            format!(" Hosts: {} (d remove) ", self.list.len())
        };
        let table = Table::new(rows, widths)
            .header(Row::new(vec!["HOST", "STATUS", "GROUPS", "LOGINS", "KEY"]).style(theme.header))
            .block(block(theme, title))
            .row_highlight_style(theme.selected);
        let at = selected.min(self.list.len().saturating_sub(1));
        let mut state = TableState::default().with_selected((!self.list.is_empty()).then_some(at));
        frame.render_stateful_widget(table, top, &mut state);

        let Some(host) = self.list.get(at) else {
            return;
        };
        let logins = host.logins.as_deref().unwrap_or_default();
        let text: Vec<String> = if logins.is_empty() {
            vec!["nobody may log in here now (no active account shares a group)".into()]
        } else {
            logins
                .iter()
                .map(|l| {
                    format!(
                        "{:<20} {:<28} ends {:<10}  via {}",
                        l.username,
                        l.display_name,
                        l.end_date.map_or("-".to_string(), |d| d.to_string()),
                        l.via.join(",")
                    )
                })
                .collect()
        };
        let title = format!(" Who may log in on {} ({}) ", host.name, logins.len());
        frame.render_widget(
            Paragraph::new(text.join("\n")).block(block(theme, title)),
            bottom,
        );
    }
}
