//! Importers on logs written here, one quirk per test, plus round trips
//! through the exporters and the trace file format.

use dl7_traces::export::{read_oracle_general, write_oracle_general, write_webcachesim};
use dl7_traces::import::{import, ImportOptions, LogFormat};
use dl7_traces::{ContentType, Trace};

fn run(log: &str, opts: &ImportOptions) -> Result<dl7_traces::import::Imported, dl7_traces::TraceError> {
    import(log.as_bytes(), "test.log", opts)
}

fn clf() -> ImportOptions {
    ImportOptions::new(LogFormat::Clf)
}

fn paths(t: &Trace) -> Vec<&str> {
    t.requests.iter().map(|id| t.catalog.get(*id).path.as_str()).collect()
}

const BASIC: &str = "\
1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET /a.html HTTP/1.0\" 200 1000
1.2.3.4 - - [17/May/2015:10:05:04 +0000] \"GET /b.gif?x=1 HTTP/1.0\" 200 300
5.6.7.8 - bob [17/May/2015:10:05:05 +0000] \"GET /a.html HTTP/1.0\" 200 1200
5.6.7.8 - - [17/May/2015:10:05:06 +0000] \"GET /b.gif?x=2 HTTP/1.0\" 200 250
5.6.7.8 - - [17/May/2015:10:05:07 +0000] \"GET /missing HTTP/1.0\" 404 120
";

#[test]
fn clf_objects_sizes_weights_and_times() {
    let imported = run(BASIC, &clf()).unwrap();
    let t = &imported.trace;
    assert_eq!(paths(t), ["/a.html", "/b.gif", "/a.html", "/b.gif"]);
    let a = t.catalog.find("/a.html").unwrap();
    assert_eq!((a.size, a.weight, a.content_type), (1200, 2.0, ContentType::Html));
    assert_eq!(t.catalog.find("/b.gif").unwrap().size, 300, "largest logged size, query dropped");
    assert_eq!(t.times, [1_431_857_103, 1_431_857_104, 1_431_857_105, 1_431_857_106]);
    assert_eq!(imported.report.requests, 4);
    assert_eq!(imported.report.by_status.get(&404), Some(&1));
    assert!(imported.report.summary().contains("404 x1"));
}

#[test]
fn keep_query_and_statuses_widen_identity_and_requests() {
    let mut opts = clf();
    opts.keep_query = true;
    opts.statuses = vec![200, 404];
    let t = run(BASIC, &opts).unwrap().trace;
    assert_eq!(paths(&t), ["/a.html", "/b.gif?x=1", "/a.html", "/b.gif?x=2", "/missing"]);
}

#[test]
fn dash_size_is_zero_bytes() {
    let log = "h - - [01/Jan/2000:00:00:00 -0500] \"GET /x.jpg HTTP/1.0\" 200 -\n";
    let t = run(log, &clf()).unwrap().trace;
    assert_eq!(t.catalog.objects[0].size, 0);
    assert_eq!(t.catalog.objects[0].content_type, ContentType::Jpeg);
    assert_eq!(t.times, [946_702_800]);
}

#[test]
fn not_modified_with_size_zero_is_left_out_by_default_and_never_shrinks_size() {
    let log = "\
h - - [01/Jan/2000:00:00:00 +0000] \"GET /p.png HTTP/1.0\" 200 5000
h - - [01/Jan/2000:00:00:01 +0000] \"GET /p.png HTTP/1.0\" 304 0
";
    let default = run(log, &clf()).unwrap();
    assert_eq!(default.trace.requests.len(), 1);
    assert_eq!(default.report.by_status.get(&304), Some(&1));
    let mut opts = clf();
    opts.statuses = vec![200, 206, 304];
    let wide = run(log, &opts).unwrap().trace;
    assert_eq!(wide.requests.len(), 2);
    assert_eq!(wide.catalog.objects[0].size, 5000);
}

#[test]
fn requests_without_method_or_protocol() {
    let log = "\
h - - [01/Jan/2000:00:00:00 +0000] \"/one.html\" 200 10
h - - [01/Jan/2000:00:00:00 +0000] \"GET /two.html\" 200 20
h - - [01/Jan/2000:00:00:00 +0000] \"/three.html HTTP/1.0\" 200 30
";
    let t = run(log, &clf()).unwrap().trace;
    assert_eq!(paths(&t), ["/one.html", "/two.html", "/three.html"]);
}

#[test]
fn record_split_across_two_lines_is_joined() {
    let log = "\
h - - [01/Jan/2000:00:00:00 +0000] \"GET /before.html HTTP/1.0\" 200 10
h - - [01/Jan/2000:00:00:01 +0000] \"GET /split.html
 HTTP/1.0\" 200 77
h - - [01/Jan/2000:00:00:02 +0000] \"GET /after.html HTTP/1.0\" 200 30
h - - [01/Jan/2000:00:00:03 +0000] \"GET /late.html HTTP/1.0\"
 200 40
";
    let imported = run(log, &clf()).unwrap();
    assert_eq!(paths(&imported.trace), ["/before.html", "/split.html", "/after.html", "/late.html"]);
    assert_eq!(imported.trace.catalog.find("/split.html").unwrap().size, 77);
    assert_eq!(imported.report.joined, 2);
    assert_eq!((imported.report.lines, imported.report.records), (6, 4));
}

#[test]
fn dateless_timestamp_and_missing_ident_fields() {
    // EPA-HTTP style: `host [DD:HH:MM:SS] "request" status bytes`.
    let log = "\
141.243.1.172 [29:23:53:25] \"GET /Software.html HTTP/1.0\" 200 1497
query2.lycos.cs.cmu.edu [29:23:53:36] \"GET /Consumer.html HTTP/1.0\" 200 1325
";
    let t = run(log, &clf()).unwrap().trace;
    assert_eq!(paths(&t), ["/Software.html", "/Consumer.html"]);
    assert_eq!(t.times, [29 * 86_400 + 23 * 3600 + 53 * 60 + 25, 29 * 86_400 + 23 * 3600 + 53 * 60 + 36]);
}

#[test]
fn combined_with_quotes_in_referer_agent_and_request() {
    let log = concat!(
        "h - - [17/May/2015:10:05:03 +0000] \"GET /q\\\"uote.html HTTP/1.1\" 200 11 \"http://r/\" \"Mozilla \\\"x\\\"\"\n",
        "h - - [17/May/2015:10:05:03 +0000] \"GET /raw\"quote.html HTTP/1.1\" 200 12 \"-\" \"-\"\n",
        "h - - [17/May/2015:10:05:03 +0000] \"GET /plain.html HTTP/1.1\" 200 13\n",
    );
    let t = run(log, &ImportOptions::new(LogFormat::Combined)).unwrap().trace;
    assert_eq!(paths(&t), ["/q\\\"uote.html", "/raw\"quote.html", "/plain.html"]);
}

#[test]
fn malformed_line_stops_with_file_line_reason_and_text() {
    let long_tail = "x".repeat(500);
    let log = format!(
        "h - - [01/Jan/2000:00:00:00 +0000] \"GET /ok HTTP/1.0\" 200 1\nh - - [01/Jan/2000:00:00:00 +0000] \"GET /bad HTTP/1.0\" 200 12k{long_tail}\n"
    );
    let e = run(&log, &clf()).unwrap_err().to_string();
    assert!(e.starts_with("test.log:2: bad byte count: \"h - - [01/Jan/2000"), "{e}");
    assert!(e.ends_with("...\"") && e.len() < 200, "truncated: {e}");
}

#[test]
fn skip_invalid_counts_per_reason_and_keeps_the_rest() {
    let log = "\
h - - [01/Jan/2000:00:00:00 +0000] \"GET /ok HTTP/1.0\" 200 1
garbage without brackets
h - - [99/Jan/2000:00:00:00 +0000] \"GET /x HTTP/1.0\" 200 1
also garbage
h - - [01/Jan/2000:00:00:00 +0000] \"GET /ok2 HTTP/1.0\" abc 1
h - - [01/Jan/2000:00:00:00 +0000] \"GET /ok HTTP/1.0\" 200 1
h - - [01/Jan/2000:00:00:00 +0000] \"GET /never-closed HTTP/1.0
";
    let mut opts = clf();
    assert!(run(log, &opts).unwrap_err().to_string().starts_with("test.log:2: no [timestamp]"));
    opts.skip_invalid = true;
    let imported = run(log, &opts).unwrap();
    assert_eq!(paths(&imported.trace), ["/ok", "/ok"]);
    let invalid = &imported.report.invalid;
    assert_eq!(invalid.get("no [timestamp]"), Some(&2));
    assert_eq!(invalid.get("bad timestamp"), Some(&1));
    assert_eq!(invalid.get("bad status"), Some(&1));
    assert_eq!(invalid.get("request not closed by a quote"), Some(&1));
    assert!(imported.report.summary().contains("skipped invalid lines: "));
}

#[test]
fn crlf_and_blank_lines() {
    let log = "h - - [01/Jan/2000:00:00:00 +0000] \"GET /a HTTP/1.0\" 200 5\r\n\r\n\nh - - [01/Jan/2000:00:00:00 +0000] \"GET /a HTTP/1.0\" 200 6\r\n";
    let t = run(log, &clf()).unwrap().trace;
    assert_eq!((t.requests.len(), t.catalog.objects[0].size), (2, 6));
}

#[test]
fn squid_native() {
    let log = "\
979992041.366    502 192.168.1.160 TCP_IMS_HIT/304 216 GET http://example.com/home2.html - NONE/- text/html
979992042.100     12 192.168.1.161 TCP_MISS/200 8123 GET http://example.com/logo?v=2 - DIRECT/10.0.0.1 image/gif
979992043.999     30 192.168.1.162 TCP_HIT/200 2000 GET http://example.com/home2.html - NONE/- text/html
979992044.000     30 192.168.1.162 TCP_MISS/200 99 GET http://example.com/x.css
";
    let imported = run(log, &ImportOptions::new(LogFormat::Squid)).unwrap();
    let t = &imported.trace;
    assert_eq!(paths(t), ["http://example.com/logo", "http://example.com/home2.html", "http://example.com/x.css"]);
    assert_eq!(t.catalog.objects[0].content_type, ContentType::Gif, "type from the log, not the path");
    assert_eq!(t.catalog.objects[2].content_type, ContentType::Css, "no type field: from the path");
    assert_eq!(t.times, [979_992_042, 979_992_043, 979_992_044]);
    assert_eq!(imported.report.by_status.get(&304), Some(&1));
    let e = run("979992041.366 502 1.2.3.4 TCP_MISS/abc 1 GET http://e/\n", &ImportOptions::new(LogFormat::Squid))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("test.log:1: bad code/status"), "{e}");
}

#[test]
fn webcachesim_text() {
    let t = run("0 7 100\n1 3 50\n2 7 120\n", &ImportOptions::new(LogFormat::Webcachesim)).unwrap().trace;
    assert_eq!(paths(&t), ["/7", "/3", "/7"]);
    assert_eq!(t.catalog.objects[0].size, 120);
    let e = run("0 7\n", &ImportOptions::new(LogFormat::Webcachesim)).unwrap_err().to_string();
    assert!(e.starts_with("test.log:1: expected `time id size`"), "{e}");
}

fn sizes(t: &Trace) -> Vec<u64> {
    t.requests.iter().map(|id| t.catalog.get(*id).size).collect()
}

#[test]
fn round_trip_clf_to_webcachesim_and_back() {
    let first = run(BASIC, &clf()).unwrap().trace;
    let mut text = Vec::new();
    write_webcachesim(&first, &mut text).unwrap();
    let again = import(&text[..], "export.txt", &ImportOptions::new(LogFormat::Webcachesim)).unwrap().trace;
    assert_eq!(again.requests, first.requests);
    assert_eq!(sizes(&again), sizes(&first));
    assert_eq!(again.times, first.times);
}

#[test]
fn round_trip_through_the_trace_file() {
    let first = run(BASIC, &clf()).unwrap().trace;
    let dir = std::env::temp_dir().join(format!("dl7-traces-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("basic.trace");
    first.save(&path).unwrap();
    assert_eq!(Trace::load(&path).unwrap(), first);
    assert_eq!(dl7_traces::workload::load(&path).unwrap(), first.catalog);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oracle_general_records_and_next_access() {
    let t = run(BASIC, &clf()).unwrap().trace;
    let mut bin = Vec::new();
    write_oracle_general(&t, &mut bin).unwrap();
    assert_eq!(bin.len(), 24 * 4);
    let records = read_oracle_general(&bin[..], "x.bin").unwrap();
    let ids: Vec<u64> = records.iter().map(|r| r.obj_id).collect();
    assert_eq!(ids, [0, 1, 0, 1]);
    let next: Vec<i64> = records.iter().map(|r| r.next_access_vtime).collect();
    assert_eq!(next, [3, 4, -1, -1]);
    assert_eq!(records[0].time, 1_431_857_103);
    assert_eq!(records[2].size, 1200);
    assert!(read_oracle_general(&bin[..23], "x.bin").unwrap_err().to_string().contains("byte 0"));
}

#[test]
fn counts_only_import_gives_the_same_stats() {
    use dl7_traces::TraceStats;
    let full = run(BASIC, &clf()).unwrap();
    let mut opts = clf();
    opts.keep_sequence = false;
    let counts = run(BASIC, &opts).unwrap();
    assert!(counts.trace.requests.is_empty() && counts.trace.times.is_empty());
    assert_eq!(TraceStats::from_imported(&counts), TraceStats::from_trace(&full.trace));
    assert_eq!(TraceStats::from_imported(&counts).requests, 4);
}

#[test]
fn gzip_logs_are_read_transparently() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("dl7-traces-gz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(BASIC.as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let from_gz = dl7_traces::import::import_path(&path, &clf()).unwrap().trace;
    assert_eq!(from_gz, run(BASIC, &clf()).unwrap().trace);
    std::fs::remove_dir_all(&dir).unwrap();
}
