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

/// One page of a listing of a hierarchical store, walked depth first in id order:
/// a store whose folders list their children, a folder's name ending in `/`
/// (Vault's and OpenBao's metadata LIST, object stores with a delimiter). Ids are
/// `/` followed by the path. `list_dir(dir, after)` lists the folder `dir` (`""`
/// for the root, else ending in `/`) from after the child `after`, returning the
/// children and whether more follow after the last. At most `budget` folder
/// listings are made; a page cut short by the budget ends at its last id (an error
/// if it has none, naming the grant's request limit).
pub fn walk_tree(
    prefix: &str,
    cursor: Option<&str>,
    limit: u32,
    budget: usize,
    list_dir: impl FnMut(&str, Option<&str>) -> Result<(Vec<String>, bool), crate::Error>,
) -> Result<ListPage, crate::Error> {
    let rel = prefix.strip_prefix('/').unwrap_or(prefix);
    let (dir, name) = match rel.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), rel),
    };
    let mut walk = Walk {
        list_dir,
        limit: limit.max(1) as usize,
        ids: Vec::new(),
        budget,
    };
    let after = cursor.map(|c| c.strip_prefix('/').unwrap_or(c));
    let complete = walk.dir(&dir, name, after)?;
    let next_cursor = if complete {
        None
    } else {
        Some(walk.ids.last().cloned().ok_or_else(|| {
            crate::Error::Unavailable(
                "listing needs more requests than one call may send: raise the http grant's \
                 max_requests_per_call"
                    .into(),
            )
        })?)
    };
    Ok(ListPage {
        ids: walk.ids,
        next_cursor,
    })
}

struct Walk<F> {
    list_dir: F,
    limit: usize,
    ids: Vec<String>,
    budget: usize,
}

impl<F> Walk<F>
where
    F: FnMut(&str, Option<&str>) -> Result<(Vec<String>, bool), crate::Error>,
{
    /// Lists `dir`, keeping children starting with `name` that sort after
    /// `after` (a path); false when the page is full or the budget spent.
    fn dir(&mut self, dir: &str, name: &str, after: Option<&str>) -> Result<bool, crate::Error> {
        // What of `after` lies in this folder: children up to it were listed before.
        let rest = after.and_then(|a| a.strip_prefix(dir));
        let mut from = rest.map(|r| r.split_once('/').map_or(r, |(k, _)| k).to_owned());
        loop {
            if self.budget == 0 {
                return Ok(false);
            }
            self.budget -= 1;
            let (mut keys, more) = (self.list_dir)(dir, from.as_deref())?;
            keys.sort();
            for key in &keys {
                if !key.starts_with(name) {
                    continue;
                }
                if key.ends_with('/') {
                    // A folder holding the cursor resumes inside; one wholly
                    // before it is skipped.
                    let inner = rest.filter(|r| r.starts_with(key.as_str()));
                    if inner.is_none() && rest.is_some_and(|r| key.as_str() < r) {
                        continue;
                    }
                    if !self.dir(&format!("{dir}{key}"), "", inner.and(after))? {
                        return Ok(false);
                    }
                } else if rest.is_none_or(|r| key.as_str() > r) {
                    if self.ids.len() == self.limit {
                        return Ok(false);
                    }
                    self.ids.push(format!("/{dir}{key}"));
                }
            }
            match keys.last() {
                Some(last) if more && from.as_deref() != Some(last.as_str()) => {
                    from = Some(last.clone());
                }
                _ => return Ok(true),
            }
        }
    }
}
