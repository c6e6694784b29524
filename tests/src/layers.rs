//! The import graph of a crate's top-level modules, read from its sources,
//! and the checks that keep it a DAG in a declared layer order.
//!
//! Every file under `src/` belongs to a top-level module: `src/foo.rs` and
//! everything under `src/foo/` are module `foo`; `lib.rs`, `main.rs` and
//! `src/bin/` are the root and are left out. An arrow `foo -> bar` is any
//! `crate::bar` path in `foo`'s code: `use crate::bar::X`, `crate::bar::f()`
//! in an expression, or `bar` inside a `use crate::{bar, baz::Y}` group. A
//! `crate::Name` that the root re-exports (`pub use bar::Name;` in `lib.rs`)
//! is an arrow to `bar` too. Comments, string literals, `#[cfg(test)]` items
//! and `tests.rs` files are not read: test code may reach anywhere.
//!
//! No dependencies and no parser: a small lexer blanks comments and strings
//! (keeping line numbers), which is enough for `use` paths.
//!
//! ```no_run
//! let report = vantage_tests::layers::check(
//!     std::path::Path::new("collector"),
//!     &[&["http"], &["app"], &["evidence", "report"], &["store"], &["config"]],
//! )
//! .unwrap();
//! assert!(report.is_clean(), "{report}");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where an arrow was first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The file, relative to `src/`.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The line, trimmed.
    pub text: String,
}

/// The top-level modules of a crate and the arrows between them.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Every top-level module that has a file.
    pub modules: BTreeSet<String>,
    /// `(from, to)` -> the first place `from` names `to`.
    pub arrows: BTreeMap<(String, String), Evidence>,
}

/// An arrow that breaks the declared layer order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The importing module.
    pub from: String,
    /// The imported module.
    pub to: String,
    /// Where.
    pub at: Evidence,
}

/// What [`check`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The graph that was checked.
    pub graph: Graph,
    /// Every elementary cycle, each starting and ending at its smallest
    /// module (`["a", "b", "a"]`).
    pub cycles: Vec<Vec<String>>,
    /// Arrows from a lower layer to a higher one, or within a layer and on a
    /// cycle.
    pub upward: Vec<Violation>,
    /// Modules of the crate that no layer names.
    pub unplaced: Vec<String>,
    /// Names in the layers that are not modules of the crate.
    pub unknown: Vec<String>,
}

/// Most cycles [`Graph::cycles`] lists; a tangle has more, and the first
/// ones say enough.
pub const MAX_CYCLES: usize = 200;

/// Cycles a printed [`Report`] shows.
const SHOWN_CYCLES: usize = 20;

/// Reads the graph of the crate at `crate_dir` (its `src/`, or `crate_dir`
/// itself when it has no `src/`) and checks it against `layers`, listed top
/// first: a module may import its own layer and the ones after it.
pub fn check(crate_dir: &Path, layers: &[&[&str]]) -> io::Result<Report> {
    let graph = Graph::read(&src_dir(crate_dir))?;
    Ok(graph.check(layers))
}

/// The files (relative to `src/`) whose code, outside comments and test
/// code, contains `needle`: for checks such as "only `http` knows axum".
pub fn files_mentioning(crate_src: &Path, needle: &str) -> io::Result<Vec<PathBuf>> {
    let src = src_dir(crate_src);
    let mut found = Vec::new();
    for (rel, text) in read_sources(&src)? {
        if is_test_file(&rel) {
            continue;
        }
        let code = strip_tests(&lex(&text, Strings::Keep));
        if code.contains(needle) {
            found.push(rel);
        }
    }
    Ok(found)
}

/// The top-level module a file (relative to `src/`) belongs to; `None` for
/// the root (`lib.rs`, `main.rs`, `bin/`).
pub fn module_of(rel: &Path) -> Option<String> {
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_str()?;
    let is_file = parts.next().is_none();
    if is_file {
        let name = first.strip_suffix(".rs")?;
        (name != "lib" && name != "main").then(|| name.to_string())
    } else {
        (first != "bin").then(|| first.to_string())
    }
}

impl Graph {
    /// The graph of the crate whose `src/` is `src`.
    pub fn read(src: &Path) -> io::Result<Graph> {
        Ok(Graph::from_sources(read_sources(src)?))
    }

    /// The graph of in-memory sources: `(path relative to src/, text)`.
    pub fn from_sources(sources: impl IntoIterator<Item = (PathBuf, String)>) -> Graph {
        let mut sources: Vec<(PathBuf, String)> = sources.into_iter().collect();
        sources.sort();
        let mut graph = Graph::default();
        let mut reexports = BTreeMap::new();
        for (rel, text) in &sources {
            match module_of(rel) {
                Some(m) => {
                    graph.modules.insert(m);
                }
                None if rel == Path::new("lib.rs") => {
                    reexports = root_reexports(&strip_tests(&lex(text, Strings::Blank)));
                }
                None => {}
            }
        }
        for (rel, text) in &sources {
            let Some(from) = module_of(rel) else { continue };
            if is_test_file(rel) {
                continue;
            }
            let code = strip_tests(&lex(text, Strings::Blank));
            for (offset, name) in crate_refs(&code) {
                let to = if graph.modules.contains(&name) {
                    name
                } else if let Some(m) = reexports.get(&name) {
                    m.clone()
                } else {
                    continue;
                };
                if to == from {
                    continue;
                }
                let line = code[..offset].matches('\n').count() + 1;
                graph
                    .arrows
                    .entry((from.clone(), to))
                    .or_insert_with(|| Evidence {
                        file: rel.clone(),
                        line,
                        text: text.lines().nth(line - 1).unwrap_or("").trim().to_string(),
                    });
            }
        }
        graph
    }

    /// The modules `from` imports.
    pub fn imports<'a>(&'a self, from: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.arrows
            .keys()
            .filter(move |(f, _)| f == from)
            .map(|(_, t)| t.as_str())
    }

    /// Every elementary cycle (at most [`MAX_CYCLES`], the shortest ones
    /// then), each as the path from its smallest module back to it;
    /// shortest first.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for len in 1..=self.modules.len() {
            for start in &self.modules {
                let mut path = vec![start.as_str()];
                self.cycles_from(start, len, &mut path, &mut out);
                if out.len() >= MAX_CYCLES {
                    return out;
                }
            }
        }
        out
    }

    /// Cycles of exactly `len` arrows from `start` through modules above it,
    /// continuing `path`.
    fn cycles_from<'a>(
        &'a self,
        start: &str,
        len: usize,
        path: &mut Vec<&'a str>,
        out: &mut Vec<Vec<String>>,
    ) {
        let last = *path.last().expect("path starts with start");
        for next in self.imports(last) {
            if out.len() >= MAX_CYCLES {
                return;
            }
            if path.len() == len {
                if next == start {
                    let mut cycle: Vec<String> = path.iter().map(|m| m.to_string()).collect();
                    cycle.push(start.to_string());
                    out.push(cycle);
                }
            } else if next > start && !path.contains(&next) {
                path.push(next);
                self.cycles_from(start, len, path, out);
                path.pop();
            }
        }
    }

    /// The tangles: sets of two or more modules that all reach each other
    /// (strongly connected components), each sorted.
    pub fn tangles(&self) -> Vec<Vec<String>> {
        let reach: BTreeMap<&str, BTreeSet<&str>> = self
            .modules
            .iter()
            .map(|m| (m.as_str(), self.reachable(m)))
            .collect();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for m in &self.modules {
            if seen.contains(m.as_str()) {
                continue;
            }
            let tangle: Vec<String> = reach[m.as_str()]
                .iter()
                .filter(|o| reach[**o].contains(m.as_str()))
                .map(|o| o.to_string())
                .collect();
            if tangle.len() > 1 {
                seen.extend(tangle.iter().cloned());
                out.push(tangle);
            }
        }
        out
    }

    /// The modules `from` reaches through one or more arrows.
    fn reachable<'a>(&'a self, from: &'a str) -> BTreeSet<&'a str> {
        let mut found = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(m) = todo.pop() {
            for next in self.imports(m) {
                if found.insert(next) {
                    todo.push(next);
                }
            }
        }
        found
    }

    /// Checks the graph against `layers`, top first.
    pub fn check(self, layers: &[&[&str]]) -> Report {
        let level: BTreeMap<&str, usize> = layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| layer.iter().map(move |m| (*m, i)))
            .collect();
        let cycles = self.cycles();
        let on_cycle: BTreeSet<(&str, &str)> = cycles
            .iter()
            .flat_map(|c| c.windows(2).map(|w| (w[0].as_str(), w[1].as_str())))
            .collect();
        let mut upward = Vec::new();
        for ((from, to), at) in &self.arrows {
            let (Some(&lf), Some(&lt)) = (level.get(from.as_str()), level.get(to.as_str())) else {
                continue;
            };
            if lt < lf || (lt == lf && on_cycle.contains(&(from.as_str(), to.as_str()))) {
                upward.push(Violation {
                    from: from.clone(),
                    to: to.clone(),
                    at: at.clone(),
                });
            }
        }
        let unplaced = self
            .modules
            .iter()
            .filter(|m| !level.contains_key(m.as_str()))
            .cloned()
            .collect();
        let unknown = level
            .keys()
            .filter(|m| !self.modules.contains(**m))
            .map(|m| m.to_string())
            .collect();
        Report {
            graph: self,
            cycles,
            upward,
            unplaced,
            unknown,
        }
    }

    /// The cycles as text, one per line: `a -> b -> a`, then where each
    /// arrow is.
    pub fn cycle_report(&self, cycles: &[Vec<String>]) -> String {
        let mut out = String::new();
        for cycle in cycles {
            out.push_str(&cycle.join(" -> "));
            out.push('\n');
            for w in cycle.windows(2) {
                let at = &self.arrows[&(w[0].clone(), w[1].clone())];
                out.push_str(&format!("    {} -> {}: {}\n", w[0], w[1], at));
            }
        }
        out
    }
}

impl Report {
    /// No cycle, no upward arrow, and the layers name exactly the modules.
    pub fn is_clean(&self) -> bool {
        self.cycles.is_empty()
            && self.upward.is_empty()
            && self.unplaced.is_empty()
            && self.unknown.is_empty()
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.text)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cycles.is_empty() {
            writeln!(f, "cycles: none")?;
        } else {
            for tangle in self.graph.tangles() {
                writeln!(
                    f,
                    "tangle of {} modules: {}",
                    tangle.len(),
                    tangle.join(", ")
                )?;
            }
            let more = if self.cycles.len() >= MAX_CYCLES {
                " or more"
            } else {
                ""
            };
            let shown = &self.cycles[..self.cycles.len().min(SHOWN_CYCLES)];
            writeln!(f, "cycles ({}{more}), shortest first:", self.cycles.len())?;
            f.write_str(&self.graph.cycle_report(shown))?;
            if shown.len() < self.cycles.len() {
                writeln!(f, "  ... and {} more", self.cycles.len() - shown.len())?;
            }
        }
        if !self.upward.is_empty() {
            writeln!(f, "upward arrows ({}):", self.upward.len())?;
            for v in &self.upward {
                writeln!(f, "  {} -> {}: {}", v.from, v.to, v.at)?;
            }
        }
        if !self.unplaced.is_empty() {
            writeln!(f, "modules in no layer: {}", self.unplaced.join(", "))?;
        }
        if !self.unknown.is_empty() {
            writeln!(
                f,
                "layer names that are no module: {}",
                self.unknown.join(", ")
            )?;
        }
        writeln!(f, "graph:")?;
        for m in &self.graph.modules {
            let to: Vec<&str> = self.graph.imports(m).collect();
            writeln!(f, "  {m} -> {}", to.join(", "))?;
        }
        Ok(())
    }
}

fn src_dir(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    if src.is_dir() { src } else { dir.to_path_buf() }
}

fn is_test_file(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "tests.rs")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// Every `.rs` file under `src`, relative to it.
fn read_sources(src: &Path) -> io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src").to_path_buf();
                out.push((rel, std::fs::read_to_string(&path)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Strings {
    Keep,
    Blank,
}

/// `text` with comments (and, with [`Strings::Blank`], the insides of
/// string and char literals) replaced by spaces; newlines are kept, so
/// offsets and line numbers stay those of `text`.
fn lex(text: &str, strings: Strings) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if let Some(end) = string_end(&b, i) {
            for (k, &ch) in b[i..end].iter().enumerate() {
                let delimiter = k == 0 || k == end - i - 1;
                if strings == Strings::Keep || delimiter {
                    out.push(ch);
                } else {
                    blank(&mut out, ch);
                }
            }
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The end (exclusive) of a string, raw string, byte string or char literal
/// starting at `i`, if one does.
fn string_end(b: &[char], i: usize) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    if i > 0 && ident(b[i - 1]) && b[i] != '"' {
        return None;
    }
    let mut j = i;
    if b[j] == 'b' || b[j] == 'c' {
        j += 1;
    }
    if b.get(j) == Some(&'r') && matches!(b.get(j + 1), Some('"' | '#')) {
        let mut hashes = 0;
        j += 1;
        while b.get(j) == Some(&'#') {
            hashes += 1;
            j += 1;
        }
        if b.get(j) != Some(&'"') {
            return None;
        }
        j += 1;
        while j < b.len() {
            if b[j] == '"' && (1..=hashes).all(|h| b.get(j + h) == Some(&'#')) {
                return Some(j + 1 + hashes);
            }
            j += 1;
        }
        return Some(b.len());
    }
    match b.get(j) {
        Some('"') => {
            j += 1;
            while j < b.len() {
                match b[j] {
                    '\\' => j += 2,
                    '"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
            Some(b.len())
        }
        // A char literal, not a lifetime: `'x'` or `'\n'`.
        Some('\'') if b.get(j + 1) == Some(&'\\') => {
            let close = b[j + 2..].iter().position(|&c| c == '\'')?;
            Some(j + 2 + close + 1)
        }
        Some('\'') if b.get(j + 2) == Some(&'\'') => Some(j + 3),
        _ => None,
    }
}

/// `code` (already lexed) with every `#[cfg(test)]` item blanked: a
/// `mod tests { ... }` up to its closing brace, a `use` up to its `;`.
fn strip_tests(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let pattern: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + pattern.len() <= out.len() {
        if out[i..i + pattern.len()] != pattern[..] {
            i += 1;
            continue;
        }
        let mut j = i + pattern.len();
        let mut depth = 0usize;
        while j < out.len() {
            match out[j] {
                ';' if depth == 0 => break,
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let end = (j + 1).min(out.len());
        for c in &mut out[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = j;
    }
    out.into_iter().collect()
}

/// Every top-level name a `crate::` path in `code` starts with, with the
/// byte offset of its `crate`.
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("crate") {
        let at = from + pos;
        from = at + "crate".len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = code[from..].trim_start();
        let Some(rest) = rest.strip_prefix("::") else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            for name in group_heads(group) {
                out.push((at, name));
            }
        } else if let Some(name) = ident(rest) {
            out.push((at, name));
        }
    }
    out
}

/// The first segment of each entry of a `{a, b::c, d::{e, f}}` group, given
/// the text after its `{`.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut entry_start = true;
    for (k, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => entry_start = true,
            c if entry_start && !c.is_whitespace() => {
                entry_start = false;
                if let Some(name) = ident(&group[k..]) {
                    heads.push(name);
                }
            }
            _ => {}
        }
    }
    heads.retain(|h| h != "self");
    heads
}

fn ident(s: &str) -> Option<String> {
    let s = s.strip_prefix("r#").unwrap_or(s);
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| s[..end].to_string())
}

/// Names the root re-exports, mapped to the module they come from:
/// `pub use foo::{Bar, baz::Qux as Q};` gives `Bar -> foo`, `Q -> foo`.
fn root_reexports(code: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in code.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let path = stmt[at + "pub use ".len()..].trim();
        let path = path.strip_prefix("crate::").unwrap_or(path);
        let Some(module) = ident(path) else { continue };
        for leaf in use_leaves(path) {
            map.insert(leaf, module.clone());
        }
    }
    map
}

/// The names a use tree brings in: the last segment of each path, or its
/// `as` alias.
fn use_leaves(tree: &str) -> Vec<String> {
    let flat: String = tree
        .chars()
        .map(|c| if c == '{' || c == '}' { ',' } else { c })
        .collect();
    let mut leaves = Vec::new();
    for part in flat.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if part.ends_with("::") {
            continue;
        }
        let name = match part.split_once(" as ") {
            Some((_, alias)) => alias.trim(),
            None => part.rsplit("::").next().unwrap_or(part),
        };
        if name != "self" && name != "*" {
            leaves.push(name.to_string());
        }
    }
    leaves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> Graph {
        Graph::from_sources(files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())))
    }

    #[test]
    fn files_map_to_top_level_modules() {
        assert_eq!(module_of(Path::new("foo.rs")).as_deref(), Some("foo"));
        assert_eq!(
            module_of(Path::new("foo/bar/baz.rs")).as_deref(),
            Some("foo")
        );
        assert_eq!(module_of(Path::new("foo/mod.rs")).as_deref(), Some("foo"));
        assert_eq!(module_of(Path::new("lib.rs")), None);
        assert_eq!(module_of(Path::new("main.rs")), None);
        assert_eq!(module_of(Path::new("bin/tool.rs")), None);
    }

    #[test]
    fn a_cycle_is_found_and_printed_with_its_lines() {
        let g = graph(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("a.rs", "//! A.\n\nuse crate::b::Thing;\n"),
            ("b/mod.rs", "mod x;\n"),
            ("b/x.rs", "fn f() {\n    crate::a::g();\n}\n"),
            ("c.rs", "use crate::{a, b::Thing};\n"),
        ]);
        let cycles = g.cycles();
        assert_eq!(cycles, vec![vec!["a", "b", "a"]]);
        assert_eq!(
            g.cycle_report(&cycles),
            "a -> b -> a\n    a -> b: a.rs:3: use crate::b::Thing;\n    \
             b -> a: b/x.rs:2: crate::a::g();\n"
        );
        assert_eq!(g.imports("c").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(g.tangles(), [["a", "b"]]);
    }

    #[test]
    fn an_upward_arrow_is_found() {
        let g = graph(&[
            ("http.rs", "use crate::store::Db;\n"),
            ("store.rs", "use crate::config::Config;\n"),
            ("config.rs", "use crate::http::Router;\n"),
        ]);
        let report = g.check(&[&["http"], &["store"], &["config"]]);
        let up: Vec<_> = report
            .upward
            .iter()
            .map(|v| format!("{} -> {}: {}", v.from, v.to, v.at))
            .collect();
        assert_eq!(
            up,
            ["config -> http: config.rs:1: use crate::http::Router;"]
        );
        assert_eq!(report.cycles.len(), 1);
        assert!(!report.is_clean());
        let text = report.to_string();
        assert!(
            text.contains("config -> http -> store -> config\n"),
            "{text}"
        );
    }

    #[test]
    fn a_cycle_within_one_layer_is_upward_but_a_one_way_arrow_is_not() {
        let ok = graph(&[("a.rs", "use crate::b::X;\n"), ("b.rs", "")]).check(&[&["a", "b"]]);
        assert!(ok.is_clean(), "{ok}");
        let tangled = graph(&[
            ("a.rs", "use crate::b::X;\n"),
            ("b.rs", "use crate::a::Y;\n"),
        ])
        .check(&[&["a", "b"]]);
        assert_eq!(tangled.upward.len(), 2);
    }

    #[test]
    fn unplaced_and_unknown_modules_are_reported() {
        let report = graph(&[("a.rs", ""), ("b.rs", "")]).check(&[&["a", "z"]]);
        assert_eq!(report.unplaced, ["b"]);
        assert_eq!(report.unknown, ["z"]);
        assert!(!report.is_clean());
    }

    #[test]
    fn comments_strings_and_test_code_are_ignored() {
        let g = graph(&[
            (
                "a.rs",
                "//! See [`crate::b`].\n/* crate::b /* nested */ crate::b */\n\
                 fn f<'a>(x: &'a str) -> char {\n    let _ = \"crate::b::X\";\n    \
                 let _ = r#\"crate::b\"#;\n    '{'\n}\n\
                 #[cfg(test)]\nmod tests {\n    use crate::b::X;\n    fn g() { crate::b::h() }\n}\n\
                 #[cfg(test)]\nuse crate::b::Y;\n",
            ),
            ("b.rs", ""),
            ("b/tests.rs", "use crate::a::X;\n"),
            ("c.rs", "fn f() { let _ = '\\''; crate::b::f(); }\n"),
        ]);
        assert_eq!(
            g.arrows.keys().cloned().collect::<Vec<_>>(),
            [("c".to_string(), "b".to_string())]
        );
    }

    #[test]
    fn names_the_root_reexports_point_at_their_module() {
        let g = graph(&[
            (
                "lib.rs",
                "mod a;\nmod b;\npub use b::{Thing, inner::Other as O};\n",
            ),
            ("a.rs", "use crate::{O, Thing};\n"),
            ("b/mod.rs", ""),
        ]);
        assert!(g.arrows.contains_key(&("a".to_string(), "b".to_string())));
    }

    #[test]
    fn files_mentioning_reads_code_only() {
        let dir = std::env::temp_dir().join(format!("vantage-layers-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/http")).unwrap();
        std::fs::write(dir.join("src/http/mod.rs"), "use axum::Router;\n").unwrap();
        std::fs::write(dir.join("src/store.rs"), "// not axum\n").unwrap();
        std::fs::write(
            dir.join("src/app.rs"),
            "#[cfg(test)]\nmod tests {\n    use axum::Json;\n}\n",
        )
        .unwrap();
        let found = files_mentioning(&dir, "axum").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, [PathBuf::from("http/mod.rs")]);
    }
}
