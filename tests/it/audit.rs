//! Tampering with the stored audit trail is detected and named.

use serde_json::Value;

use crate::common::Instance;

/// Opens the database behind the binary's back and rewrites the audit
/// block holding event `seq` with `edit`.
fn tamper(inst: &Instance, seq: u64, edit: impl Fn(&mut Vec<Value>)) {
    let db = sled::open(inst.data_dir()).expect("open the database directly");
    let audit = db.open_tree("audit").unwrap();
    let (key, value) = audit
        .iter()
        .map(Result::unwrap)
        .filter(|(k, _)| u64::from_be_bytes(k.as_ref().try_into().unwrap()) <= seq)
        .last()
        .expect("the block holding the event");
    let mut events: Vec<Value> = serde_json::from_slice(&value).unwrap();
    edit(&mut events);
    if events.is_empty() {
        audit.remove(key).unwrap();
    } else {
        audit
            .insert(key, serde_json::to_vec(&events).unwrap())
            .unwrap();
    }
    db.flush().unwrap();
}

fn busy_instance() -> Instance {
    let inst = Instance::initialised();
    for name in ["bob", "carl", "dana"] {
        inst.create(name, "--kind employee");
    }
    inst.sh("user disable bob --reason 'left the company'");
    inst
}

#[test]
fn an_edited_event_is_named_by_audit_verify_and_check() {
    let inst = busy_instance();
    assert!(inst
        .ok(&["audit", "verify"])
        .starts_with("audit chain intact"));
    let target = inst.json(&["audit", "tail", "-n", "1", "--target", "carl", "--json"]);
    let seq = target[0]["seq"].as_u64().unwrap();
    tamper(&inst, seq, |events| {
        for e in events.iter_mut().filter(|e| e["seq"] == seq) {
            e["target"] = Value::from("mallory");
        }
    });
    let (code, out, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("event #{seq} was altered")), "{err}");
    let (code, out, _) = inst.run(&["check"]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("audit chain: event #{seq} was altered")),
        "{out}"
    );
}

#[test]
fn a_removed_or_rehashed_event_breaks_the_chain_after_it() {
    let inst = busy_instance();
    let last = inst.json(&["audit", "tail", "-n", "3", "--json"]);
    let seq = last[0]["seq"].as_u64().unwrap();
    // Rewriting an event and its own hash still breaks the link to the next one.
    tamper(&inst, seq, |events| {
        for e in events.iter_mut().filter(|e| e["seq"] == seq) {
            e["detail"] = Value::from("nothing to see here");
            let mut unhashed: tenure::domain::AuditEvent =
                serde_json::from_value(e.clone()).unwrap();
            unhashed.hash = unhashed.compute_hash();
            *e = serde_json::to_value(unhashed).unwrap();
        }
    });
    let (code, _, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("event #{} does not link", seq + 1)),
        "{err}"
    );

    let inst = busy_instance();
    let first = inst.json(&["audit", "tail", "-n", "1000", "--json"]);
    let seq = first[2]["seq"].as_u64().unwrap();
    tamper(&inst, seq, |events| events.retain(|e| e["seq"] != seq));
    let (code, _, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("event #{seq} is missing")), "{err}");
}

#[test]
fn a_daily_check_from_the_last_checkpoint_costs_what_changed_and_still_catches_tampering() {
    let inst = busy_instance();
    let full = inst.json(&["audit", "verify", "--json"]);
    let head = full["events"].as_u64().unwrap();
    assert!(full["broken"].is_null(), "{full}");
    // The intact chain was recorded as a checkpoint event.
    let last = inst.json(&["audit", "tail", "-n", "1", "--json"]);
    assert_eq!(last[0]["action"], "audit.checkpoint", "{last}");
    assert!(
        last[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("through event #{head}")),
        "{last}"
    );

    for name in ["erin", "fred"] {
        inst.create(name, "--kind employee");
    }
    let since = inst.json(&["audit", "verify", "--since-checkpoint", "--json"]);
    // The checkpoint event and the two creations: nothing before them.
    assert_eq!(since["events"], 3, "{since}");
    assert_eq!(since["since"], head, "{since}");
    let text = inst.ok(&["audit", "verify", "--since-checkpoint"]);
    assert!(
        text.contains("1 events after the checkpoint at #"),
        "{text}"
    );

    // Tampering after the checkpoint is found by the short check.
    inst.create("gina", "--kind employee");
    let gina = inst.json(&["audit", "tail", "-n", "1", "--target", "gina", "--json"]);
    let seq = gina[0]["seq"].as_u64().unwrap();
    tamper(&inst, seq, |events| {
        for e in events.iter_mut().filter(|e| e["seq"] == seq) {
            e["detail"] = Value::from("nothing to see");
        }
    });
    let (code, out, err) = inst.run(&["audit", "verify", "--since-checkpoint"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("event #{seq} was altered")), "{err}");
}

#[test]
fn audit_tail_pages_with_since_and_keeps_its_order_and_filters() {
    let inst = busy_instance();
    let all = inst.json(&["audit", "tail", "-n", "1000", "--json"]);
    let all = all.as_array().unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]), "{seqs:?}");
    // The newest three, oldest first.
    let tail = inst.json(&["audit", "tail", "-n", "3", "--json"]);
    let tail: Vec<u64> = tail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(tail, seqs[seqs.len() - 3..].to_vec());
    // A page after event #2: the next two.
    let page = inst.json(&["audit", "tail", "--since", "2", "-n", "2", "--json"]);
    let page: Vec<u64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(page, vec![3, 4]);
    // Filters apply to pages too; past the end there is nothing.
    let carl = inst.json(&[
        "audit", "tail", "--since", "0", "--target", "carl", "--json",
    ]);
    assert!(carl
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["target"] == "carl"));
    assert!(!carl.as_array().unwrap().is_empty());
    let last = seqs.last().unwrap().to_string();
    assert_eq!(
        inst.ok(&["audit", "tail", "--since", &last]).trim(),
        "no events"
    );
}
