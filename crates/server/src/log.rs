//! `/log/`: the release transparency log's static files (C2SP tlog-tiles), read from the log
//! directory on every request so the log's own appends are what is served.
//!
//! Only `checkpoint` and well-formed tile paths within the tree the current checkpoint covers
//! are served, so temporary files, the lock, and tiles an interrupted append left beyond the
//! checkpoint are never exposed (and tiles can be cached as immutable). The server cannot
//! change what clients accept: they check every file against the pinned keys.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sotto_tlog::tile::{Tile, TileKind, TILE_WIDTH};

fn answer(status: StatusCode, ctype: &'static str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    r
}

fn not_found() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "no-store",
        b"not found\n".to_vec(),
    )
}

/// The tree size the checkpoint file states (its second line); `None` when unreadable.
fn checkpoint_size(checkpoint: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(checkpoint).ok()?;
    text.split('\n').nth(1)?.parse().ok()
}

/// Whether `tile` is part of the tree of `size` leaves.
fn within(tile: &Tile, size: u64) -> bool {
    let level = match tile.kind {
        TileKind::Entries => 0,
        TileKind::Hashes { level } => level,
    };
    let Some(unit) = 1u64.checked_shl(8 * u32::from(level)) else {
        return false;
    };
    let hashes = size / unit;
    let end = tile
        .index
        .checked_mul(TILE_WIDTH)
        .and_then(|s| s.checked_add(u64::from(tile.width)));
    end.is_some_and(|end| end <= hashes && (tile.is_full() || end == hashes))
}

pub(crate) async fn file(
    State(dir): State<Arc<PathBuf>>,
    UrlPath(path): UrlPath<String>,
) -> Response {
    let checkpoint = match tokio::fs::read(dir.join("checkpoint")).await {
        Ok(b) => b,
        Err(_) => return not_found(),
    };
    if path == "checkpoint" {
        return answer(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "no-cache, max-age=5",
            checkpoint,
        );
    }
    let Ok(tile) = Tile::parse_path(&path) else {
        return not_found();
    };
    let Some(size) = checkpoint_size(&checkpoint) else {
        return not_found();
    };
    if !within(&tile, size) {
        return not_found();
    }
    match tokio::fs::read(dir.join(tile.path())).await {
        Ok(body) => answer(
            StatusCode::OK,
            "application/octet-stream",
            "public, max-age=31536000, immutable",
            body,
        ),
        Err(_) => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tiles_of_the_checkpointed_tree_are_served() {
        let t = |kind, index, width| Tile { kind, index, width };
        let e = TileKind::Entries;
        let h = |level| TileKind::Hashes { level };
        assert!(within(&t(e, 0, 5), 5));
        assert!(!within(&t(e, 0, 6), 5));
        assert!(!within(&t(e, 0, 4), 5));
        assert!(within(&t(e, 0, 256), 300));
        assert!(within(&t(e, 1, 44), 300));
        assert!(within(&t(h(1), 0, 1), 300));
        assert!(!within(&t(h(1), 0, 2), 300));
        assert!(!within(&t(h(2), 0, 1), 300));
        assert_eq!(checkpoint_size(b"o\n12\nxx\n\nsig\n"), Some(12));
        assert_eq!(checkpoint_size(b"garbage"), None);
    }
}
