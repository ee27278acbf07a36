//! The response-head parser every upstream fetch (pool, load generator) uses.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, n))) = dl7_services::http::parse_response_head(data) {
        assert!(n <= data.len());
    }
});
