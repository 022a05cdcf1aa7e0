//! The ceiling for `bench/run.sh`: the smallest axum server that answers every GET with
//! fixed bytes, on the same runtime shape as the service (tokio multi-thread, one worker
//! per core). `bench/run.sh` first fetches the service's real response and hands the body
//! to this server, so both send the same bytes; the ratio of the two is what the service's
//! own work (auth, middleware, logging, cache lookup) costs.
//!
//! ```text
//! cargo run --release --example ceiling -- --port P --body FILE
//!     [--content-encoding gzip] [--status 304]
//! ```
//!
//! No routing beyond a fallback, no middleware, no logging. Not part of the service's build
//! (`cargo build` builds no examples).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench tool: a panic is a failed run

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Response, StatusCode, header};

struct Args {
    port: u16,
    body: Bytes,
    encoding: Option<HeaderValue>,
    status: StatusCode,
}

fn args() -> Args {
    let mut port = None;
    let mut body = Bytes::new();
    let mut encoding = None;
    let mut status = StatusCode::OK;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--port" => port = Some(value().parse().expect("--port")),
            "--body" => body = Bytes::from(std::fs::read(value()).expect("--body FILE")),
            "--content-encoding" => {
                encoding = Some(HeaderValue::from_str(&value()).expect("--content-encoding"))
            }
            "--status" => {
                status = StatusCode::from_u16(value().parse().expect("--status")).expect("status")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    Args {
        port: port.expect("--port is required"),
        body,
        encoding,
        status,
    }
}

fn main() {
    let Args {
        port,
        body,
        encoding,
        status,
    } = args();
    let handler = move || {
        let body = body.clone();
        let encoding = encoding.clone();
        async move {
            let mut res = Response::builder().status(status);
            if status != StatusCode::NOT_MODIFIED {
                res = res.header(header::CONTENT_TYPE, "application/json");
            }
            if let Some(e) = encoding {
                res = res.header(header::CONTENT_ENCODING, e);
            }
            res.body(Body::from(body)).unwrap()
        }
    };
    let app = Router::new().fallback(handler);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
}
