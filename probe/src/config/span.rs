//! From a TOML value's byte span to a problem a person can act on:
//! `file:line: field = value: reason`.
//!
//! Config loaders deserialize into `toml::Spanned` values, then check each
//! one with a [`Checker`], which turns the value's span into a line and
//! collects every [`Problem`] instead of stopping at the first. The probe's
//! and the collector's configs both report through it, so their messages
//! read the same.
//!
//! ```
//! use vantage_probe::config::span::Checker;
//!
//! let text = "[server]\nlisten = \"everywhere\"\n";
//! #[derive(serde::Deserialize)]
//! struct Raw { server: Server }
//! #[derive(serde::Deserialize)]
//! struct Server { listen: toml::Spanned<String> }
//! let raw: Raw = toml::from_str(text).unwrap();
//!
//! let mut c = Checker::new(text);
//! let listen: Option<std::net::SocketAddr> =
//!     c.parse_with(&raw.server.listen, "server.listen", "must be an IP:port");
//! assert!(listen.is_none());
//! assert_eq!(
//!     c.problems[0].shown_in("c.toml").to_string(),
//!     "c.toml:2: server.listen = \"everywhere\": must be an IP:port"
//! );
//! ```

use std::fmt;
use std::ops::Range;

use toml::Spanned;

/// Where each line of a text starts, so that a byte offset becomes a line
/// number in O(log n): validation asks for the line of every value, and a
/// linear scan per value would make a 10k-target config take seconds.
#[derive(Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Finds where each line of `text` starts.
    pub fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// 1-based line and column of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.starts[line - 1] + 1)
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(offset.min(text.len()))
}

/// Where a value came from, for the problem report.
#[derive(Debug, Clone, Default)]
pub struct Loc {
    /// The file, when not the one being checked (an included list).
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
}

/// One invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which file it is in, when not the main config (a file_sd list).
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `targets[2].timeout`.
    pub field: String,
    /// The value as written, when there was one.
    pub value: Option<String>,
    /// What is wrong and what would be right; empty when `field` is a
    /// whole sentence of its own (a rule across fields).
    pub reason: String,
}

impl Problem {
    /// The problem as one line, `path` standing for the checked file:
    /// `path:line: field = value: reason`.
    pub fn shown_in<'a>(&'a self, path: &'a str) -> impl fmt::Display + 'a {
        Shown {
            problem: self,
            path,
        }
    }
}

struct Shown<'a> {
    problem: &'a Problem,
    path: &'a str,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.problem;
        f.write_str(p.file.as_deref().unwrap_or(self.path))?;
        if let Some(line) = p.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", p.field)?;
        if let Some(v) = &p.value {
            write!(f, " = {v}")?;
        }
        if !p.reason.is_empty() {
            write!(f, ": {}", p.reason)?;
        }
        Ok(())
    }
}

/// Collects the problems of one config text.
#[derive(Debug)]
pub struct Checker {
    lines: LineIndex,
    /// Every problem so far, in the order found.
    pub problems: Vec<Problem>,
}

impl Checker {
    /// A checker for values deserialized from `text`.
    pub fn new(text: &str) -> Checker {
        Checker {
            lines: LineIndex::new(text),
            problems: Vec::new(),
        }
    }

    /// Where `v` is in the text.
    pub fn loc<T>(&self, v: &Spanned<T>) -> Loc {
        self.loc_span(v.span())
    }

    /// Where byte range `span` starts in the text.
    pub fn loc_span(&self, span: Range<usize>) -> Loc {
        Loc {
            file: None,
            line: Some(self.lines.line_col(span.start).0),
        }
    }

    /// Records a problem at `loc`.
    pub fn push(
        &mut self,
        loc: &Loc,
        field: impl Into<String>,
        value: Option<String>,
        reason: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: loc.file.clone(),
            line: loc.line,
            field: field.into(),
            value,
            reason: reason.into(),
        });
    }

    /// Records that `v`, shown as `shown`, is wrong.
    pub fn bad<T>(
        &mut self,
        v: &Spanned<T>,
        field: &str,
        shown: String,
        reason: impl Into<String>,
    ) {
        let loc = self.loc(v);
        self.push(&loc, field, Some(shown), reason);
    }

    /// Records that `v` is wrong, shown as Rust shows it (`"text"`, `5`).
    pub fn bad_debug<T: fmt::Debug>(&mut self, v: &Spanned<T>, field: &str, reason: &str) {
        self.bad(v, field, format!("{:?}", v.get_ref()), reason);
    }

    /// `v` parsed, or a problem saying `reason`.
    pub fn parse_with<T: std::str::FromStr>(
        &mut self,
        v: &Spanned<String>,
        field: &str,
        reason: &str,
    ) -> Option<T> {
        match v.get_ref().parse() {
            Ok(x) => Some(x),
            Err(_) => {
                self.bad_debug(v, field, reason);
                None
            }
        }
    }

    /// `v` if it is between 1 and `max`, or a problem saying so.
    pub fn count(&mut self, v: &Spanned<i64>, field: &str, max: i64) -> Option<i64> {
        let n = *v.get_ref();
        if n < 1 || n > max {
            self.bad(
                v,
                field,
                n.to_string(),
                format!("must be between 1 and {max}"),
            );
            return None;
        }
        Some(n)
    }
}
