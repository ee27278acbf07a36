//! The deterministic body of every catalog object, so that the origin can
//! generate it and any node or load generator can verify it byte by byte
//! without storing a copy.
//!
//! The byte function: body byte `i` of object `id` is `pattern(id)[i % P]`.
//! * Text objects (HTML, CSS, JS) have `P = 64` and the pattern is the ASCII
//!   line `"dl7 object {id:010} " + "abcdef..."` padded to 63 characters plus
//!   `'\n'`: compressible, like real markup, so the gzip distill stage has work.
//! * Other objects have `P = 251` (a prime, so no alignment with buffer sizes)
//!   and `pattern(id)[j] = top byte of splitmix64(id * 251 + j)`: incompressible,
//!   like real images.
//!
//! This module must not do I/O; it only computes and compares bytes.

use dl7_traces::{ContentType, Object};

/// Pattern period of text objects.
pub const TEXT_PERIOD: usize = 64;
/// Pattern period of binary objects.
pub const BINARY_PERIOD: usize = 251;

/// The repeating pattern of one object's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    bytes: Vec<u8>,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// True for the types whose bodies are text (and that the distill stage gzips).
pub fn is_text(t: ContentType) -> bool {
    matches!(t, ContentType::Html | ContentType::Css | ContentType::Js)
}

impl Pattern {
    /// The pattern of object `id` of type `t`.
    pub fn new(id: u32, t: ContentType) -> Self {
        let bytes = if is_text(t) {
            let mut line = format!("dl7 object {id:010} ").into_bytes();
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
            let mut k = 0;
            while line.len() < TEXT_PERIOD - 1 {
                line.push(alphabet[k % alphabet.len()]);
                k += 1;
            }
            line.push(b'\n');
            line
        } else {
            (0..BINARY_PERIOD as u64).map(|j| (splitmix64(id as u64 * BINARY_PERIOD as u64 + j) >> 56) as u8).collect()
        };
        Self { bytes }
    }

    /// The pattern of a catalog object.
    pub fn of(object: &Object) -> Self {
        Self::new(object.id.0, object.content_type)
    }

    /// Body byte at `offset`.
    pub fn byte(&self, offset: u64) -> u8 {
        self.bytes[(offset % self.bytes.len() as u64) as usize]
    }

    /// Writes the body bytes from `offset` on into all of `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let p = &self.bytes;
        let mut at = (offset % p.len() as u64) as usize;
        let mut rest = out;
        while !rest.is_empty() {
            let take = (p.len() - at).min(rest.len());
            rest[..take].copy_from_slice(&p[at..at + take]);
            rest = &mut rest[take..];
            at = 0;
        }
    }

    /// The whole body of `size` bytes.
    pub fn body(&self, size: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(size as usize);
        let p = &self.bytes;
        while (out.len() as u64) < size {
            let take = ((size - out.len() as u64) as usize).min(p.len());
            out.extend_from_slice(&p[..take]);
        }
        out
    }

    /// True when `chunk` equals the body bytes starting at `offset`.
    pub fn matches(&self, offset: u64, chunk: &[u8]) -> bool {
        let p = &self.bytes;
        let mut at = (offset % p.len() as u64) as usize;
        let mut rest = chunk;
        while !rest.is_empty() {
            let take = (p.len() - at).min(rest.len());
            if rest[..take] != p[at..at + take] {
                return false;
            }
            rest = &rest[take..];
            at = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_bytes_follow_the_documented_function() {
        let p = Pattern::new(17, ContentType::Jpeg);
        let body = p.body(1000);
        assert_eq!(body.len(), 1000);
        for (i, &b) in body.iter().enumerate() {
            assert_eq!(b, (splitmix64(17 * 251 + (i % 251) as u64) >> 56) as u8);
        }
        assert!(p.matches(0, &body));
        assert!(p.matches(300, &body[300..]));
        let mut part = vec![0u8; 600];
        p.fill(300, &mut part);
        assert_eq!(part[..], body[300..900]);
        let mut bad = body.clone();
        bad[999] ^= 1;
        assert!(!p.matches(0, &bad));
    }

    #[test]
    fn text_bodies_are_lines_naming_the_object() {
        let p = Pattern::new(3, ContentType::Html);
        let body = p.body(130);
        assert!(body.starts_with(b"dl7 object 0000000003 abc"));
        assert_eq!(body[63], b'\n');
        assert_eq!(&body[64..128], &body[..64]);
    }

    #[test]
    fn different_objects_differ() {
        assert_ne!(Pattern::new(1, ContentType::Gif).body(251), Pattern::new(2, ContentType::Gif).body(251));
        assert_ne!(Pattern::new(1, ContentType::Css).body(64), Pattern::new(2, ContentType::Css).body(64));
    }
}
