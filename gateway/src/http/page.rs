//! The live seat-map page: three files built into the binary, served at `/` and `/assets/`.

use axum::response::IntoResponse;
use http::{header, HeaderValue};

const INDEX_HTML: &str = include_str!("page/index.html");
const SEATMAP_JS: &str = include_str!("page/seatmap.js");
const SEATMAP_CSS: &str = include_str!("page/seatmap.css");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The files change with the binary: a browser asks again (cheaply) after an upgrade.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
}

pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route(
            "/assets/seatmap.js",
            axum::routing::get(|| async { asset("text/javascript; charset=utf-8", SEATMAP_JS) }),
        )
        .route("/assets/seatmap.css", axum::routing::get(|| async { asset("text/css; charset=utf-8", SEATMAP_CSS) }))
}
