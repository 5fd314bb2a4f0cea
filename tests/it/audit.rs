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

/// Small sealed segments (the default is 65,536 events each).
const SEGMENT_EVENTS: &str = "TENURE_AUDIT_SEGMENT_EVENTS";

/// The sealed segment files, oldest first.
fn segment_files(inst: &Instance) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(inst.data_dir().join("audit_segments"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    files.sort();
    files
}

/// A segment file's header line and its blocks (key, bytes).
type Blocks = Vec<(u64, Vec<u8>)>;

fn read_segment(path: &std::path::Path) -> (Vec<u8>, Blocks) {
    let bytes = std::fs::read(path).unwrap();
    let head = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let mut blocks = Vec::new();
    let mut at = head;
    while at < bytes.len() {
        let key = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        blocks.push((key, bytes[at + 12..at + 12 + len].to_vec()));
        at += 12 + len;
    }
    (bytes[..head].to_vec(), blocks)
}

/// Rewrites the segment index in meta (as someone covering their tracks
/// would) to say the segment starting at `first` has this length and count.
fn rewrite_index(inst: &Instance, first: u64, bytes: u64, blocks: usize) {
    let db = sled::open(inst.data_dir()).expect("open the database directly");
    let meta = db.open_tree("meta").unwrap();
    let key = format!("audit_segment/{first:020}");
    let mut index: Value = serde_json::from_slice(&meta.get(&key).unwrap().unwrap()).unwrap();
    index["bytes"] = Value::from(bytes);
    index["blocks"] = Value::from(blocks);
    meta.insert(key, serde_json::to_vec(&index).unwrap())
        .unwrap();
    db.flush().unwrap();
}

fn write_segment(path: &std::path::Path, head: &[u8], blocks: &Blocks) -> u64 {
    let mut out = head.to_vec();
    for (key, block) in blocks {
        out.extend(key.to_be_bytes());
        out.extend((block.len() as u32).to_be_bytes());
        out.extend(block);
    }
    std::fs::write(path, &out).unwrap();
    out.len() as u64
}

fn seqs(events: &Value) -> Vec<u64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

/// An instance whose older audit events are sealed in segments of 8.
fn sealed_instance() -> Instance {
    let inst = Instance::initialised();
    inst.set_env(SEGMENT_EVENTS, "8");
    for i in 0..30 {
        inst.create(&format!("u{i:02}"), "--kind employee");
    }
    inst
}

#[test]
fn a_sealed_trail_verifies_and_an_edit_a_removal_or_a_reorder_in_a_segment_is_caught() {
    let inst = sealed_instance();
    let files = segment_files(&inst);
    assert!(files.len() >= 2, "sealed segments: {files:?}");
    let all = inst.json(&["audit", "tail", "-n", "1000", "--json"]);
    let n = all.as_array().unwrap().len() as u64;
    assert_eq!(seqs(&all), (1..=n).collect::<Vec<_>>());
    let full = inst.json(&["audit", "verify", "--json"]);
    assert_eq!(full["events"], n, "{full}");
    assert!(full["broken"].is_null(), "{full}");
    inst.ok(&["check"]);

    let path = &files[0];
    let original = std::fs::read(path).unwrap();
    let (head, blocks) = read_segment(path);
    assert!(blocks.len() >= 3, "{blocks:?}");

    // One byte changed inside a sealed event: that event is named.
    let events: Vec<Value> = serde_json::from_slice(&blocks[1].1).unwrap();
    let seq = events[0]["seq"].as_u64().unwrap();
    let action = format!("\"action\":\"{}\"", events[0]["action"].as_str().unwrap());
    let forged = action.replacen("\":\"", "\":\"X", 1).replacen('.', "", 1);
    assert_eq!(forged.len(), action.len());
    let mut edited = blocks.clone();
    let text = String::from_utf8(edited[1].1.clone()).unwrap();
    edited[1].1 = text.replacen(&action, &forged, 1).into_bytes();
    write_segment(path, &head, &edited);
    let (code, out, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("event #{seq} was altered")), "{err}");
    let (code, out, _) = inst.run(&["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("audit chain: event #{seq} was altered")),
        "{out}"
    );
    std::fs::write(path, &original).unwrap();
    inst.ok(&["audit", "verify"]);

    // A block cut out of the file, even with the index in meta rewritten to
    // match: the events are missing from the chain.
    let mut cut = blocks.clone();
    let (gone, _) = cut.remove(1);
    let bytes = write_segment(path, &head, &cut);
    let (code, out, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("altered or truncated"), "{err}");
    rewrite_index(&inst, blocks[0].0, bytes, cut.len());
    let (code, out, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("event #{gone} is missing")), "{err}");

    // Two blocks swapped (same length, same count): the chain is out of order.
    let mut swapped = blocks.clone();
    swapped.swap(1, 2);
    write_segment(path, &head, &swapped);
    rewrite_index(&inst, blocks[0].0, original.len() as u64, blocks.len());
    let (code, out, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("event #{gone} is missing")), "{err}");

    // Put back, the chain is whole again.
    std::fs::write(path, &original).unwrap();
    assert!(inst
        .ok(&["audit", "verify"])
        .starts_with("audit chain intact"));
}

#[test]
fn audit_tail_prints_the_same_bytes_once_the_trail_is_sealed() {
    let inst = Instance::initialised();
    for i in 0..30 {
        inst.create(&format!("u{i:02}"), "--kind employee");
    }
    inst.sh("user disable u03 --reason 'left the company'");
    inst.sh("user disable u17 --reason 'contract ended'");
    let commands: Vec<Vec<&str>> = vec![
        vec!["audit", "tail", "-n", "1000", "--json"],
        vec!["audit", "tail", "-n", "7", "--json"],
        vec!["audit", "tail", "-n", "5"],
        vec!["audit", "tail", "--target", "u03", "--json"],
        vec![
            "audit",
            "tail",
            "--action",
            "user.disable",
            "-n",
            "1",
            "--json",
        ],
        vec!["audit", "tail", "--since", "4", "-n", "6", "--json"],
        vec!["audit", "tail", "--since", "4", "-n", "6"],
    ];
    let before: Vec<String> = commands.iter().map(|c| inst.ok(c)).collect();
    assert!(segment_files(&inst).is_empty());
    // The next open seals the older events (the migration of an existing trail).
    inst.set_env(SEGMENT_EVENTS, "8");
    let after: Vec<String> = commands.iter().map(|c| inst.ok(c)).collect();
    assert!(
        segment_files(&inst).len() >= 2,
        "{:?}",
        segment_files(&inst)
    );
    for ((command, b), a) in commands.iter().zip(&before).zip(&after) {
        assert_eq!(b, a, "{command:?}");
    }
}

#[test]
fn the_check_from_a_checkpoint_reads_past_segments_sealed_after_it() {
    let inst = sealed_instance();
    let full = inst.json(&["audit", "verify", "--json"]);
    let head = full["events"].as_u64().unwrap();
    let sealed = segment_files(&inst).len();
    for i in 0..20 {
        inst.create(&format!("v{i:02}"), "--kind employee");
    }
    assert!(segment_files(&inst).len() > sealed);
    let since = inst.json(&["audit", "verify", "--since-checkpoint", "--json"]);
    // The checkpoint event and the twenty creations.
    assert_eq!(since["events"], 21, "{since}");
    assert_eq!(since["since"], head, "{since}");
    assert!(since["broken"].is_null(), "{since}");
    let full = inst.json(&["audit", "verify", "--json"]);
    assert_eq!(full["events"], head + 22, "{full}");
}
