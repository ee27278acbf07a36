//! The experiment-file reader: any text, no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dl7::experiment::Plan::parse(text, "fuzz.toml", std::path::Path::new("."));
    }
});
