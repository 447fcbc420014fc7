//! Rendering a [`Problem`] as a response: the JSON body of the contract, or
//! the HTML error page (`templates/error.html`) that reads well inside an
//! iframe.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use minijinja::context;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;

pub fn status_of(p: &Problem) -> StatusCode {
    StatusCode::from_u16(p.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn base(p: &Problem) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(status_of(p));
    if let Some(wait) = p.retry_after {
        builder.insert_header((header::RETRY_AFTER, wait.to_string()));
    }
    builder
}

/// The JSON error body of the contract: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "validation_failed", "message": "name must be 1 to 100 characters long"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a code of the contract (SPEC §11) and a message saying
/// what to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// E.g. `validation_failed`, `unauthorized`, `not_found`, `conflict`.
    #[schema(value_type = String, example = "not_found")]
    pub code: ErrorCode,
    pub message: String,
}

impl From<&Problem> for ErrorBody {
    fn from(p: &Problem) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: p.code,
                message: p.message.clone(),
            },
        }
    }
}

/// `{"error": {"code": …, "message": …}}`
pub fn json(p: &Problem) -> HttpResponse {
    base(p).json(ErrorBody::from(p))
}

pub fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

/// JSON when the request accepts it, else the HTML error page.
pub fn negotiated(req: &HttpRequest, gw: &Gateway, p: &Problem) -> HttpResponse {
    if wants_json(req) {
        return json(p);
    }
    let html = gw.content.render_page(
        "error.html",
        context! {
            status => p.status(),
            code => p.code.as_str(),
            title => p.code.title(),
            message => &p.message,
        },
    );
    match html {
        Ok(body) => base(p)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "rendering error.html failed");
            base(p)
                .insert_header((
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ))
                .body(format!("{}: {}", p.code, p.message))
        }
    }
}
