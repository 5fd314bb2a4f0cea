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
    let preview = ["lifecycle", "preview", "--until", "+120d", "--json"];
    let offline_plan = inst.ok(&preview);
    let offline_plan_table = inst.ok(&preview[..4]);
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
    // The lifecycle plan streams too: the same items over ssh (alice's
    // own change with her login), in (date, account) order, JSON that parses.
    let (code, plan, err) = server.exec("alice", &inst.path("alice"), &preview.join(" "), None);
    assert_eq!(code, 0, "{err}");
    let items = |text: &str| -> Vec<serde_json::Value> {
        let all: Vec<serde_json::Value> = serde_json::from_str(text).expect("the plan parses");
        all.into_iter()
            .filter(|i| i["username"] != "alice")
            .collect()
    };
    let (over_ssh, offline_items) = (items(&plan), items(&offline_plan));
    assert!(over_ssh.len() >= 3000, "{}", over_ssh.len());
    assert!(
        over_ssh == offline_items,
        "{} items over ssh, {} offline",
        over_ssh.len(),
        offline_items.len()
    );
    let keys: Vec<(String, String)> = over_ssh
        .iter()
        .map(|i| {
            (
                i["date"].as_str().unwrap().to_string(),
                i["username"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] <= w[1]),
        "in date, then account order"
    );
    // The table holds the same rows, lined up past the first 1,000.
    let every: Vec<serde_json::Value> = serde_json::from_str(&offline_plan).unwrap();
    let header = offline_plan_table.lines().next().unwrap();
    let column = header.find("ACCOUNT").unwrap();
    let rows: Vec<&str> = offline_plan_table.lines().skip(1).collect();
    assert_eq!(rows.len(), every.len());
    assert!(
        rows.iter()
            .all(|r| r.as_bytes()[column - 1] == b' ' && r.as_bytes()[column] != b' '),
        "{header}"
    );
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
