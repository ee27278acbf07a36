//! No head parser panics, whatever the bytes (the short proptest versions of
//! the `fuzz/` targets): the request-head parser every service's loop uses
//! and the response-head parser every upstream fetch uses, on arbitrary
//! bytes and on mutations of valid heads, so that they get deep.

use dl7_services::http::{parse_request_head, parse_response_head};
use proptest::prelude::*;

fn mutations(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8).prop_map(move |edits| {
            let mut head = valid.to_vec();
            for (at, byte) in edits {
                let i = at.index(head.len());
                head[i] = byte;
            }
            head
        }),
    ]
}

const REQUEST: &[u8] =
    b"GET http://a/x.gif HTTP/1.1\r\nHost: a:80\r\nConnection: keep-alive, close\r\nContent-Length: 3, 3\r\nX-Dl7-Hop: 1\r\n\r\nabc";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 7\r\nX-Dl7-Object-Id: 12\r\nConnection: close\r\n\r\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_request_head_parser_never_panics_and_consumes_at_most_its_input(buf in mutations(REQUEST)) {
        let mut path = String::new();
        if let Ok(Some((_, n, _))) = parse_request_head(&buf, &mut path) {
            prop_assert!(n <= buf.len());
            prop_assert!(path.starts_with('/'));
        }
    }

    #[test]
    fn the_response_head_parser_never_panics_and_consumes_at_most_its_input(buf in mutations(RESPONSE)) {
        if let Ok(Some((_, n))) = parse_response_head(&buf) {
            prop_assert!(n <= buf.len());
        }
    }
}

#[test]
fn the_seed_heads_parse() {
    let mut path = String::new();
    let (head, n, body) = parse_request_head(REQUEST, &mut path).unwrap().unwrap();
    assert_eq!((path.as_str(), n + 3, body, head.hop, head.keep_alive), ("/x.gif", REQUEST.len(), 3, true, false));
    let (resp, n) = parse_response_head(RESPONSE).unwrap().unwrap();
    assert_eq!((resp.status, resp.content_length, resp.object_id, n), (200, 7, Some(12), RESPONSE.len()));
}
