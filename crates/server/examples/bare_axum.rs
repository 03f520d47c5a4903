//! The HTTP stack alone, as a baseline for throughput measurements: axum on the same
//! runtime and HTTP settings Keyhold uses, answering every POST with a fixed body of
//! `BODY_BYTES` bytes (default 180, about a KMS Decrypt response). `scripts/bench-wrk.sh`
//! measures it beside Keyhold in one run.
//!
//!   cargo run --release -p keyhold-server --example bare_axum -- 127.0.0.1:4597

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4597".into());
    let size: usize = std::env::var("BODY_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(180);
    let body: &'static str =
        Box::leak(format!("{{\"x\":\"{}\"}}", "a".repeat(size.saturating_sub(8))).into_boxed_str());
    let app = Router::new().route(
        "/",
        post(move || async move {
            ([(header::CONTENT_TYPE, "application/x-amz-json-1.1")], body).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
