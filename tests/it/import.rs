//! Bulk import from CSV: all rows checked before any is written.

use serde_json::Value;

use crate::common::Instance;

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
