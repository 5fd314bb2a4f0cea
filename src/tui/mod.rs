//! The console: a keyboard-driven ratatui app per SSH channel. State and
//! `update` live in `app`, a read-only `draw` in `view`, keys are data in
//! `keymap` (the help screen is drawn from it). Every action goes through the
//! service layer; no screen touches the store.

pub mod app;
mod changes;
pub mod connectors;
pub mod form;
pub mod hosts;
pub mod keymap;
pub mod lockouts;
pub mod password;
pub mod popup;
pub mod session;
pub mod sources;
pub mod theme;
pub mod tokens;
pub mod view;

pub use app::App;

#[cfg(test)]
mod tests;
