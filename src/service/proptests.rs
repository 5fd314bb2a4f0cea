//! Property: whatever sequence of operations runs, the live indexes stay
//! equal to ones rebuilt from the records, and `check` finds nothing; a
//! refused operation writes nothing.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::PrivateKey;

use super::accounts::AccountInput;
use super::integrity::AuditFilter;
use super::{Actor, FixedClock, Services};
use crate::config::{Config, EXAMPLE};
use crate::domain::{DisableReason, Kind};
use crate::store::{MemoryStore, SledStore, Store};

const NAMES: [&str; 5] = ["ann", "ben", "cat", "dan", "eve"];
const EMAILS: [&str; 4] = ["a@x.io", "B@x.io", "b@X.io", "c@x.io"];

#[derive(Clone, Debug)]
enum Op {
    Create {
        name: usize,
        email: usize,
        sponsor: Option<usize>,
        days: u32,
        start_in: u32,
    },
    Update {
        name: usize,
        email: usize,
        sponsor: Option<usize>,
    },
    Disable(usize),
    Enable(usize),
    Extend(usize, u32),
    Delete(usize),
    Restore(usize),
    Purge(usize),
    KeyAdd(usize, u8),
    KeyRemove(usize, u8),
    GroupAdd(usize),
    GroupRemove(usize),
    Batch(Vec<(usize, usize)>),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NAMES.len();
    let e = 0..EMAILS.len();
    prop_oneof![
        3 => (n.clone(), e.clone(), proptest::option::of(0..NAMES.len()), 1u32..400, 0u32..3)
            .prop_map(|(name, email, sponsor, days, start_in)| Op::Create { name, email, sponsor, days, start_in }),
        1 => (n.clone(), e.clone(), proptest::option::of(0..NAMES.len())).prop_map(|(name, email, sponsor)| Op::Update { name, email, sponsor }),
        1 => n.clone().prop_map(Op::Disable),
        1 => n.clone().prop_map(Op::Enable),
        1 => (n.clone(), 1u32..200).prop_map(|(a, d)| Op::Extend(a, d)),
        1 => n.clone().prop_map(Op::Delete),
        1 => n.clone().prop_map(Op::Restore),
        1 => n.clone().prop_map(Op::Purge),
        2 => (n.clone(), 0u8..3).prop_map(|(a, k)| Op::KeyAdd(a, k)),
        1 => (n.clone(), 0u8..3).prop_map(|(a, k)| Op::KeyRemove(a, k)),
        1 => n.clone().prop_map(Op::GroupAdd),
        1 => n.clone().prop_map(Op::GroupRemove),
        1 => proptest::collection::vec((n, e), 1..4).prop_map(Op::Batch),
        1 => (1u32..120).prop_map(Op::Advance),
    ]
}

fn key_line(seed: u8) -> String {
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[seed.wrapping_add(1); 32]));
    key.public_key().to_openssh().unwrap()
}

fn fingerprint(seed: u8) -> String {
    crate::domain::key::parse_public_key(&key_line(seed))
        .unwrap()
        .fingerprint
}

fn services(store: Arc<dyn Store>) -> (Services, Arc<FixedClock>) {
    let config = Config::parse(EXAMPLE, "test", std::path::Path::new("/tmp")).unwrap();
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    ));
    let services = Services::new(Arc::new(config), store, clock.clone()).unwrap();
    let admin = Actor::local_operator();
    services
        .initialize(&admin, "root", AccountInput::default())
        .unwrap();
    services.group_create(&admin, "team").unwrap();
    (services, clock)
}

fn snapshot(s: &Services, actor: &Actor) -> (usize, String) {
    let events = s
        .audit_tail(
            actor,
            &AuditFilter {
                limit: 100_000,
                ..Default::default()
            },
        )
        .unwrap();
    let accounts = s.export(actor).unwrap();
    (events.len(), serde_json::to_string(&accounts).unwrap())
}

fn apply(s: &Services, clock: &FixedClock, actor: &Actor, op: &Op) -> bool {
    let today = s.today();
    let input = |email: usize, sponsor: Option<usize>, days: u32, start_in: u32| AccountInput {
        email: Some(EMAILS[email].to_string()),
        display_name: Some("Some One".into()),
        kind: Some(Kind::Contractor),
        sponsor: sponsor.map(|i| NAMES[i].to_string()),
        start_date: Some(today + Duration::days(i64::from(start_in))),
        end_date: Some(today + Duration::days(i64::from(days))),
        ..Default::default()
    };
    match op {
        Op::Create {
            name,
            email,
            sponsor,
            days,
            start_in,
        } => s
            .create(
                actor,
                NAMES[*name],
                input(*email, *sponsor, *days, *start_in),
            )
            .is_ok(),
        Op::Update {
            name,
            email,
            sponsor,
        } => s
            .update(
                actor,
                NAMES[*name],
                AccountInput {
                    email: Some(EMAILS[*email].into()),
                    sponsor: sponsor.map(|i| NAMES[i].to_string()),
                    ..Default::default()
                },
            )
            .is_ok(),
        Op::Disable(a) => s
            .disable(actor, NAMES[*a], DisableReason::Manual, Some("test".into()))
            .is_ok(),
        Op::Enable(a) => s.enable(actor, NAMES[*a]).is_ok(),
        Op::Extend(a, d) => s
            .extend(actor, NAMES[*a], today + Duration::days(i64::from(*d)))
            .is_ok(),
        Op::Delete(a) => s.delete(actor, NAMES[*a]).is_ok(),
        Op::Restore(a) => s.restore(actor, NAMES[*a]).is_ok(),
        Op::Purge(a) => s.purge(actor, NAMES[*a]).is_ok(),
        Op::KeyAdd(a, k) => s.key_add(actor, NAMES[*a], &key_line(*k), None).is_ok(),
        Op::KeyRemove(a, k) => s.key_remove(actor, NAMES[*a], &fingerprint(*k)).is_ok(),
        Op::GroupAdd(a) => s.group_add(actor, "team", NAMES[*a]).is_ok(),
        Op::GroupRemove(a) => s.group_remove(actor, "team", NAMES[*a]).is_ok(),
        Op::Batch(rows) => {
            let rows: Vec<(String, AccountInput)> = rows
                .iter()
                .map(|(n, e)| (NAMES[*n].to_string(), input(*e, None, 30, 0)))
                .collect();
            s.create_batch(actor, &rows).is_ok()
        }
        Op::Advance(days) => {
            clock.advance(Duration::days(i64::from(*days)));
            true
        }
    }
}

/// Applies `ops`, checking after each. `cold`: each op runs on a fresh
/// handle that never built the in-memory indexes (as an offline command
/// does), so uniqueness is checked against the indexes kept on disk.
fn run_sequence(store: Arc<dyn Store>, ops: &[Op], cold: bool) -> Result<(), TestCaseError> {
    let (s, clock) = services(store);
    let actor = Actor::local_operator();
    for op in ops {
        let before = snapshot(&s, &actor);
        let ok = if cold {
            let fresh = Services::new(
                Arc::new(s.config().clone()),
                s.inner.store.clone(),
                clock.clone(),
            )
            .unwrap();
            let ok = apply(&fresh, &clock, &actor, op);
            prop_assert!(!fresh.indexes_ready(), "{:?} built the indexes", op);
            ok
        } else {
            apply(&s, &clock, &actor, op)
        };
        if cold {
            // The warm handle's indexes do not see the cold handle's writes.
            *s.write_indexes().unwrap() = None;
        }
        if !ok {
            prop_assert_eq!(
                &before,
                &snapshot(&s, &actor),
                "refused {:?} changed something",
                op
            );
        }
        let report = s.check(&actor).unwrap();
        prop_assert!(
            report.problems.is_empty(),
            "after {:?}: {:?}",
            op,
            report.problems
        );
    }
    // A fresh service over the same store rebuilds the same picture.
    let again = Services::new(Arc::new(s.config().clone()), s.inner.store.clone(), clock).unwrap();
    prop_assert!(again.check(&actor).unwrap().problems.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn indexes_stay_consistent_in_memory(ops in proptest::collection::vec(op(), 1..40)) {
        run_sequence(Arc::new(MemoryStore::new()), &ops, false)?;
    }

    #[test]
    fn stored_indexes_decide_uniqueness_without_the_memory_ones(ops in proptest::collection::vec(op(), 1..40)) {
        run_sequence(Arc::new(MemoryStore::new()), &ops, true)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn indexes_stay_consistent_on_sled(ops in proptest::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        run_sequence(Arc::new(SledStore::open(dir.path()).unwrap()), &ops, false)?;
    }
}

/// The server builds its in-memory indexes while it already takes changes:
/// whatever is written during the build must be in them afterwards.
#[test]
fn changes_made_while_the_indexes_are_built_are_in_them() {
    let (s, clock) = services(Arc::new(MemoryStore::new()));
    let actor = Actor::local_operator();
    let today = s.today();
    let input = |i: usize| AccountInput {
        email: Some(format!("person{i}@example.org")),
        display_name: Some("Some One".into()),
        kind: Some(Kind::Contractor),
        end_date: Some(today + Duration::days(30 + (i % 200) as i64)),
        ..Default::default()
    };
    let rows: Vec<(String, AccountInput)> =
        (0..4000).map(|i| (format!("p{i:05}"), input(i))).collect();
    s.create_batch(&actor, &rows).unwrap();
    let cold = Services::new(Arc::new(s.config().clone()), s.inner.store.clone(), clock).unwrap();
    assert!(!cold.indexes_ready());
    std::thread::scope(|scope| {
        let builder = scope.spawn(|| cold.warm_up().unwrap());
        for i in 0..60 {
            let name = format!("p{:05}", i * 61);
            match i % 3 {
                0 => cold
                    .update(
                        &actor,
                        &name,
                        AccountInput {
                            email: Some(format!("moved{i}@example.org")),
                            ..Default::default()
                        },
                    )
                    .map(|_| ())
                    .unwrap(),
                1 => cold
                    .disable(&actor, &name, DisableReason::Manual, Some("test".into()))
                    .map(|_| ())
                    .unwrap(),
                _ => cold
                    .create(&actor, &format!("new{i:03}"), input(10_000 + i))
                    .map(|_| ())
                    .unwrap(),
            }
        }
        assert!(builder.join().unwrap() >= 4001);
    });
    let report = cold.check(&actor).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(cold.find_by_email("moved0@example.org").unwrap().is_some());
}
