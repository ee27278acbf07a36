//! An object in transit from the origin to its owner node, shared by every
//! request waiting for it (single flight): one task reads the origin's body
//! and every waiter streams the bytes to its client as they arrive, each at
//! its own pace, so a miss answers with its head at once and no timeout
//! waits for a whole object.
//!
//! * An object that may be cached (at most the node's `max_object_bytes`)
//!   is kept whole as it arrives and, once complete, is handed to the
//!   caller's `done` (the node stores it); readers copy from it.
//! * A larger one passes through a window of [`WINDOW`] bytes that moves on
//!   only when the slowest reader has taken its start: the origin is read at
//!   that reader's pace and the node holds at most the window, whatever the
//!   object's size. A request that comes once the window has left the
//!   object's start cannot join ([`Fill::reader`] is `None`) and fetches its
//!   own copy; when every reader has left, the fetch stops.
//!
//! A failed fetch (the origin closed, or sent nothing for the idle timeout)
//! fails every reader. This module knows neither caches nor HTTP servers.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

use crate::http::{BodySource, FetchError, UpstreamBody, RELAY_CHUNK};

/// Bytes of an uncacheable object a node holds in transit at most.
pub const WINDOW: usize = 4 * RELAY_CHUNK;

/// What the origin said about the object.
#[derive(Debug, Clone)]
pub struct FillHead {
    /// Body length.
    pub len: u64,
    /// Its type.
    pub content_type: dl7_traces::ContentType,
    /// Catalog object id, as the origin reported it.
    pub object_id: Option<u32>,
    /// The body is gzip-compressed.
    pub gzip: bool,
    /// The origin's end-to-end header lines, as a cache stores them
    /// ([`crate::http::proxy::stored_header_lines`]).
    pub stored: Bytes,
    /// The response's status.
    pub status: u16,
    /// Its freshness, as [`crate::rfc9111::Freshness::of`] computed it.
    pub freshness: crate::rfc9111::Freshness,
}

/// One object in transit.
pub struct Fill {
    /// The origin's head.
    pub head: FillHead,
    /// Kept whole (to be cached) rather than through the window.
    pub whole: bool,
    state: Mutex<State>,
    /// Bumped when bytes arrive, the fetch ends, or (window) a reader moves.
    changed: watch::Sender<u64>,
}

struct State {
    /// Bytes `base..received` of the body (whole: `0..received`).
    buf: Vec<u8>,
    base: u64,
    received: u64,
    failed: bool,
    /// The complete body (whole only).
    body: Option<Bytes>,
    /// Window: the offset of every reader still reading (`None`: left).
    readers: Vec<Option<u64>>,
}

impl Fill {
    /// A fill for an object with `head`, and the reader of the request that
    /// starts it (registered before the fetch can move the window).
    pub fn new(head: FillHead, whole: bool) -> (Arc<Fill>, FillReader) {
        let buf = if whole { Vec::with_capacity(head.len as usize) } else { Vec::with_capacity(WINDOW) };
        let state = State { buf, base: 0, received: 0, failed: false, body: None, readers: vec![Some(0)] };
        let fill = Arc::new(Fill { head, whole, state: Mutex::new(state), changed: watch::channel(0).0 });
        let reader = FillReader { rx: fill.changed.subscribe(), fill: fill.clone(), slot: Some(0), offset: 0 };
        (fill, reader)
    }

    /// A reader from the body's first byte, or `None` when that byte is gone
    /// (the window moved on) or the fetch failed.
    pub fn reader(self: &Arc<Self>) -> Option<FillReader> {
        let mut st = self.state.lock().expect("fill lock");
        if st.failed || st.base > 0 {
            return None;
        }
        let slot = if self.whole {
            None
        } else {
            st.readers.push(Some(0));
            Some(st.readers.len() - 1)
        };
        Some(FillReader { rx: self.changed.subscribe(), fill: self.clone(), slot, offset: 0 })
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Reads `body` into the fill until complete (whole: hands the body to
    /// `done`), failed, or (window) abandoned by every reader (`done(None)`).
    pub async fn run(self: Arc<Self>, mut body: UpstreamBody, done: impl FnOnce(Option<Bytes>)) {
        let mut rx = self.changed.subscribe();
        let mut chunk = vec![0u8; RELAY_CHUNK];
        loop {
            let want = loop {
                rx.borrow_and_update();
                {
                    let mut st = self.state.lock().expect("fill lock");
                    if self.whole {
                        break RELAY_CHUNK;
                    }
                    let Some(slowest) = st.readers.iter().flatten().min().copied() else {
                        st.failed = true; // nobody reads any more: stop fetching
                        drop(st);
                        self.notify();
                        return done(None);
                    };
                    // Drop what every reader has taken.
                    let gone = (slowest - st.base) as usize;
                    st.buf.drain(..gone);
                    st.base = slowest;
                    let room = WINDOW - st.buf.len();
                    if room > 0 {
                        break room.min(RELAY_CHUNK);
                    }
                }
                if rx.changed().await.is_err() {
                    return done(None);
                }
            };
            match body.read_chunk(&mut chunk[..want]).await {
                Ok(0) => {
                    let complete = {
                        let mut st = self.state.lock().expect("fill lock");
                        if self.whole {
                            let b = Bytes::from(std::mem::take(&mut st.buf));
                            st.body = Some(b.clone());
                            Some(b)
                        } else {
                            None
                        }
                    };
                    self.notify();
                    return done(complete);
                }
                Ok(n) => {
                    let mut st = self.state.lock().expect("fill lock");
                    st.buf.extend_from_slice(&chunk[..n]);
                    st.received += n as u64;
                    drop(st);
                    self.notify();
                }
                Err(e) => {
                    tracing::debug!("origin fetch failed mid-body: {e}");
                    self.state.lock().expect("fill lock").failed = true;
                    self.notify();
                    return done(None);
                }
            }
        }
    }
}

/// One request's view of a [`Fill`]: the body from its first byte.
pub struct FillReader {
    fill: Arc<Fill>,
    rx: watch::Receiver<u64>,
    slot: Option<usize>,
    offset: u64,
}

impl FillReader {
    /// The fill it reads.
    pub fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    async fn next(&mut self, buf: &mut [u8]) -> Result<usize, FetchError> {
        let len = self.fill.head.len;
        if self.offset >= len || buf.is_empty() {
            return Ok(0);
        }
        loop {
            self.rx.borrow_and_update();
            {
                let mut st = self.fill.state.lock().expect("fill lock");
                let (data, base, received): (&[u8], u64, u64) = match &st.body {
                    Some(b) => (b, 0, len),
                    None => (&st.buf, st.base, st.received),
                };
                if received > self.offset {
                    let from = (self.offset - base) as usize;
                    let n = ((received - self.offset) as usize).min(buf.len());
                    buf[..n].copy_from_slice(&data[from..from + n]);
                    self.offset += n as u64;
                    if let Some(slot) = self.slot {
                        st.readers[slot] = Some(self.offset);
                        drop(st);
                        self.fill.notify();
                    }
                    return Ok(n);
                }
                if st.failed {
                    return Err(FetchError::Closed);
                }
            }
            if self.rx.changed().await.is_err() {
                return Err(FetchError::Closed);
            }
        }
    }
}

impl BodySource for FillReader {
    fn remaining(&self) -> u64 {
        self.fill.head.len - self.offset
    }

    fn read_chunk(&mut self, buf: &mut [u8]) -> impl std::future::Future<Output = Result<usize, FetchError>> + Send {
        self.next(buf)
    }
}

impl Drop for FillReader {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.fill.state.lock().expect("fill lock").readers[slot] = None;
            self.fill.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Pattern;
    use dl7_traces::{Catalog, ContentType, Object, ObjectId};
    use std::time::Duration;

    const SIZE: u64 = 1 << 20;

    /// An origin serving one 1 MiB object; returns a fetch of it, head in.
    async fn fetch() -> (FillHead, UpstreamBody, Pattern) {
        let o =
            Object { id: ObjectId(0), path: "/f.jpg".into(), size: SIZE, content_type: ContentType::Jpeg, weight: 1.0 };
        let pattern = Pattern::of(&o);
        let catalog = Arc::new(Catalog { objects: vec![o] });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(crate::origin::run(l, crate::origin::OriginConfig::new(catalog), std::future::pending()));
        let pool = crate::http::Pool::new(addr, 1);
        let (h, body) = pool.get_stream("/f.jpg", false, Duration::from_secs(5)).await.unwrap();
        let stored = Bytes::from(crate::http::proxy::stored_header_lines(body.raw_head()));
        let head = FillHead {
            len: h.content_length,
            content_type: h.content_type,
            object_id: h.object_id,
            gzip: h.gzip,
            stored,
            status: h.status,
            freshness: crate::rfc9111::Freshness::default(),
        };
        (head, body, pattern)
    }

    async fn read_all(r: &mut FillReader, pattern: &Pattern) -> u64 {
        let mut buf = vec![0u8; 10_000];
        let mut at = 0;
        loop {
            let n = r.read_chunk(&mut buf).await.unwrap();
            if n == 0 {
                return at;
            }
            assert!(pattern.matches(at, &buf[..n]));
            at += n as u64;
        }
    }

    #[tokio::test]
    async fn a_cacheable_object_is_kept_whole_and_handed_over_complete() {
        let (head, body, pattern) = fetch().await;
        let (fill, mut first) = Fill::new(head, true);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(fill.clone().run(body, move |b| tx.send(b).unwrap()));
        let mut second = fill.reader().unwrap();
        assert_eq!(read_all(&mut first, &pattern).await, SIZE);
        let stored = rx.await.unwrap().expect("complete");
        assert_eq!(stored[..], pattern.body(SIZE)[..]);
        assert_eq!(read_all(&mut second, &pattern).await, SIZE);
        assert!(fill.reader().is_some(), "a complete whole fill can still be read from the start");
    }

    #[tokio::test]
    async fn a_large_object_moves_at_the_slowest_readers_pace_within_the_window() {
        let (head, body, pattern) = fetch().await;
        let (fill, mut fast) = Fill::new(head, false);
        let slow = fill.reader().unwrap();
        tokio::spawn(fill.clone().run(body, |b| assert!(b.is_none(), "never handed over for caching")));
        // The fast reader gets the window's worth, then waits for the slow one.
        let mut buf = vec![0u8; RELAY_CHUNK];
        let mut got = 0;
        while got < WINDOW as u64 {
            got += fast.read_chunk(&mut buf).await.unwrap() as u64;
        }
        assert_eq!(got, WINDOW as u64);
        let more = tokio::time::timeout(Duration::from_millis(200), fast.read_chunk(&mut buf)).await;
        assert!(more.is_err(), "read past the window while the slow reader has taken nothing");
        // The slowest reader is still at the start, so a new one may join (and leaves again here).
        drop(fill.reader().expect("the start is still held"));
        // The slow reader leaves: the fast one finishes.
        drop(slow);
        let mut rest = got;
        loop {
            let n = fast.read_chunk(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(pattern.matches(rest, &buf[..n]));
            rest += n as u64;
        }
        assert_eq!(rest, SIZE);
        assert!(fill.reader().is_none(), "the window left the start: no late joiner");
    }

    #[tokio::test]
    async fn a_large_fetch_stops_when_every_reader_has_left() {
        let (head, body, _) = fetch().await;
        let (fill, reader) = Fill::new(head, false);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(fill.clone().run(body, move |b| tx.send(b.is_none()).unwrap()));
        drop(reader);
        assert!(rx.await.unwrap());
        assert!(fill.reader().is_none());
    }
}
