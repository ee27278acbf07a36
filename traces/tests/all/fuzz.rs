//! No parser panics, whatever the bytes: proptest over arbitrary input for
//! every line parser, the whole importer, the trace file and workload readers.

use dl7_traces::import::{import, parse_clf, parse_squid, parse_webcachesim, ImportOptions, LogFormat};
use proptest::prelude::*;

fn log_like() -> impl Strategy<Value = Vec<u8>> {
    // Arbitrary bytes, plus mutations of a valid line so the parser gets deep.
    let valid = b"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET /a.html HTTP/1.0\" 200 1000 \"-\" \"ua\"".to_vec();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)).prop_map(move |edits| {
            let mut line = valid.clone();
            for (at, byte) in edits {
                let i = at.index(line.len());
                line[i] = byte;
            }
            line
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn line_parsers_never_panic(line in log_like()) {
        let _ = parse_clf(&line);
        let _ = parse_squid(&line);
        let _ = parse_webcachesim(&line);
    }

    #[test]
    fn importer_never_panics(lines in proptest::collection::vec(log_like(), 0..8), skip in any::<bool>()) {
        let text = lines.join(&b'\n');
        for format in [LogFormat::Clf, LogFormat::Squid, LogFormat::Webcachesim] {
            let mut opts = ImportOptions::new(format);
            opts.skip_invalid = skip;
            opts.statuses = vec![200, 304, 404];
            if let Ok(imported) = import(&text[..], "fuzz", &opts) {
                // Whatever was accepted is a consistent trace.
                let t = imported.trace;
                prop_assert!(t.requests.iter().all(|id| id.index() < t.catalog.len()));
                prop_assert!(t.times.is_empty() || t.times.len() == t.requests.len());
                let mut out = Vec::new();
                t.write(&mut out).unwrap();
                prop_assert_eq!(dl7_traces::Trace::parse(&out, "again").unwrap(), t);
            }
        }
    }

    #[test]
    fn file_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = dl7_traces::Trace::parse(&bytes, "f");
        let mut with_magic = b"#dl7-trace v1\nobjects 1\n".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = dl7_traces::Trace::parse(&with_magic, "f");
        let _ = dl7_traces::workload::parse_file_list(&bytes, "f");
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Ok(w) = dl7_traces::workload::WorkloadFile::parse(text, "f") {
                let _ = w.catalog();
            }
        }
    }
}
