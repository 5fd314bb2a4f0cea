//! Reads at scale (issue 16): large outputs stream, scripts page.

use crate::common::*;

#[test]
fn user_list_pages_in_username_order_with_after_and_limit() {
    let inst = Instance::initialised();
    for name in ["erin", "bob", "dave", "carl", "fred"] {
        inst.create(name, "--kind employee");
    }
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["user", "list", "--json"];
        all.extend_from_slice(args);
        names(&inst.json(&all), "username")
    };
    assert_eq!(names(&["--limit", "2"]), ["alice", "bob"]);
    assert_eq!(names(&["--after", "bob", "--limit", "2"]), ["carl", "dave"]);
    assert_eq!(names(&["--after", "dave"]), ["erin", "fred"]);
    assert!(names(&["--after", "fred"]).is_empty());
    // Filters and paging together.
    assert_eq!(
        names(&["--kind", "employee", "--after", "carl", "--limit", "1"]),
        ["dave"]
    );
    let text = inst.ok(&["user", "list", "--limit", "3"]);
    assert!(text.ends_with("3 account(s)\n"), "{text}");
}

#[test]
fn output_streamed_over_ssh_is_byte_for_byte_the_offline_output_and_csv_round_trips() {
    let inst = Instance::initialised();
    let csv_in: String = std::iter::once(
        "username,display_name,email,kind,company,sponsor,end_date,field:cost_center\n".to_string(),
    )
    .chain((0..1500).map(|i| {
        format!(
            "p{i:04},Person {i},p{i}@farm.example,contractor,Farm Co,alice,+90d,AB-{:04}\n",
            i % 10000
        )
    }))
    .collect();
    inst.ok_stdin(&["import"], &csv_in);
    // alice's own row changes when she logs in (last login): compared without it.
    let commands: [&[&str]; 4] = [
        &["user", "list", "--kind", "contractor", "--json"],
        &["user", "list", "--kind", "contractor"],
        &["export", "--format", "csv"],
        &["audit", "tail", "-n", "2000", "--action", "user.", "--json"],
    ];
    let without_alice = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with("alice,"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let offline: Vec<String> = commands.iter().map(|c| inst.ok(c)).collect();
    let server = inst.serve();
    for (command, expected) in commands.iter().zip(&offline) {
        let (code, out, err) = server.exec("alice", &inst.path("alice"), &command.join(" "), None);
        assert_eq!(code, 0, "{command:?}: {err}");
        let (out, expected) = (without_alice(&out), without_alice(expected));
        assert!(
            out == expected,
            "{command:?}: {} bytes over ssh, {} offline",
            out.len(),
            expected.len()
        );
    }
    drop(server);
    // More rows than a table lays out at once: the streamed table still lines up.
    let table = &offline[1];
    assert!(
        table.ends_with("1500 account(s)\n"),
        "{}",
        &table[table.len() - 40..]
    );
    // The exported CSV goes back in as it came out.
    let fresh = Instance::initialised();
    let csv = &offline[2];
    let out = fresh.ok_stdin(&["import"], &without_alice(csv));
    assert!(out.contains("imported 1500"), "{out}");
    assert_eq!(
        fresh
            .ok(&["export", "--format", "csv"])
            .lines()
            .filter(|l| l.starts_with('p'))
            .map(|l| l.split(',').take(9).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>(),
        csv.lines()
            .filter(|l| l.starts_with('p'))
            .map(|l| l.split(',').take(9).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    );
}
