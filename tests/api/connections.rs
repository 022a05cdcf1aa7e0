//! The connection layer: slow and partial connections are closed after the header-read
//! timeout while the API keeps answering, idle keep-alive connections live longer than
//! that, the connection cap holds, and a 413 reaches a client that writes its whole
//! body before reading.

use crate::helpers::TestApp;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads until the server closes the connection (EOF or reset), or `limit` passes.
/// Returns what was read and whether the server closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (got, false);
            }
            Err(_) => return (got, true),
        }
    }
}

fn get_request(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n")
}

#[tokio::test]
async fn partial_requests_are_closed_after_the_header_timeout_while_the_api_answers() {
    let mut app = TestApp::spawn_with(&[("APP__SERVER__HEADERREADTIMEOUTMS", "1000")]).await;
    let token = app.token().await;
    let addr = format!("127.0.0.1:{}", app.port);
    let partial: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).unwrap();
            // Half a request line, or a request line and half the headers.
            let part: &[u8] = if i % 2 == 0 {
                b"GET /v1/sho"
            } else {
                b"GET /v1/shows HTTP/1.1\r\nHost: x\r\nX-Slow: "
            };
            s.write_all(part).unwrap();
            s
        })
        .collect();
    // The API answers while they are open.
    assert_eq!(app.get("/v1/shows").await.status(), 200);
    let closed = tokio::task::spawn_blocking(move || {
        partial
            .into_iter()
            .map(|mut s| read_until_closed(&mut s, Duration::from_secs(30)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (i, (_, was_closed)) in closed.iter().enumerate() {
        assert!(was_closed, "partial connection {i} still open after 30 s");
    }
    assert_eq!(app.get("/v1/shows").await.status(), 200);
    drop(token);
}

#[tokio::test]
async fn an_idle_connection_outlives_the_header_timeout_and_is_served() {
    let mut app = TestApp::spawn_with(&[("APP__SERVER__HEADERREADTIMEOUTMS", "300")]).await;
    let token = app.token().await;
    let addr = format!("127.0.0.1:{}", app.port);
    let request = get_request("/v1/health", &token);
    tokio::task::spawn_blocking(move || {
        // A pre-opened connection (as a load balancer keeps), then a keep-alive one
        // between two requests: both idle far past the header timeout, and are served.
        let mut s = TcpStream::connect(&addr).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        for _ in 0..2 {
            s.write_all(request.as_bytes()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            std::thread::sleep(Duration::from_millis(1500));
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(&[("APP__SERVER__IDLETIMEOUTSECONDS", "1")]).await;
    let addr = format!("127.0.0.1:{}", app.port);
    let (_, closed) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        read_until_closed(&mut s, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(closed, "an idle connection was still open after 30 s");
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_waits_for_a_free_one() {
    let mut app = TestApp::spawn_with(&[("APP__SERVER__MAXCONNECTIONS", "3")]).await;
    let token = app.token().await;
    // The token request's connection idles in reqwest's pool: drop the pool, so the
    // server sees it close (the third connection below waits for that, if need be).
    app.client = reqwest::Client::new();
    let addr = format!("127.0.0.1:{}", app.port);
    let request = get_request("/v1/health", &token);
    tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(request.as_bytes()).unwrap();
                let mut buf = [0u8; 1024];
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let n = s.read(&mut buf).unwrap();
                assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
                s
            })
            .collect();
        // A fourth is accepted by the kernel but not served while three are open.
        let mut fourth = TcpStream::connect(&addr).unwrap();
        fourth.write_all(request.as_bytes()).unwrap();
        let (got, _) = read_until_closed(&mut fourth, Duration::from_millis(1500));
        assert!(got.is_empty(), "served past the cap");
        drop(held);
        fourth
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = fourth.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    })
    .await
    .unwrap();
}

/// Python's urllib and requests write the whole body before they read: the 413 must
/// still reach them (the server discards the rest of the body before closing).
#[tokio::test]
async fn a_413_reaches_a_client_that_writes_the_whole_body_first() {
    let mut app = TestApp::spawn_with(&[("APP__SERVER__BODYLIMITBYTES", "65536")]).await;
    let token = app.token().await;
    let addr = format!("127.0.0.1:{}", app.port);
    let status = tokio::task::spawn_blocking(move || {
        // Sent in pieces with pauses, as a real client on a real network would: the
        // server cannot find the whole body already waiting when it answers.
        let chunk = vec![b' '; 1 << 20];
        let chunks = 8;
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST /v1/shows HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            chunk.len() * chunks
        );
        s.write_all(head.as_bytes()).unwrap();
        for _ in 0..chunks {
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(&chunk)
                .expect("the server reset the connection while the body was sent");
        }
        let (got, _) = read_until_closed(&mut s, Duration::from_secs(30));
        String::from_utf8_lossy(&got).into_owned()
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 413"), "{status:?}");
    assert!(status.contains("\"error\""), "{status:?}");
}

/// Before: 20 slow token bodies with `APP__SERVER__MAXCONCURRENCY=20` made an
/// authenticated `GET /v1/shows` answer 503 until they timed out.
#[tokio::test]
async fn slow_token_requests_never_take_the_api_slots() {
    let mut app = TestApp::spawn_with(&[("APP__SERVER__MAXCONCURRENCY", "2")]).await;
    let token = app.token().await;
    let addr = format!("127.0.0.1:{}", app.port);
    let slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(
                b"POST /oauth/token HTTP/1.1\r\nHost: test\r\n\
                  Content-Type: application/x-www-form-urlencoded\r\n\
                  Content-Length: 200\r\n\r\ngrant_type=",
            )
            .unwrap();
            s
        })
        .collect();
    // Give the server time to take them in (not needed for the check to be right: if
    // they were not yet served, the API would answer anyway).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let res = app
            .client
            .get(app.url("/v1/shows"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    drop(slow);
}

/// A form past 16 KiB is refused from its declared length, before it is read.
#[tokio::test]
async fn a_large_token_form_is_refused_from_its_headers() {
    let app = TestApp::spawn().await;
    let addr = format!("127.0.0.1:{}", app.port);
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(
            b"POST /oauth/token HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 4000000\r\n\r\ngrant_type=",
        )
        .unwrap();
        // Nothing more is sent: the answer must come from the headers.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("invalid_request"), "{answer:?}");
}
