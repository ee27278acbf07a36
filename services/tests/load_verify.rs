//! The load generator's verification can fail: a server that corrupts one
//! byte, truncates a body or answers 404 is counted, by kind.

mod common;

use std::time::Duration;

use dl7_services::content::Pattern;
use dl7_services::load::{self, LoadConfig, Requests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves every request on a connection with `respond(object)` (raw bytes), keep-alive.
async fn fake_server(respond: fn(&dl7_traces::Object) -> Vec<u8>) -> std::net::SocketAddr {
    let catalog = common::catalog();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let catalog = catalog.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Requests from dl7 load are heads only: split on the blank line.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("/");
                        let object = catalog.find(path).unwrap();
                        if s.write_all(&respond(object)).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn response(status: u16, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

async fn run_against(addr: std::net::SocketAddr) -> load::LoadReport {
    let catalog = common::catalog();
    let mut cfg = LoadConfig::new(addr, catalog.clone());
    cfg.requests = Requests::List(common::request_list(&catalog, 2));
    cfg.connections = 2;
    cfg.duration = Duration::from_secs(30);
    load::run(cfg).await.unwrap()
}

#[tokio::test]
async fn correct_bodies_pass() {
    let addr = fake_server(|o| response(200, &Pattern::of(o).body(o.size))).await;
    let r = run_against(addr).await;
    assert_eq!((r.errors, r.requests), (0, 48));
}

#[tokio::test]
async fn one_flipped_byte_is_a_body_error() {
    let addr = fake_server(|o| {
        let mut b = Pattern::of(o).body(o.size);
        let last = b.len() - 1;
        b[last] ^= 0x20;
        response(200, &b)
    })
    .await;
    let r = run_against(addr).await;
    assert_eq!(r.requests, 0);
    assert_eq!(r.errors_by_kind.get("body"), Some(&48), "{:?}", r.errors_by_kind);
}

#[tokio::test]
async fn short_bodies_and_error_statuses_are_counted_by_kind() {
    let addr = fake_server(|o| response(200, &Pattern::of(o).body(o.size - 1))).await;
    assert_eq!(run_against(addr).await.errors_by_kind.get("length"), Some(&48));
    let addr = fake_server(|_| response(404, b"no")).await;
    assert_eq!(run_against(addr).await.errors_by_kind.get("status_404"), Some(&48));
    let addr = fake_server(|_| b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec()).await;
    assert_eq!(run_against(addr).await.errors_by_kind.get("bad_response"), Some(&48));
}

#[tokio::test]
async fn a_refused_target_is_a_connect_error_not_a_hang() {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let r = run_against(dead).await;
    assert_eq!(r.requests, 0);
    assert_eq!(r.errors_by_kind.get("connect"), Some(&48));
}
