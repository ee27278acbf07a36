//! The object catalog: what a workload serves. Both engines index objects by
//! [`ObjectId`] (position in the catalog) and request them by [`Object::path`].

use serde::{Deserialize, Serialize};

/// Index of an object in its [`Catalog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId(pub u32);

impl ObjectId {
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Content type of an object; decides whether a cache distills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Html,
    Gif,
    Jpeg,
    Png,
    Css,
    Js,
    Other,
}

impl ContentType {
    /// The MIME type sent in `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Html => "text/html",
            ContentType::Gif => "image/gif",
            ContentType::Jpeg => "image/jpeg",
            ContentType::Png => "image/png",
            ContentType::Css => "text/css",
            ContentType::Js => "application/javascript",
            ContentType::Other => "application/octet-stream",
        }
    }

    /// Images are what the paper's caches distill (JPEG-6b recompression).
    pub fn is_image(self) -> bool {
        matches!(self, ContentType::Gif | ContentType::Jpeg | ContentType::Png)
    }

    /// Guesses the type from a path's extension (for imported logs).
    pub fn from_path(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("html" | "htm" | "shtml" | "php" | "asp" | "jsp") => ContentType::Html,
            None if path.ends_with('/') => ContentType::Html,
            Some("gif") => ContentType::Gif,
            Some("jpg" | "jpeg") => ContentType::Jpeg,
            Some("png") => ContentType::Png,
            Some("css") => ContentType::Css,
            Some("js") => ContentType::Js,
            _ => ContentType::Other,
        }
    }
}

/// One object a workload serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub id: ObjectId,
    /// URL path, e.g. `/surge100/obj017.jpg`; what the dispatcher hashes.
    pub path: String,
    /// Body size in bytes.
    pub size: u64,
    pub content_type: ContentType,
    /// Relative popularity: the probability of a request is weight / total.
    pub weight: f64,
}

/// An ordered list of objects; `objects[i].id == ObjectId(i)`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub objects: Vec<Object>,
}

impl Catalog {
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn get(&self, id: ObjectId) -> &Object {
        &self.objects[id.index()]
    }

    /// The object with URL path `path`, if any (linear; build an index for hot paths).
    pub fn find(&self, path: &str) -> Option<&Object> {
        self.objects.iter().find(|o| o.path == path)
    }

    /// Popularity-weighted mean body size: the mean response of independent draws.
    pub fn mean_request_bytes(&self) -> f64 {
        let total: f64 = self.objects.iter().map(|o| o.weight).sum();
        self.objects.iter().map(|o| o.weight * o.size as f64).sum::<f64>() / total
    }

    /// Bytes of one copy of every object: the storage a hashing cluster needs.
    pub fn unique_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
}
