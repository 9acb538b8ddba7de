//! The `Prefer` header: what PostgREST is asked to return and how to resolve conflicts, and the
//! `Preference-Applied` it answers with.

use axum::http::HeaderMap;

use super::sql::Resolution;

/// `Prefer` header values PostgREST honours here.
#[derive(Debug, Default)]
pub(super) struct Preferences {
    pub(super) representation: bool,
    pub(super) count: bool,
    pub(super) resolution: Option<Resolution>,
}

impl Preferences {
    pub(super) fn parse(headers: &HeaderMap) -> Self {
        let mut preferences = Self::default();
        let values = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok());
        for item in values.flat_map(|v| v.split(',')).map(str::trim) {
            match item {
                "return=representation" => preferences.representation = true,
                "return=minimal" | "return=headers-only" => preferences.representation = false,
                "count=exact" | "count=planned" | "count=estimated" => preferences.count = true,
                "resolution=merge-duplicates" => {
                    preferences.resolution = Some(Resolution::MergeDuplicates)
                }
                "resolution=ignore-duplicates" => {
                    preferences.resolution = Some(Resolution::IgnoreDuplicates)
                }
                _ => {}
            }
        }
        preferences
    }

    /// The `Preference-Applied` header PostgREST sends back.
    pub(super) fn applied(&self, mutation: bool) -> Option<String> {
        let mut applied = Vec::new();
        if mutation {
            applied.push(if self.representation {
                "return=representation"
            } else {
                "return=minimal"
            });
        }
        match self.resolution {
            Some(Resolution::MergeDuplicates) => applied.push("resolution=merge-duplicates"),
            Some(Resolution::IgnoreDuplicates) => applied.push("resolution=ignore-duplicates"),
            None => {}
        }
        if self.count {
            applied.push("count=exact");
        }
        (!applied.is_empty()).then(|| applied.join(", "))
    }
}
