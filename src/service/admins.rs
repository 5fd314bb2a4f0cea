//! Admins stay reachable: no change — by an admin, an operator, the offline
//! operator or the lifecycle sweep — may leave tenure without an active admin
//! who can log in. Recovering from that means stopping the server.
//!
//! "Can log in" follows the login rules: the account is active today (within
//! its dates), and it holds a credential its role's configured methods
//! accept (an unexpired key for `key`, a password for `password`, either
//! with TOTP enrolled for the `+totp` methods).

use chrono::NaiveDate;

use super::{Error, Result, Tx};
use crate::config::{Config, LoginMethod};
use crate::domain::lifecycle::{effective, Effective};
use crate::domain::{Account, Role};

/// Role admin and active today.
pub fn is_active_admin(account: &Account, today: NaiveDate) -> bool {
    account.roles.contains(&Role::Admin) && effective(account, today) == Effective::Active
}

/// Whether the account holds a credential one of `methods` accepts.
pub fn has_way_in(account: &Account, methods: &[LoginMethod], today: NaiveDate) -> bool {
    let c = &account.credentials;
    let key = c
        .keys
        .iter()
        .any(|k| k.expires_on.is_none_or(|exp| exp >= today));
    let password = c.password_hash.is_some();
    let totp = c.totp_secret.is_some();
    methods.iter().any(|m| match m {
        LoginMethod::Key => key,
        LoginMethod::KeyTotp => key && totp,
        LoginMethod::Password => password,
        LoginMethod::PasswordTotp => password && totp,
    })
}

/// An active admin who can log in.
pub fn reachable_admin(account: &Account, config: &Config, today: NaiveDate) -> bool {
    is_active_admin(account, today)
        && has_way_in(account, &config.auth.methods_for(&account.roles), today)
}

/// Refuses (a conflict, exit 5) a change of `old` into `new` (`None`: gone)
/// that would leave no active admin able to log in. `what` names the change
/// for the refusal ("disabling it", "removing this key").
///
/// An admin that could not log in before (first run, waiting for its
/// enrolment code) may still lose a credential, but never its role or its
/// active state while it is the only admin.
pub(crate) fn keep_an_admin(
    tx: &Tx<'_>,
    old: &Account,
    new: Option<&Account>,
    what: &str,
) -> Result<()> {
    let today = tx.today();
    let config = tx.config();
    if !is_active_admin(old, today) || new.is_some_and(|n| reachable_admin(n, config, today)) {
        return Ok(());
    }
    let stays_active_admin = new.is_some_and(|n| is_active_admin(n, today));
    if stays_active_admin && !reachable_admin(old, config, today) {
        return Ok(());
    }
    let others: Vec<String> = tx
        .admins()?
        .into_iter()
        .filter(|n| *n != old.username)
        .collect();
    for name in others {
        if tx
            .get(&name)?
            .is_some_and(|a| reachable_admin(&a, config, today))
        {
            return Ok(());
        }
    }
    Err(Error::Conflict(format!(
        "{} is the last active admin who can log in: {what} would leave nobody able to administer tenure (give another admin a way in first)",
        old.username
    )))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::DisableReason;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit;
    use crate::service::{Actor, Services, Source};

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@x";

    fn key_b() -> String {
        // A second, distinct ed25519 key (32 bytes of 0x01).
        use base64::Engine;
        let mut blob = Vec::new();
        for part in [&b"ssh-ed25519"[..], &[1u8; 32][..]] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        format!(
            "ssh-ed25519 {} b@x",
            base64::engine::general_purpose::STANDARD.encode(blob)
        )
    }

    /// root (the only admin) with one key, and an operator olga.
    fn setup() -> (Services, Actor) {
        let (s, _clock, local) = testkit::services();
        s.key_add(&local, "root", KEY_A, None).unwrap();
        let input = AccountInput {
            email: Some("olga@x.io".into()),
            display_name: Some("Olga".into()),
            kind: Some(crate::domain::Kind::Employee),
            roles: Some(vec![Role::Operator]),
            ..Default::default()
        };
        s.create(&local, "olga", input).unwrap();
        (s, local)
    }

    fn fp(s: &Services) -> String {
        s.load("root").unwrap().credentials.keys[0]
            .fingerprint
            .clone()
    }

    #[test]
    fn nobody_disables_deletes_demotes_or_strips_the_last_admin() {
        let (s, local) = setup();
        let before = s.load("root").unwrap();
        let refusals = [
            s.disable(&local, "root", DisableReason::Manual, Some("x".into()))
                .unwrap_err(),
            s.delete(&local, "root").unwrap_err(),
            s.update(
                &local,
                "root",
                AccountInput {
                    roles: Some(vec![Role::User]),
                    ..Default::default()
                },
            )
            .unwrap_err(),
            s.update(
                &local,
                "root",
                AccountInput {
                    start_date: Some(s.today() + Duration::days(3)),
                    ..Default::default()
                },
            )
            .unwrap_err(),
            s.key_remove(&local, "root", &fp(&s)).unwrap_err(),
        ];
        for e in &refusals {
            assert_eq!(e.exit_code(), 5, "{e}");
            assert!(e.to_string().contains("last active admin"), "{e}");
        }
        assert_eq!(s.load("root").unwrap(), before);
    }

    #[test]
    fn a_second_admin_who_can_log_in_lifts_the_rule() {
        let (s, local) = setup();
        let input = AccountInput {
            email: Some("ada@x.io".into()),
            display_name: Some("Ada".into()),
            kind: Some(crate::domain::Kind::Employee),
            roles: Some(vec![Role::Admin]),
            ..Default::default()
        };
        s.create(&local, "ada", input).unwrap();
        // Ada has no credential yet: she does not count.
        assert_eq!(
            s.key_remove(&local, "root", &fp(&s))
                .unwrap_err()
                .exit_code(),
            5
        );
        s.key_add(&local, "ada", &key_b(), None).unwrap();
        s.key_remove(&local, "root", &fp(&s)).unwrap();
        s.disable(&local, "root", DisableReason::Manual, Some("left".into()))
            .unwrap();
        // Now Ada is the last one.
        let e = s
            .disable(&local, "ada", DisableReason::Manual, Some("x".into()))
            .unwrap_err();
        assert_eq!(e.exit_code(), 5, "{e}");
    }

    #[test]
    fn a_password_counts_only_where_the_role_may_use_it() {
        let (s, local) = setup();
        s.password_set(&local, "root", "a long enough secret", false)
            .unwrap();
        // The example config lets admins in with keys only: the password is no way in.
        assert_eq!(
            s.key_remove(&local, "root", &fp(&s))
                .unwrap_err()
                .exit_code(),
            5
        );
        let root = s.load("root").unwrap();
        let today = s.today();
        assert!(has_way_in(&root, &[LoginMethod::Password], today));
        assert!(!has_way_in(&root, &[LoginMethod::PasswordTotp], today));
        let mut expired = root.clone();
        expired.credentials.password_hash = None;
        expired.credentials.keys[0].expires_on = Some(today - Duration::days(1));
        assert!(!has_way_in(&expired, &[LoginMethod::Key], today));
    }

    #[test]
    fn operators_may_not_touch_the_admin_and_say_why() {
        let (s, _local) = setup();
        let olga = Actor::account(&s.load("olga").unwrap(), Source::Cli, None);
        let e = s
            .disable(&olga, "root", DisableReason::Manual, Some("x".into()))
            .unwrap_err();
        assert_eq!(e.exit_code(), 4, "{e}");
        assert!(e.to_string().contains("below operator"), "{e}");
        let e = s.key_remove(&olga, "root", &fp(&s)).unwrap_err();
        assert_eq!(e.exit_code(), 4, "{e}");
        assert_eq!(
            s.session_kill_user(&olga, "root").unwrap_err().exit_code(),
            4
        );
        assert_eq!(
            s.load("root").unwrap().status,
            crate::domain::Status::Active
        );
    }
}
