//! The lab description file (`LAB.toml`): read strictly, validated, and
//! resolved into a [`LabConfig`] of plain values. Pure: no commands, no root.
//!
//! ```toml
//! prefix = "dl7"              # names of namespaces, links, bridge, nft table
//! subnet = "198.18.0.0/24"    # within 198.18.0.0/15, at least a /24
//! vip = "198.18.0.250"        # optional; default: subnet base + 250
//!                             # (.1 front, .2 origin, .11.. nodes, .101.. clients,
//!                             #  .254 the root namespace on the bridge)
//! port = 8080                 # the service port on the VIP, the nodes and the origin
//! nodes = 2
//! clients = 1
//!
//! [links]                     # per-role NIC rates; a role left out is unshaped
//! front = "10mbit"
//! node = "10mbit"
//! origin = "10mbit"
//! burst = "32kb"              # tc tbf burst (default 32kb)
//! latency = "100ms"           # tc tbf latency (default 100ms)
//!
//! [deploy]                    # only for `dl7 deploy` (lab PCs)
//! architecture = "distributed"
//! policy = "md5"
//! workload = "surge100"
//!
//! [ssh]                       # only for `engine = "ssh"` (lab PCs over SSH)
//! dl7 = "dl7"                 # the dl7 binary on every host (default: dl7 on PATH)
//! config = "lab_ssh_config"   # optional `ssh -F` file, relative to this file;
//!                             # default: ~/.ssh/config (or the emulated lab's, see `lab up --sshd`)
//!
//! [hosts.n1]                  # optional, per host (fe, origin, n1.., c1..)
//! ssh = "root@10.1.1.11"      # SSH destination; default root@ the host's lab address
//! port = 22                   # optional SSH port
//! identity = "~/.ssh/lab"     # optional identity file
//! dev = "enp3s0"              # the host's lab NIC (default eth0)
//! ```

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

use dl7_core::Arch;

use super::LabError;

/// The benchmarking range every lab address must lie in (RFC 2544, never routed).
pub const BENCH_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Prefix length of [`BENCH_NET`].
pub const BENCH_LEN: u8 = 15;
/// Most nodes a lab may have (keeps names and the address plan simple).
pub const MAX_NODES: u32 = 64;
/// Most client namespaces a lab may have.
pub const MAX_CLIENTS: u32 = 64;
/// Longest prefix: `PREFIX-origin` must fit Linux's 15-character interface names.
pub const MAX_PREFIX_LEN: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    prefix: Option<String>,
    subnet: String,
    vip: Option<String>,
    port: Option<u32>,
    nodes: u32,
    clients: Option<u32>,
    #[serde(default)]
    links: RawLinks,
    #[serde(default)]
    deploy: RawDeploy,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    hosts: std::collections::BTreeMap<String, RawHost>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    dl7: Option<String>,
    config: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    ssh: Option<String>,
    port: Option<u32>,
    identity: Option<String>,
    dev: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinks {
    front: Option<String>,
    node: Option<String>,
    origin: Option<String>,
    client: Option<String>,
    burst: Option<String>,
    latency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    architecture: Option<String>,
    policy: Option<String>,
    workload: Option<String>,
}

/// An IPv4 subnet: base address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address.
    pub base: Ipv4Addr,
    /// Prefix length, 15..=24 for a lab.
    pub len: u8,
}

impl Subnet {
    /// Netmask as a u32.
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }

    /// Whether `addr` lies in this subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.base)
    }

    /// The address `offset` past the base.
    pub fn host(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + offset)
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) | !self.mask())
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.len)
    }
}

/// A link rate in bits per second, as tc understands it (SI units: 1 kbit = 1000 bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

// `is_multiple_of` needs Rust 1.87; the workspace supports 1.80.
#[allow(clippy::manual_is_multiple_of)]
impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bits = self.0;
        for (div, unit) in [(1_000_000_000, "gbit"), (1_000_000, "mbit"), (1_000, "kbit")] {
            if bits % div == 0 {
                return write!(f, "{}{}", bits / div, unit);
            }
        }
        write!(f, "{bits}bit")
    }
}

/// A byte size as tc understands it (binary units: 1 kb = 1024 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

// `is_multiple_of` needs Rust 1.87; the workspace supports 1.80.
#[allow(clippy::manual_is_multiple_of)]
impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0;
        for (div, unit) in [(1 << 20, "mb"), (1 << 10, "kb")] {
            if bytes % div == 0 {
                return write!(f, "{}{}", bytes / div, unit);
            }
        }
        write!(f, "{bytes}b")
    }
}

/// A duration in microseconds, rendered for tc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Micros(pub u64);

// `is_multiple_of` needs Rust 1.87; the workspace supports 1.80.
#[allow(clippy::manual_is_multiple_of)]
impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = self.0;
        if us % 1_000_000 == 0 {
            write!(f, "{}s", us / 1_000_000)
        } else if us % 1_000 == 0 {
            write!(f, "{}ms", us / 1_000)
        } else {
            write!(f, "{us}us")
        }
    }
}

/// Shaping of one role's NIC: a tbf on each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shaping {
    /// Rate per direction.
    pub rate: Rate,
    /// tbf bucket size.
    pub burst: Size,
    /// tbf queue limit expressed as latency.
    pub latency: Micros,
}

/// Settings only `dl7 deploy` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Which architecture the lab PCs run.
    pub architecture: Arch,
    /// Request distribution policy name, passed through to the dl7 services.
    pub policy: String,
    /// Workload name, passed through to the origin and the load generator.
    pub workload: String,
}

/// How the SSH engine reaches one host (`[hosts.SHORT]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostAccess {
    /// SSH destination `[user@]host`; `None`: `root@` the host's lab address.
    pub ssh: Option<String>,
    /// SSH port, when not the destination's default.
    pub port: Option<u16>,
    /// Identity file (`ssh -i`), `~/` expanded by ssh itself.
    pub identity: Option<String>,
    /// The host's lab NIC; `None`: `eth0`.
    pub dev: Option<String>,
}

/// Settings only the SSH engine uses (`[ssh]` and `[hosts.SHORT]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshConfig {
    /// The dl7 binary on every host (`dl7`: the one on PATH).
    pub dl7: String,
    /// An `ssh -F` file, resolved against the lab file's directory.
    pub config: Option<std::path::PathBuf>,
    /// Per short host name.
    pub hosts: std::collections::BTreeMap<String, HostAccess>,
}

/// A validated lab description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Name prefix of every object the lab makes.
    pub prefix: String,
    /// The lab's subnet.
    pub subnet: Subnet,
    /// The virtual IP clients connect to.
    pub vip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// Number of cache nodes.
    pub nodes: u32,
    /// Number of client namespaces.
    pub clients: u32,
    /// Front end NIC shaping (`None` = unshaped).
    pub front: Option<Shaping>,
    /// Node NIC shaping.
    pub node: Option<Shaping>,
    /// Origin NIC shaping.
    pub origin: Option<Shaping>,
    /// Client NIC shaping.
    pub client: Option<Shaping>,
    /// Lab-PC deployment settings.
    pub deploy: DeployConfig,
    /// Lab PCs over SSH.
    pub ssh: SshConfig,
}

/// Address offsets inside the subnet: fixed so that a reader recognises a
/// host by its last octet (front .1, origin .2, node i .10+i, client j .100+j).
pub(crate) const FRONT_OFFSET: u32 = 1;
pub(crate) const ORIGIN_OFFSET: u32 = 2;
pub(crate) const NODE_OFFSET: u32 = 10;
pub(crate) const CLIENT_OFFSET: u32 = 100;
/// The root namespace's own address on the lab bridge: a runner there
/// (`dl7 sweep --engine lab`) reaches every host over the bridge, never a default route.
pub(crate) const ROOT_OFFSET: u32 = 254;
const DEFAULT_VIP_OFFSET: u32 = 250;

impl LabConfig {
    /// Reads and validates a lab file.
    pub fn load(path: &Path) -> Result<LabConfig, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::Io { path: path.into(), source })?;
        let mut lab = LabConfig::parse(&text, &path.display().to_string())?;
        if let Some(config) = &mut lab.ssh.config {
            if config.is_relative() {
                *config = path.parent().unwrap_or(Path::new("")).join(&*config);
            }
        }
        Ok(lab)
    }

    /// Parses and validates lab TOML; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<LabConfig, LabError> {
        let raw: RawLab = toml::from_str(text)
            .map_err(|e| LabError::Toml { file: file.into(), message: one_line(&e.to_string()) })?;
        let bad = |key: &str, message: String| LabError::Config { file: file.into(), key: key.into(), message };

        let prefix = raw.prefix.unwrap_or_else(|| "dl7".into());
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !prefix_ok {
            return Err(bad(
                "prefix",
                format!("{prefix:?}: expected 1 to {MAX_PREFIX_LEN} characters a-z0-9 starting with a letter"),
            ));
        }

        let subnet = parse_subnet(&raw.subnet).map_err(|m| bad("subnet", m.to_string()))?;
        let bench = Subnet { base: BENCH_NET, len: BENCH_LEN };
        if subnet.len < BENCH_LEN || !bench.contains(subnet.base) {
            return Err(bad("subnet", format!("{subnet} is not inside the benchmarking range {bench}")));
        }
        if subnet.len > 24 {
            return Err(bad("subnet", format!("{subnet} is too small: a lab needs at least a /24")));
        }

        if raw.nodes == 0 || raw.nodes > MAX_NODES {
            return Err(bad("nodes", format!("{}: expected 1 to {MAX_NODES}", raw.nodes)));
        }
        let clients = raw.clients.unwrap_or(1);
        if clients == 0 || clients > MAX_CLIENTS {
            return Err(bad("clients", format!("{clients}: expected 1 to {MAX_CLIENTS}")));
        }

        let port = raw.port.unwrap_or(8080);
        if port == 0 || port > 65535 {
            return Err(bad("port", format!("{port}: expected 1 to 65535")));
        }

        let vip = match &raw.vip {
            None => subnet.host(DEFAULT_VIP_OFFSET),
            Some(text) => {
                text.parse::<Ipv4Addr>().map_err(|_| bad("vip", format!("{text:?}: expected an IPv4 address")))?
            }
        };
        if !subnet.contains(vip) || vip == subnet.base || vip == subnet.broadcast() {
            return Err(bad("vip", format!("{vip} is not a host address of the subnet {subnet}")));
        }
        let taken = [FRONT_OFFSET, ORIGIN_OFFSET, ROOT_OFFSET]
            .into_iter()
            .chain((1..=raw.nodes).map(|i| NODE_OFFSET + i))
            .chain((1..=clients).map(|j| CLIENT_OFFSET + j));
        for offset in taken {
            if subnet.host(offset) == vip {
                return Err(bad("vip", format!("{vip} is already the address of a lab host")));
            }
        }

        let burst = match &raw.links.burst {
            None => Size(32 * 1024),
            Some(text) => parse_size(text).map_err(|m| bad("links.burst", m.to_string()))?,
        };
        let latency = match &raw.links.latency {
            None => Micros(100_000),
            Some(text) => parse_duration(text).map_err(|m| bad("links.latency", m.to_string()))?,
        };
        let shaping = |key: &str, value: &Option<String>| -> Result<Option<Shaping>, LabError> {
            match value {
                None => Ok(None),
                Some(text) => {
                    let rate = parse_rate(text).map_err(|m| bad(&format!("links.{key}"), m.to_string()))?;
                    Ok(Some(Shaping { rate, burst, latency }))
                }
            }
        };

        let architecture = match raw.deploy.architecture.as_deref() {
            None => Arch::Distributed,
            Some(name) => Arch::from_name(name).ok_or_else(|| {
                bad("deploy.architecture", format!("{name:?}: expected \"conventional\" or \"distributed\""))
            })?,
        };
        let word = |key: &str, value: Option<String>, default: &str| -> Result<String, LabError> {
            let value = value.unwrap_or_else(|| default.into());
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:=,".contains(c)) {
                return Err(bad(key, format!("{value:?}: expected a name (letters, digits, - _ . : = ,)")));
            }
            Ok(value)
        };

        let ssh = parse_ssh(raw.ssh, raw.hosts, raw.nodes, clients, &bad)?;

        Ok(LabConfig {
            ssh,
            front: shaping("front", &raw.links.front)?,
            node: shaping("node", &raw.links.node)?,
            origin: shaping("origin", &raw.links.origin)?,
            client: shaping("client", &raw.links.client)?,
            prefix,
            subnet,
            vip,
            port: port as u16,
            nodes: raw.nodes,
            clients,
            deploy: DeployConfig {
                architecture,
                policy: word("deploy.policy", raw.deploy.policy, "md5")?,
                workload: word("deploy.workload", raw.deploy.workload, "surge100")?,
            },
        })
    }
}

/// Short names of a lab's hosts, in plan order.
fn host_names(nodes: u32, clients: u32) -> Vec<String> {
    let mut names = vec!["fe".to_string(), "origin".to_string()];
    names.extend((1..=nodes).map(|i| format!("n{i}")));
    names.extend((1..=clients).map(|j| format!("c{j}")));
    names
}

/// A value passed to a remote shell or to ssh: no spaces, quotes or shell
/// metacharacters (so no quoting rule can be got wrong), and no leading `-`
/// (ssh would read it as an option).
fn plain(value: &str, extra: &str) -> bool {
    !value.is_empty()
        && !value.starts_with('-')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/@~+".contains(c) || extra.contains(c))
}

fn parse_ssh(
    raw: RawSsh,
    hosts: std::collections::BTreeMap<String, RawHost>,
    nodes: u32,
    clients: u32,
    bad: &dyn Fn(&str, String) -> LabError,
) -> Result<SshConfig, LabError> {
    let dl7 = raw.dl7.unwrap_or_else(|| "dl7".into());
    if !plain(&dl7, "") {
        return Err(bad("ssh.dl7", format!("{dl7:?}: expected a program name or path (no spaces or quotes)")));
    }
    let names = host_names(nodes, clients);
    let mut access = std::collections::BTreeMap::new();
    for (short, h) in hosts {
        if !names.contains(&short) {
            return Err(bad(
                &format!("hosts.{short}"),
                format!("no such host; the lab's hosts are {}", names.join(", ")),
            ));
        }
        let key = |k: &str| format!("hosts.{short}.{k}");
        if let Some(dest) = &h.ssh {
            if !plain(dest, "") {
                return Err(bad(&key("ssh"), format!("{dest:?}: expected an SSH destination like root@10.1.1.11")));
            }
        }
        let port = match h.port {
            None => None,
            Some(p) if (1..=65535).contains(&p) => Some(p as u16),
            Some(p) => return Err(bad(&key("port"), format!("{p}: expected 1 to 65535"))),
        };
        if let Some(id) = &h.identity {
            if !plain(id, "") {
                return Err(bad(&key("identity"), format!("{id:?}: expected a file path (no spaces or quotes)")));
            }
        }
        if let Some(dev) = &h.dev {
            let ok = dev.len() <= 15 && plain(dev, "") && !dev.contains(['/', ':', '@', '~', '+']);
            if !ok {
                return Err(bad(&key("dev"), format!("{dev:?}: expected a network interface name like enp3s0")));
            }
        }
        access.insert(short, HostAccess { ssh: h.ssh, port, identity: h.identity, dev: h.dev });
    }
    Ok(SshConfig { dl7, config: raw.config.map(std::path::PathBuf::from), hosts: access })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A value of a lab file that does not parse (a subnet, a rate, a size, a
/// duration): the text and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {message}")]
pub struct ValueError {
    /// The text as written.
    pub text: String,
    /// What was expected, or what is wrong.
    pub message: String,
}

impl ValueError {
    fn new(text: &str, message: impl Into<String>) -> ValueError {
        ValueError { text: text.to_string(), message: message.into() }
    }
}

/// Parses `a.b.c.d/len` with the host bits zero.
pub fn parse_subnet(text: &str) -> Result<Subnet, ValueError> {
    let expected = || ValueError::new(text, "expected an IPv4 subnet like 198.18.0.0/24");
    let (addr, len) = text.split_once('/').ok_or_else(expected)?;
    let base: Ipv4Addr = addr.parse().map_err(|_| expected())?;
    let len: u8 = len.parse().map_err(|_| expected())?;
    if len > 32 {
        return Err(expected());
    }
    let subnet = Subnet { base, len };
    if u32::from(base) & !subnet.mask() != 0 {
        return Err(ValueError::new(
            text,
            format!("host bits are set; the network address is {}", Ipv4Addr::from(u32::from(base) & subnet.mask())),
        ));
    }
    Ok(subnet)
}

fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number = text[..digits].parse::<u64>().ok()?;
    Some((number, text[digits..].trim()))
}

/// Parses a tc rate: `10mbit`, `500kbit`, `1gbit`, `64000bit`.
pub fn parse_rate(text: &str) -> Result<Rate, ValueError> {
    let expected = || ValueError::new(text, "expected a rate like 10mbit (units bit, kbit, mbit, gbit)");
    let (number, unit) = split_number(text.trim()).ok_or_else(expected)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        _ => return Err(expected()),
    };
    let bits = number.checked_mul(factor).filter(|&b| (8_000..=100_000_000_000).contains(&b));
    bits.map(Rate).ok_or_else(|| ValueError::new(text, "expected a rate between 8kbit and 100gbit"))
}

/// Parses a tc size: `32kb`, `1mb`, `1500b` (binary units, as tc).
pub fn parse_size(text: &str) -> Result<Size, ValueError> {
    let expected = || ValueError::new(text, "expected a size like 32kb (units b, kb, mb)");
    let (number, unit) = split_number(text.trim()).ok_or_else(expected)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        _ => return Err(expected()),
    };
    let bytes = number.checked_mul(factor).filter(|&b| (1_600..=(64 << 20)).contains(&b));
    bytes.map(Size).ok_or_else(|| ValueError::new(text, "expected a size between 1600b and 64mb (above one MTU)"))
}

/// Parses a tc duration: `100ms`, `1s`, `500us`.
pub fn parse_duration(text: &str) -> Result<Micros, ValueError> {
    let expected = || ValueError::new(text, "expected a duration like 100ms (units us, ms, s)");
    let (number, unit) = split_number(text.trim()).ok_or_else(expected)?;
    let factor = match unit {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        _ => return Err(expected()),
    };
    let us = number.checked_mul(factor).filter(|&u| (1_000..=10_000_000).contains(&u));
    us.map(Micros).ok_or_else(|| ValueError::new(text, "expected a duration between 1ms and 10s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "subnet = \"198.18.0.0/24\"\nnodes = 2\n";

    #[test]
    fn minimal_file_takes_defaults() {
        let lab = LabConfig::parse(MINIMAL, "lab.toml").unwrap();
        assert_eq!(lab.prefix, "dl7");
        assert_eq!(lab.vip, Ipv4Addr::new(198, 18, 0, 250));
        assert_eq!(lab.port, 8080);
        assert_eq!(lab.clients, 1);
        assert_eq!(lab.front, None);
        assert_eq!(lab.deploy.architecture, Arch::Distributed);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = LabConfig::parse("subnet = \"198.18.0.0/24\"\nnodes = 2\nnode = 3\n", "x/lab.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x/lab.toml:"), "{text}");
        assert!(text.contains("unknown field `node`"), "{text}");
        let err = LabConfig::parse(&format!("{MINIMAL}[links]\nfe = \"10mbit\"\n"), "lab.toml").unwrap_err();
        assert!(err.to_string().contains("unknown field `fe`"), "{err}");
    }

    #[test]
    fn subnet_must_be_benchmark_range() {
        let err = LabConfig::parse("subnet = \"10.0.0.0/24\"\nnodes = 1\n", "lab.toml").unwrap_err();
        assert_eq!(err.to_string(), "lab.toml: subnet: 10.0.0.0/24 is not inside the benchmarking range 198.18.0.0/15");
        assert!(LabConfig::parse("subnet = \"198.19.7.0/24\"\nnodes = 1\n", "l").is_ok());
        assert!(LabConfig::parse("subnet = \"198.20.0.0/24\"\nnodes = 1\n", "l").is_err());
        assert!(LabConfig::parse("subnet = \"198.18.0.0/14\"\nnodes = 1\n", "l").is_err());
        assert!(LabConfig::parse("subnet = \"198.18.0.0/25\"\nnodes = 1\n", "l").is_err());
        let err = LabConfig::parse("subnet = \"198.18.0.5/24\"\nnodes = 1\n", "l").unwrap_err();
        assert!(err.to_string().contains("host bits"), "{err}");
    }

    #[test]
    fn vip_must_be_free_host_in_subnet() {
        for vip in [
            "198.18.1.5",
            "198.18.0.0",
            "198.18.0.255",
            "198.18.0.1",
            "198.18.0.12",
            "198.18.0.101",
            "198.18.0.254",
            "x",
        ] {
            let text = format!("{MINIMAL}vip = \"{vip}\"\n");
            let err = LabConfig::parse(&text, "lab.toml").unwrap_err();
            assert!(err.to_string().starts_with("lab.toml: vip:"), "{vip}: {err}");
        }
        assert!(LabConfig::parse(&format!("{MINIMAL}vip = \"198.18.0.13\"\n"), "l").is_ok());
    }

    #[test]
    fn counts_and_port_are_bounded() {
        assert!(LabConfig::parse("subnet = \"198.18.0.0/24\"\nnodes = 0\n", "l").is_err());
        assert!(LabConfig::parse("subnet = \"198.18.0.0/24\"\nnodes = 65\n", "l").is_err());
        assert!(LabConfig::parse(&format!("{MINIMAL}clients = 0\n"), "l").is_err());
        assert!(LabConfig::parse(&format!("{MINIMAL}port = 70000\n"), "l").is_err());
        let err = LabConfig::parse(&format!("{MINIMAL}prefix = \"Dl-7\"\n"), "l").unwrap_err();
        assert!(err.to_string().starts_with("l: prefix:"), "{err}");
        assert!(LabConfig::parse(&format!("{MINIMAL}prefix = \"abcdefghi\"\n"), "l").is_err());
    }

    #[test]
    fn ssh_hosts_are_checked_by_name_and_value() {
        let lab = LabConfig::parse(MINIMAL, "l").unwrap();
        assert_eq!(lab.ssh.dl7, "dl7");
        assert!(lab.ssh.hosts.is_empty() && lab.ssh.config.is_none());
        let text = format!(
            "{MINIMAL}[ssh]\ndl7 = \"/opt/dl7/bin/dl7\"\n[hosts.n2]\nssh = \"root@10.1.1.12\"\nport = 2222\ndev = \"enp3s0\"\n"
        );
        let lab = LabConfig::parse(&text, "l").unwrap();
        let n2 = &lab.ssh.hosts["n2"];
        assert_eq!(
            (n2.ssh.as_deref(), n2.port, n2.dev.as_deref()),
            (Some("root@10.1.1.12"), Some(2222), Some("enp3s0"))
        );
        let err = LabConfig::parse(&format!("{MINIMAL}[hosts.n3]\nssh = \"x\"\n"), "l").unwrap_err();
        assert_eq!(err.to_string(), "l: hosts.n3: no such host; the lab's hosts are fe, origin, n1, n2, c1");
        let err = LabConfig::parse(&format!("{MINIMAL}[hosts.fe]\nssh = \"root@x; rm -rf /\"\n"), "l").unwrap_err();
        assert!(err.to_string().starts_with("l: hosts.fe.ssh:"), "{err}");
        let err = LabConfig::parse(&format!("{MINIMAL}[hosts.fe]\nssh = \"-oProxyCommand=x\"\n"), "l").unwrap_err();
        assert!(err.to_string().starts_with("l: hosts.fe.ssh:"), "{err}");
        let err = LabConfig::parse(&format!("{MINIMAL}[hosts.c1]\nuser = \"x\"\n"), "l").unwrap_err();
        assert!(err.to_string().contains("unknown field `user`"), "{err}");
        assert!(LabConfig::parse(&format!("{MINIMAL}[ssh]\ndl7 = \"dl7 --x\"\n"), "l").is_err());
    }

    #[test]
    fn link_units_parse_like_tc() {
        assert_eq!(parse_rate("10mbit"), Ok(Rate(10_000_000)));
        assert_eq!(parse_rate("1500kbit").unwrap().to_string(), "1500kbit");
        assert_eq!(Rate(10_000_000).to_string(), "10mbit");
        assert!(parse_rate("10mbps").is_err());
        assert!(parse_rate("10").is_err());
        assert_eq!(parse_size("32kb"), Ok(Size(32768)));
        assert_eq!(Size(32768).to_string(), "32kb");
        assert!(parse_size("100b").is_err());
        assert_eq!(parse_duration("100ms"), Ok(Micros(100_000)));
        assert_eq!(Micros(100_000).to_string(), "100ms");
        let text = format!("{MINIMAL}[links]\nnode = \"fast\"\n");
        let err = LabConfig::parse(&text, "lab.toml").unwrap_err();
        assert!(err.to_string().starts_with("lab.toml: links.node: \"fast\""), "{err}");
    }

    #[test]
    fn shaping_per_role_shares_burst_and_latency() {
        let text =
            format!("{MINIMAL}[links]\nfront = \"10mbit\"\nnode = \"20mbit\"\nburst = \"64kb\"\nlatency = \"50ms\"\n");
        let lab = LabConfig::parse(&text, "l").unwrap();
        assert_eq!(lab.front, Some(Shaping { rate: Rate(10_000_000), burst: Size(65536), latency: Micros(50_000) }));
        assert_eq!(lab.node.unwrap().rate, Rate(20_000_000));
        assert_eq!(lab.origin, None);
        assert_eq!(lab.client, None);
    }
}
