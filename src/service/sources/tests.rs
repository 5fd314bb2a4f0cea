//! The sync decisions and writes against an in-memory store and a fixed
//! directory (the real slapd runs in tests/it/sources.rs).

use std::sync::Arc;

use super::*;
use crate::domain::source::DirEntry;
use crate::service::testkit;
use crate::store::Collection;

fn config(max_percent: u32) -> String {
    format!(
        "{}\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nfrom = \"t@example.org\"\nsecurity = \"plain\"\n\
         [[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=admin\"\n\
         bind_password_file = \"keys/ldap_password\"\nbase_dn = \"ou=vendors\"\nkind = \"vendor\"\n\
         max_deprovision_percent = {max_percent}\n\
         map = {{ username = \"uid\", display_name = \"cn\", email = \"mail\", company = \"o\", sponsor = \"manager\", fields = {{ cost_center = \"departmentNumber\" }} }}\n\
         groups = {{ \"vendor-devs\" = \"developers\" }}\n",
        crate::config::EXAMPLE
    )
}

struct Fixture {
    s: Services,
    admin: Actor,
    dir: Arc<FixedReader>,
}

fn fixture(max_percent: u32) -> Fixture {
    let (s, _clock, admin) = testkit::services_with(&config(max_percent), None);
    let dir = Arc::new(FixedReader::new(Ok(vec![])));
    s.set_source_reader(dir.clone());
    Fixture { s, admin, dir }
}

fn with(mut e: DirEntry, attr: &str, value: &str) -> DirEntry {
    e.attrs
        .entry(attr.to_ascii_lowercase())
        .or_default()
        .push(value.to_string());
    e
}

fn people(n: usize) -> Vec<DirEntry> {
    (0..n)
        .map(|i| test_entry(&format!("p{i}"), &format!("id-{i}")))
        .collect()
}

fn seq(s: &Services) -> u64 {
    s.store().audit_last().unwrap().map_or(0, |e| e.seq)
}

/// The events after `seq`, oldest first.
fn events_after(s: &Services, seq: u64) -> Vec<crate::domain::AuditEvent> {
    let mut out = Vec::new();
    s.store()
        .scan_audit(true, &mut |e| {
            if e.seq > seq {
                out.push(e);
                true
            } else {
                false
            }
        })
        .unwrap();
    out.reverse();
    out
}

fn sync(f: &Fixture, force: bool) -> Result<SourceRun> {
    f.s.source_sync(
        &f.admin,
        "corp",
        SyncOptions {
            dry_run: false,
            force,
        },
    )
}

#[test]
fn an_import_creates_linked_accounts_and_a_repeat_writes_nothing() {
    let f = fixture(10);
    let boss = test_entry("boss", "id-boss");
    let worker = with(
        with(
            with(
                test_entry("amy", "id-amy"),
                "manager",
                "uid=boss,ou=vendors,dc=example,dc=com",
            ),
            "memberOf",
            "cn=vendor-devs,ou=groups,dc=example,dc=com",
        ),
        "departmentNumber",
        "AB-1234",
    );
    f.dir.set(Ok(vec![worker, boss]));
    let run = sync(&f, false).unwrap();
    assert_eq!(
        (run.read, run.created, run.problems.len()),
        (2, 2, 0),
        "{run:?}"
    );
    let amy = f.s.load("amy").unwrap();
    assert_eq!(amy.sponsor.as_deref(), Some("boss"));
    assert!(amy.groups.contains("developers"));
    assert_eq!(amy.kind, crate::domain::Kind::Vendor);
    assert!(
        amy.end_date.is_some(),
        "the kind's policy gives an end date"
    );
    let link = amy.source.clone().unwrap();
    assert_eq!((link.source.as_str(), link.id.as_str()), ("corp", "id-amy"));
    assert!(
        link.owns("sponsor") && link.owns("group:developers") && link.owns("fields.cost_center")
    );
    assert_eq!(amy.created_by, "system:source:corp");

    let before = seq(&f.s);
    let status_before = f.s.store().meta("source_status:corp").unwrap();
    let again = sync(&f, false).unwrap();
    assert_eq!(
        (again.unchanged, again.created, again.updated),
        (2, 0, 0),
        "{again:?}"
    );
    assert_eq!(
        seq(&f.s),
        before,
        "a run with nothing changed writes no event"
    );
    assert_eq!(
        f.s.store().meta("source_status:corp").unwrap(),
        status_before
    );
    // `source status` still tells of the latest run (kept in memory).
    let status = f.s.source_status(&f.admin, "corp").unwrap();
    assert_eq!(status.summary.last_run.unwrap().unchanged, 2);
    assert_eq!(status.last_change.unwrap().created, 2);
}

#[test]
fn too_many_disables_are_refused_and_alerted_then_forced() {
    let f = fixture(10);
    f.dir.set(Ok(people(4)));
    sync(&f, false).unwrap();
    let outbox_before = f.s.outbox_all().unwrap().len();
    f.dir.set(Ok(people(2)));
    let before = seq(&f.s);
    let err = sync(&f, false).unwrap_err();
    assert_eq!(err.exit_code(), 5, "{err}");
    assert!(err.to_string().contains("disable 2 of the 4"), "{err}");
    for p in ["p2", "p3"] {
        assert_eq!(f.s.load(p).unwrap().status, Status::Active);
    }
    let events = events_after(&f.s, before);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action, "source.refused");
    let alerts: Vec<_> =
        f.s.outbox_all()
            .unwrap()
            .into_iter()
            .skip(outbox_before)
            .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].event, "source_alert");
    // The same refusal again is not alerted twice.
    sync(&f, false).unwrap_err();
    assert_eq!(f.s.outbox_all().unwrap().len(), outbox_before + 1);

    // A dry run lists what it would do and writes nothing.
    let dry =
        f.s.source_sync(
            &f.admin,
            "corp",
            SyncOptions {
                dry_run: true,
                force: false,
            },
        )
        .unwrap();
    assert_eq!(
        dry.actions,
        [
            "disable p2: gone from source corp",
            "disable p3: gone from source corp"
        ]
    );
    assert!(dry.error.unwrap().contains("would be refused"));

    let run = sync(&f, true).unwrap();
    assert_eq!(run.disabled, 2);
    let p2 = f.s.load("p2").unwrap();
    assert_eq!(p2.status, Status::Disabled);
    assert_eq!(p2.disable_reason, Some(DisableReason::SourceRemoved));
    assert_eq!(p2.updated_by, "system:source:corp");

    // Back in the directory: enabled again; one disabled by hand stays so.
    f.s.disable(&f.admin, "p1", DisableReason::Manual, Some("paused".into()))
        .unwrap();
    f.dir.set(Ok(people(4)));
    let run = sync(&f, false).unwrap();
    assert_eq!(run.enabled, 2, "{run:?}");
    assert_eq!(f.s.load("p2").unwrap().status, Status::Active);
    assert_eq!(f.s.load("p1").unwrap().status, Status::Disabled);
}

#[test]
fn a_failed_or_empty_read_disables_nobody() {
    let f = fixture(100);
    f.dir.set(Ok(people(3)));
    sync(&f, false).unwrap();
    f.dir.set(Err(
        "search ou=vendors stopped after 2 entries: connection reset".into(),
    ));
    let err = sync(&f, true).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    let status = f.s.source_status(&f.admin, "corp").unwrap();
    let last = status.summary.last_run.unwrap();
    assert_eq!(last.outcome, Outcome::Failed);
    assert!(last.error.unwrap().contains("stopped after 2 entries"));
    let after_first = seq(&f.s);
    sync(&f, false).unwrap_err();
    assert_eq!(
        seq(&f.s),
        after_first,
        "the same failure again is not written again"
    );

    f.dir.set(Ok(vec![]));
    let err = sync(&f, true).unwrap_err();
    assert!(err.to_string().contains("no entries"), "{err}");
    for i in 0..3 {
        assert_eq!(f.s.load(&format!("p{i}")).unwrap().status, Status::Active);
    }
}

#[test]
fn directory_fields_are_read_only_in_tenure_and_the_rest_is_not() {
    let f = fixture(10);
    let e = with(
        with(test_entry("amy", "id-amy"), "o", "Acme"),
        "memberOf",
        "cn=vendor-devs,ou=groups,dc=example,dc=com",
    );
    f.dir.set(Ok(vec![e]));
    sync(&f, false).unwrap();
    let refused =
        f.s.update(
            &f.admin,
            "amy",
            AccountInput {
                display_name: Some("Someone Else".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(refused.exit_code(), 5);
    assert!(
        refused
            .to_string()
            .contains("display_name of amy comes from source corp"),
        "{refused}"
    );
    let refused = f.s.group_remove(&f.admin, "developers", "amy").unwrap_err();
    assert!(
        refused.to_string().contains("group developers"),
        "{refused}"
    );
    // Not from the directory: the project, notes, the end date (none there), other groups.
    f.s.update(
        &f.admin,
        "amy",
        AccountInput {
            project: Some("apollo".into()),
            notes: Some("badge 7".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let end = f.s.today() + chrono::Duration::days(30);
    f.s.extend(&f.admin, "amy", end).unwrap();
    f.s.group_create(&f.admin, "vpn").unwrap();
    f.s.group_add(&f.admin, "vpn", "amy").unwrap();
    // The next run keeps those, and changes nothing else.
    let run = sync(&f, false).unwrap();
    assert_eq!(run.unchanged, 1, "{run:?}");
    let amy = f.s.load("amy").unwrap();
    assert_eq!(amy.project.as_deref(), Some("apollo"));
    assert!(amy.groups.contains("vpn") && amy.groups.contains("developers"));
    assert_eq!(amy.end_date, Some(end));
    // The records of SCIM are untouched by all this.
    assert!(f
        .s
        .store()
        .record(Collection::Scim, "u:amy")
        .unwrap()
        .is_none());
}

#[test]
fn a_rename_is_an_update_and_a_gone_manager_leaves_the_sponsor() {
    let f = fixture(100);
    f.dir.set(Ok(vec![test_entry("amy", "id-amy")]));
    sync(&f, false).unwrap();
    let mut moved = test_entry("amy", "id-amy");
    moved.dn = "uid=amy,ou=moved,dc=example,dc=com".into();
    moved.attrs.insert("cn".into(), vec!["Amy Renamed".into()]);
    f.dir.set(Ok(vec![moved]));
    let run = sync(&f, false).unwrap();
    assert_eq!(
        (run.updated, run.created, run.disabled),
        (1, 0, 0),
        "{run:?}"
    );
    let amy = f.s.load("amy").unwrap();
    assert_eq!(amy.display_name, "Amy Renamed");
    assert_eq!(amy.source.unwrap().dn, "uid=amy,ou=moved,dc=example,dc=com");
}

#[test]
fn ad_disabled_bit_and_expiry_follow_the_directory() {
    let config = config(100).replace(
        "sponsor = \"manager\",",
        "sponsor = \"manager\", end_date = \"accountExpires\",",
    );
    let (s, _clock, admin) = testkit::services_with(&config, None);
    let dir = Arc::new(FixedReader::new(Ok(vec![])));
    s.set_source_reader(dir.clone());
    let f = Fixture { s, admin, dir };
    let filetime = |d: chrono::NaiveDate| {
        let secs = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        ((secs + 11_644_473_600) * 10_000_000).to_string()
    };
    let today = f.s.today();
    let soon = today + chrono::Duration::days(40);
    let active = |uac: &str| {
        with(
            with(test_entry("amy", "id-amy"), "userAccountControl", uac),
            "accountExpires",
            &filetime(soon),
        )
    };
    let expired = with(
        test_entry("old", "id-old"),
        "accountExpires",
        &filetime(today - chrono::Duration::days(3)),
    );
    let never = with(
        test_entry("eve", "id-eve"),
        "accountExpires",
        "9223372036854775807",
    );
    let disabled_new = with(test_entry("dan", "id-dan"), "userAccountControl", "514");
    f.dir.set(Ok(vec![
        active("512"),
        expired.clone(),
        never.clone(),
        disabled_new.clone(),
    ]));
    let run = sync(&f, false).unwrap();
    assert_eq!(run.created, 2, "{run:?}");
    // accountExpires at midnight: the last day is the one before.
    assert_eq!(f.s.load("amy").unwrap().end_date, soon.pred_opt());
    // "never": the kind's policy supplies the end date, and tenure may change it.
    let eve = f.s.load("eve").unwrap();
    assert!(eve.end_date.is_some() && !eve.source.unwrap().owns("end_date"));
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("old") && p.contains("has passed")),
        "{run:?}"
    );
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("dan: disabled in the directory")),
        "{run:?}"
    );

    f.dir.set(Ok(vec![
        active("514"),
        expired.clone(),
        never.clone(),
        disabled_new.clone(),
    ]));
    let run = sync(&f, false).unwrap();
    assert_eq!(run.disabled, 1, "{run:?}");
    let amy = f.s.load("amy").unwrap();
    assert_eq!(amy.status, Status::Disabled);
    assert_eq!(amy.disable_note.as_deref(), Some("disabled in source corp"));
    f.dir
        .set(Ok(vec![active("512"), expired, never, disabled_new]));
    let run = sync(&f, false).unwrap();
    assert_eq!(run.enabled, 1, "{run:?}");
    assert_eq!(f.s.load("amy").unwrap().status, Status::Active);
}
