//! The root span of every request: method, path (never the query string,
//! which may hold a token), request id, and the client and `jti` once known;
//! one "request" event when it ends, carrying the status and latency.
//!
//! The status and latency are fields of that event rather than of the span:
//! recording a span field makes the subscriber format the span's fields
//! again, a cost paid on every request for a value only the last line shows.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;

use super::request_id::{RequestId, Started};

/// The target of the request lines, which the text log writes by a short
/// path of its own (`telemetry::TextLines`).
pub const TARGET: &str = module_path!();

pub struct RootSpan;

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let extensions = request.extensions();
        let id = extensions.get::<RequestId>().map_or("", |r| r.0.as_str());
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %id,
            client_id = Empty,
            jti = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        match outcome {
            Ok(res) => {
                let status = res.status().as_u16();
                // Whole microseconds: a float costs more to print than the
                // rest of the line's numbers.
                let latency_us = res.request().extensions().get::<Started>().map(|started| {
                    u64::try_from(started.0.elapsed().as_micros()).unwrap_or(u64::MAX)
                });
                if res.status().is_server_error() {
                    tracing::warn!(parent: &span, status, latency_us, "request failed");
                } else {
                    tracing::info!(parent: &span, status, latency_us, "request");
                }
            }
            Err(e) => {
                let status = e.as_response_error().status_code().as_u16();
                tracing::warn!(parent: &span, status, error = %e, "request failed");
            }
        }
    }
}
