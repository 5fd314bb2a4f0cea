//! The exec line, as `ssh host LINE` delivers it: `shell_words::split`,
//! the clap grammar (`cli::parse_exec_words`), then `cli::run` on an
//! in-memory service as an admin. Input: the line, then after the first
//! newline what the client sends on stdin. No panic anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure::cli::{parse_exec_words, run, usage_line};

fuzz_target!(|data: &[u8]| {
    let (line, stdin) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let line = String::from_utf8_lossy(line);
    let Ok(words) = shell_words::split(&line) else {
        return;
    };
    let command = match parse_exec_words(&words) {
        Ok(command) => command,
        Err(e) => {
            let one = usage_line(&e, "help");
            assert!(!one.contains('\n'), "usage line {one:?}");
            return;
        }
    };
    let (services, actor) = tenure_fuzz::fresh_services();
    let mut out = Vec::new();
    let _ = run(&services, &actor, command, &mut &stdin[..], &mut out);
});
