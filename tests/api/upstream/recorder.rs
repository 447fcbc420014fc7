//! A fake upstream workbook server that records every request it gets
//! (method, path and query, headers, body) and answers by path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, exactly as received.
    pub path: String,
    /// Header names lower-case, every value (repeated names repeated).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name` (panics when absent or repeated).
    pub fn header(&self, name: &str) -> &str {
        let values = self.header_values(name);
        assert_eq!(
            values.len(),
            1,
            "expected one {name} header, got {values:?} in {self:?}"
        );
        values[0]
    }

    pub fn has_header(&self, name: &str) -> bool {
        !self.header_values(name).is_empty()
    }

    /// Everything the upstream got, as text, for "does X appear anywhere".
    pub fn all_text(&self) -> String {
        let mut s = format!("{} {}\n", self.method, self.path);
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\n"));
        }
        s.push_str(&String::from_utf8_lossy(&self.body));
        s
    }
}

/// The running fake upstream.
pub struct Recorder {
    pub port: u16,
    log: Arc<Mutex<Vec<Recorded>>>,
    handle: ServerHandle,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // The stop command is sent at once; nobody waits for it.
        drop(self.handle.stop(false));
    }
}

static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
/// Bodies above this size are counted, not kept.
const KEEP_BODY_MAX: usize = 32 * 1024 * 1024;

struct State {
    port: u16,
    log: Arc<Mutex<Vec<Recorded>>>,
}

fn page(text: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><body><p>upstream page {text}</p></body></html>"
        ))
}

fn query_param<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.query_string()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn handle(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else { break };
        if body.len() + chunk.len() <= KEEP_BODY_MAX {
            body.extend_from_slice(&chunk);
        }
    }
    let path = req.path().to_owned();
    let recorded = Recorded {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned()),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    };
    state.log.lock().unwrap().push(recorded);

    let port = state.port;
    match path.as_str() {
        "/app/echo" => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(body),
        "/app/cookie" => HttpResponse::Ok()
            .content_type("text/html")
            .insert_header(("Set-Cookie", "up=1"))
            .insert_header(("Cache-Control", "public, max-age=600"))
            .insert_header(("Referrer-Policy", "unsafe-url"))
            .body("cookie page"),
        "/app/redirect" => HttpResponse::Found()
            .insert_header(("Location", format!("http://127.0.0.1:{port}/app/next")))
            .finish(),
        "/app/away" => HttpResponse::Found()
            .insert_header(("Location", "https://elsewhere.example/"))
            .finish(),
        "/app/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            page("slow")
        }
        "/app/big" => {
            let mb: u64 = query_param(&req, "mb")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let chunks = mb * 16;
            let stream = futures_util::stream::iter(
                (0..chunks).map(|_| Ok::<_, actix_web::Error>(Bytes::from_static(&CHUNK))),
            );
            HttpResponse::Ok()
                .content_type("application/octet-stream")
                .streaming(stream)
        }
        "/app/hop" => HttpResponse::Ok()
            .content_type("text/html")
            .insert_header(("Connection", "close, X-Up-Private"))
            .insert_header(("X-Up-Private", "1"))
            .insert_header(("Keep-Alive", "timeout=5"))
            .insert_header(("X-Up-Public", "1"))
            .body("hop page"),
        p if p.starts_with("/app/status/") => {
            let code = p["/app/status/".len()..].parse().unwrap_or(500);
            HttpResponse::build(StatusCode::from_u16(code).unwrap())
                .content_type("text/plain")
                .body(format!("status {code}"))
        }
        p if p == "/app" || p.starts_with("/app/") => page(p),
        p if p == "/v2app" || p.starts_with("/v2app/") => page(&format!("v2 {p}")),
        _ => HttpResponse::NotFound().body("no such upstream path"),
    }
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(State {
                    port,
                    log: shared.clone(),
                }))
                .default_service(web::to(handle))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Recorder { port, log, handle }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// The last request received (panics when none).
    pub fn last(&self) -> Recorded {
        self.requests()
            .last()
            .cloned()
            .expect("the upstream received no request")
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

/// A bare TCP upstream that answers every request with the same bytes, so
/// that response headers arrive exactly as written (actix-web would rewrite
/// a `Connection` header), and records each request head.
pub struct RawUpstream {
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    pub fn start(response: String) -> RawUpstream {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let log = heads.clone();
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = stream.write_all(response.as_bytes());
                let _ = stream.flush();
            }
        });
        RawUpstream { port, heads }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}
