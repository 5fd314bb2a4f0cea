//! Bulk import from CSV: all rows checked before any is written.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Instance, Proc, Run, STEP};

const PEOPLE: &str =
    "username,display_name,email,kind,company,sponsor,end_date,groups,field:cost_center\n\
sam,Sam Season,sam@farm.example,contractor,Farm Co,alice,+90d,contractors,AB-1234\n\
tia,Tia Season,tia@farm.example,contractor,Farm Co,sam,+90d,contractors,\n\
uma,Uma Season,uma@farm.example,intern,,alice,+60d,,\n";

fn count(inst: &Instance) -> usize {
    inst.json(&["user", "list", "--json"])
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn a_season_of_contractors_imports_in_one_go_after_a_dry_run() {
    let inst = Instance::initialised();
    let out = inst.ok_stdin(&["import", "--dry-run"], PEOPLE);
    assert!(out.contains("3 row(s) valid"), "{out}");
    assert_eq!(count(&inst), 1, "a dry run writes nothing");

    let out = inst.ok_stdin(&["import"], PEOPLE);
    assert!(out.contains("imported 3"), "{out}");
    let tia: Value = inst.show("tia");
    assert_eq!(
        tia["sponsor"], "sam",
        "a sponsor created earlier in the same file"
    );
    assert_eq!(tia["groups"], serde_json::json!(["contractors"]));
    assert_eq!(inst.show("sam")["fields"]["cost_center"], "AB-1234");
    assert!(inst.ok(&["check"]).starts_with("ok:"));
}

#[test]
fn one_bad_row_refuses_the_whole_file_naming_its_line() {
    let inst = Instance::initialised();
    let before = inst.snapshot();
    let cases: [(String, i32, &str); 4] = [
        (
            format!("{PEOPLE}vic,Vic,TIA@farm.example,contractor,,,+10d,,\n"),
            5,
            "line 5 (vic): email",
        ),
        (
            format!("{PEOPLE}wes,Wes,wes@farm.example,contractor,,,,,\n"),
            2,
            "line 5 (wes): a contractor account needs an end date",
        ),
        (
            "username,mail\nx,y\n".to_string(),
            2,
            "unknown column 'mail'",
        ),
        (
            "username,display_name,email,kind,end_date\nzed,Zed,zed@x.io,contractor,31/12/2027\n"
                .to_string(),
            2,
            "line 2, column end_date",
        ),
    ];
    for (csv, code, needle) in cases {
        let (got, out, err) = inst.run_stdin(&["import"], &csv);
        assert_eq!(got, code, "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    assert_eq!(inst.snapshot(), before, "nothing half-written");
}

/// `n` contractors sponsored by alice, one a row.
fn contractors(n: usize) -> String {
    let mut csv = String::from("username,display_name,email,kind,company,sponsor,end_date\n");
    for i in 0..n {
        csv.push_str(&format!(
            "c{i:05},Contractor {i},c{i:05}@acme.example,contractor,Acme,alice,+90d\n"
        ));
    }
    csv
}

/// Bytes under a directory (sled's files grow as it writes).
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `check` after a crash: it must pass (recovery may say on stderr what it
/// finished); returns the number of accounts it counted.
fn checked_accounts(inst: &Instance) -> usize {
    let (code, out, err) = inst.run(&["check"]);
    assert_eq!(code, 0, "check after a kill\nstdout: {out}\nstderr: {err}");
    out.strip_prefix("ok: ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("check said: {out}"))
}

/// Every account has its `user.create` event: as many events as accounts.
fn creations(inst: &Instance) -> usize {
    inst.json(&[
        "audit",
        "tail",
        "-n",
        "1000000",
        "--action",
        "user.create",
        "--json",
    ])
    .as_array()
    .map_or(0, Vec::len)
}

#[test]
fn an_import_killed_mid_way_leaves_every_row_or_none_and_a_rerun_finishes() {
    const ROWS: usize = 20_000;
    let csv = contractors(ROWS);
    let mut outcomes = Vec::new();
    // Killed while the rows are being checked and staged (before the commit
    // point), then while committed rows are being applied (after it). The
    // import says on stderr (TENURE_LOG=info) when staging is done.
    for after_commit in [false, true] {
        let inst = Instance::initialised();
        let file = inst.path("people.csv");
        std::fs::write(&file, &csv).unwrap();
        let before = dir_size(&inst.data_dir());
        let mut cmd = inst.command();
        cmd.arg("--config")
            .arg(&inst.config)
            .arg("import")
            .current_dir(inst.dir.path())
            .env("USER", "tester")
            .env_remove("TENURE_CONFIG")
            .env("TENURE_LOG", "tenure=info")
            .stdin(std::fs::File::open(&file).unwrap());
        let mut proc = Proc::spawn(&mut cmd);
        let deadline = Instant::now() + STEP * 4;
        let staged = |proc: &Proc| proc.stderr.text().contains("import staged");
        // Wait until it has written something (and, for the second case,
        // until it has committed and applied some chunks).
        let mut grown_at: Option<Instant> = None;
        let mut size_at_commit: Option<u64> = None;
        loop {
            assert!(
                proc.running(),
                "the import ended before the kill: {}",
                proc.stderr.text()
            );
            assert!(
                Instant::now() < deadline,
                "the import wrote nothing in time"
            );
            let size = dir_size(&inst.data_dir());
            if !after_commit && size > before {
                let since = *grown_at.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
            }
            if after_commit && staged(&proc) {
                let at_commit = *size_at_commit.get_or_insert(size);
                if size > at_commit + 1024 * 1024 {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let was_staged = staged(&proc);
        proc.signal("KILL");
        let status = proc.wait_exit(STEP).expect("killed import exits");
        assert_eq!(status.code(), None, "killed by SIGKILL, not finished");

        // Opening the database finishes a committed import or discards a staged one.
        let accounts = checked_accounts(&inst);
        let expected = if was_staged { ROWS + 1 } else { 1 };
        assert_eq!(
            accounts,
            expected,
            "killed {} the commit point",
            if was_staged { "after" } else { "before" }
        );
        assert_eq!(creations(&inst), accounts, "an event for every account");
        outcomes.push((was_staged, accounts - 1));

        // Running the file again finishes the job whichever way it went:
        // plainly when nothing was written, with --skip-existing otherwise.
        let args: &[&str] = if was_staged {
            &["--skip-existing"]
        } else {
            &[]
        };
        let run = import_from_file(&inst, &file, args);
        assert_eq!(run.0, 0, "rerun: {}", run.2);
        assert_eq!(checked_accounts(&inst), ROWS + 1);
        assert_eq!(creations(&inst), ROWS + 1);
    }
    assert_eq!(
        outcomes,
        [(false, 0), (true, ROWS)],
        "one kill before and one after the commit point"
    );
}

/// `tenure import ARGS < file`.
fn import_from_file(inst: &Instance, file: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = inst.command();
    cmd.arg("--config")
        .arg(&inst.config)
        .arg("import")
        .args(args)
        .current_dir(inst.dir.path())
        .env("USER", "tester")
        .env_remove("TENURE_CONFIG")
        .env_remove("TENURE_LOG")
        .stdin(std::fs::File::open(file).unwrap());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cells_guarded_against_spreadsheet_formulas_on_export_come_back_as_they_were() {
    let inst = Instance::initialised();
    inst.sh("user create zed --email zed@acme.example --display-name '=HYPERLINK(\"http://x\")' --kind employee --company '@Acme' --project=-1+2");
    let csv = inst.ok(&["export", "--format", "csv"]);
    let row = csv.lines().find(|l| l.starts_with("zed,")).unwrap();
    assert!(row.contains("'=HYPERLINK"), "{row}");
    assert!(row.contains("'@Acme") && row.contains("'-1+2"), "{row}");

    let fresh = Instance::initialised();
    let without_alice: String = csv
        .lines()
        .filter(|l| !l.starts_with("alice,"))
        .map(|l| format!("{l}\n"))
        .collect();
    fresh.ok_stdin(&["import"], &without_alice);
    let zed = fresh.show("zed");
    assert_eq!(zed["display_name"], "=HYPERLINK(\"http://x\")");
    assert_eq!(zed["company"], "@Acme");
    assert_eq!(zed["project"], "-1+2");
}
