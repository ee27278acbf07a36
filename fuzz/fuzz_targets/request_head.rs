//! The request-head parser every service's request loop uses: any bytes,
//! no panic, never more consumed than given.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut path = String::new();
    if let Ok(Some((_, n, _))) = dl7_services::http::parse_request_head(data, &mut path) {
        assert!(n <= data.len());
        assert!(path.starts_with('/'));
    }
});
