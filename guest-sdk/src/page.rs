//! Paging a listing that is already in ascending order.

use crate::ListPage;

impl ListPage {
    /// The page after `cursor` (exclusive) of at most `limit` ids (at least one),
    /// taken from `ids`, which must be ascending. `next_cursor` is set only when
    /// more ids follow.
    pub fn from_sorted(
        ids: impl IntoIterator<Item = String>,
        cursor: Option<&str>,
        limit: u32,
    ) -> ListPage {
        let limit = limit.max(1) as usize;
        let mut ids: Vec<String> = ids
            .into_iter()
            .filter(|id| cursor.is_none_or(|c| id.as_str() > c))
            .take(limit + 1)
            .collect();
        let next_cursor = if ids.len() > limit {
            ids.truncate(limit);
            ids.last().cloned()
        } else {
            None
        };
        ListPage { ids, next_cursor }
    }
}

/// Every name under `prefix`, sorted and without duplicates, from a backend that
/// lists in its own order and pages with opaque tokens (AWS does both).
/// `fetch(query, token)` returns one page of names and the next token. The query
/// is narrowed to the provider's `prefix` setting (its grant's scope) when that is
/// more specific, so the provider never asks for names it may not see.
pub fn collect_sorted(
    prefix: &str,
    mut fetch: impl FnMut(&str, Option<&str>) -> Result<(Vec<String>, Option<String>), crate::Error>,
) -> Result<Vec<String>, crate::Error> {
    let scope = crate::config::get("prefix").unwrap_or_default();
    let query = if scope.starts_with(prefix) {
        scope.as_str()
    } else {
        prefix
    };
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let (page, next) = fetch(query, token.as_deref())?;
        names.extend(page.into_iter().filter(|n| n.starts_with(prefix)));
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}
