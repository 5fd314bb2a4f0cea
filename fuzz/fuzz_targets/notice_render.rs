//! Notice templates: `{placeholder}` rendering. No panic, no hang (linear
//! time), output bounded by the template and the values, and the same text
//! as the plain definition: each `{name}` with a known name is replaced by
//! its value once, everything else is copied.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tenure::domain::notice::{default_template, render, EVENTS};

const NAMES: [&str; 6] = [
    "username",
    "display_name",
    "end_date",
    "reason",
    "actor",
    "",
];

/// The obviously correct reading of the contract, quadratic and slow.
fn reference(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut i = 0;
    'outer: while i < template.len() {
        let rest = &template[i..];
        if rest.starts_with('{') {
            for (name, value) in vars {
                let token = format!("{{{name}}}");
                if rest.starts_with(&token) {
                    out.push_str(value);
                    i += token.len();
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // template \0 value \0 value ...: values for the names in NAMES.
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or_default();
    let vars: BTreeMap<String, String> = NAMES
        .iter()
        .zip(parts)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    let out = render(template, &vars);
    let longest = vars.values().map(String::len).max().unwrap_or(0);
    let opens = template.matches('{').count();
    assert!(
        out.len() <= template.len() + opens * longest,
        "output of {} bytes from a template of {}",
        out.len(),
        template.len()
    );
    if template.len() <= 512 {
        assert_eq!(out, reference(template, &vars), "template {template:?}");
    }

    // The built-in templates take any values.
    let event = EVENTS[data.len() % EVENTS.len()];
    let (subject, body) = default_template(event, tenure::locale::Lang::En);
    let _ = render(subject, &vars);
    let _ = render(body, &vars);
});
