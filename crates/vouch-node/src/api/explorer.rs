//! `/explorer/`: the web explorer, a page and a script embedded in the binary. It reads the same JSON endpoints as
//! every other client and loads nothing from outside the node (its Content-Security-Policy allows this origin only).

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("explorer/index.html");
const APP: &str = include_str!("explorer/app.js");
const STYLE: &str = include_str!("explorer/style.css");

/// Same origin only: no inline script, no third-party anything. `data:` images are the charts' only need.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /explorer/`.
pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /explorer`: to the page, whose relative asset paths need the trailing slash.
pub(super) async fn redirect() -> Redirect {
    Redirect::permanent("/explorer/")
}

/// `GET /explorer/app.js`.
pub(super) async fn app() -> Response {
    asset("text/javascript; charset=utf-8", APP)
}

/// `GET /explorer/style.css`.
pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
