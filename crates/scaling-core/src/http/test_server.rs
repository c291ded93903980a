//! A minimal HTTP/1.1 server for the clients' wire tests (`boxapi/wire_tests.rs`,
//! `dam/wire_tests.rs`): one request per connection (`Connection: close`), every request
//! recorded byte for byte, each reply built by the test's handler. Status 0 drops the connection
//! without replying.
//!
//! # Why not the sandbox
//!
//! Tests that need a faithful Box or OTMM (state, conflicts, chunked sessions, faults after the
//! write took effect) run against the sandbox (`http/sandbox_tests.rs`, `tests/e2e`, started by
//! `sandbox::launch`). The wire tests need what the sandbox does not give:
//! - **the request as sent**: every wire test asserts on what the client put on the wire (the
//!   JWT claims and `client_secret` of each token request, the multipart part order and
//!   `Content-MD5`, each part's `Digest` and `Content-Range`, no `Authorization` on a redirected
//!   download, the `X-Requested-By` and cookie headers, form fields of a PATCH, how many
//!   requests of one kind, made with which token); the sandbox keeps per-route counters, not
//!   requests;
//! - **replies the sandbox does not make**, decided per request by the test to pin one client
//!   rule at a time: an `invalid_grant` about `exp` with the server's `Date` an hour ahead (the
//!   client must sign again on the server's clock), upload-session endpoints on another host, a
//!   load-balancer cookie beside `JSESSIONID`, a 401 for one token value only.
//!
//! Where the sandbox's fault rules suffice (statuses, drops, holds, replies lost after the write
//! took effect) the client is tested against the sandbox as well; this server stays minimal:
//! no keep-alive, no chunked bodies, no TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub(crate) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }
    pub(crate) fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// A form field of an urlencoded body (values percent-decoded).
    pub(crate) fn form(&self, name: &str) -> Option<String> {
        self.body_text().split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .replace('+', " ")
            })
        })
    }
}

/// A reply.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Content-Length announced when it differs from the body sent (a body cut off mid-transfer).
    pub announced_len: Option<usize>,
}

impl Reply {
    pub(crate) fn json(status: u16, value: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
            announced_len: None,
        }
    }
    pub(crate) fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            announced_len: None,
        }
    }
    pub(crate) fn bytes(status: u16, body: &[u8]) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            body: body.to_vec(),
            announced_len: None,
        }
    }
    /// Status 200 announcing `announced_len` bytes, sending `body` (shorter) and closing: a body
    /// cut off mid-transfer.
    pub(crate) fn cut_off(announced_len: usize, body: &[u8]) -> Self {
        Self {
            announced_len: Some(announced_len),
            ..Self::bytes(200, body)
        }
    }
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// Drop the connection without answering.
    pub(crate) fn drop_connection() -> Self {
        Self::empty(0)
    }
}

type Handler = dyn Fn(&Recorded, &[Recorded]) -> Reply + Send + Sync;

/// The running server (lives as long as the test process).
pub(crate) struct TestServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl TestServer {
    /// Starts a server; `handler(request, earlier_requests)` builds each reply.
    pub(crate) fn start(
        handler: impl Fn(&Recorded, &[Recorded]) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let requests = shared.clone();
                thread::spawn(move || serve(stream, &*handler, &requests));
            }
        });
        Self { url, requests }
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.method == method && request.path() == path)
            .count()
    }
}

fn serve(stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<Recorded>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let recorded = Recorded {
        method,
        target,
        headers,
        body,
    };
    let reply = {
        let mut all = requests.lock().unwrap();
        let earlier = all.clone();
        all.push(recorded.clone());
        drop(all);
        handler(&recorded, &earlier)
    };
    if reply.status == 0 {
        return;
    }
    let mut stream = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        reply.status,
        reply.announced_len.unwrap_or(reply.body.len())
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
}
