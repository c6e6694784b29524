//! JSON rendering of `check`: newline-delimited, one object per round as it
//! happens (`"type": "round"`, the result record) and a last one with the
//! summary (`"type": "summary"`), so that a long run can be piped and read
//! while it goes.

use std::io::{self, Write};

use serde::Serialize;

use super::summary::Summary;
use crate::result::RoundResult;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Round(&'a RoundResult),
    Summary(&'a Summary),
}

/// Writes one round as a line.
pub(crate) fn round(w: &mut impl Write, r: &RoundResult) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &Line::Round(r))?;
    writeln!(w)
}

/// Writes the summary as a line.
pub(crate) fn summary(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &Line::Summary(s))?;
    writeln!(w)
}
