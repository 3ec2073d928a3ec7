//! Walking a paged listing to its end: the one loop every "list everything"
//! (migration, key rotation, `secret list`) goes through.

use std::future::Future;

use crate::provider::ListPage;

/// Calls `fetch` with each page's cursor (`None` first) and `each` with the
/// page's ids, until a page has no next cursor. A cursor that does not advance
/// ends the walk instead of looping forever on a misbehaving provider.
pub async fn each_page<E, Fut>(
    mut fetch: impl FnMut(Option<String>) -> Fut,
    mut each: impl FnMut(Vec<String>) -> Result<(), E>,
) -> Result<(), E>
where
    Fut: Future<Output = Result<ListPage, E>>,
{
    let mut cursor: Option<String> = None;
    loop {
        let page = fetch(cursor.clone()).await?;
        each(page.ids)?;
        match page.next_cursor {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => return Ok(()),
        }
    }
}

/// Every id of a paged listing, in the order the pages gave them.
pub async fn collect_all<E, Fut>(fetch: impl FnMut(Option<String>) -> Fut) -> Result<Vec<String>, E>
where
    Fut: Future<Output = Result<ListPage, E>>,
{
    let mut ids = Vec::new();
    each_page(fetch, |page| {
        ids.extend(page);
        Ok(())
    })
    .await?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(cursor: Option<String>) -> std::future::Ready<Result<ListPage, String>> {
        let (ids, next) = match cursor.as_deref() {
            None => (vec!["a", "b"], Some("b")),
            Some("b") => (vec!["c"], Some("c")),
            _ => (vec![], None),
        };
        std::future::ready(Ok(ListPage {
            ids: ids.into_iter().map(str::to_owned).collect(),
            next_cursor: next.map(str::to_owned),
        }))
    }

    #[tokio::test]
    async fn walks_every_page() {
        assert_eq!(collect_all(pages).await.unwrap(), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_stuck_cursor_ends_the_walk() {
        let stuck = |_c: Option<String>| {
            std::future::ready(Ok::<_, String>(ListPage {
                ids: vec!["x".into()],
                next_cursor: Some("x".into()),
            }))
        };
        assert_eq!(collect_all(stuck).await.unwrap(), ["x", "x"]);
    }
}
