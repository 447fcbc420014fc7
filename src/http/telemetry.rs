//! The root span of every request: method, path (never the query string,
//! which may hold a token), request id, and the client, workbook and `jti`
//! once known; one "request" event when it ends.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;

use super::request_id::{RequestId, Started};

pub struct RootSpan;

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %id,
            status = Empty,
            client_id = Empty,
            jti = Empty,
            latency_ms = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        match outcome {
            Ok(res) => {
                span.record("status", res.status().as_u16());
                if let Some(started) = res.request().extensions().get::<Started>() {
                    span.record("latency_ms", started.0.elapsed().as_secs_f64() * 1000.0);
                }
                if res.status().is_server_error() {
                    tracing::warn!(parent: &span, "request failed");
                } else {
                    tracing::info!(parent: &span, "request");
                }
            }
            Err(e) => {
                span.record("status", e.as_response_error().status_code().as_u16());
                tracing::warn!(parent: &span, error = %e, "request failed");
            }
        }
    }
}
