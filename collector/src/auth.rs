//! Bearer tokens, each bound to one region (and optionally to probe ids in
//! it). A batch may only speak for what its token is bound to.

use std::sync::{Arc, RwLock};

use crate::config::TokenBinding;

/// The configured tokens. SIGHUP replaces them as a whole (rotation
/// without a restart); a request sees either the old set or the new.
#[derive(Debug)]
pub struct Tokens {
    bindings: RwLock<Bindings>,
}

/// One set of tokens and how many regions they name (asked of every
/// batch, so counted once per set).
#[derive(Debug, Clone)]
struct Bindings {
    all: Arc<[Arc<TokenBinding>]>,
    regions: usize,
}

impl Bindings {
    fn new(bindings: Vec<TokenBinding>) -> Bindings {
        let regions = bindings
            .iter()
            .map(|b| b.src_region.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len();
        Bindings {
            all: bindings.into_iter().map(Arc::new).collect(),
            regions,
        }
    }
}

/// Why a request is not allowed; the first two are 401, the rest 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// A token no binding knows.
    UnknownToken,
    /// The batch claims a region the token is not bound to.
    WrongRegion,
    /// The batch claims a probe id the token is not bound to.
    WrongProbe,
}

impl Tokens {
    /// Tokens from the config.
    pub fn new(bindings: Vec<TokenBinding>) -> Tokens {
        Tokens {
            bindings: RwLock::new(Bindings::new(bindings)),
        }
    }

    /// Replaces every token at once.
    pub fn replace(&self, bindings: Vec<TokenBinding>) {
        let new = Bindings::new(bindings);
        *self.bindings.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    fn current(&self) -> Bindings {
        self.bindings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many regions the tokens speak for: the fleet's series budget is
    /// shared between them.
    pub fn regions(&self) -> usize {
        self.current().regions
    }

    /// The binding of the `Authorization` header's bearer token.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<TokenBinding>, Denied> {
        // The scheme is case-insensitive (RFC 9110, 11.1); the token is not.
        let token = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(Denied::MissingToken)?;
        // Compare against every binding in constant time per byte, so the
        // time taken says nothing about how much of a token was right.
        let mut found = None;
        for b in self.current().all.iter() {
            if constant_time_eq(b.token.as_bytes(), token.as_bytes()) {
                found = Some(b.clone());
            }
        }
        found.ok_or(Denied::UnknownToken)
    }

    /// Whether `binding` may report as `probe_id` in `src_region`.
    pub fn authorize(
        binding: &TokenBinding,
        src_region: &str,
        probe_id: &str,
    ) -> Result<(), Denied> {
        if binding.src_region != src_region {
            return Err(Denied::WrongRegion);
        }
        if let Some(ids) = &binding.probe_ids
            && !ids.contains(probe_id)
        {
            return Err(Denied::WrongProbe);
        }
        Ok(())
    }
}

impl Denied {
    /// The HTTP status: 401 for who-are-you, 403 for you-may-not.
    pub fn status(self) -> u16 {
        match self {
            Denied::MissingToken | Denied::UnknownToken => 401,
            Denied::WrongRegion | Denied::WrongProbe => 403,
        }
    }

    /// The bounded reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::MissingToken => "missing_token",
            Denied::UnknownToken => "unknown_token",
            Denied::WrongRegion => "wrong_region",
            Denied::WrongProbe => "wrong_probe",
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(vec![
            TokenBinding {
                token: "east-token-0123456789".into(),
                src_region: "us-east-2".into(),
                probe_ids: None,
            },
            TokenBinding {
                token: "west-token-0123456789".into(),
                src_region: "us-west-1".into(),
                probe_ids: Some(["w1".to_string()].into()),
            },
        ])
    }

    /// The series budget is shared by the regions the tokens name: two
    /// tokens of one region are one region, and a reload recounts.
    #[test]
    fn the_regions_are_counted_per_set_of_tokens() {
        let t = tokens();
        assert_eq!(t.regions(), 2);
        let east = |token: &str| TokenBinding {
            token: token.into(),
            src_region: "us-east-2".into(),
            probe_ids: None,
        };
        t.replace(vec![
            east("east-token-0123456789"),
            east("east-token-9876543210"),
        ]);
        assert_eq!(t.regions(), 1);
    }

    #[test]
    fn a_token_speaks_only_for_its_region_and_probes() {
        let t = tokens();
        assert_eq!(t.authenticate(None).unwrap_err(), Denied::MissingToken);
        assert_eq!(
            t.authenticate(Some("Basic abc")).unwrap_err(),
            Denied::MissingToken
        );
        assert_eq!(
            t.authenticate(Some("Bearer nope")).unwrap_err(),
            Denied::UnknownToken
        );
        for scheme in ["bearer", "BEARER", "Bearer"] {
            let h = format!("{scheme} east-token-0123456789");
            assert!(t.authenticate(Some(&h)).is_ok(), "{scheme}");
        }
        assert_eq!(
            t.authenticate(Some("Bearereast-token-0123456789"))
                .unwrap_err(),
            Denied::MissingToken
        );
        let east = t
            .authenticate(Some("Bearer east-token-0123456789"))
            .unwrap();
        assert!(Tokens::authorize(&east, "us-east-2", "any").is_ok());
        assert_eq!(
            Tokens::authorize(&east, "us-west-1", "any"),
            Err(Denied::WrongRegion)
        );
        let west = t
            .authenticate(Some("Bearer west-token-0123456789"))
            .unwrap();
        assert!(Tokens::authorize(&west, "us-west-1", "w1").is_ok());
        assert_eq!(
            Tokens::authorize(&west, "us-west-1", "w2"),
            Err(Denied::WrongProbe)
        );
    }

    #[test]
    fn replacing_the_tokens_drops_the_old_and_admits_the_new() {
        let t = tokens();
        t.replace(vec![TokenBinding {
            token: "rotated-token-0123456789".into(),
            src_region: "us-east-2".into(),
            probe_ids: None,
        }]);
        assert_eq!(
            t.authenticate(Some("Bearer east-token-0123456789"))
                .unwrap_err(),
            Denied::UnknownToken
        );
        assert_eq!(
            t.authenticate(Some("Bearer west-token-0123456789"))
                .unwrap_err(),
            Denied::UnknownToken,
            "every old token is gone, not only the one rotated"
        );
        let b = t
            .authenticate(Some("Bearer rotated-token-0123456789"))
            .unwrap();
        assert_eq!(b.src_region, "us-east-2");
    }
}
