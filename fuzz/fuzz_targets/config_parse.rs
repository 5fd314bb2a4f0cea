//! The config file: `Config::parse` on arbitrary text. No panic; an error
//! is one message (one line, naming the source).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An empty directory: relative body_file paths find nothing.
    let base = tenure_fuzz::scratch_dir().join("config-base");
    match Config::parse(text, "fuzz.toml", &base) {
        Ok(_) => {}
        Err(e) => {
            assert!(e.0.starts_with("config fuzz.toml"), "{:?}", e.0);
            assert!(
                !e.0.trim_end().contains('\n'),
                "more than one line: {:?}",
                e.0
            );
        }
    }
});
