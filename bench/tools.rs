//! Small measuring tools for `bench/run.sh` (and `bench/profile.sh`), one binary with
//! subcommands, each printing one line of JSON:
//!
//! - `startup --port P --runs N -- CMD ARGS…`: exec CMD (the service, with the caller's
//!   environment) N times; each time, poll `GET /health` on 127.0.0.1:P until it answers
//!   200 and record the time from just before `spawn` to that answer; then SIGTERM and
//!   wait. Also reports the cost of one probe against the running server (`probe_us`), the
//!   poller's own share of each figure.
//! - `hammer --port P --path PATH --n N --conns C [--header 'K: V']… [--expect 200]`: N
//!   requests over C keep-alive connections, each answer read whole (Content-Length): a
//!   count-bounded load for profiling (wrk is time-bounded).
//! - `auth-cost [--n N]`: RS256 verification through the service's `Verifier`, cold (every
//!   token new: RSA) and warm (the verified-token cache), and signing, in µs.
//! - `fill-cost (--db SQLITE_FILE | --body FILE) [--runs N]`: the cost of one cache fill,
//!   which the service pays once per fill (at most once per TTL), never per request: with
//!   `--db`, the store query and the serialization of the catalogue, then (both forms) the
//!   gzip variant + ETag.
//! - `putitem --endpoint URL --table NAME --feed FILE`: the Go service's way of storing a
//!   feed, one sequential `PutItem` per show, on a new table of a DynamoDB emulator: the
//!   baseline the batched writer is compared with.
//! - `delay-proxy --listen P --upstream HOST:PORT --rtt-ms MS`: a TCP relay on 127.0.0.1:P
//!   that delivers every byte, both ways, half a round trip after it arrived (a fixed
//!   network latency, no bandwidth limit): the emulator as if it were across a network,
//!   where each store call costs a round trip. Prints one line when listening; runs until
//!   killed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench tool: a panic is a failed run

use serde_json::json;
use show_service::auth::claims::ClaimRules;
use show_service::auth::jwks::{KeySet, KeyStore};
use show_service::auth::keys::SigningKey;
use show_service::auth::verifier::{Verifier, unix_now};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: bench_tools startup|hammer|auth-cost|fill-cost|putitem …");
        std::process::exit(2);
    }
    let cmd = args.remove(0);
    match cmd.as_str() {
        "startup" => startup(&args),
        "hammer" => hammer(&args),
        "auth-cost" => auth_cost(&args),
        "fill-cost" => fill_cost(&args),
        "putitem" => putitem(&args),
        "delay-proxy" => delay_proxy(&args),
        other => panic!("unknown subcommand {other}"),
    }
}

/// The value after `--name`, if given.
fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).map(|i| {
        args.get(i + 1)
            .cloned()
            .unwrap_or_else(|| panic!("{name} needs a value"))
    })
}

fn opts(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// One `GET /health` over a new connection; true on a 200.
fn probe(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_nodelay(true);
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

fn startup(args: &[String]) {
    let port: u16 = opt(args, "--port").expect("--port").parse().unwrap();
    let runs: usize = opt(args, "--runs").map_or(20, |v| v.parse().unwrap());
    let sep = args.iter().position(|a| a == "--").expect("-- CMD");
    let (prog, prog_args) = args[sep + 1..].split_first().expect("a command after --");
    let poll = Duration::from_micros(200);
    let mut samples = Vec::with_capacity(runs);
    let mut probe_costs = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = Command::new(prog)
            .args(prog_args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        loop {
            if probe(port) {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the service exited before it was healthy: {status}");
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("not healthy within 20 s");
            }
            std::thread::sleep(poll);
        }
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        for _ in 0..5 {
            let t = Instant::now();
            assert!(probe(port));
            probe_costs.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    samples.sort_by(f64::total_cmp);
    probe_costs.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "runs": runs,
            "median_ms": percentile(&samples, 0.5),
            "p10_ms": percentile(&samples, 0.1),
            "p90_ms": percentile(&samples, 0.9),
            "min_ms": samples[0],
            "max_ms": samples[samples.len() - 1],
            "probe_us": percentile(&probe_costs, 0.5),
            "poll_interval_us": poll.as_micros() as u64,
        })
    );
}

/// Reads one HTTP/1.1 response (Content-Length bodies only); returns its status.
fn read_response(r: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> u16 {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().expect("content-length");
        }
    }
    body.resize(len, 0);
    r.read_exact(body).expect("body");
    status
}

fn hammer(args: &[String]) {
    let port: u16 = opt(args, "--port").expect("--port").parse().unwrap();
    let path = opt(args, "--path").unwrap_or_else(|| "/v1/shows".into());
    let n: usize = opt(args, "--n").map_or(1000, |v| v.parse().unwrap());
    let conns: usize = opt(args, "--conns").map_or(4, |v| v.parse().unwrap());
    let expect: u16 = opt(args, "--expect").map_or(200, |v| v.parse().unwrap());
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    for h in opts(args, "--header") {
        request.push_str(&h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let request = Arc::new(request.into_bytes());
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let request = request.clone();
            let share = n / conns + usize::from(c < n % conns);
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream.set_nodelay(true).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::with_capacity(64 * 1024, stream);
                let mut body = Vec::new();
                for _ in 0..share {
                    writer.write_all(&request).expect("send");
                    let status = read_response(&mut reader, &mut body);
                    assert_eq!(status, expect, "unexpected status");
                }
                body.len()
            })
        })
        .collect();
    let mut body_bytes = 0;
    for t in threads {
        body_bytes = t.join().expect("a connection failed");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"requests": n, "seconds": secs, "rps": n as f64 / secs, "body_bytes": body_bytes})
    );
}

fn auth_cost(args: &[String]) {
    let n: u32 = opt(args, "--n").map_or(2000, |v| v.parse().unwrap());
    let key = SigningKey::generate().unwrap();
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let store = KeyStore::fixed(KeySet::from_json(jwks.as_bytes()).unwrap());
    let issuer = "https://issuer.bench";
    let rules = ClaimRules {
        issuer: issuer.into(),
        audience: vec!["bench-client".into()],
        leeway: 30,
    };
    let verifier = Verifier::new(Arc::new(store), rules);
    let now = unix_now();
    let claims = |i: u32| {
        json!({
            "sub": "bench-client", "client_id": "bench-client", "token_use": "access",
            "scope": "https://show-service-local.api/shows.read https://show-service-local.api/shows.write",
            "iss": issuer, "iat": now, "exp": now + 3600, "jti": i.to_string(), "version": 2,
            "auth_time": now,
        })
    };
    let t = Instant::now();
    let tokens: Vec<String> = (0..n).map(|i| key.sign(&claims(i)).unwrap()).collect();
    let sign = t.elapsed() / n;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (cold, warm) = rt.block_on(async {
        let t = Instant::now();
        for tok in &tokens {
            verifier.verify_at(tok, now).await.unwrap();
        }
        let cold = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..5 {
            for tok in &tokens {
                verifier.verify_at(tok, now).await.unwrap();
            }
        }
        (cold, t.elapsed() / (5 * n))
    });
    println!(
        "{}",
        json!({
            "tokens": n,
            "verify_cold_us": cold.as_secs_f64() * 1e6,
            "verify_warm_us": warm.as_secs_f64() * 1e6,
            "sign_us": sign.as_secs_f64() * 1e6,
            "token_bytes": tokens[0].len(),
        })
    );
}

fn fill_cost(args: &[String]) {
    use show_service::store::{PageRequest, ShowStore};
    let runs: u32 = opt(args, "--runs").map_or(10, |v| v.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // With --db: the whole fill (store query, serialization, gzip + ETag), each part timed.
    let (mut query, mut serialize) = (Duration::ZERO, Duration::ZERO);
    let body = match opt(args, "--db") {
        Some(db) => {
            let store =
                show_service::store::sqlite::SqliteStore::open(std::path::Path::new(&db)).unwrap();
            let mut body = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                let page = rt
                    .block_on(store.list_eligible(PageRequest::default()))
                    .unwrap();
                query += t.elapsed();
                let t = Instant::now();
                body = serde_json::to_vec(&show_service::http::shows::ListResponse {
                    response: page.items,
                    next: None,
                })
                .unwrap();
                serialize += t.elapsed();
            }
            body
        }
        None => std::fs::read(opt(args, "--body").expect("--body FILE or --db FILE")).unwrap(),
    };
    let body = bytes::Bytes::from(body);
    let t = Instant::now();
    let mut gz = 0;
    for _ in 0..runs {
        // What a fill adds to the serialized body: the gzip variant and the ETag.
        gz = show_service::catalogue::gzip_of(&body).map_or(0, |b| b.len());
        std::hint::black_box(show_service::catalogue::etag_of(&body));
    }
    let per = t.elapsed() / runs;
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(runs);
    println!(
        "{}",
        json!({"json_bytes": body.len(), "gzip_bytes": gz, "fill_work_ms": per.as_secs_f64() * 1e3,
               "query_ms": ms(query), "serialize_ms": ms(serialize)})
    );
}

fn putitem(args: &[String]) {
    use show_service::store::dynamodb::{DynamoStore, item};
    let settings = show_service::config::DynamoSettings {
        region: None,
        endpoint_override: Some(opt(args, "--endpoint").expect("--endpoint URL")),
        table: opt(args, "--table").expect("--table NAME"),
        gsi: show_service::store::layout::GSI_NAME.to_string(),
        write_concurrency: 1,
        write_deadline: Duration::from_secs(60),
        call_timeout: Duration::from_secs(10),
    };
    let body = std::fs::read(opt(args, "--feed").expect("--feed FILE")).unwrap();
    let shows = show_service::domain::Feed::parse(&body).unwrap().shows;
    let items: Vec<_> = shows.iter().map(item::to_item).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let took = rt.block_on(async {
        let store = DynamoStore::connect(&settings).await.unwrap();
        store.ensure_table(Duration::from_secs(10)).await.unwrap();
        let started = Instant::now();
        for item in &items {
            store
                .client()
                .put_item()
                .table_name(store.table())
                .set_item(Some(item.clone()))
                .send()
                .await
                .unwrap();
        }
        started.elapsed()
    });
    println!(
        "{}",
        json!({"shows": items.len(), "put_item_calls": items.len(), "ms": took.as_secs_f64() * 1e3})
    );
}

fn delay_proxy(args: &[String]) {
    let listen: u16 = opt(args, "--listen")
        .expect("--listen PORT")
        .parse()
        .unwrap();
    let upstream = opt(args, "--upstream").expect("--upstream HOST:PORT");
    let rtt_ms: f64 = opt(args, "--rtt-ms").expect("--rtt-ms MS").parse().unwrap();
    let one_way = Duration::from_secs_f64(rtt_ms / 2e3);
    let listener = std::net::TcpListener::bind(("127.0.0.1", listen)).unwrap();
    println!(
        "{}",
        json!({"listening": listen, "upstream": upstream, "rtt_ms": rtt_ms})
    );
    // Threads and the OS's sleep, not an async timer: tokio's timer has a 1 ms grain,
    // which would round each one-way delay up by as much again.
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(&upstream) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        for (from, to) in [
            (client.try_clone().unwrap(), server.try_clone().unwrap()),
            (server, client),
        ] {
            relay(from, to, one_way);
        }
    }
}

/// One direction of the delay proxy: a reader stamps each chunk on arrival, a writer sends
/// it on at arrival + `delay`. Chunks keep their order and don't add up their delays (a
/// pipe with latency, not a pause per chunk).
fn relay(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
