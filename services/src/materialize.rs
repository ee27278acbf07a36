//! `dl7 trace materialize`: a catalog written out as files, so that any web
//! server (nginx, Apache, a CDN's origin shield) can serve it in place of
//! `dl7 origin`, and the load generator still verifies every byte.
//!
//! Each object becomes the file at its URL path under the folder, holding
//! its exact size of [`crate::content`]'s deterministic body. A path that
//! ends in `/` becomes that folder's `index.html`, which is what nginx's and
//! Apache's default `index` serve for it. Percent-escapes are decoded and
//! repeated slashes merged, as nginx (`merge_slashes on`) and Apache do
//! before they map a URL onto a file.
//!
//! Every file's modification time is [`crate::origin::LAST_MODIFIED`]: a
//! web server sends it as `Last-Modified`, and from it a node's cache takes
//! its heuristic freshness (RFC 9111 section 4.2.2), so a plain static
//! server needs no `expires` line for the cluster to cache its files.
//!
//! What no file tree can hold is refused by name: a query string (files
//! have none), a `.` or `..` segment (it would leave or alias the folder),
//! and two objects whose paths map to the same file or where one needs a
//! file and the other a folder. With `skip`, such objects are left out and
//! each is listed in [`Written::skipped`], never dropped silently; the
//! clients' requests for them then get the web server's 404.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use dl7_traces::{Catalog, Object};

use crate::content::Pattern;

/// The file a web server serves for a URL ending in `/` (its `index`).
pub const INDEX_FILE: &str = "index.html";
/// Bytes written per call: one buffer, whatever the object's size.
const CHUNK: usize = 64 * 1024;

/// Why an object could not become a file.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// The URL path cannot name a file under the folder.
    #[error("object {path:?}: {why}")]
    Path {
        /// The object's URL path.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two objects map onto the same file, or one onto a folder of the other.
    #[error("objects {first:?} and {second:?} need the same name {file:?} (as a file and as a file or folder)")]
    Clash {
        /// The object written first.
        first: String,
        /// The object that clashed with it.
        second: String,
        /// The name both need.
        file: PathBuf,
    },
    /// Writing failed.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file or folder being written.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// What [`materialize`] wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// Files written, one per object.
    pub files: u64,
    /// Their bytes in total.
    pub bytes: u64,
    /// The objects left out (with `skip`), each with why.
    pub skipped: Vec<MaterializeError>,
}

/// The file, relative to the folder, that a web server maps `url_path` to.
pub fn file_for(url_path: &str) -> Result<PathBuf, MaterializeError> {
    let bad = |why| MaterializeError::Path { path: url_path.to_string(), why };
    if url_path.contains('?') {
        return Err(bad("a query string has no file (import the log without --keep-query)"));
    }
    let rest = url_path.strip_prefix('/').ok_or_else(|| bad("does not start with /"))?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| bad("its percent-escapes are not UTF-8"))?;
    let mut file = PathBuf::new();
    let segments: Vec<&str> = decoded.split('/').collect();
    let last = segments.len() - 1;
    for (i, s) in segments.iter().enumerate() {
        match *s {
            "" if i == last => file.push(INDEX_FILE),
            "" => {} // merged, as `merge_slashes` does
            "." | ".." => return Err(bad("has a . or .. segment")),
            s if s.contains('\0') || s.contains('\\') => return Err(bad("has a NUL or backslash")),
            s => file.push(s),
        }
    }
    Ok(file)
}

/// Writes every object of `catalog` as a file under `dir` (created if
/// missing), calling `progress` after each object with the count so far.
/// An object no file can hold stops it before anything is written, or with
/// `skip` is left out and listed. Existing files of the same names are
/// replaced; nothing else is touched.
pub fn materialize(
    catalog: &Catalog,
    dir: &Path,
    skip: bool,
    mut progress: impl FnMut(u64),
) -> Result<Written, MaterializeError> {
    let mut written = Written::default();
    let files = plan(catalog, skip.then_some(&mut written.skipped))?;
    let io = |file: &Path| {
        let file = file.to_path_buf();
        move |source| MaterializeError::Io { file, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let modified = crate::origin::last_modified();
    let mut buf = vec![0u8; CHUNK];
    for (done, (object, rel)) in catalog.objects.iter().zip(files).enumerate() {
        progress(done as u64);
        let Some(rel) = rel else { continue };
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_object(object, &path, &mut buf, modified).map_err(io(&path))?;
        written.files += 1;
        written.bytes += object.size;
    }
    progress(catalog.len() as u64);
    Ok(written)
}

/// Every object's file (`None`: left out, its error pushed to `skipped`),
/// checked for clashes before anything is written.
fn plan(
    catalog: &Catalog,
    mut skipped: Option<&mut Vec<MaterializeError>>,
) -> Result<Vec<Option<PathBuf>>, MaterializeError> {
    let mut refuse = |e: MaterializeError| match skipped.as_deref_mut() {
        Some(list) => {
            list.push(e);
            Ok(None)
        }
        None => Err(e),
    };
    let mut files = Vec::with_capacity(catalog.len());
    // Each name is a file (an object's) or a folder (on some object's way).
    let mut owner: HashMap<PathBuf, (usize, bool)> = HashMap::new();
    for (i, o) in catalog.objects.iter().enumerate() {
        let f = match file_for(&o.path) {
            Ok(f) => f,
            Err(e) => {
                files.push(refuse(e)?);
                continue;
            }
        };
        let clash = |j: usize, file: &Path| MaterializeError::Clash {
            first: catalog.objects[j].path.clone(),
            second: o.path.clone(),
            file: file.to_path_buf(),
        };
        let folders: Vec<&Path> = f.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()).collect();
        let taken = std::iter::once((f.as_path(), true)).chain(folders.iter().map(|&a| (a, false))).find_map(
            |(name, is_file)| match owner.get(name) {
                Some(&(j, other_is_file)) if is_file || other_is_file => Some(clash(j, name)),
                _ => None,
            },
        );
        if let Some(e) = taken {
            files.push(refuse(e)?);
            continue;
        }
        for folder in folders {
            owner.entry(folder.to_path_buf()).or_insert((i, false));
        }
        owner.insert(f.clone(), (i, true));
        files.push(Some(f));
    }
    Ok(files)
}

fn write_object(object: &Object, path: &Path, buf: &mut [u8], modified: SystemTime) -> io::Result<()> {
    let pattern = Pattern::of(object);
    let mut file = File::create(path)?;
    // Whole buffers straight to the file: a BufWriter would only copy them again.
    let mut offset = 0u64;
    while offset < object.size {
        let n = (object.size - offset).min(buf.len() as u64) as usize;
        pattern.fill(offset, &mut buf[..n]);
        file.write_all(&buf[..n])?;
        offset += n as u64;
    }
    file.set_modified(modified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dl7_traces::{ContentType, ObjectId};

    fn object(id: u32, path: &str, size: u64) -> Object {
        Object { id: ObjectId(id), path: path.into(), size, content_type: ContentType::Gif, weight: 1.0 }
    }

    #[test]
    fn url_paths_map_to_the_files_a_web_server_serves() {
        assert_eq!(file_for("/a/b.gif").unwrap(), Path::new("a/b.gif"));
        assert_eq!(file_for("/").unwrap(), Path::new("index.html"));
        assert_eq!(file_for("/docs/").unwrap(), Path::new("docs/index.html"));
        assert_eq!(file_for("/a%20b.html").unwrap(), Path::new("a b.html"));
        assert_eq!(file_for("//favicon.ico").unwrap(), Path::new("favicon.ico"), "slashes merged");
        for bad in ["/a?x=1", "/../etc/passwd", "/a/./b", "relative", "/%2e%2e/x", "/a%00"] {
            assert!(file_for(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_file_and_a_folder_of_the_same_name_are_refused_before_anything_is_written() {
        let dir = std::env::temp_dir().join(format!("dl7-materialize-clash-{}", std::process::id()));
        let catalog = Catalog { objects: vec![object(0, "/a", 3), object(1, "/a/b", 3)] };
        let e = materialize(&catalog, &dir, false, |_| {}).unwrap_err();
        assert!(matches!(e, MaterializeError::Clash { .. }), "{e}");
        assert!(!dir.exists(), "nothing written");
        let twice = Catalog { objects: vec![object(0, "/x/", 3), object(1, "/x/index.html", 3)] };
        assert!(matches!(materialize(&twice, &dir, false, |_| {}), Err(MaterializeError::Clash { .. })));
        let folder_first = Catalog { objects: vec![object(0, "/a/b", 3), object(1, "/a", 3)] };
        assert!(matches!(materialize(&folder_first, &dir, false, |_| {}), Err(MaterializeError::Clash { .. })));
        assert!(!dir.exists(), "nothing written");
    }

    #[test]
    fn with_skip_what_no_file_holds_is_left_out_and_listed() {
        let dir = std::env::temp_dir().join(format!("dl7-materialize-skip-{}", std::process::id()));
        let objects = vec![object(0, "/a", 3), object(1, "/a/b", 3), object(2, "/q?x=1", 3), object(3, "/c", 4)];
        let w = materialize(&Catalog { objects }, &dir, true, |_| {}).unwrap();
        assert_eq!((w.files, w.bytes, w.skipped.len()), (2, 7, 2));
        assert!(w.skipped[0].to_string().contains("\"/a/b\""), "{}", w.skipped[0]);
        assert!(dir.join("a").is_file() && dir.join("c").is_file());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_file_holds_the_objects_exact_body_and_the_fixed_date() {
        let dir = std::env::temp_dir().join(format!("dl7-materialize-{}", std::process::id()));
        let objects = vec![object(7, "/img/7.gif", 200_000), object(8, "/", 0), object(9, "/img/9.gif", 1)];
        let catalog = Catalog { objects };
        let mut seen = 0;
        let w = materialize(&catalog, &dir, false, |n| seen = n).unwrap();
        assert_eq!((w.files, w.bytes, seen, w.skipped.len()), (3, 200_001, 3, 0));
        for o in &catalog.objects {
            let got = fs::read(dir.join(file_for(&o.path).unwrap())).unwrap();
            let mut want = vec![0; o.size as usize];
            Pattern::of(o).fill(0, &mut want);
            assert_eq!(got, want, "{}", o.path);
        }
        let mtime = fs::metadata(dir.join("img/7.gif")).unwrap().modified().unwrap();
        assert_eq!(mtime, crate::origin::last_modified());
        fs::remove_dir_all(&dir).unwrap();
    }
}
