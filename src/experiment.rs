//! Experiment files: a TOML description of a sweep, read strictly and turned
//! into runnable runs (one [`CellSpec`] per cell and seed).
//!
//! Two stages, as ripgrep does with its flags: [`Plan::parse`] reads the text
//! into raw structs (`deny_unknown_fields`) and validates every value without
//! touching the disk, keeping each value's position; [`Plan::load`] then reads
//! the workloads and the hardware profile the plan names. Every error is one
//! line naming the file, the line and column, the key and what was expected.
//!
//! This module does not run anything and does not know how results are
//! written; the sweep runner (`cli::sweep`) does that.
//!
//! ```toml
//! name = "paper"              # output directory reports/<name>/
//! seed = 2008                 # experiment seed; every run derives its own
//! seeds = 3                   # runs per cell (default 1)
//! hardware = "kwon2008"       # built-in profile, or a path relative to this file
//!
//! [sweep]
//! servers = [1, 2, 4, 8, 16]
//! policies = ["rr", "md5", "mod_ch"]
//! archs = ["conventional", "distributed"]
//! workloads = ["surge100", "my/workload.toml"]   # built-in names or paths
//!
//! [policy.mod_ch]             # optional parameters of one listed policy
//! vnodes = 100
//!
//! [clients]                   # optional; default closed loop, 63 per server
//! mode = "closed"             # closed | onoff (per_server) or poisson (rate)
//! per_server = 63
//!
//! [run]
//! warmup_s = 5.0              # simulated seconds excluded from measurement
//! measure_s = 20.0
//! shared_state = false        # one cluster-wide policy instance
//! cache_bytes_per_server = 64000000   # optional override of the profile
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dl7_core::{Membership, PolicyKind, PolicySpec};
use dl7_sim::{Arch, CellSpec, ClientMode, Hardware};
use dl7_traces::Catalog;
use serde::Deserialize;
use toml::Spanned;

/// Largest cluster an experiment may ask for; far beyond the paper's 16, small
/// enough that a typo (`servers = [160000]`) is caught before it runs.
const MAX_SERVERS: u32 = 1024;
/// Default WebStone connections per cache server, as in the paper.
const DEFAULT_PER_SERVER: u32 = 63;

/// A bad experiment file: one line with file, position, key and expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentError(pub String);

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExperimentError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: Spanned<String>,
    seed: u64,
    seeds: Option<Spanned<u32>>,
    hardware: Spanned<String>,
    sweep: RawSweep,
    #[serde(default)]
    policy: BTreeMap<String, Spanned<toml::Table>>,
    clients: Option<RawClients>,
    run: RawRun,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    servers: Spanned<Vec<Spanned<u32>>>,
    policies: Spanned<Vec<Spanned<String>>>,
    archs: Spanned<Vec<Spanned<String>>>,
    workloads: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClients {
    mode: Spanned<String>,
    per_server: Option<Spanned<u32>>,
    rate: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    warmup_s: Spanned<f64>,
    measure_s: Spanned<f64>,
    #[serde(default)]
    shared_state: bool,
    cache_bytes_per_server: Option<Spanned<u64>>,
}

/// Where a workload comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadSource {
    /// A workload shipped with dl7 (`surge100`, `unc2001`, ...).
    Builtin(String),
    /// A workload file, already resolved against the experiment's directory.
    File(PathBuf),
}

/// Where the hardware profile comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum HardwareSource {
    /// A profile shipped with dl7 (`kwon2008`).
    Builtin(String),
    /// A profile file, already resolved against the experiment's directory.
    File(PathBuf),
}

/// One point of the sweep: everything but the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Index into [`Plan::workloads`].
    pub workload: usize,
    pub arch: Arch,
    pub policy: PolicySpec,
    pub servers: u32,
}

/// A validated experiment, before its workloads and hardware are read.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file it came from, as given (used in messages).
    pub origin: String,
    pub name: String,
    pub seed: u64,
    pub seeds: u32,
    pub hardware: HardwareSource,
    /// Workload names (as they appear in results) and where to read them.
    pub workloads: Vec<(String, WorkloadSource)>,
    /// Cells in output order: workload, arch, policy, servers (each in file order).
    pub cells: Vec<Cell>,
    pub clients: ClientMode,
    pub warmup_s: f64,
    pub measure_s: f64,
    pub shared_state: bool,
    pub cache_bytes_per_server: Option<u64>,
    /// Positions of values that can only be checked on load, for messages.
    text: String,
    hardware_span: Range<usize>,
    workload_spans: Vec<Range<usize>>,
}

/// A plan with its workloads and hardware read: ready to run.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub plan: Plan,
    pub hardware: Arc<Hardware>,
    /// Catalogs in the order of [`Plan::workloads`].
    pub catalogs: Vec<Arc<Catalog>>,
}

impl Plan {
    /// Reads and validates an experiment file (no other file is read).
    pub fn from_file(path: &Path) -> Result<Plan, ExperimentError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ExperimentError(format!("{origin}: cannot read experiment file: {e}")))?;
        let base = path.parent().unwrap_or(Path::new(""));
        Plan::parse(&text, &origin, base)
    }

    /// Parses and validates experiment text; `origin` names it in errors and
    /// relative paths in it are resolved against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Plan, ExperimentError> {
        let src = Source { text, origin };
        let raw: RawExperiment = toml::from_str(text).map_err(|e| src.serde_error(&e))?;

        let name = raw.name.get_ref().trim().to_string();
        let name_ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !name_ok {
            return Err(src.at(
                raw.name.span(),
                "name",
                format!(
                    "expected a directory-safe name (letters, digits, '-', '_', '.'), found {:?}",
                    raw.name.get_ref()
                ),
            ));
        }

        let seeds = match &raw.seeds {
            None => 1,
            Some(s) if *s.get_ref() >= 1 => *s.get_ref(),
            Some(s) => return Err(src.at(s.span(), "seeds", "expected a number of runs per cell >= 1, found 0")),
        };

        let hardware = resolve_source(raw.hardware.get_ref(), base_dir, HardwareSource::File, HardwareSource::Builtin);
        if raw.hardware.get_ref().trim().is_empty() {
            return Err(src.at(raw.hardware.span(), "hardware", "expected a built-in profile name or a file path"));
        }

        let servers = nonempty(&src, &raw.sweep.servers, "sweep.servers", "server counts")?;
        let mut server_counts = Vec::new();
        for s in servers {
            let n = *s.get_ref();
            if n == 0 || n > MAX_SERVERS {
                return Err(src.at(
                    s.span(),
                    "sweep.servers",
                    format!("expected a server count in 1..={MAX_SERVERS}, found {n}"),
                ));
            }
            if server_counts.contains(&n) {
                return Err(src.at(s.span(), "sweep.servers", format!("server count {n} is listed twice")));
            }
            server_counts.push(n);
        }

        let mut archs = Vec::new();
        for a in nonempty(&src, &raw.sweep.archs, "sweep.archs", "architectures")? {
            let arch = Arch::from_name(a.get_ref()).ok_or_else(|| {
                src.at(
                    a.span(),
                    "sweep.archs",
                    format!("expected one of conventional, distributed, found {:?}", a.get_ref()),
                )
            })?;
            if archs.contains(&arch) {
                return Err(src.at(a.span(), "sweep.archs", format!("{:?} is listed twice", a.get_ref())));
            }
            archs.push(arch);
        }

        let mut policies: Vec<PolicySpec> = Vec::new();
        for p in nonempty(&src, &raw.sweep.policies, "sweep.policies", "policy names")? {
            let kind = PolicyKind::from_name(p.get_ref()).map_err(|_| {
                src.at(
                    p.span(),
                    "sweep.policies",
                    format!("unknown policy {:?}, expected one of {}", p.get_ref(), PolicyKind::valid_names()),
                )
            })?;
            if policies.iter().any(|q| q.kind == kind) {
                return Err(src.at(p.span(), "sweep.policies", format!("{:?} is listed twice", p.get_ref())));
            }
            policies.push(PolicySpec::new(kind));
        }
        for (pname, table) in &raw.policy {
            let key = format!("policy.{pname}");
            let Some(spec) = policies.iter_mut().find(|s| s.kind.name() == pname) else {
                return Err(src.at(
                    table.span(),
                    &key,
                    format!("parameters for {pname:?}, which is not in sweep.policies"),
                ));
            };
            for (k, v) in table.get_ref() {
                let value = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(src.at(
                            table.span(),
                            &format!("{key}.{k}"),
                            format!("expected a string, number or boolean, found {}", other.type_str()),
                        ))
                    }
                };
                spec.params.insert(k.clone(), value);
            }
        }
        // Build every policy once for every cluster size so that a bad
        // parameter (or a policy this build lacks) is reported here, against
        // the file, rather than by a worker in the middle of a sweep.
        for spec in &policies {
            for &n in &server_counts {
                let members = Membership::numbered(n as usize)
                    .map_err(|e| ExperimentError(format!("{origin}: cannot form a {n}-server membership: {e}")))?;
                if let Err(e) = spec.build(&members) {
                    let key = if spec.params.is_empty() {
                        "sweep.policies".to_string()
                    } else {
                        format!("policy.{}", spec.kind)
                    };
                    let span = raw
                        .policy
                        .get(spec.kind.name())
                        .map(|t| t.span())
                        .or_else(|| {
                            raw.sweep
                                .policies
                                .get_ref()
                                .iter()
                                .find(|p| p.get_ref() == spec.kind.name())
                                .map(|p| p.span())
                        })
                        .unwrap_or(0..0);
                    return Err(src.at(span, &key, format!("policy {} with {n} servers: {e}", spec.kind)));
                }
            }
        }

        let mut workloads: Vec<(String, WorkloadSource)> = Vec::new();
        let mut workload_spans = Vec::new();
        for w in nonempty(&src, &raw.sweep.workloads, "sweep.workloads", "workload names or paths")? {
            let given = w.get_ref().trim();
            if given.is_empty() {
                return Err(src.at(w.span(), "sweep.workloads", "expected a workload name or path, found \"\""));
            }
            let source = if dl7_traces::workload::BUILTIN.contains(&given) {
                WorkloadSource::Builtin(given.to_string())
            } else {
                resolve_source(given, base_dir, WorkloadSource::File, WorkloadSource::Builtin)
            };
            let label = match &source {
                WorkloadSource::Builtin(n) => n.clone(),
                WorkloadSource::File(p) => p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            if workloads.iter().any(|(l, _)| *l == label) {
                return Err(src.at(w.span(), "sweep.workloads", format!("workload {label:?} is listed twice")));
            }
            workloads.push((label, source));
            workload_spans.push(w.span());
        }

        let clients = match &raw.clients {
            None => ClientMode::Closed { per_server: DEFAULT_PER_SERVER },
            Some(c) => parse_clients(&src, c)?,
        };

        let warmup_s = *raw.run.warmup_s.get_ref();
        if !(warmup_s.is_finite() && warmup_s >= 0.0) {
            return Err(src.at(
                raw.run.warmup_s.span(),
                "run.warmup_s",
                format!("expected simulated seconds >= 0, found {warmup_s}"),
            ));
        }
        let measure_s = *raw.run.measure_s.get_ref();
        if !(measure_s.is_finite() && measure_s > 0.0) {
            return Err(src.at(
                raw.run.measure_s.span(),
                "run.measure_s",
                format!("expected simulated seconds > 0, found {measure_s}"),
            ));
        }
        let cache_bytes_per_server = match &raw.run.cache_bytes_per_server {
            Some(c) if *c.get_ref() == 0 => {
                return Err(src.at(c.span(), "run.cache_bytes_per_server", "expected a capacity in bytes > 0, found 0"))
            }
            other => other.as_ref().map(|c| *c.get_ref()),
        };

        let mut cells = Vec::new();
        for w in 0..workloads.len() {
            for &arch in &archs {
                for policy in &policies {
                    for &servers in &server_counts {
                        cells.push(Cell { workload: w, arch, policy: policy.clone(), servers });
                    }
                }
            }
        }

        Ok(Plan {
            origin: origin.to_string(),
            name,
            seed: raw.seed,
            seeds,
            hardware,
            workloads,
            cells,
            clients,
            warmup_s,
            measure_s,
            shared_state: raw.run.shared_state,
            cache_bytes_per_server,
            text: text.to_string(),
            hardware_span: raw.hardware.span(),
            workload_spans,
        })
    }

    /// Number of runs: cells times seeds.
    pub fn run_count(&self) -> usize {
        self.cells.len() * self.seeds as usize
    }

    /// Reads the hardware profile and the workloads the plan names.
    pub fn load(self) -> Result<Experiment, ExperimentError> {
        let src = Source { text: &self.text, origin: &self.origin };
        let mut catalogs = Vec::new();
        for ((_, source), span) in self.workloads.iter().zip(&self.workload_spans) {
            let catalog = load_workload(source).map_err(|e| src.at(span.clone(), "sweep.workloads", e))?;
            catalogs.push(Arc::new(catalog));
        }
        let hardware = load_hardware(&self.hardware).map_err(|e| src.at(self.hardware_span.clone(), "hardware", e))?;
        Ok(Experiment { plan: self, hardware: Arc::new(hardware), catalogs })
    }
}

impl Experiment {
    /// Every run in output order (cell order, then seed index), each with its
    /// derived seed.
    pub fn runs(&self) -> Vec<CellSpec> {
        let plan = &self.plan;
        let mut runs = Vec::with_capacity(plan.run_count());
        for cell in &plan.cells {
            let workload = &plan.workloads[cell.workload].0;
            let key = cell_key(workload, cell.arch, &cell.policy, cell.servers);
            for index in 0..plan.seeds {
                runs.push(CellSpec {
                    workload: workload.clone(),
                    catalog: self.catalogs[cell.workload].clone(),
                    arch: cell.arch,
                    policy: cell.policy.clone(),
                    servers: cell.servers,
                    shared_state: plan.shared_state,
                    clients: plan.clients,
                    warmup_s: plan.warmup_s,
                    measure_s: plan.measure_s,
                    seed: derive_seed(plan.seed, &key, index),
                    cache_bytes_per_server: plan.cache_bytes_per_server,
                    requests: None,
                });
            }
        }
        runs
    }
}

/// The identity of a cell as a stable string: what the per-run seed hashes.
pub fn cell_key(workload: &str, arch: Arch, policy: &PolicySpec, servers: u32) -> String {
    let mut key = format!("{workload}/{}/{}", arch.name(), policy.kind.name());
    // Params iterate in key order (a BTreeMap), so the string is canonical.
    for (k, v) in policy.params.iter() {
        key.push_str(&format!(",{k}={v}"));
    }
    key.push_str(&format!("/{servers}"));
    key
}

/// The seed of run `index` of a cell: FNV-1a of the cell key mixed with the
/// experiment seed and the index through splitmix64. A fixed function, never
/// std's randomised hasher, so seeds (and so results) are the same on every
/// machine and every release; changing it changes every published number.
pub fn derive_seed(experiment_seed: u64, cell_key: &str, index: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cell_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(splitmix64(experiment_seed ^ h).wrapping_add(u64::from(index)))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A name without a path separator or `.toml` is a built-in (an unknown one is
/// reported on load); anything else is a file relative to the experiment
/// file's directory.
fn resolve_source<T>(given: &str, base_dir: &Path, file: impl Fn(PathBuf) -> T, builtin: impl Fn(String) -> T) -> T {
    let given = given.trim();
    if given.contains('/') || given.contains('\\') || given.ends_with(".toml") {
        let p = Path::new(given);
        file(if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) })
    } else {
        builtin(given.to_string())
    }
}

fn parse_clients(src: &Source, c: &RawClients) -> Result<ClientMode, ExperimentError> {
    let per_server = |default: u32| -> Result<u32, ExperimentError> {
        match &c.per_server {
            None => Ok(default),
            Some(p) if *p.get_ref() >= 1 => Ok(*p.get_ref()),
            Some(p) => Err(src.at(p.span(), "clients.per_server", "expected connections per server >= 1, found 0")),
        }
    };
    match c.mode.get_ref().as_str() {
        "closed" | "onoff" => {
            if let Some(r) = &c.rate {
                return Err(src.at(
                    r.span(),
                    "clients.rate",
                    format!("a rate is only read in mode \"poisson\", not {:?}", c.mode.get_ref()),
                ));
            }
            let n = per_server(DEFAULT_PER_SERVER)?;
            Ok(if c.mode.get_ref() == "closed" {
                ClientMode::Closed { per_server: n }
            } else {
                ClientMode::OnOff { per_server: n }
            })
        }
        "poisson" => {
            if let Some(p) = &c.per_server {
                return Err(src.at(
                    p.span(),
                    "clients.per_server",
                    "per_server is not read in mode \"poisson\" (use rate)",
                ));
            }
            let Some(rate) = &c.rate else {
                return Err(src.at(
                    c.mode.span(),
                    "clients.rate",
                    "mode \"poisson\" needs rate = <requests per second>",
                ));
            };
            let r = *rate.get_ref();
            if !(r.is_finite() && r > 0.0) {
                return Err(src.at(
                    rate.span(),
                    "clients.rate",
                    format!("expected requests per second > 0, found {r}"),
                ));
            }
            Ok(ClientMode::Poisson { rate: r })
        }
        other => Err(src.at(
            c.mode.span(),
            "clients.mode",
            format!("expected one of closed, onoff, poisson, found {other:?}"),
        )),
    }
}

fn nonempty<'a, T>(
    src: &Source,
    list: &'a Spanned<Vec<Spanned<T>>>,
    key: &str,
    what: &str,
) -> Result<&'a [Spanned<T>], ExperimentError> {
    if list.get_ref().is_empty() {
        return Err(src.at(list.span(), key, format!("expected a non-empty list of {what}, found []")));
    }
    Ok(list.get_ref())
}

/// Reads a workload by name or path. The one place that knows the traces
/// crate's loading API.
fn load_workload(source: &WorkloadSource) -> Result<Catalog, String> {
    match source {
        WorkloadSource::Builtin(name) => dl7_traces::workload::builtin(name).map_err(|e| e.to_string()),
        WorkloadSource::File(path) => dl7_traces::workload::load(path).map_err(|e| e.to_string()),
    }
}

/// Reads the hardware profile by name or path.
fn load_hardware(source: &HardwareSource) -> Result<Hardware, String> {
    match source {
        HardwareSource::Builtin(name) if name == "kwon2008" => Ok(Hardware::kwon2008()),
        HardwareSource::Builtin(name) => Err(format!(
            "unknown built-in hardware profile {name:?}, expected \"kwon2008\" or a path to a profile file"
        )),
        HardwareSource::File(path) => {
            let origin = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read hardware profile {origin}: {e}"))?;
            Hardware::from_toml_str(&text, &origin).map_err(|e| e.to_string())
        }
    }
}

/// The experiment text and its name, to turn byte spans into `file:line:col`.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    /// An error at `span` about `key`.
    fn at(&self, span: Range<usize>, key: &str, what: impl fmt::Display) -> ExperimentError {
        let (line, col) = line_col(self.text, span.start);
        ExperimentError(format!("{}:{line}:{col}: `{key}`: {what}", self.origin))
    }

    /// A syntax or type error from the TOML reader, in the same one-line form;
    /// the key is recovered from the text around the error's position.
    fn serde_error(&self, e: &toml::de::Error) -> ExperimentError {
        let message = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let (line, col) = line_col(self.text, span.start);
                match key_at(self.text, span.start) {
                    Some(key) => ExperimentError(format!("{}:{line}:{col}: `{key}`: {message}", self.origin)),
                    None => ExperimentError(format!("{}:{line}:{col}: {message}", self.origin)),
                }
            }
            None => ExperimentError(format!("{}: {message}", self.origin)),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..at].chars().count() + 1)
}

/// The dotted key whose assignment contains byte offset `at`: the nearest
/// `key = ...` line at or above it, prefixed by the table header above that.
/// Best effort; a header line itself yields the table name.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let mut key: Option<String> = None;
    let mut table: Option<String> = None;
    let mut lines: Vec<&str> = text[..line_start].lines().collect();
    let current_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
    lines.push(&text[line_start..current_end]);
    for line in lines.iter().rev() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_string();
            table = Some(name);
            break;
        }
        if key.is_none() {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim();
                let is_key = !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\''));
                if is_key {
                    key = Some(k.trim_matches(['"', '\'']).to_string());
                }
            }
        }
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
seed = 7
seeds = 2
hardware = "kwon2008"

[sweep]
servers = [1, 4]
policies = ["rr", "md5"]
archs = ["conventional", "distributed"]
workloads = ["surge100"]

[run]
warmup_s = 1.0
measure_s = 2.0
"#;

    fn parse(text: &str) -> Result<Plan, ExperimentError> {
        Plan::parse(text, "exp.toml", Path::new("experiments"))
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("should be rejected").0
    }

    #[test]
    fn good_file_gives_cells_in_order() {
        let plan = parse(GOOD).unwrap();
        assert_eq!(plan.cells.len(), 8);
        assert_eq!(plan.run_count(), 16);
        let c = &plan.cells[1];
        assert_eq!((c.arch, c.policy.kind, c.servers), (Arch::Conventional, PolicyKind::Rr, 4));
        let c = &plan.cells[2];
        assert_eq!((c.arch, c.policy.kind, c.servers), (Arch::Conventional, PolicyKind::Md5, 1));
        assert_eq!(plan.clients, ClientMode::Closed { per_server: 63 });
        assert_eq!(plan.hardware, HardwareSource::Builtin("kwon2008".into()));
        assert_eq!(plan.workloads[0], ("surge100".into(), WorkloadSource::Builtin("surge100".into())));
    }

    #[test]
    fn shipped_experiments_are_valid() {
        let paper =
            Plan::parse(include_str!("../experiments/paper.toml"), "paper.toml", Path::new("experiments")).unwrap();
        assert_eq!((paper.cells.len(), paper.seeds), (5 * 6 * 2 * 3, 3));
        assert!(paper.warmup_s > 0.0, "warm-up is excluded from the measurement");
        assert_eq!(paper.clients, ClientMode::Closed { per_server: 63 });
        let quick =
            Plan::parse(include_str!("../experiments/quick.toml"), "quick.toml", Path::new("experiments")).unwrap();
        assert_eq!(quick.run_count(), 8);
        assert!(quick.load().is_ok(), "quick.toml names only built-in workloads and hardware");
    }

    #[test]
    fn paths_resolve_against_the_experiment_directory() {
        let text = GOOD.replace("\"surge100\"", "\"w/mine.toml\"").replace("\"kwon2008\"", "\"hw.toml\"");
        let plan = parse(&text).unwrap();
        assert_eq!(plan.hardware, HardwareSource::File(Path::new("experiments").join("hw.toml")));
        assert_eq!(plan.workloads[0].0, "mine");
        assert_eq!(plan.workloads[0].1, WorkloadSource::File(Path::new("experiments").join("w/mine.toml")));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err(&GOOD.replace("servers = [1, 4]", "servers = [1, 4]\nserverz = [2]"));
        assert!(e.starts_with("exp.toml:9:"), "{e}");
        assert!(e.contains("serverz"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err(&GOOD.replace("measure_s = 2.0", "measure_s = \"long\""));
        assert!(e.starts_with("exp.toml:15:13:"), "{e}");
        assert!(e.contains("`run.measure_s`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn unknown_policy_lists_valid_ones() {
        let e = err(&GOOD.replace("\"md5\"]", "\"md6\"]"));
        assert!(e.contains("exp.toml:9:") && e.contains("`sweep.policies`") && e.contains("md6"), "{e}");
        assert!(e.contains("mod_ch"), "{e}");
    }

    #[test]
    fn empty_lists_and_bad_values_are_rejected() {
        assert!(err(&GOOD.replace("[1, 4]", "[]")).contains("`sweep.servers`: expected a non-empty list"));
        assert!(err(&GOOD.replace("[1, 4]", "[0]")).contains("`sweep.servers`"));
        assert!(err(&GOOD.replace("[1, 4]", "[4, 4]")).contains("listed twice"));
        assert!(err(&GOOD.replace("\"distributed\"]", "\"dist\"]")).contains("`sweep.archs`"));
        assert!(err(&GOOD.replace("seeds = 2", "seeds = 0")).contains("`seeds`"));
        assert!(err(&GOOD.replace("warmup_s = 1.0", "warmup_s = -1.0")).contains("`run.warmup_s`"));
        assert!(err(&GOOD.replace("name = \"t\"", "name = \"../x\"")).contains("`name`"));
        assert!(err(&GOOD.replace("\n[run]", "\n[clients]\nmode = \"poisson\"\n[run]")).contains("`clients.rate`"));
        assert!(err(&GOOD.replace("\n[run]", "\n[clients]\nmode = \"open\"\n[run]")).contains("`clients.mode`"));
    }

    #[test]
    fn policy_parameters_must_belong_to_a_listed_policy_and_be_known() {
        let e = err(&GOOD.replace("\n[run]", "\n[policy.carp]\nx = 1\n[run]"));
        assert!(e.contains("`policy.carp`") && e.contains("not in sweep.policies"), "{e}");
        let e = err(&GOOD.replace("\n[run]", "\n[policy.md5]\nbogus = 1\n[run]"));
        assert!(e.contains("`policy.md5`") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn missing_table_is_reported() {
        let cut = GOOD.split("[run]").next().unwrap();
        let e = err(cut);
        assert!(e.contains("exp.toml") && e.contains("run"), "{e}");
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        // Pinned: a change to the derivation changes every published number.
        assert_eq!(
            derive_seed(2008, "surge100/conventional/rr/1", 0),
            derive_seed(2008, "surge100/conventional/rr/1", 0)
        );
        let a = derive_seed(2008, "surge100/conventional/rr/1", 0);
        assert_ne!(a, derive_seed(2008, "surge100/conventional/rr/1", 1));
        assert_ne!(a, derive_seed(2008, "surge100/conventional/rr/2", 0));
        assert_ne!(a, derive_seed(2009, "surge100/conventional/rr/1", 0));
        assert_eq!(derive_seed(0, "", 0), splitmix64(splitmix64(0xcbf2_9ce4_8422_2325)));
    }

    #[test]
    fn cell_key_includes_parameters_in_order() {
        let mut spec = PolicySpec::new(PolicyKind::ModCh);
        spec.params.insert("vnodes", "100");
        spec.params.insert("a", "1");
        assert_eq!(cell_key("w", Arch::Distributed, &spec, 8), "w/distributed/mod_ch,a=1,vnodes=100/8");
    }
}
