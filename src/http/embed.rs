//! `/embed/workbooks/{workbook_id}[/{sub_path}]`: the handshake when the
//! request carries a token, else a session request served from the
//! workbook's source.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use super::client_ip::client_addr;
use super::cookie_headers;
use super::problem;
use super::request_id::RequestId;
use crate::audit::Origin;
use crate::content::{Page, TemplateUser, directory};
use crate::domain::WorkbookSource;
use crate::embed::{self, Authorized, EmbedQuery, HandshakeRequest, TokenParam};
use crate::error::{ErrorCode, Problem};
use crate::gateway::Gateway;
use crate::metrics::RequestKind;

/// `/embed/workbooks/{workbook_id}[/{sub_path}]`, and anything else under
/// `/embed/workbooks`.
///
/// The path is split here rather than by two routes with `{workbook_id}`
/// and `{sub_path:.*}` patterns: actix-web matches dynamic patterns with a
/// regular expression, which cost about 4 % of a session request's CPU. The
/// result is the same: the id is the first segment, non-empty, decoded the
/// way `web::Path` decodes a segment.
pub async fn workbook(
    req: HttpRequest,
    payload: web::Payload,
    gw: web::Data<Gateway>,
) -> HttpResponse {
    match split_path(req.path()) {
        Some((id, sub_path)) => serve(req.clone(), &id, sub_path, payload, gw).await,
        None => not_found(req, gw).await,
    }
}

/// `/embed/workbooks/{id}[/{sub_path}]` split: the id is the first segment,
/// percent-decoded (invalid UTF-8 replaced) as `web::Path` decodes one; the
/// sub-path is what follows it and its slash, exactly as the browser sent
/// it (still percent-encoded). `None` without a non-empty id.
fn split_path(path: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    let rest = path.strip_prefix("/embed/workbooks/")?;
    let (segment, sub_path) = rest.split_once('/').unwrap_or((rest, ""));
    if segment.is_empty() {
        return None;
    }
    let id = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    Some((id, sub_path))
}

/// Anything else under `/embed/`.
pub async fn not_found(req: HttpRequest, gw: web::Data<Gateway>) -> HttpResponse {
    problem::negotiated(
        &req,
        &gw,
        &Problem::not_found("There is nothing at this embed address."),
    )
}

async fn serve(
    req: HttpRequest,
    workbook: &str,
    sub_path: &str,
    payload: web::Payload,
    gw: web::Data<Gateway>,
) -> HttpResponse {
    let query = EmbedQuery::parse(req.query_string());
    if query.token != TokenParam::None {
        req.extensions_mut().insert(RequestKind::Handshake);
        return handshake(&req, workbook, &query, &gw).await;
    }
    let cookies: Vec<&str> = cookie_headers(&req).collect();
    match embed::authorize_session(&gw, &cookies, workbook, query.tag.as_deref()).await {
        Ok(auth) => content(&req, payload, &gw, &auth, sub_path, &query).await,
        Err(p) => problem::negotiated(&req, &gw, &p),
    }
}

async fn handshake(
    req: &HttpRequest,
    workbook: &str,
    query: &EmbedQuery,
    gw: &Gateway,
) -> HttpResponse {
    let remote = client_addr(req, &gw.config.limits.trusted_proxies);
    let origin = Origin {
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        remote_addr: Some(remote.to_string()),
    };
    let request = HandshakeRequest {
        token: &query.token,
        workbook,
        tag: query.tag.as_deref(),
        remote,
        origin,
    };
    match embed::handshake(gw, request).await {
        Ok(ok) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, query.location(req.path())))
            .insert_header((header::SET_COOKIE, ok.set_cookie))
            .finish(),
        Err(p) => problem::negotiated(req, gw, &p),
    }
}

fn with_frame_policy(mut res: HttpResponse, auth: &Authorized) -> HttpResponse {
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        auth.session.client.csp.clone(),
    );
    res
}

async fn content(
    req: &HttpRequest,
    payload: web::Payload,
    gw: &Gateway,
    auth: &Authorized,
    sub_path: &str,
    query: &EmbedQuery,
) -> HttpResponse {
    // The tenant directory is the gateway's, whatever serves the workbook.
    let res = if let Some(api) = sub_path.strip_prefix("_api/") {
        directory_api(req, gw, auth, api, query)
    } else {
        match auth.source() {
            WorkbookSource::Template { .. } => template_content(req, gw, auth, sub_path, query),
            WorkbookSource::Upstream { url } => {
                return match super::proxy::forward(req, payload, gw, auth, url, sub_path, query)
                    .await
                {
                    Ok(res) => res,
                    Err(p) => problem::negotiated(req, gw, &p),
                };
            }
        }
    };
    match res {
        Ok(res) => with_frame_policy(res, auth),
        Err(p) => problem::negotiated(req, gw, &p),
    }
}

fn template_content(
    req: &HttpRequest,
    gw: &Gateway,
    auth: &Authorized,
    sub_path: &str,
    query: &EmbedQuery,
) -> Result<HttpResponse, Problem> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(Problem::new(
            ErrorCode::MethodNotAllowed,
            "Template workbooks answer GET and HEAD only.",
        ));
    }
    let page = match sub_path {
        "" => None,
        other => match other.strip_prefix("pages/") {
            Some(p) if !p.is_empty() && !p.contains('/') => Some(p),
            _ => return Err(Problem::not_found("This workbook has no such page.")),
        },
    };
    let user = &auth.session.user;
    let html = gw.content.render_workbook(
        auth.source(),
        &Page {
            user: TemplateUser::new(user, auth.team_names.clone()),
            workbook: &auth.workbook,
            tag: query.tag.as_deref(),
            permissions: auth.decision.permissions,
            query: &query.params,
            page,
            company: auth.decision.company.as_deref(),
        },
    )?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(html))
}

fn directory_api(
    req: &HttpRequest,
    gw: &Gateway,
    auth: &Authorized,
    api: &str,
    query: &EmbedQuery,
) -> Result<HttpResponse, Problem> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(Problem::new(
            ErrorCode::MethodNotAllowed,
            "The directory answers GET only.",
        ));
    }
    let q = query
        .params
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.as_str());
    let state = gw.policy.read();
    let user = &auth.session.user;
    let body = match api {
        "me" => serde_json::to_value(directory::me(&state, user, &auth.decision)),
        "workbooks" => serde_json::to_value(directory::workbooks(&state, user, q)),
        "users" => serde_json::to_value(directory::users(&state, user, q)),
        "teams" => serde_json::to_value(directory::teams(&state, user)),
        _ => return Err(Problem::not_found("The directory has no such list.")),
    }
    .map_err(|_| Problem::internal())?;
    Ok(HttpResponse::build(StatusCode::OK).json(body))
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn the_sub_path_is_everything_after_the_id_segment_still_encoded() {
        for (path, sub) in [
            ("/embed/workbooks/sales", ""),
            ("/embed/workbooks/sales/", ""),
            ("/embed/workbooks/sales/pages/q1", "pages/q1"),
            ("/embed/workbooks/a%20b/pages/q1", "pages/q1"),
            ("/embed/workbooks/sales//x", "/x"),
            ("/embed/workbooks/sales/a%2Fb%3F", "a%2Fb%3F"),
        ] {
            assert_eq!(split_path(path).unwrap().1, sub, "{path}");
        }
    }

    #[test]
    fn the_workbook_id_is_the_first_segment_decoded_as_web_path_decodes_it() {
        let id = |p| split_path(p).map(|(id, _)| id.into_owned());
        assert_eq!(id("/embed/workbooks/sales").as_deref(), Some("sales"));
        assert_eq!(id("/embed/workbooks/sales/").as_deref(), Some("sales"));
        assert_eq!(
            id("/embed/workbooks/sales/pages/q1").as_deref(),
            Some("sales")
        );
        assert_eq!(id("/embed/workbooks/a%20b").as_deref(), Some("a b"));
        assert_eq!(id("/embed/workbooks/..%2Fx/y").as_deref(), Some("../x"));
        assert_eq!(id("/embed/workbooks/%zz").as_deref(), Some("%zz"));
        assert_eq!(id("/embed/workbooks/%FF").as_deref(), Some("\u{FFFD}"));
        for none in [
            "/embed/workbooks",
            "/embed/workbooks/",
            "/embed/workbooks//x",
            "/embed/other/x",
        ] {
            assert_eq!(id(none), None, "{none}");
        }
    }

    /// The same decoding as the `{workbook_id}` route this replaced.
    #[actix_web::test]
    async fn it_matches_what_web_path_extracted() {
        use actix_web::{App, test, web};
        let app = test::init_service(App::new().route(
            "/embed/workbooks/{workbook_id}",
            web::get().to(|p: web::Path<(String,)>| async move { p.into_inner().0 }),
        ))
        .await;
        for raw in [
            "sales",
            "a%20b",
            "..%2Fx",
            "%zz",
            "%FF",
            "%C3%A9t%C3%A9",
            "a+b",
            "x%25y",
        ] {
            let path = format!("/embed/workbooks/{raw}");
            let req = test::TestRequest::get().uri(&path).to_request();
            let from_route = test::call_and_read_body(&app, req).await;
            let req = test::TestRequest::get().uri(&path).to_http_request();
            assert_eq!(
                split_path(req.path()).map(|(id, _)| id.into_owned().into_bytes()),
                Some(from_route.to_vec()),
                "{raw}"
            );
        }
    }
}
