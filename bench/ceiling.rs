//! The ceiling for `bench/run.sh`: the smallest axum server that answers every GET with
//! fixed bytes, on the same runtime shape as the service (tokio multi-thread, one worker
//! per core). `bench/run.sh` first fetches the service's real response and hands the body
//! to this server, so both send the same bytes; the ratio of the two is what the service's
//! own work (auth, middleware, logging, cache lookup) costs.
//!
//! ```text
//! cargo run --release --example ceiling -- --port P --body FILE
//!     [--content-encoding gzip] [--status 304] [--header 'name: value']…
//! ```
//!
//! `--header` adds a response header (repeatable): `bench/run.sh` passes the service's own
//! response headers (all but `date` and `content-length`, which hyper writes), so the load
//! generator reads the same bytes from both servers, headers included.
//!
//! No routing beyond a fallback, no middleware, no logging. Not part of the service's build
//! (`cargo build` builds no examples).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench tool: a panic is a failed run

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};

struct Args {
    port: u16,
    body: Bytes,
    encoding: Option<HeaderValue>,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
}

fn args() -> Args {
    let mut port = None;
    let mut body = Bytes::new();
    let mut encoding = None;
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
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
            "--header" => {
                let line = value();
                let (name, v) = line.split_once(':').expect("--header 'name: value'");
                headers.push((
                    HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
                    HeaderValue::from_str(v.trim()).expect("header value"),
                ));
            }
            other => panic!("unknown argument {other}"),
        }
    }
    Args {
        port: port.expect("--port is required"),
        body,
        encoding,
        status,
        headers,
    }
}

fn main() {
    let Args {
        port,
        body,
        encoding,
        status,
        headers,
    } = args();
    let headers = std::sync::Arc::new(headers);
    let handler = move || {
        let body = body.clone();
        let encoding = encoding.clone();
        let headers = headers.clone();
        async move {
            let mut res = Response::builder().status(status);
            if status != StatusCode::NOT_MODIFIED {
                res = res.header(header::CONTENT_TYPE, "application/json");
            }
            if let Some(e) = encoding {
                res = res.header(header::CONTENT_ENCODING, e);
            }
            for (name, value) in headers.iter() {
                res = res.header(name, value);
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
