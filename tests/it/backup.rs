//! Backup over ssh while the server serves, restore offline (issue 10 §3):
//! every record comes back as it was, `check` and `audit verify` pass, and a
//! truncated or altered backup is refused with nothing written.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::common::*;

/// `tenure --config CONFIG restore [--force]` with `backup` on stdin: (code, stdout, stderr).
fn restore(inst: &Instance, backup: &[u8], force: bool) -> Run {
    let mut cmd = inst.command();
    cmd.arg("--config")
        .arg(&inst.config)
        .arg("restore")
        .current_dir(inst.dir.path())
        .env("USER", "tester")
        .env_remove("TENURE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if force {
        cmd.arg("--force");
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = backup.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An empty instance with the same config (and at-rest key: sealed TOTP
/// seeds need it, so a restore goes with the keys/ directory).
fn twin(of: &Instance) -> Instance {
    let twin = Instance::new();
    std::fs::create_dir_all(twin.path("keys")).unwrap();
    let key = of.path("keys/at_rest.key");
    if key.exists() {
        std::fs::copy(&key, twin.path("keys/at_rest.key")).unwrap();
    }
    twin
}

fn backup_over_ssh(server: &Server, user: &str, key: &Path) -> (i32, Vec<u8>, String) {
    let mut cmd = server.ssh_key(user, key);
    cmd.arg("127.0.0.1").arg("backup").stdin(Stdio::null());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_backup_taken_over_ssh_restores_every_record_and_a_damaged_one_changes_nothing() {
    let inst = Instance::initialised();
    inst.create(
        "bob",
        "--kind contractor --end +60d --company Acme --sponsor alice",
    );
    inst.create("carl", "--kind vendor --end +30d --role user");
    inst.keygen("carl", "ed25519", None);
    inst.ok_stdin(&["key", "add", "carl"], &inst.pubkey("carl"));
    inst.ok(&["user", "disable", "bob", "--reason", "contract ended"]);
    inst.ok(&["totp", "enroll", "carl"]);
    let server = inst.serve();

    // A user may not take a backup.
    let (code, out, err) = backup_over_ssh(&server, "carl", &inst.path("carl"));
    assert_eq!(code, 4, "{err}");
    assert!(out.is_empty());

    let (code, backup, err) = backup_over_ssh(&server, "alice", &inst.path("alice"));
    assert_eq!(code, 0, "{err}");
    assert!(
        backup.starts_with(b"TENURE-BACKUP 1\n"),
        "{:?}",
        &backup[..20]
    );
    drop(server);
    let (events, exports) = inst.snapshot();

    // Into an empty directory: everything as it was (the backup's own event aside).
    let fresh = twin(&inst);
    let (code, out, err) = restore(&fresh, &backup, false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restored"), "{out}");
    fresh.ok(&["check"]);
    let (restored_events, restored_exports) = fresh.snapshot();
    fresh.ok(&["audit", "verify"]);
    assert_eq!(restored_exports, exports);
    let original: serde_json::Value = serde_json::from_str(&events).unwrap();
    let restored: serde_json::Value = serde_json::from_str(&restored_events).unwrap();
    let mut original = original.as_array().unwrap().clone();
    let last = original.pop().unwrap();
    assert_eq!(last["action"], "backup", "{last}");
    assert_eq!(restored.as_array().unwrap(), &original);
    assert_eq!(fresh.show("bob")["status"], "disabled");
    assert_eq!(fresh.show("carl")["keys"].as_array().unwrap().len(), 1);

    // Not over a database that is there, unless asked; then the old one is kept.
    let (code, _, err) = restore(&fresh, &backup, false);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("--force"), "{err}");
    let (code, out, err) = restore(&fresh, &backup, true);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("previous database is kept at"), "{out}");
    fresh.ok(&["check"]);

    // Truncated or altered: refused, one clear line, nothing written.
    let empty = twin(&inst);
    for (what, bytes) in [
        ("truncated", backup[..backup.len() / 2].to_vec()),
        ("without its checksum", backup[..backup.len() - 10].to_vec()),
        ("altered", {
            let mut b = backup.clone();
            let at = b.len() / 2;
            b[at] ^= 0x20;
            b
        }),
        ("not a backup", b"username,email\nbob,bob@x.io\n".to_vec()),
    ] {
        let (code, out, err) = restore(&empty, &bytes, false);
        assert_eq!(code, 2, "{what}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.starts_with("error: "), "{what}: {err}");
        assert!(
            !empty.data_dir().exists(),
            "{what}: a data directory was left"
        );
        let leftovers: Vec<_> = std::fs::read_dir(empty.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("restore"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }
}

/// `tenure --config … backup` run offline, as cron would: its output.
fn offline_backup(inst: &Instance) -> Vec<u8> {
    let out = inst
        .command()
        .arg("--config")
        .arg(&inst.config)
        .arg("backup")
        .current_dir(inst.dir.path())
        .env("USER", "tester")
        .env_remove("TENURE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn the_offline_cli_takes_a_backup_too() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee");
    let backup = offline_backup(&inst);
    let fresh = twin(&inst);
    let (code, _, err) = restore(&fresh, &backup, false);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fresh.show("bob")["kind"], "employee");
    fresh.ok(&["audit", "verify"]);
}

#[test]
fn a_backup_holds_the_sealed_trail_and_the_restored_database_seals_it_again() {
    let inst = Instance::initialised();
    inst.set_env("TENURE_AUDIT_SEGMENT_EVENTS", "8");
    for i in 0..25 {
        inst.create(&format!("u{i:02}"), "--kind employee");
    }
    let sealed = |i: &Instance| {
        std::fs::read_dir(i.data_dir().join("audit_segments"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert!(sealed(&inst) >= 2);
    let (events, _) = inst.snapshot();
    let events: serde_json::Value = serde_json::from_str(&events).unwrap();
    let backup = offline_backup(&inst);

    let fresh = twin(&inst);
    fresh.set_env("TENURE_AUDIT_SEGMENT_EVENTS", "8");
    let (code, _, err) = restore(&fresh, &backup, false);
    assert_eq!(code, 0, "{err}");
    fresh.ok(&["check"]);
    assert!(sealed(&fresh) >= 2);
    let (restored, _) = fresh.snapshot();
    let restored: serde_json::Value = serde_json::from_str(&restored).unwrap();
    let n = events.as_array().unwrap().len();
    // Every event as it was, then the backup's own.
    assert_eq!(
        restored.as_array().unwrap()[..n],
        events.as_array().unwrap()[..]
    );
    assert!(fresh
        .ok(&["audit", "verify"])
        .starts_with("audit chain intact"));
}
