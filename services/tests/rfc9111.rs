//! RFC 9111 conformance of the owner's shared cache (issue 19 item 2): a
//! table of cases, each one requirement with its section number, each run
//! through one node and through two nodes where the request enters the
//! node that does not own it and is forwarded to its owner. A case is what
//! the origin answers (by how many times it has been asked for that URI)
//! and the client's requests in order, each with what must come back: its
//! status, `X-Cache`, how many requests the origin has had by then, and
//! fields that must or must not be there. Staleness comes from the
//! origin's own `Age` and `Expires`, so that no case waits for time to pass.
//!
//! Then the two properties the issue names on their own: a `private` or
//! `no-store` answer fetched by one client never reaches another, through
//! either node; and an unsafe request entering at node 0 invalidates what
//! owner node 1 holds.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use common::web::{exchange, fields, path_owned_by, Cluster, Reply, Seen, Web};

/// Dates in the past (the web server's own `Date` is now).
const PAST: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
const LONG_AGO: &str = "Sat, 01 Jan 2000 00:00:00 GMT";

/// One request of a case and what must come back.
struct Step {
    method: &'static str,
    /// `x` (the case's main URI) or `y` (a second one, owned by the other node when there are two).
    target: &'static str,
    /// More request fields, each line ending in CRLF (`Host: a.test` unless one is given).
    fields: &'static str,
    status: u16,
    /// `X-Cache` wanted, if it matters.
    cache: Option<&'static str>,
    /// Requests the origin has had for this case by then.
    asked: usize,
    /// Response fields that must be there, `name: value` (value matched exactly).
    has: &'static [&'static str],
    /// Response fields that must not be there.
    lacks: &'static [&'static str],
    /// The body wanted, if it matters.
    body: Option<&'static str>,
    /// `Age` wanted, within these seconds (a second may tick over between storing and serving).
    age: Option<(u64, u64)>,
    /// The step's effect comes from a background fetch: the request is sent
    /// again (HITs only, bounded: 3 s) until its checks hold.
    settle: bool,
}

const fn get(fields: &'static str, status: u16, cache: Option<&'static str>, asked: usize) -> Step {
    Step {
        method: "GET",
        target: "x",
        fields,
        status,
        cache,
        asked,
        has: &[],
        lacks: &[],
        body: None,
        age: None,
        settle: false,
    }
}

const _: &str = PAST;
const HIT: Option<&str> = Some("HIT");
const MISS: Option<&str> = Some("MISS");

/// One requirement.
struct Case {
    section: &'static str,
    what: &'static str,
    /// The origin's answer to its `n`-th request (from 0) for this case.
    origin: fn(usize, &Seen) -> Reply,
    steps: &'static [Step],
}

fn ok(cc: &str) -> Reply {
    Reply::new(200, b"the stored body").header("Cache-Control", cc)
}

/// The origin's 304 to a conditional request, else a 200 with `cc` (counted answers: `v{n}`).
fn validating(n: usize, req: &Seen, cc: &str, validator: (&str, &str)) -> Reply {
    let conditional = req.get("if-none-match").is_some() || req.get("if-modified-since").is_some();
    if n > 0 && conditional {
        return Reply::new(304, b"").header("Cache-Control", "max-age=600").header("X-Updated", "yes");
    }
    Reply::new(200, format!("v{n}").as_bytes()).header("Cache-Control", cc).header(validator.0, validator.1)
}

const CASES: &[Case] = &[
    Case {
        section: "3",
        what: "no-store is never stored",
        origin: |_, _| ok("no-store, max-age=600"),
        steps: &[get("", 200, MISS, 1), get("", 200, MISS, 2)],
    },
    Case {
        section: "3, 5.2.2.7",
        what: "private is never stored by a shared cache",
        origin: |_, _| ok("private, max-age=600"),
        steps: &[get("", 200, MISS, 1), get("", 200, MISS, 2)],
    },
    Case {
        section: "3.5",
        what: "a response to a request with Authorization is not stored",
        origin: |_, _| ok("max-age=600"),
        steps: &[get("Authorization: Basic YTpi\r\n", 200, MISS, 1), get("", 200, MISS, 2), get("", 200, HIT, 2)],
    },
    Case {
        section: "3.5",
        what: "... unless public allows it",
        origin: |_, _| ok("public, max-age=600"),
        steps: &[get("Authorization: Basic YTpi\r\n", 200, MISS, 1), get("", 200, HIT, 1)],
    },
    Case {
        section: "3, 4.2.2",
        what: "no explicit freshness: heuristic from Last-Modified for a cacheable status",
        origin: |_, _| Reply::new(200, b"heuristic").header("Last-Modified", LONG_AGO),
        steps: &[get("", 200, MISS, 1), get("", 200, HIT, 1)],
    },
    Case {
        section: "3",
        what: "no explicit freshness and a status not cacheable by default (302): not stored",
        origin: |_, _| Reply::new(302, b"found").header("Location", "/elsewhere").header("Last-Modified", LONG_AGO),
        steps: &[get("", 302, MISS, 1), get("", 302, MISS, 2)],
    },
    Case {
        section: "3",
        what: "a 404 with explicit freshness is stored",
        origin: |_, _| Reply::new(404, b"gone fishing").header("Cache-Control", "max-age=600"),
        steps: &[get("", 404, MISS, 1), get("", 404, HIT, 1)],
    },
    Case {
        section: "3.1",
        what: "every field is stored, unknown ones too; Connection and the fields it names are not",
        origin: |_, _| ok("max-age=600").header("X-Unknown", "kept").header("Connection", "X-Hop").header("X-Hop", "h"),
        steps: &[get("", 200, MISS, 1), Step { has: &["x-unknown: kept"], lacks: &["x-hop"], ..get("", 200, HIT, 1) }],
    },
    Case {
        section: "4.2.1",
        what: "s-maxage over max-age",
        origin: |_, _| ok("max-age=0, s-maxage=600"),
        steps: &[get("", 200, MISS, 1), get("", 200, HIT, 1)],
    },
    Case {
        section: "4.2.1",
        what: "max-age over Expires",
        origin: |_, _| ok("max-age=600").header("Expires", LONG_AGO),
        steps: &[get("", 200, MISS, 1), get("", 200, HIT, 1)],
    },
    Case {
        section: "4.2.1",
        what: "Expires minus Date when no max-age",
        origin: |_, _| Reply::new(200, b"expires").header("Expires", PAST),
        // Expires before Date: a lifetime of 0, and nothing to validate with, so not kept.
        steps: &[get("", 200, MISS, 1), get("", 200, MISS, 2)],
    },
    Case {
        section: "4.2.1, 5.3",
        what: "an invalid Expires means already expired",
        origin: |_, _| Reply::new(200, b"expires").header("Expires", "0").header("Last-Modified", LONG_AGO),
        steps: &[get("", 200, MISS, 1), get("", 200, MISS, 2)],
    },
    Case {
        section: "4.2.3",
        what: "Age is computed from the origin's Age and sent",
        origin: |_, _| ok("max-age=600").header("Age", "100"),
        steps: &[get("", 200, MISS, 1), Step { age: Some((100, 101)), ..get("", 200, HIT, 1) }],
    },
    Case {
        section: "5.1",
        what: "a non-integer Age is ignored",
        origin: |_, _| ok("max-age=600").header("Age", "1.5"),
        steps: &[get("", 200, MISS, 1), Step { age: Some((0, 1)), ..get("", 200, HIT, 1) }],
    },
    Case {
        section: "4.2.4",
        what: "a stale response is not served without permission",
        origin: |n, _| {
            Reply::new(200, format!("v{n}").as_bytes()).header("Cache-Control", "max-age=10").header("Age", "60")
        },
        steps: &[get("", 200, MISS, 1), Step { body: Some("v1"), ..get("", 200, MISS, 2) }],
    },
    Case {
        section: "4.3.1, 4.3.4",
        what: "revalidation with If-None-Match; the 304 updates the stored fields",
        origin: |n, r| validating(n, r, "max-age=10", ("ETag", "\"v1\"")).header("Age", "60"),
        steps: &[
            get("", 200, MISS, 1),
            Step { has: &["x-updated: yes", "etag: \"v1\""], body: Some("v0"), ..get("", 200, MISS, 2) },
            Step { has: &["x-updated: yes"], body: Some("v0"), ..get("", 200, HIT, 2) },
        ],
    },
    Case {
        section: "4.3.1",
        what: "revalidation with If-Modified-Since from Last-Modified",
        origin: |n, r| validating(n, r, "max-age=10", ("Last-Modified", LONG_AGO)).header("Age", "60"),
        steps: &[get("", 200, MISS, 1), Step { body: Some("v0"), ..get("", 200, MISS, 2) }, get("", 200, HIT, 2)],
    },
    Case {
        section: "4.3.2",
        what: "a client's If-None-Match gets 304 from the cache",
        origin: |_, _| ok("max-age=600").header("ETag", "\"abc\""),
        steps: &[
            get("", 200, MISS, 1),
            Step {
                has: &["etag: \"abc\""],
                lacks: &["content-length"],
                ..get("If-None-Match: \"x\", W/\"abc\"\r\n", 304, HIT, 1)
            },
            get("If-None-Match: \"other\"\r\n", 200, HIT, 1),
        ],
    },
    Case {
        section: "4.3.2",
        what: "a client's If-Modified-Since later than Last-Modified gets 304 from the cache",
        origin: |_, _| ok("max-age=600").header("Last-Modified", LONG_AGO),
        steps: &[
            get("", 200, MISS, 1),
            get(concat!("If-Modified-Since: ", "Tue, 14 Nov 2023 22:13:20 GMT", "\r\n"), 304, HIT, 1),
            get("If-Modified-Since: Fri, 31 Dec 1999 00:00:00 GMT\r\n", 200, HIT, 1),
        ],
    },
    Case {
        section: "4.1",
        what: "Vary: each variant under its own secondary key",
        origin: |_, r| {
            ok("max-age=600")
                .header("Vary", "Accept-Language")
                .header("X-Lang", r.get("accept-language").unwrap_or("-"))
        },
        steps: &[
            get("Accept-Language: en\r\n", 200, MISS, 1),
            Step { has: &["x-lang: en"], ..get("Accept-Language: en\r\n", 200, HIT, 1) },
            Step { has: &["x-lang: fr"], ..get("Accept-Language: fr\r\n", 200, MISS, 2) },
            Step { has: &["x-lang: fr"], ..get("Accept-Language: fr\r\n", 200, HIT, 2) },
            Step { has: &["x-lang: en"], ..get("Accept-Language: en\r\n", 200, HIT, 2) },
        ],
    },
    Case {
        section: "4.1",
        what: "Vary: * never matches",
        origin: |_, _| ok("max-age=600").header("Vary", "*"),
        steps: &[get("", 200, MISS, 1), get("", 200, MISS, 2)],
    },
    Case {
        section: "4.1",
        what: "the key is the effective request URI: the host is part of it",
        origin: |_, r| ok("max-age=600").header("X-Host", r.get("host").unwrap_or("-")),
        steps: &[
            Step { has: &["x-host: a.test"], ..get("Host: a.test\r\n", 200, MISS, 1) },
            Step { has: &["x-host: b.test"], ..get("Host: b.test\r\n", 200, MISS, 2) },
            Step { has: &["x-host: a.test"], ..get("Host: A.TEST\r\n", 200, HIT, 2) },
        ],
    },
    Case {
        section: "5.2.1.4",
        what: "request no-cache: validated before reuse",
        origin: |n, r| validating(n, r, "max-age=600", ("ETag", "\"e\"")),
        steps: &[get("", 200, MISS, 1), get("Cache-Control: no-cache\r\n", 200, MISS, 2), get("", 200, HIT, 2)],
    },
    Case {
        section: "5.4",
        what: "Pragma: no-cache without Cache-Control: as no-cache",
        origin: |n, r| validating(n, r, "max-age=600", ("ETag", "\"e\"")),
        steps: &[get("", 200, MISS, 1), get("Pragma: no-cache\r\n", 200, MISS, 2)],
    },
    Case {
        section: "5.2.1.1",
        what: "request max-age: older is validated",
        origin: |n, r| validating(n, r, "max-age=600", ("ETag", "\"e\"")).header("Age", "30"),
        steps: &[
            get("", 200, MISS, 1),
            get("Cache-Control: max-age=60\r\n", 200, HIT, 1),
            get("Cache-Control: max-age=5\r\n", 200, MISS, 2),
        ],
    },
    Case {
        section: "5.2.1.2",
        what: "request max-stale: a stale response within it is served",
        origin: |n, _| {
            Reply::new(200, format!("v{n}").as_bytes()).header("Cache-Control", "max-age=10").header("Age", "60")
        },
        steps: &[
            get("", 200, MISS, 1),
            Step { body: Some("v0"), ..get("Cache-Control: max-stale=3600\r\n", 200, HIT, 1) },
            Step { body: Some("v0"), ..get("Cache-Control: max-stale\r\n", 200, HIT, 1) },
            Step { body: Some("v1"), ..get("Cache-Control: max-stale=5\r\n", 200, MISS, 2) },
        ],
    },
    Case {
        section: "5.2.1.3",
        what: "request min-fresh: not fresh for long enough is validated",
        origin: |n, r| validating(n, r, "max-age=600", ("ETag", "\"e\"")),
        steps: &[
            get("", 200, MISS, 1),
            get("Cache-Control: min-fresh=60\r\n", 200, HIT, 1),
            get("Cache-Control: min-fresh=3600\r\n", 200, MISS, 2),
        ],
    },
    Case {
        section: "5.2.1.7",
        what: "only-if-cached: 504 on a miss, the stored response on a hit",
        origin: |_, _| ok("max-age=600"),
        steps: &[
            get("Cache-Control: only-if-cached\r\n", 504, None, 0),
            get("", 200, MISS, 1),
            get("Cache-Control: only-if-cached\r\n", 200, HIT, 1),
        ],
    },
    Case {
        section: "5.2.2.4",
        what: "response no-cache: validated before every reuse",
        origin: |n, r| validating(n, r, "no-cache, max-age=600", ("ETag", "\"e\"")),
        steps: &[get("", 200, MISS, 1), Step { body: Some("v0"), ..get("", 200, MISS, 2) }],
    },
    Case {
        section: "5.2.2.2",
        what: "must-revalidate: a stale response is never served when validation fails",
        origin: |n, _| match n {
            0 => Reply::new(200, b"v0")
                .header("Cache-Control", "max-age=10, must-revalidate, stale-if-error=600")
                .header("Age", "60"),
            _ => Reply::new(500, b"origin error"),
        },
        steps: &[get("", 200, MISS, 1), Step { body: Some("origin error"), ..get("", 500, MISS, 2) }],
    },
    Case {
        section: "RFC 5861 4",
        what: "stale-if-error: the stale response answers when validation fails",
        origin: |n, _| match n {
            0 => Reply::new(200, b"v0").header("Cache-Control", "max-age=10, stale-if-error=600").header("Age", "60"),
            _ => Reply::new(500, b"origin error"),
        },
        steps: &[get("", 200, MISS, 1), Step { body: Some("v0"), ..get("", 200, None, 2) }],
    },
    Case {
        section: "RFC 5861 3",
        what: "stale-while-revalidate: the stale response answers at once, validated behind it",
        origin: |n, r| match n {
            0 => validating(n, r, "max-age=10, stale-while-revalidate=600", ("ETag", "\"e\"")).header("Age", "60"),
            _ => validating(n, r, "max-age=600", ("ETag", "\"e\"")),
        },
        steps: &[
            get("", 200, MISS, 1),
            Step { body: Some("v0"), settle: true, ..get("", 200, HIT, 2) },
            Step { body: Some("v0"), has: &["x-updated: yes"], settle: true, ..get("", 200, HIT, 2) },
        ],
    },
    Case {
        section: "RFC 9213 2",
        what: "CDN-Cache-Control is followed instead of Cache-Control",
        origin: |_, _| ok("no-store").header("CDN-Cache-Control", "max-age=600"),
        steps: &[get("", 200, MISS, 1), get("", 200, HIT, 1)],
    },
    Case {
        section: "4",
        what: "HEAD is answered from the stored GET response",
        origin: |_, _| ok("max-age=600"),
        steps: &[
            get("", 200, MISS, 1),
            Step { method: "HEAD", body: Some(""), has: &["content-length: 15"], ..get("", 200, HIT, 1) },
        ],
    },
    Case {
        section: "4.4",
        what: "a successful unsafe request invalidates its target",
        origin: |n, r| match r.method.as_str() {
            "POST" => Reply::new(201, b"created"),
            _ => Reply::new(200, format!("v{n}").as_bytes()).header("Cache-Control", "max-age=600"),
        },
        steps: &[
            get("", 200, MISS, 1),
            get("", 200, HIT, 1),
            Step { method: "POST", fields: "Content-Length: 0\r\n", ..get("", 201, MISS, 2) },
            Step { body: Some("v2"), ..get("", 200, MISS, 3) },
        ],
    },
    Case {
        section: "4.4",
        what: "... and its Location on the same host (owned by the other node when there are two)",
        origin: |n, r| match r.method.as_str() {
            "PUT" => Reply::new(200, b"put").header("Location", "LOCATION"),
            _ => Reply::new(200, format!("v{n}").as_bytes()).header("Cache-Control", "max-age=600"),
        },
        steps: &[
            Step { target: "y", ..get("", 200, MISS, 1) },
            Step { target: "y", ..get("", 200, HIT, 1) },
            Step { method: "PUT", fields: "Content-Length: 0\r\n", ..get("", 200, MISS, 2) },
            Step { target: "y", ..get("", 200, MISS, 3) },
        ],
    },
    Case {
        section: "4.4",
        what: "an unsafe request that fails invalidates nothing",
        origin: |_, r| match r.method.as_str() {
            "DELETE" => Reply::new(500, b"failed"),
            _ => ok("max-age=600"),
        },
        steps: &[get("", 200, MISS, 1), Step { method: "DELETE", ..get("", 500, MISS, 2) }, get("", 200, HIT, 2)],
    },
];

/// The case a target belongs to (`/c{i}/...`).
fn case_of(target: &str) -> usize {
    target[2..].split('/').next().unwrap().parse().unwrap()
}

/// The two routes: one node; two nodes entered at node 0, `x` owned by node 1 and `y` by node 0.
struct Route {
    name: &'static str,
    entry: SocketAddr,
    nodes: usize,
}

impl Route {
    fn target(&self, case: usize, t: &str) -> String {
        let owner = if self.nodes == 1 || t == "y" { 0 } else { 1 };
        path_owned_by(&format!("/c{case}/{}/{t}-", self.nodes), owner, self.nodes)
    }
}

async fn origin_for_cases() -> Web {
    let asked: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    Web::start(move |req: &Seen| {
        let case = case_of(&req.target);
        // Counted per case and route (the part of the target before x-/y-).
        let scope = req.target.rsplit_once('/').unwrap().0.to_string();
        let n = {
            let mut a = asked.lock().unwrap();
            let n = a.entry(scope.clone()).or_default();
            *n += 1;
            *n - 1
        };
        let mut r = (CASES[case].origin)(n, req);
        // A Location naming the case's second URI, on the request's host.
        for (k, v) in r.headers.iter_mut() {
            if k == "Location" && v == "LOCATION" {
                let nodes: usize = scope.rsplit('/').next().unwrap().parse().unwrap();
                let owner = 0;
                *v = format!(
                    "http://{}{}",
                    req.get("host").unwrap(),
                    path_owned_by(&format!("{scope}/y-"), owner, nodes)
                );
            }
        }
        r
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_cache_conforms_to_rfc_9111_through_one_node_and_through_its_owner() {
    let web = origin_for_cases().await;
    let one = Cluster::start(1, web.addr, false).await;
    let two = Cluster::start(2, web.addr, false).await;
    let routes = [
        Route { name: "one node", entry: one.nodes[0], nodes: 1 },
        Route { name: "two nodes, forwarded", entry: two.nodes[0], nodes: 2 },
    ];
    let mut failures = Vec::new();
    let mut passed = 0;
    for route in &routes {
        for (i, case) in CASES.iter().enumerate() {
            let scope = format!("/c{i}/{}/", route.nodes);
            let mut failed = None;
            for (k, step) in case.steps.iter().enumerate() {
                let target = route.target(i, step.target);
                let host = if step.fields.to_ascii_lowercase().contains("host:") { "" } else { "Host: a.test\r\n" };
                let raw = format!("{} {target} HTTP/1.1\r\n{host}{}\r\n", step.method, step.fields);
                // A settling step's effect is asynchronous: it is sent again (bounded) until it holds.
                let tries = if step.settle { 300 } else { 1 };
                let mut attempt = 0;
                let (head, why) = loop {
                    attempt += 1;
                    let (status, head, body) = exchange(route.entry, raw.as_bytes()).await;
                    let asked = web.seen().iter().filter(|s| s.target.starts_with(&scope)).count();
                    let mut why = Vec::new();
                    if status != step.status {
                        why.push(format!("status {status}, want {}", step.status));
                    }
                    if let Some(c) = step.cache {
                        if fields(&head, "x-cache") != [c] {
                            why.push(format!("X-Cache {:?}, want {c}", fields(&head, "x-cache")));
                        }
                    }
                    if asked != step.asked {
                        why.push(format!("origin asked {asked} times, want {}", step.asked));
                    }
                    for want in step.has {
                        let (n, v) = want.split_once(": ").unwrap();
                        if !fields(&head, n).contains(&v) {
                            why.push(format!("no {want}"));
                        }
                    }
                    for n in step.lacks {
                        if !fields(&head, n).is_empty() {
                            why.push(format!("has {n}"));
                        }
                    }
                    if let Some((lo, hi)) = step.age {
                        let age = fields(&head, "age").first().and_then(|a| a.parse::<u64>().ok());
                        if !age.is_some_and(|a| (lo..=hi).contains(&a)) {
                            why.push(format!("Age {age:?}, want {lo} to {hi}"));
                        }
                    }
                    if let Some(b) = step.body {
                        if body != b.as_bytes() {
                            why.push(format!("body {:?}, want {b:?}", String::from_utf8_lossy(&body)));
                        }
                    }
                    if why.is_empty() || attempt == tries {
                        break (head, why);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                if !why.is_empty() {
                    failed = Some(format!(
                        "RFC 9111 {} {} [{}], step {} ({} {}): {}\n{head}",
                        case.section,
                        case.what,
                        route.name,
                        k + 1,
                        step.method,
                        step.fields.trim(),
                        why.join("; ")
                    ));
                    break;
                }
            }
            match failed {
                Some(f) => failures.push(f),
                None => passed += 1,
            }
        }
    }
    println!(
        "RFC 9111 conformance: {passed} of {} cases passed ({} requirements x {} routes)",
        2 * CASES.len(),
        CASES.len(),
        routes.len()
    );
    assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
}

/// The origin's answer for the leak test: personal (it names the user) and marked not to be shared.
async fn personal_origin() -> Web {
    Web::start(|req: &Seen| {
        let user = req.get("x-user").unwrap_or("nobody").to_string();
        let cc = if req.target.contains("/private/") { "private, max-age=600" } else { "no-store" };
        Reply::new(200, format!("the page of {user}").as_bytes())
            .header("Cache-Control", cc)
            .header("Set-Cookie", &format!("u={user}"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_or_no_store_answer_never_reaches_another_client() {
    let web = personal_origin().await;
    let two = Cluster::start(2, web.addr, false).await;
    for kind in ["private", "no-store"] {
        for owner in [0u32, 1] {
            let path = path_owned_by(&format!("/{kind}/page-"), owner, 2);
            // Client A through one node, then B through each node, concurrently and after.
            let req = |user: &str| format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nX-User: {user}\r\n\r\n");
            let (_, _, a) = exchange(two.nodes[0], req("alice").as_bytes()).await;
            assert_eq!(a, b"the page of alice");
            let (bob, carol) = (req("bob"), req("carol"));
            let (b0, b1) =
                tokio::join!(exchange(two.nodes[0], bob.as_bytes()), exchange(two.nodes[1], carol.as_bytes()));
            for ((_, head, body), user) in [(b0, "bob"), (b1, "carol")] {
                assert_eq!(
                    body,
                    format!("the page of {user}").as_bytes(),
                    "{kind}, owner {owner}: {user} got another's page"
                );
                assert_eq!(fields(&head, "set-cookie"), [format!("u={user}").as_str()], "{kind}: {head}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_request_entering_at_node_0_invalidates_the_copy_at_owner_node_1() {
    let versions = Mutex::new(0u32);
    let web = Web::start(move |req: &Seen| {
        let mut v = versions.lock().unwrap();
        if req.method == "POST" {
            *v += 1;
            return Reply::new(204, b"");
        }
        Reply::new(200, format!("version {v}").as_bytes()).header("Cache-Control", "max-age=600")
    })
    .await;
    let two = Cluster::start(2, web.addr, false).await;
    let path = path_owned_by("/doc-", 1, 2);
    let get = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
    for node in [0, 1, 0] {
        assert_eq!(exchange(two.nodes[node], get.as_bytes()).await.2, b"version 0");
    }
    assert_eq!(web.count(&path), 1, "cached at its owner, node 1");
    let post = format!("POST {path} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nedit");
    assert_eq!(exchange(two.nodes[0], post.as_bytes()).await.0, 204);
    assert_eq!(web.seen().last().unwrap().body, b"edit");
    for node in [1, 0] {
        assert_eq!(exchange(two.nodes[node], get.as_bytes()).await.2, b"version 1", "node {node} after the POST");
    }
    assert_eq!(web.count(&path), 3, "one new fetch after the POST, then hits");
}
