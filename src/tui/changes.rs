//! What a confirmed change does: the service call behind each `Change`, the
//! status line it leaves (in the viewer's language) and, for a certificate or
//! a TOTP enrolment, the text to show. `App::apply` refreshes the screens.

use super::app::list_names;
use super::popup::{Change, Popup};
use crate::domain::DisableReason;
use crate::locale::{Lang, Zone};
use crate::service::{Actor, Error, Services};

/// Runs `change` for `a`: the status line (or the error) and any popup to open.
pub(super) fn run(
    s: &Services,
    a: &Actor,
    (lang, zone): (Lang, Zone),
    change: &Change,
    popup: &mut Option<Popup>,
) -> Result<String, String> {
    // `done` is a catalogue key with `{names}` (and what `vars` add).
    let each = |targets: &[String],
                done_key: &str,
                vars: &[(&str, &str)],
                f: &dyn Fn(&str) -> Result<(), Error>| {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for t in targets {
            match f(t) {
                Ok(()) => done.push(t.clone()),
                Err(e) => failed.push(format!("{t}: {e}")),
            }
        }
        let names = list_names(&done);
        let mut all = vars.to_vec();
        all.push(("names", &names));
        let line = lang.trf(done_key, &all);
        if failed.is_empty() {
            Ok(line)
        } else if done.is_empty() {
            Err(failed.join("; "))
        } else {
            let failed = failed.join("; ");
            Err(lang.trf(
                "console.done.partly",
                &[("done", &line), ("failed", &failed)],
            ))
        }
    };
    let result: Result<String, String> = match change {
        Change::Disable { targets, reason } => each(targets, "console.done.disabled", &[], &|t| {
            s.disable(a, t, DisableReason::Manual, Some(reason.clone()))
                .map(drop)
        }),
        Change::Enable { targets } => each(targets, "console.done.enabled", &[], &|t| {
            s.enable(a, t).map(drop)
        }),
        Change::Extend { targets, end } => {
            let date = end.to_string();
            each(targets, "console.done.extended", &[("date", &date)], &|t| {
                s.extend(a, t, *end).map(drop)
            })
        }
        Change::Delete { targets } => each(targets, "console.done.deleted", &[], &|t| {
            s.delete(a, t).map(drop)
        }),
        Change::Restore { targets } => each(targets, "console.done.restored", &[], &|t| {
            s.restore(a, t).map(drop)
        }),
        Change::Purge { target } => s
            .purge(a, target)
            .map(|()| lang.trf("console.done.purged", &[("name", target)]))
            .map_err(|e| e.to_string()),
        Change::Decide {
            id,
            approve,
            reason,
        } => s
            .request_decide(a, *id, *approve, reason.clone())
            .map(|r| format!("request #{id} {:?}", r.status).to_lowercase())
            .map_err(|e| e.to_string()),
        Change::KillSession { id } => s
            .session_kill(a, *id)
            .map(|x| {
                let id = id.to_string();
                lang.trf(
                    "console.done.killed_session",
                    &[("id", &id), ("name", &x.account)],
                )
            })
            .map_err(|e| e.to_string()),
        Change::Reconcile { name } => super::connectors::reconcile(s, a, name),
        Change::RemoveHost { name } => s
            .host_remove(a, name)
            .map(|()| lang.trf("console.done.host_removed", &[("name", name)]))
            .map_err(|e| e.to_string()),
        Change::Unlock { what } => s
            .auth_unlock(a, what)
            .map(|was| {
                if was {
                    lang.trf("console.done.unlocked", &[("what", what)])
                } else {
                    lang.trf("console.done.not_locked", &[("what", what)])
                }
            })
            .map_err(|e| e.to_string()),
        Change::KillUser { target } => s
            .session_kill_user(a, target)
            .map(|n| {
                let n = n.to_string();
                lang.trf(
                    "console.done.killed_all",
                    &[("count", &n), ("name", target)],
                )
            })
            .map_err(|e| e.to_string()),
        Change::RevokeToken { name } => s
            .token_revoke(a, name)
            .map(|t| {
                let vars = [("token", t.name.as_str()), ("name", t.owner.as_str())];
                lang.trf("console.done.token_revoked", &vars)
            })
            .map_err(|e| e.to_string()),
        Change::RemoveKey {
            target,
            fingerprint,
        } => s
            .key_remove(a, target, fingerprint)
            .map(|k| {
                let vars = [("fingerprint", k.fingerprint.as_str()), ("name", target)];
                lang.trf("console.done.key_removed", &vars)
            })
            .map_err(|e| e.to_string()),
        Change::Cert { target } => match s.console_cert(a, target) {
            Ok(issued) => {
                let serial = issued.record.serial.to_string();
                *popup = Some(Popup::Text {
                    title: lang.trf(
                        "console.done.cert_title",
                        &[("name", target), ("serial", &serial)],
                    ),
                    text: format!(
                        "{}\n\n{}",
                        issued.certificate.trim(),
                        lang.trf(
                            "console.done.cert_valid",
                            &[
                                ("from", &zone.minute(issued.record.valid_after)),
                                ("to", &zone.minute(issued.record.valid_before)),
                                ("principals", &issued.principals.join(",")),
                            ],
                        )
                    ),
                    error: false,
                    scroll: 0,
                });
                Ok(lang.trf(
                    "console.done.cert",
                    &[("name", target), ("serial", &serial)],
                ))
            }
            Err(e) => Err(e.to_string()),
        },
        Change::Totp { target } => match s.totp_enroll(a, target) {
            Ok(enrolment) => {
                let qr = crate::auth::totp::qr_text(&enrolment.uri).unwrap_or_default();
                *popup = Some(Popup::Text {
                    title: lang.trf("console.done.totp_title", &[("name", target)]),
                    text: format!(
                        "{}\n\n{}\nsecret {}",
                        qr.trim_end(),
                        enrolment.uri,
                        enrolment.secret
                    ),
                    error: false,
                    scroll: 0,
                });
                Ok(lang.trf("console.done.totp", &[("name", target)]))
            }
            Err(e) => Err(e.to_string()),
        },
    };
    result
}
