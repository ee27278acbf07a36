//! Every access-log importer: one line of each format, then the whole
//! input as a log of each format.
#![no_main]
use dl7_traces::import::{import, parse_clf, parse_squid, parse_webcachesim, ImportOptions, LogFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_clf(data);
    let _ = parse_squid(data);
    let _ = parse_webcachesim(data);
    for format in [LogFormat::Clf, LogFormat::Combined, LogFormat::Squid, LogFormat::Webcachesim] {
        let mut opts = ImportOptions::new(format);
        opts.skip_invalid = true;
        let _ = import(data, "fuzz", &opts);
    }
});
