//! Proxying a session request to an upstream workbook: the actix side of
//! [`crate::content::upstream`]. Bodies stream both ways (nothing is
//! buffered whole), every proxied request carries a signed
//! `X-Embedgate-Assertion`, and the gateway's own caching and framing
//! headers are set on the answer.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use crate::content::assertion::AssertionInput;
use crate::content::upstream::{
    connection_listed, forward_request_header, forward_response_header, rewrite_location,
};
use crate::embed::{Authorized, EmbedQuery, denial};
use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;
use crate::session::cookie_path;

use super::client_ip::client_addr;

pub const ASSERTION_HEADER: &str = "x-embedgate-assertion";

fn unavailable(gw: &Gateway, kind: &'static str) -> Problem {
    gw.metrics.upstream_error(kind);
    Problem::new(
        ErrorCode::UpstreamUnavailable,
        "The workbook's server refused or dropped the connection. Try again in a moment.",
    )
}

fn timed_out(gw: &Gateway) -> Problem {
    gw.metrics.upstream_error("timeout");
    Problem::new(
        ErrorCode::UpstreamTimeout,
        "The workbook's server did not answer in time. Try again in a moment.",
    )
}

fn too_large(max: u64) -> Problem {
    Problem::new(
        ErrorCode::PayloadTooLarge,
        format!("The request body is larger than the gateway's limit of {max} bytes."),
    )
}

/// Does the request carry a body to stream?
fn has_body(req: &HttpRequest) -> bool {
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    length.is_some_and(|l| l > 0) || req.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Streams the browser's body into a channel the (Send) upstream client can
/// read, stopping at `max` bytes.
fn stream_body(mut payload: web::Payload, max: u64) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(8);
    actix_web::rt::spawn(async move {
        let mut seen: u64 = 0;
        while let Some(chunk) = payload.next().await {
            let item = match chunk {
                Ok(bytes) => {
                    seen += bytes.len() as u64;
                    if seen > max {
                        let _ = tx
                            .send(Err(std::io::Error::other(
                                "request body over the gateway's limit",
                            )))
                            .await;
                        break;
                    }
                    Ok(bytes)
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    reqwest::Body::wrap_stream(stream)
}

pub async fn forward(
    req: &HttpRequest,
    payload: web::Payload,
    gw: &Gateway,
    auth: &Authorized,
    base: &str,
    sub_path: &str,
    query: &EmbedQuery,
) -> Result<HttpResponse, Problem> {
    let method = req.method();
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !reads
        && !auth
            .decision
            .permissions
            .contains(crate::domain::Permission::Explore)
    {
        return Err(denial(ErrorCode::AccessDenied));
    }
    let upstream = &gw.upstream;
    let target = upstream
        .target(base, sub_path, &query.without_token)
        .map_err(Problem::not_found)?;
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > upstream.max_request_body
    {
        return Err(too_large(upstream.max_request_body));
    }

    let user = &auth.session.user;
    let tag = query.tag.as_deref();
    let assertion = gw
        .assertions
        .assertion(
            &gw.keys.assertion,
            &AssertionInput {
                user,
                team_names: &auth.team_names,
                workbook: &auth.workbook.id,
                tag,
                permissions: auth.decision.permissions,
            },
            gw.now(),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "signing an assertion failed");
            Problem::internal()
        })?;

    let reqwest_method = reqwest::Method::from_bytes(method.as_str().as_bytes())
        .map_err(|_| Problem::validation("unsupported method"))?;
    let client = upstream.client().map_err(|e| {
        tracing::error!(error = %e, "building the upstream client failed");
        Problem::internal()
    })?;
    let mut out = client.request(reqwest_method, target);
    let connection = connection_listed(
        req.headers()
            .get_all(header::CONNECTION)
            .filter_map(|v| v.to_str().ok()),
    );
    for (name, value) in req.headers() {
        if forward_request_header(name.as_str(), &connection) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    out = out
        .header(
            "x-forwarded-for",
            client_addr(req, &gw.config.limits.trusted_proxies).to_string(),
        )
        .header("x-forwarded-proto", &upstream.forwarded_proto)
        .header("x-forwarded-host", &upstream.forwarded_host)
        .header(ASSERTION_HEADER, &*assertion);
    if has_body(req) {
        out = out.body(stream_body(payload, upstream.max_request_body));
    }

    let response = match tokio::time::timeout(upstream.timeout, out.send()).await {
        Err(_) => return Err(timed_out(gw)),
        Ok(Err(e)) if e.is_timeout() => return Err(timed_out(gw)),
        Ok(Err(e)) if e.is_body() || e.is_request() && e.to_string().contains("limit") => {
            return Err(too_large(upstream.max_request_body));
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream request failed");
            return Err(unavailable(
                gw,
                if e.is_connect() { "connect" } else { "request" },
            ));
        }
        Ok(Ok(r)) => r,
    };

    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    let upstream_connection = connection_listed(
        response
            .headers()
            .get_all(reqwest::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let workbook_path = cookie_path(&auth.workbook.id);
    for (name, value) in response.headers() {
        if !forward_response_header(name.as_str(), &upstream_connection) {
            continue;
        }
        if name == reqwest::header::LOCATION
            && let Ok(location) = value.to_str()
        {
            builder.insert_header((
                header::LOCATION,
                rewrite_location(location, base, &workbook_path),
            ));
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            builder.append_header((name.as_str(), v));
        }
    }
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    builder.append_header((
        header::CONTENT_SECURITY_POLICY,
        auth.session.client.csp.clone(),
    ));
    if method == Method::HEAD {
        return Ok(builder.finish());
    }
    if let Some(len) = response.content_length() {
        builder.no_chunking(len);
    }
    let stream = response.bytes_stream().map(|chunk| {
        chunk.map_err(|e| {
            tracing::warn!(error = %e, "upstream body ended early");
            std::io::Error::other(e.to_string())
        })
    });
    Ok(builder.streaming(stream))
}
