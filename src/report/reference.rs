//! The paper's published numbers (Surge-100, Tables 4 and 5), embedded in the
//! binary so that a report can be written from any working directory.

/// The paper's Tables 4 and 5 as CSV: `table,workload,metric,arch,policy,servers,value`.
pub const KWON2008_SURGE100_CSV: &str = include_str!("../../experiments/reference/kwon2008_surge100.csv");

/// One published cell.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceCell {
    /// The paper's table, e.g. `T4`.
    pub table: String,
    pub workload: String,
    /// `req_per_s` or `mbit_per_s`.
    pub metric: String,
    pub arch: String,
    pub policy: String,
    pub servers: u32,
    pub value: f64,
}

/// Parses reference CSV text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<ReferenceCell>, String> {
    let mut cells = Vec::new();
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, "table,workload,metric,arch,policy,servers,value")) => {}
        _ => return Err(format!("{origin}:1: expected header table,workload,metric,arch,policy,servers,value")),
    }
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return Err(format!("{origin}:{}: expected 7 fields, found {}", i + 1, f.len()));
        }
        let servers =
            f[5].parse().map_err(|_| format!("{origin}:{}: servers: expected an integer, found {:?}", i + 1, f[5]))?;
        let value =
            f[6].parse().map_err(|_| format!("{origin}:{}: value: expected a number, found {:?}", i + 1, f[6]))?;
        cells.push(ReferenceCell {
            table: f[0].into(),
            workload: f[1].into(),
            metric: f[2].into(),
            arch: f[3].into(),
            policy: f[4].into(),
            servers,
            value,
        });
    }
    Ok(cells)
}

/// The embedded Surge-100 tables.
pub fn kwon2008_surge100() -> Vec<ReferenceCell> {
    parse(KWON2008_SURGE100_CSV, "kwon2008_surge100.csv").expect("the embedded reference CSV is well-formed (tested)")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::summary::SummaryRow;

    /// Summary rows built from the paper's own Surge-100 numbers (no
    /// utilisations): the report's modules check themselves against them.
    pub(crate) fn paper_rows() -> Vec<SummaryRow> {
        let reference = kwon2008_surge100();
        let mut rows: Vec<SummaryRow> = Vec::new();
        for r in reference.iter().filter(|r| r.metric == "req_per_s") {
            let mbit = reference
                .iter()
                .find(|m| {
                    m.metric == "mbit_per_s" && m.arch == r.arch && m.policy == r.policy && m.servers == r.servers
                })
                .unwrap()
                .value;
            rows.push(crate::report::summary::tests::summary_row(
                "surge100", &r.arch, &r.policy, r.servers, "sim", r.value, mbit,
            ));
        }
        rows
    }

    #[test]
    fn embedded_tables_have_120_cells() {
        let cells = kwon2008_surge100();
        assert_eq!(cells.len(), 120);
        assert_eq!(cells.iter().filter(|c| c.metric == "req_per_s").count(), 60);
        let rr16 = cells
            .iter()
            .find(|c| c.metric == "req_per_s" && c.arch == "distributed" && c.policy == "rr" && c.servers == 16)
            .unwrap();
        assert_eq!(rr16.value, 2147.0);
    }

    #[test]
    fn bad_reference_lines_are_reported_with_line_numbers() {
        let e = parse("table,workload,metric,arch,policy,servers,value\nT4,s,m,a,p,x,1\n", "r.csv").unwrap_err();
        assert!(e.starts_with("r.csv:2: servers"), "{e}");
    }
}
