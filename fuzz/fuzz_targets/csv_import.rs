//! CSV import through the public front door: `cli::run` with
//! `import --dry-run` on an in-memory service, stdin = the fuzz input.
//! No panic; a dry run writes nothing; and the dry run agrees with the real
//! import on whether the batch is valid and how many rows it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure::cli::{run, Command};

fuzz_target!(|data: &[u8]| {
    let (services, actor) = tenure_fuzz::fresh_services();
    let mut out = Vec::new();
    let dry = run(
        &services,
        &actor,
        Command::Import { dry_run: true },
        &mut &data[..],
        &mut out,
    );
    let after_dry = services
        .export(&actor)
        .expect("export after a dry run")
        .len();
    assert_eq!(after_dry, 1, "a dry run wrote accounts");

    let mut out_real = Vec::new();
    let real = run(
        &services,
        &actor,
        Command::Import { dry_run: false },
        &mut &data[..],
        &mut out_real,
    );
    match (&dry, &real) {
        (Ok(()), Ok(())) => {
            let said = |o: &[u8]| {
                String::from_utf8_lossy(o)
                    .split_whitespace()
                    .find_map(|w| w.parse::<usize>().ok())
            };
            assert_eq!(said(&out), said(&out_real), "row counts differ");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("dry run {dry:?} but import {real:?}"),
    }
});
