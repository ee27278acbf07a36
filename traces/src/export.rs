//! Exporters of a [`Trace`] to other simulators' formats: webcachesim text
//! (`time id size` per line) and libCacheSim `oracleGeneral` binary
//! (24-byte little-endian records `{u32 time, u64 obj_id, u32 size, i64
//! next_access_vtime}`). Object ids are catalog indices; times are the
//! trace's times, or the request index when it has none.
//!
//! `next_access_vtime` follows libCacheSim's traceConv: the virtual time of a
//! request is its 1-based position in the trace, and the field holds the
//! virtual time of the next request to the same object, -1 if none.

use std::io::{Read, Write};

use crate::catalog::ObjectId;
use crate::error::TraceError;
use crate::trace::Trace;

/// The format [`export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `time id size` text lines.
    Webcachesim,
    /// libCacheSim's 24-byte binary records.
    OracleGeneral,
}

impl std::str::FromStr for ExportFormat {
    type Err = crate::error::UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "webcachesim" => Ok(ExportFormat::Webcachesim),
            "oracle-general" | "oracleGeneral" => Ok(ExportFormat::OracleGeneral),
            _ => Err(crate::error::UnknownFormat {
                kind: "export",
                name: s.to_string(),
                expected: "webcachesim or oracle-general",
            }),
        }
    }
}

fn time_of(trace: &Trace, i: usize) -> u64 {
    trace.times.get(i).copied().unwrap_or(i as u64)
}

fn check(trace: &Trace) -> Result<(), TraceError> {
    if !trace.times.is_empty() && trace.times.len() != trace.requests.len() {
        return Err(TraceError::Invalid(format!(
            "trace has {} times for {} requests",
            trace.times.len(),
            trace.requests.len()
        )));
    }
    if let Some(id) = trace.requests.iter().find(|id| id.index() >= trace.catalog.len()) {
        return Err(TraceError::Invalid(format!("request to object {} outside the catalog", id.0)));
    }
    Ok(())
}

/// Writes `trace` in `format`.
pub fn export(trace: &Trace, format: ExportFormat, out: &mut (impl Write + ?Sized)) -> Result<(), TraceError> {
    match format {
        ExportFormat::Webcachesim => write_webcachesim(trace, out),
        ExportFormat::OracleGeneral => write_oracle_general(trace, out),
    }
}

fn io(e: std::io::Error) -> TraceError {
    TraceError::io("(output)", e)
}

/// webcachesim: one `time id size` line per request.
pub fn write_webcachesim(trace: &Trace, out: &mut (impl Write + ?Sized)) -> Result<(), TraceError> {
    check(trace)?;
    for (i, id) in trace.requests.iter().enumerate() {
        writeln!(out, "{} {} {}", time_of(trace, i), id.0, trace.catalog.get(*id).size).map_err(io)?;
    }
    Ok(())
}

/// The `next_access_vtime` of every request (1-based vtime of the next
/// request to the same object, -1 if none). Memory: one slot per object.
pub fn next_access_vtimes(requests: &[ObjectId], objects: usize) -> Vec<i64> {
    let mut next_seen = vec![-1i64; objects];
    let mut out = vec![-1i64; requests.len()];
    for (i, id) in requests.iter().enumerate().rev() {
        out[i] = next_seen[id.index()];
        next_seen[id.index()] = i as i64 + 1;
    }
    out
}

/// libCacheSim oracleGeneral: 24-byte little-endian records.
pub fn write_oracle_general(trace: &Trace, out: &mut (impl Write + ?Sized)) -> Result<(), TraceError> {
    check(trace)?;
    let next = next_access_vtimes(&trace.requests, trace.catalog.len());
    for (i, id) in trace.requests.iter().enumerate() {
        let time = u32::try_from(time_of(trace, i)).map_err(|_| {
            TraceError::Invalid(format!("request {i}: time {} does not fit oracleGeneral's u32", time_of(trace, i)))
        })?;
        let object = trace.catalog.get(*id);
        let size = u32::try_from(object.size).map_err(|_| {
            TraceError::Invalid(format!(
                "object {}: size {} does not fit oracleGeneral's u32",
                object.path, object.size
            ))
        })?;
        let mut record = [0u8; 24];
        record[0..4].copy_from_slice(&time.to_le_bytes());
        record[4..12].copy_from_slice(&u64::from(id.0).to_le_bytes());
        record[12..16].copy_from_slice(&size.to_le_bytes());
        record[16..24].copy_from_slice(&next[i].to_le_bytes());
        out.write_all(&record).map_err(io)?;
    }
    Ok(())
}

/// One oracleGeneral record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleRecord {
    /// Request time in seconds.
    pub time: u32,
    /// Object id (our catalog index).
    pub obj_id: u64,
    /// Object size in bytes.
    pub size: u32,
    /// 1-based position of the next request to this object, -1 if none.
    pub next_access_vtime: i64,
}

/// Reads oracleGeneral records (to check an export, or to inspect a libCacheSim trace).
pub fn read_oracle_general(mut input: impl Read, file: &str) -> Result<Vec<OracleRecord>, TraceError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(|e| TraceError::io(file, e))?;
    if bytes.len() % 24 != 0 {
        return Err(TraceError::Binary {
            file: file.to_string(),
            offset: (bytes.len() / 24 * 24) as u64,
            reason: format!("truncated record: {} bytes is not a multiple of 24", bytes.len()),
        });
    }
    Ok(bytes
        .chunks_exact(24)
        .map(|r| OracleRecord {
            time: u32::from_le_bytes(r[0..4].try_into().unwrap_or_default()),
            obj_id: u64::from_le_bytes(r[4..12].try_into().unwrap_or_default()),
            size: u32::from_le_bytes(r[12..16].try_into().unwrap_or_default()),
            next_access_vtime: i64::from_le_bytes(r[16..24].try_into().unwrap_or_default()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_access_is_one_based_and_minus_one_at_the_end() {
        let r: Vec<ObjectId> = [0, 1, 0, 2, 1].iter().map(|&i| ObjectId(i)).collect();
        assert_eq!(next_access_vtimes(&r, 3), vec![3, 5, -1, -1, -1]);
    }
}
