//! The house rule "data flows one way", kept by a test rather than by memory.
//!
//! Reads every file of `gateway/src`, collects the `crate::`, `super::` and
//! `self::` paths its product code names (in `use` lines and inline), and
//! checks two things:
//! - between top-level modules, a module names only modules listed before it
//!   in [`ORDER`] (so there is no loop and nothing imports against the flow);
//! - inside a module, its children do not import each other in a loop.
//!
//! A third rule of the house is kept here too: a file over 500 lines says
//! why it is one room.
//!
//! Test code (files named `tests.rs` or `*_tests.rs`, and whatever follows
//! the first `#[cfg(test)]` of a file) is left out: a test may reach for any
//! module to set up its case without changing what the product depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of `gateway/src`, lowest first. A module may name
/// only modules above it in this list. A new module must be placed here.
const ORDER: &[(&str, &str)] = &[
    ("access", "explains a refused file or directory"),
    (
        "event",
        "the wire formats: every published payload, and time as it is written",
    ),
    ("audit", "the audit trail's records and chain"),
    ("clock", "whether the wall clock can be trusted"),
    (
        "manifest",
        "pallets, lots, serials and the scans that load them",
    ),
    (
        "config",
        "what the operator wrote, and its meaning checks (no IO)",
    ),
    ("excursion", "the engine: profiles judged against readings"),
    (
        "command",
        "operator commands, shared by MQTT and HTTP, handed to ingest",
    ),
    ("telemetry", "the pure telemetry aggregator"),
    (
        "live",
        "the live sensor map, written by ingest, read by http",
    ),
    ("sim", "the simulated sensors of the demo (a source)"),
    ("store", "redb: readings, events, the outbox, state"),
    (
        "snapshot",
        "the engine state as stored, loaded in one place",
    ),
    ("ingest", "sources -> store + engine: the one writer"),
    ("publish", "the outbox -> MQTT"),
    ("broker", "the demo's embedded MQTT broker"),
    (
        "report",
        "the trip report and its charts, a document made online or offline",
    ),
    (
        "epcis",
        "the record as an EPCIS 2.0 document (from a report's facts)",
    ),
    ("http", "the local API and dashboard"),
    ("daemon", "wires the stages and runs them"),
    ("cli", "the technician's edge"),
];

#[test]
fn no_module_imports_one_further_down_the_data_path() {
    let graph = Graph::read(&src_dir());
    let rank: BTreeMap<&str, usize> = ORDER
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (*m, i))
        .collect();
    let mut problems = Vec::new();
    for top in graph.top_level() {
        if !rank.contains_key(top.as_str()) {
            problems.push(format!(
                "module `{top}` is not in ORDER (tests/layers.rs): place it"
            ));
        }
    }
    for edge in graph.sibling_edges().iter().filter(|e| e.parent.is_empty()) {
        let (Some(from), Some(to)) = (rank.get(edge.from.as_str()), rank.get(edge.to.as_str()))
        else {
            continue;
        };
        if to >= from {
            problems.push(format!(
                "{} names crate::{} ({}), which comes after `{}` in ORDER",
                edge.file, edge.path, edge.to, edge.from
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "imports against the data flow:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_children_of_a_module_do_not_import_each_other_in_a_loop() {
    assert_no_loops(&Graph::read(&src_dir()));
}

#[test]
fn the_sensor_drivers_modules_do_not_import_each_other_in_a_loop() {
    // Its data flow has no ORDER (the drivers are one stage), but the
    // Modbus register types once made config.rs and profiles.rs a loop.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sensor-drivers/src");
    assert_no_loops(&Graph::read(&src));
}

fn assert_no_loops(graph: &Graph) {
    let edges = graph.sibling_edges();
    let mut by_parent: BTreeMap<String, Vec<&Edge>> = BTreeMap::new();
    for edge in &edges {
        by_parent
            .entry(edge.parent.join("::"))
            .or_default()
            .push(edge);
    }
    let mut loops = Vec::new();
    for (parent, edges) in &by_parent {
        if let Some(cycle) = find_cycle(edges) {
            let proof: Vec<String> = cycle
                .iter()
                .map(|e| format!("  {} names {} ({} -> {})", e.file, e.path, e.from, e.to))
                .collect();
            loops.push(format!(
                "in `{}`:\n{}",
                if parent.is_empty() { "crate" } else { parent },
                proof.join("\n")
            ));
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

/// Past this many lines of product code (an inline `#[cfg(test)] mod`
/// block at the end is not counted), a file says why it is one room.
const ROOM_LINES: usize = 500;

#[test]
fn a_file_over_500_lines_says_in_its_first_comment_why_it_is_one_room() {
    let mut files = Vec::new();
    walk(&src_dir(), &src_dir(), &mut files);
    let mut silent = Vec::new();
    for (_, name, text) in &files {
        let lines: Vec<&str> = text.lines().collect();
        let inline_tests = lines
            .windows(2)
            .position(|w| w[0] == "#[cfg(test)]" && w[1].starts_with("mod ") && w[1].ends_with('{'))
            .unwrap_or(lines.len());
        let first_comment: Vec<&str> = lines
            .iter()
            .take_while(|l| l.starts_with("//!"))
            .copied()
            .collect();
        if inline_tests > ROOM_LINES && !first_comment.iter().any(|l| l.contains("One room:")) {
            silent.push(format!("{name}: {inline_tests} lines"));
        }
    }
    assert!(
        silent.is_empty(),
        "over {ROOM_LINES} lines without `//! One room: <why>` in the first comment (split it, or say why not):\n{}",
        silent.join("\n")
    );
}

#[test]
fn the_reader_finds_the_imports_it_is_meant_to_judge() {
    // The two tests above pass on a graph without edges; this one fails if
    // the reader stops finding them (a changed path syntax, a moved src).
    let graph = Graph::read(&src_dir());
    let edges = graph.sibling_edges();
    let has = |from: &str, to: &str| {
        edges
            .iter()
            .any(|e| e.parent.is_empty() && e.from == from && e.to == to)
    };
    assert!(
        has("ingest", "store"),
        "ingest's use of the store was not seen"
    );
    assert!(
        has("daemon", "ingest"),
        "the daemon's use of ingest was not seen"
    );
    assert!(
        has("excursion", "config"),
        "the engine's use of config was not seen"
    );
    assert!(edges.len() > 100, "only {} edges seen", edges.len());

    let grouped = Graph::from_files(vec![
        (vec!["a".into()], "a.rs".into(), "use crate::{b::X, c::{self, d::Y}};".into()),
        (vec!["b".into()], "b.rs".into(), "fn f() { super::a::g() }".into()),
        (vec!["c".into()], "c/mod.rs".into(), "// crate::b in a comment\nlet s = \"crate::b\";".into()),
        (
            vec!["c".into(), "d".into()],
            "c/d.rs".into(),
            "#[cfg(test)]\nmod tests;\n#[cfg(test)] mod t { fn f() { crate::a::x() } }\nuse crate::b::Z;".into(),
        ),
    ]);
    let seen: BTreeSet<(String, String)> = grouped
        .sibling_edges()
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    let want: BTreeSet<(String, String)> = [("a", "b"), ("a", "c"), ("b", "a"), ("c", "b")]
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    assert_eq!(seen, want);
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// One named path seen between two siblings of `parent`.
#[derive(Debug, Clone)]
struct Edge {
    parent: Vec<String>,
    from: String,
    to: String,
    file: String,
    path: String,
}

struct Graph {
    modules: BTreeSet<Vec<String>>,
    /// (module of the file, file name, product text)
    files: Vec<(Vec<String>, String, String)>,
}

impl Graph {
    fn read(src: &Path) -> Graph {
        let mut files = Vec::new();
        walk(src, src, &mut files);
        assert!(!files.is_empty(), "no sources under {}", src.display());
        Graph::from_files(files)
    }

    fn from_files(files: Vec<(Vec<String>, String, String)>) -> Graph {
        let modules = files.iter().map(|(m, _, _)| m.clone()).collect();
        let files = files
            .into_iter()
            .filter(|(_, name, _)| !is_test_file(name))
            .collect();
        Graph { modules, files }
    }

    fn top_level(&self) -> BTreeSet<String> {
        self.modules
            .iter()
            .filter_map(|m| m.first().cloned())
            .collect()
    }

    fn sibling_edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for (module, file, text) in &self.files {
            let product = product_code(&strip_comments_and_strings(text));
            for path in named_paths(&product, module) {
                let Some(target) = self.resolve(&path) else {
                    continue;
                };
                let common = module
                    .iter()
                    .zip(&target)
                    .take_while(|(a, b)| a == b)
                    .count();
                if common == module.len() || common == target.len() {
                    continue; // a module and its own ancestor or descendant
                }
                edges.push(Edge {
                    parent: module[..common].to_vec(),
                    from: module[common].clone(),
                    to: target[common].clone(),
                    file: file.clone(),
                    path: path.join("::"),
                });
            }
        }
        edges
    }

    /// The longest prefix of `path` that is a module of the crate.
    fn resolve(&self, path: &[String]) -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| self.modules.contains(p))
    }
}

fn is_test_file(name: &str) -> bool {
    let stem = name.rsplit('/').next().unwrap_or(name);
    stem == "tests.rs" || stem.ends_with("_tests.rs") || name.split('/').any(|part| part == "tests")
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(Vec<String>, String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(root, &path, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let mut module: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(String::from)
            .collect();
        match module.last().map(String::as_str) {
            Some("lib") if module.len() == 1 => module.clear(),
            Some("main") if module.len() == 1 => continue, // the binary, not the library
            Some("mod") => {
                module.pop();
            }
            _ => {}
        }
        out.push((module, rel, std::fs::read_to_string(&path).unwrap()));
    }
}

/// `code` without the items marked `#[cfg(test)]` (a `mod tests;`
/// declaration, an inline `mod tests { .. }`, a test-only `use` or `fn`).
fn product_code(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        // The item ends at its first `;` outside braces, or at the brace
        // that closes its first block.
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Blanks comments, string and char literals, so a path named in prose is
/// not taken for an import. Lifetimes (`'a`) are kept.
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r'
            && (b[i + 1..].starts_with(b"\"") || b[i + 1..].starts_with(b"#"))
            && !ident_before(b, i)
        {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let end: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&end) {
                i += 1;
            }
            i += end.len();
            out.push(b' ');
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(b' ');
        } else if b[i] == b'\'' && is_char_literal(b, i) {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(b' ');
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// `'x'`, `'\n'`, `'\u{1F}'` are literals; `'a` in `&'a str` is a lifetime.
fn is_char_literal(b: &[u8], i: usize) -> bool {
    match b.get(i + 1) {
        Some(b'\\') => true,
        Some(_) => {
            // one UTF-8 character, then a closing quote
            let len = match b[i + 1] {
                c if c < 0x80 => 1,
                c if c >= 0xF0 => 4,
                c if c >= 0xE0 => 3,
                _ => 2,
            };
            b.get(i + 1 + len) == Some(&b'\'')
        }
        None => false,
    }
}

/// Every `crate::`/`super::`/`self::` path in `code`, group imports
/// expanded, as absolute module paths.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let rest = &code[i..];
        let start = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| rest.starts_with(*p));
        match start {
            Some(_) if !(ident_before(b, i) || i > 0 && b[i - 1] == b':') => {
                let (tree, used) = read_tree(&code[i..]);
                for path in tree {
                    if let Some(abs) = absolute(&path, module) {
                        out.push(abs);
                    }
                }
                i += used.max(1);
            }
            _ => i += 1,
        }
    }
    out
}

/// Reads one path or use tree from the start of `s`; returns its leaves as
/// segment lists (`a::{b, c::d}` gives `a::b` and `a::c::d`) and the bytes read.
fn read_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let b = s.as_bytes();
    let mut prefix = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            let mut leaves = Vec::new();
            i += 1;
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    i += 1;
                    break;
                }
                let (sub, used) = read_tree(&s[i..]);
                for leaf in sub {
                    let mut p = prefix.clone();
                    p.extend(leaf.into_iter().filter(|seg| seg != "self"));
                    leaves.push(p);
                }
                i += used.max(1);
            }
            return (leaves, i);
        }
        let ident_len = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        if ident_len == 0 {
            break;
        }
        prefix.push(s[i..i + ident_len].to_string());
        i += ident_len;
        if s[i..].starts_with("::") && !s[i + 2..].starts_with('<') {
            i += 2;
        } else {
            break;
        }
    }
    (vec![prefix], i)
}

fn absolute(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

fn find_cycle<'a>(edges: &[&'a Edge]) -> Option<Vec<&'a Edge>> {
    let mut next: BTreeMap<&str, Vec<&'a Edge>> = BTreeMap::new();
    for e in edges {
        next.entry(e.from.as_str()).or_default().push(e);
    }
    let nodes: BTreeSet<&str> = next.keys().copied().collect();
    // 0 unvisited, 1 on the stack, 2 done
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    for start in nodes {
        let mut stack: Vec<&'a Edge> = Vec::new();
        if let Some(c) = visit(start, &next, &mut state, &mut stack) {
            return Some(c);
        }
    }
    None
}

fn visit<'a>(
    node: &'a str,
    next: &BTreeMap<&str, Vec<&'a Edge>>,
    state: &mut BTreeMap<&'a str, u8>,
    stack: &mut Vec<&'a Edge>,
) -> Option<Vec<&'a Edge>> {
    match state.get(node) {
        Some(2) => return None,
        Some(1) => {
            let at = stack.iter().position(|e| e.from == node).unwrap_or(0);
            return Some(stack[at..].to_vec());
        }
        _ => {}
    }
    state.insert(node, 1);
    for e in next.get(node).map(Vec::as_slice).unwrap_or(&[]) {
        stack.push(e);
        if let Some(c) = visit(e.to.as_str(), next, state, stack) {
            return Some(c);
        }
        stack.pop();
    }
    state.insert(node, 2);
    None
}
