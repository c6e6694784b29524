//! Which group a target belongs to: the column of the region x group
//! matrix that reports and incidents show. Decided by its labels alone, so
//! a target's group never changes while the target does not.

use std::collections::BTreeMap;

/// The group of a target with `labels`: its `provider` label, else its
/// `service` label, else its name.
pub(crate) fn of_labels<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> &'a str {
    labels
        .get("provider")
        .or_else(|| labels.get("service"))
        .map_or(name, String::as_str)
}

/// The group of a target from its stored labels (JSON), and whether it is
/// a control target (`role = "control"`).
pub(crate) fn group_of(name: &str, labels: &str) -> (String, bool) {
    let labels: BTreeMap<String, String> = serde_json::from_str(labels).unwrap_or_default();
    let control = labels.get("role").is_some_and(|r| r == "control");
    (of_labels(name, &labels).to_string(), control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_then_service_then_name() {
        assert_eq!(
            group_of("db", r#"{"provider":"gcp","service":"pg"}"#),
            ("gcp".to_string(), false)
        );
        assert_eq!(
            group_of("db", r#"{"service":"pg","role":"control"}"#),
            ("pg".to_string(), true)
        );
        assert_eq!(group_of("db", "{}"), ("db".to_string(), false));
        assert_eq!(group_of("db", "not json"), ("db".to_string(), false));
    }
}
