//! Read-only helpers for the console: a cheap "has anything changed" probe,
//! so an open screen can poll every second and reload only after a change.

use super::{Result, Services};

impl Services {
    /// A number that changes whenever stored state changes: the sequence of
    /// the newest audit event (every change and every login writes one).
    /// Reads one key; takes no lock a writer holds.
    pub fn generation(&self) -> Result<u64> {
        Ok(self.store().audit_last()?.map_or(0, |e| e.seq))
    }
}

#[cfg(test)]
mod tests {
    use crate::service::accounts::AccountInput;
    use crate::service::testkit::services;

    #[test]
    fn the_generation_moves_with_every_change_and_only_then() {
        let (s, _clock, admin) = services();
        let before = s.generation().unwrap();
        assert_eq!(before, s.generation().unwrap());
        let input = AccountInput {
            email: Some("bob@example.com".into()),
            display_name: Some("Bob".into()),
            kind: Some(crate::domain::Kind::Employee),
            ..Default::default()
        };
        s.create(&admin, "bob", input).unwrap();
        assert!(s.generation().unwrap() > before);
    }
}
