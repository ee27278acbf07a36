//! Full reverse proxying (issue 19 item 1, RFC 9110 and RFC 9112) in front
//! of a web server that is not dl7's origin, along every route a request
//! takes: one node that owns it; two nodes where the node it enters
//! forwards it to its owner; the conventional front end before two nodes.
//! Every method passes through with its body (Content-Length or chunked),
//! every status comes back, end-to-end fields pass both ways unchanged,
//! hop-by-hop ones do not, `Via` is added, `Host` reaches the origin, HEAD
//! gets a head alone, interim 1xx answers are read past, and bodies of
//! unknown length (chunked, to the close) arrive whole.

mod common;

use std::net::SocketAddr;

use common::web::{exchange, fields, path_owned_by, Cluster, Framing, Reply, Seen, Web};

/// The web server every route goes to.
async fn web() -> Web {
    Web::start(|req: &Seen| {
        let t = req.target.as_str();
        // Every answer carries end-to-end fields (kept) and hop-by-hop ones (dropped).
        let base = |r: Reply| {
            r.header("X-Custom", "from-origin")
                .header("Set-Cookie", "s=1")
                .header("Connection", "X-Resp-Hop")
                .header("X-Resp-Hop", "secret")
                .header("Keep-Alive", "timeout=5")
                .header("Cache-Control", "no-store")
        };
        if t.starts_with("/status/") {
            let code: u16 = t[8..11].parse().unwrap();
            let r = base(Reply::new(code, if code == 204 || code == 304 { b"" } else { b"status body" }));
            return if code == 301 { r.header("Location", "/moved") } else { r };
        }
        if t.starts_with("/chunked/") {
            return Reply { framing: Framing::Chunked, ..base(Reply::new(200, b"a body in chunks of seven bytes")) };
        }
        if t.starts_with("/close/") {
            return Reply { framing: Framing::Close, ..base(Reply::new(200, b"a body that ends with the close")) };
        }
        if t.starts_with("/interim/") {
            return Reply { interim: vec![103, 100], ..base(Reply::new(200, b"after the hints")) };
        }
        // Echo: the method and the body the origin got.
        let mut body = format!("{} {} ", req.method, req.body.len()).into_bytes();
        body.extend_from_slice(&req.body);
        base(Reply::new(if req.method == "POST" { 201 } else { 200 }, &body))
    })
    .await
}

/// A route: where the request enters, the prefix of paths that take it, and
/// the `Via` entries the origin must see (receiver first).
struct Route {
    name: &'static str,
    entry: SocketAddr,
    /// `path(prefix)`: a path under `prefix` that takes this route.
    nodes: usize,
    owner: u32,
    via: Vec<&'static str>,
}

impl Route {
    /// A path under `prefix` that takes this route, and no other route's.
    fn path(&self, prefix: &str) -> String {
        path_owned_by(&format!("{prefix}{}/", self.name.replace(' ', "-").replace(',', "")), self.owner, self.nodes)
    }
}

async fn routes(origin: SocketAddr) -> Vec<Route> {
    let one = Cluster::start(1, origin, false).await;
    let two = Cluster::start(2, origin, false).await;
    let front = Cluster::start(2, origin, true).await;
    vec![
        Route { name: "one node", entry: one.nodes[0], nodes: 1, owner: 0, via: vec!["1.1 dl7-node0"] },
        Route {
            name: "two nodes, forwarded",
            entry: two.nodes[0],
            nodes: 2,
            owner: 1,
            via: vec!["1.1 dl7-node0", "1.1 dl7-node1"],
        },
        Route {
            name: "front end, two nodes",
            entry: front.front.unwrap(),
            nodes: 2,
            owner: 1,
            via: vec!["1.1 dl7-front", "1.1 dl7-node1"],
        },
    ]
}

fn request(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: a.test\r\nX-Client: kept\r\nConnection: keep-alive, X-Req-Hop\r\n\
X-Req-Hop: dropped\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nUpgrade: h2c\r\n{extra}\r\n"
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_passes_through_with_its_body_and_fields() {
    let web = web().await;
    for route in routes(web.addr).await {
        let cases: [(&str, &str, &[u8], &[u8]); 6] = [
            ("POST", "Content-Length: 5\r\n", b"hello", b"hello"),
            ("POST", "Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n", b"abcdefg"),
            ("PUT", "Content-Length: 3\r\nExpect: 100-continue\r\n", b"put", b"put"),
            ("DELETE", "", b"", b""),
            ("PATCH", "Content-Length: 2\r\n", b"pa", b"pa"),
            ("OPTIONS", "", b"", b""),
        ];
        for (i, (method, extra, wire, body)) in cases.into_iter().enumerate() {
            let path = route.path(&format!("/echo/{i}/"));
            let (status, head, got) = exchange(route.entry, &request(method, &path, extra, wire)).await;
            let what = format!("{}: {method} {extra:?}", route.name);
            assert_eq!(status, if method == "POST" { 201 } else { 200 }, "{what}\n{head}");
            let mut want = format!("{method} {} ", body.len()).into_bytes();
            want.extend_from_slice(body);
            assert_eq!(got, want, "{what}: the origin got the method and the body");
            let seen = web.last(&path).expect("the origin got it");
            assert_eq!(seen.get("host"), Some("a.test"), "{what}: Host kept");
            assert_eq!(seen.get("x-client"), Some("kept"), "{what}");
            for hop in ["x-req-hop", "keep-alive", "te", "upgrade", "x-dl7-hop", "expect"] {
                assert_eq!(seen.get(hop), None, "{what}: {hop} reached the origin");
            }
            assert_eq!(seen.all("via"), route.via, "{what}: Via");
            // The answer's end-to-end fields, not its hop-by-hop ones.
            assert_eq!(fields(&head, "x-custom"), ["from-origin"], "{what}\n{head}");
            assert_eq!(fields(&head, "set-cookie"), ["s=1"], "{what}");
            assert!(fields(&head, "x-resp-hop").is_empty() && fields(&head, "keep-alive").is_empty(), "{what}\n{head}");
            assert!(!fields(&head, "via").is_empty(), "{what}: Via on the answer\n{head}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_comes_back_as_the_origin_sent_it() {
    let web = web().await;
    for route in routes(web.addr).await {
        for code in [200u16, 204, 301, 304, 404, 410, 500, 503] {
            let path = route.path(&format!("/status/{code}/"));
            let (status, head, body) = exchange(route.entry, &request("GET", &path, "", b"")).await;
            let what = format!("{}: {code}", route.name);
            assert_eq!(status, code, "{what}\n{head}");
            let want: &[u8] = if code == 204 || code == 304 { b"" } else { b"status body" };
            assert_eq!(body, want, "{what}");
            if code == 301 {
                assert_eq!(fields(&head, "location"), ["/moved"], "{what}");
            }
            assert_eq!(fields(&head, "x-custom"), ["from-origin"], "{what}\n{head}");
            assert_eq!(web.count(&path), 1, "{what}: asked once (a 503 from the origin is no node refusing)");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_unknown_length_and_interim_answers_arrive_whole() {
    let web = web().await;
    for route in routes(web.addr).await {
        for (prefix, want) in [
            ("/chunked/", &b"a body in chunks of seven bytes"[..]),
            ("/close/", b"a body that ends with the close"),
            ("/interim/", b"after the hints"),
        ] {
            let path = route.path(prefix);
            let (status, head, body) = exchange(route.entry, &request("GET", &path, "", b"")).await;
            assert_eq!((status, body.as_slice()), (200, want), "{} {prefix}\n{head}", route.name);
            // An HTTP/1.0 client gets the same body delimited by the close, never chunked.
            let old = format!("GET {path} HTTP/1.0\r\nHost: a.test\r\n\r\n");
            let (status, head, body) = exchange(route.entry, old.as_bytes()).await;
            assert_eq!((status, body.as_slice()), (200, want), "{} {prefix} HTTP/1.0\n{head}", route.name);
            assert!(fields(&head, "transfer-encoding").is_empty(), "{}\n{head}", route.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_gets_the_fields_of_the_get_and_no_body() {
    let web = web().await;
    for route in routes(web.addr).await {
        // A resource whose GET and HEAD answers agree: its HEAD has the GET's length, no body.
        let path = route.path("/status/200/head/");
        let (status, head, body) = exchange(route.entry, &request("HEAD", &path, "", b"")).await;
        assert_eq!((status, body.len()), (200, 0), "{}\n{head}", route.name);
        assert_eq!(fields(&head, "content-length"), ["11"], "{}: the GET's length\n{head}", route.name);
        assert_eq!(fields(&head, "x-custom"), ["from-origin"], "{}\n{head}", route.name);
    }
}

/// dl7's own pages live under its reserved prefix (issue 19, item 6): on
/// every public listener `/health`, `/stats`, `/metrics` and `/cache` are
/// the origin's pages like any other path, while dl7 answers `/_dl7/health`
/// and `/_dl7/stats` itself, 404 for another name under `/_dl7/`, and 405
/// for a change; none of these reach the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origins_pages_reach_it_and_dl7s_own_live_under_its_prefix() {
    let web = web().await;
    for (k, route) in routes(web.addr).await.into_iter().enumerate() {
        for path in ["/health", "/stats", "/metrics", "/cache"] {
            let (status, head, body) = exchange(route.entry, &request("GET", path, "", b"")).await;
            let what = format!("{}: GET {path}", route.name);
            assert_eq!((status, body.as_slice()), (200, &b"GET 0 "[..]), "{what}: the origin's echo\n{head}");
            assert_eq!(web.count(path), k + 1, "{what}: the origin got it");
            // Through this route's first hop at least (which node owns these fixed paths is md5's call).
            assert_eq!(web.last(path).unwrap().all("via").first(), route.via.first(), "{what}");
        }
        let seen_before = web.seen().len();
        let (status, head, body) = exchange(route.entry, &request("GET", "/_dl7/health", "", b"")).await;
        assert_eq!((status, body.as_slice()), (200, &b"200 OK\n"[..]), "{}: /_dl7/health\n{head}", route.name);
        let (status, _, body) = exchange(route.entry, &request("GET", "/_dl7/stats", "", b"")).await;
        assert_eq!(status, 200, "{}: /_dl7/stats", route.name);
        let stats: dl7_services::metrics::Stats = serde_json::from_slice(&body).expect("the stats JSON");
        assert_eq!(stats.version, dl7_services::metrics::Stats::VERSION);
        let (status, head, _) = exchange(route.entry, &request("GET", "/_dl7/no-such-page", "", b"")).await;
        assert_eq!(status, 404, "{}: a reserved name that is no page\n{head}", route.name);
        let (status, _, _) = exchange(route.entry, &request("PUT", "/_dl7/members?nodes=0", "", b"")).await;
        assert_eq!(status, 405, "{}: changes are the admin listener's", route.name);
        assert_eq!(web.seen().len(), seen_before, "{}: nothing under /_dl7/ reached the origin", route.name);
    }
}
