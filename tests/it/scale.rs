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
