//! The admin API's OpenAPI document (SPEC §8), generated with utoipa: the
//! operations come from the `#[utoipa::path]` annotations on the handlers
//! in [`super::admin`], the schemas from the request and response types in
//! [`crate::admin`]. This module owns the [`AdminApi`] derive that lists
//! them, the reusable error responses, the bearer security scheme and the
//! serialized document served at `GET /admin/api/openapi.json`.

use std::sync::LazyLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};

use super::admin as handlers;
use super::problem::{ErrorBody, ErrorDetail};
use crate::admin::{account_types, clients, explain, grants, inspect, teams, users, views};
use crate::admin::{workbooks, workspaces};
use crate::domain::WorkbookSource;
use crate::policy::{CompanySeparation, CompanySeparationPatch, Settings, SettingsPatch};
use crate::token::inspect::Check;

/// The name of the security scheme every admin operation requires.
pub const BEARER: &str = "bearer";

/// `400 validation_failed`: the body or query is not valid for this
/// endpoint, or a field breaks a rule; the message says which.
#[derive(ToResponse)]
#[response(
    example = json!({"error": {"code": "validation_failed", "message": "name must be 1 to 100 characters long"}})
)]
pub struct BadRequest(pub ErrorBody);

/// `401 unauthorized`: no admin token, or not a valid one.
#[derive(ToResponse)]
#[response(
    headers(("WWW-Authenticate" = String, description = "`Bearer`")),
    example = json!({"error": {"code": "unauthorized", "message": "The admin token is not valid. Create one with `embedgate admin-token create`."}})
)]
pub struct Unauthorized(pub ErrorBody);

/// `404 not_found`: there is no such resource.
#[derive(ToResponse)]
#[response(example = json!({"error": {"code": "not_found", "message": "There is no team 7."}}))]
pub struct NotFound(pub ErrorBody);

/// `409 conflict`: the change conflicts with existing data (a name taken,
/// a resource in use or built in).
#[derive(ToResponse)]
#[response(example = json!({"error": {"code": "conflict", "message": "A team with this name exists already."}}))]
pub struct Conflict(pub ErrorBody);

/// Adds the `Authorization: Bearer {admin token}` security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token: `Authorization: Bearer {token}`. Create one with `embedgate admin-token create`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The admin API: every operation routed in [`super::admin::configure`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "embedgate admin API",
        description = "Manage embed clients, teams, users, account types, workspaces, workbooks and grants; read the audit log; explain access decisions; inspect embed tokens. Every operation but this document needs `Authorization: Bearer {admin token}`. Errors are `{\"error\": {\"code\", \"message\"}}`. Creating answers `201`, `DELETE` answers `204`; lists are JSON arrays; timestamps are RFC 3339 UTC."
    ),
    paths(
        handlers::openapi_json,
        handlers::get_settings,
        handlers::patch_settings,
        handlers::list_clients,
        handlers::create_client,
        handlers::get_client,
        handlers::rotate_client,
        handlers::revoke_client,
        handlers::list_teams,
        handlers::create_team,
        handlers::get_team,
        handlers::patch_team,
        handlers::delete_team,
        handlers::list_users,
        handlers::create_user,
        handlers::get_user,
        handlers::patch_user,
        handlers::delete_user,
        handlers::revoke_sessions,
        handlers::list_account_types,
        handlers::create_account_type,
        handlers::get_account_type,
        handlers::patch_account_type,
        handlers::delete_account_type,
        handlers::list_workspaces,
        handlers::create_workspace,
        handlers::get_workspace,
        handlers::delete_workspace,
        handlers::list_workbooks,
        handlers::create_workbook,
        handlers::get_workbook,
        handlers::patch_workbook,
        handlers::delete_workbook,
        handlers::put_tag,
        handlers::delete_tag,
        handlers::list_grants,
        handlers::create_grant,
        handlers::get_grant,
        handlers::delete_grant,
        handlers::list_audit,
        handlers::get_explain,
        handlers::inspect_token,
    ),
    components(
        schemas(
            ErrorBody,
            ErrorDetail,
            Settings,
            CompanySeparation,
            SettingsPatch,
            CompanySeparationPatch,
            clients::CreateClient,
            clients::Rotate,
            teams::CreateTeam,
            teams::PatchTeam,
            users::CreateUser,
            users::PatchUser,
            account_types::CreateAccountType,
            account_types::PatchAccountType,
            workspaces::CreateWorkspace,
            WorkbookSource,
            workbooks::CreateWorkbook,
            workbooks::PatchWorkbook,
            workbooks::PutTag,
            grants::CreateGrant,
            inspect::InspectRequest,
            inspect::InspectResponse,
            Check,
            explain::Explanation,
            views::ClientView,
            views::TeamView,
            views::UserView,
            views::AccountTypeView,
            views::WorkspaceView,
            views::WorkbookView,
            views::GrantView,
            views::AuditView,
        ),
        responses(BadRequest, Unauthorized, NotFound, Conflict),
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "settings", description = "Runtime settings: auto-provisioning, the default account type, company separation."),
        (name = "clients", description = "Embed clients: the host apps that sign embed tokens."),
        (name = "teams", description = "Teams: what users belong to and grants are given to."),
        (name = "users", description = "Embed and internal users."),
        (name = "account-types", description = "Account types: the permissions a user gets."),
        (name = "workspaces", description = "Workspaces: nested folders of workbooks."),
        (name = "workbooks", description = "Workbooks and their tagged versions."),
        (name = "grants", description = "Grants: a team's level on a workbook or a workspace."),
        (name = "audit", description = "The audit log."),
        (name = "explain", description = "Why a user may or may not open a workbook."),
        (name = "tokens", description = "The embed token inspector."),
        (name = "openapi", description = "This document."),
    ),
)]
pub struct AdminApi;

static DOCUMENT: LazyLock<Option<String>> = LazyLock::new(|| {
    AdminApi::openapi()
        .to_json()
        .map_err(|e| tracing::error!(error = %e, "serializing the OpenAPI document failed"))
        .ok()
});

/// The document as JSON, built once.
pub fn document() -> Option<&'static str> {
    DOCUMENT.as_deref()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::error::Problem;

    /// Every route of [`super::handlers::configure`], as `(method, path)`:
    /// keep in step with it.
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/admin/api/openapi.json"),
        ("get", "/admin/api/settings"),
        ("patch", "/admin/api/settings"),
        ("get", "/admin/api/clients"),
        ("post", "/admin/api/clients"),
        ("get", "/admin/api/clients/{client_id}"),
        ("delete", "/admin/api/clients/{client_id}"),
        ("post", "/admin/api/clients/{client_id}/rotate"),
        ("get", "/admin/api/teams"),
        ("post", "/admin/api/teams"),
        ("get", "/admin/api/teams/{id}"),
        ("patch", "/admin/api/teams/{id}"),
        ("delete", "/admin/api/teams/{id}"),
        ("get", "/admin/api/users"),
        ("post", "/admin/api/users"),
        ("get", "/admin/api/users/{id}"),
        ("patch", "/admin/api/users/{id}"),
        ("delete", "/admin/api/users/{id}"),
        ("post", "/admin/api/users/{id}/revoke-sessions"),
        ("get", "/admin/api/account-types"),
        ("post", "/admin/api/account-types"),
        ("get", "/admin/api/account-types/{name}"),
        ("patch", "/admin/api/account-types/{name}"),
        ("delete", "/admin/api/account-types/{name}"),
        ("get", "/admin/api/workspaces"),
        ("post", "/admin/api/workspaces"),
        ("get", "/admin/api/workspaces/{id}"),
        ("delete", "/admin/api/workspaces/{id}"),
        ("get", "/admin/api/workbooks"),
        ("post", "/admin/api/workbooks"),
        ("get", "/admin/api/workbooks/{id}"),
        ("patch", "/admin/api/workbooks/{id}"),
        ("delete", "/admin/api/workbooks/{id}"),
        ("put", "/admin/api/workbooks/{id}/tags/{tag}"),
        ("delete", "/admin/api/workbooks/{id}/tags/{tag}"),
        ("get", "/admin/api/grants"),
        ("post", "/admin/api/grants"),
        ("get", "/admin/api/grants/{id}"),
        ("delete", "/admin/api/grants/{id}"),
        ("get", "/admin/api/audit"),
        ("get", "/admin/api/explain"),
        ("post", "/admin/api/tokens/inspect"),
    ];

    const PUBLIC: &str = "/admin/api/openapi.json";

    fn doc() -> Value {
        serde_json::from_str(document().expect("the document serializes")).unwrap()
    }

    /// Every `(method, path, operation)` of the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
                ) {
                    out.push((method.clone(), path.clone(), op.clone()));
                }
            }
        }
        out
    }

    /// The value a local `$ref` points at, if any.
    fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        doc.pointer(reference.strip_prefix('#')?)
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_with_the_admin_title() {
        let doc = doc();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            doc["openapi"]
        );
        assert_eq!(doc["info"]["title"], "embedgate admin API");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let documented: BTreeSet<(String, String)> = operations(&doc())
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(routed.len(), ROUTES.len(), "no route listed twice");
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty(),
            "routes without documentation: {missing:?}"
        );
        assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    }

    #[test]
    fn every_admin_operation_needs_the_bearer_token_and_documents_401() {
        let doc = doc();
        let scheme = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["type"], "http", "{scheme}");
        assert_eq!(scheme["scheme"], "bearer", "{scheme}");
        for (method, path, op) in operations(&doc) {
            let what = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{what}: an operationId");
            assert!(op["tags"][0].is_string(), "{what}: a tag");
            if path == PUBLIC {
                assert!(op.get("security").is_none(), "{what} is public");
                continue;
            }
            assert_eq!(op["security"], json!([{BEARER: []}]), "{what}: security");
            assert_eq!(
                op["responses"]["401"]["$ref"], "#/components/responses/Unauthorized",
                "{what}: 401"
            );
        }
        let unauthorized = &doc["components"]["responses"]["Unauthorized"];
        assert!(
            unauthorized["headers"]["WWW-Authenticate"].is_object(),
            "{unauthorized}"
        );
    }

    #[test]
    fn success_statuses_follow_the_contract() {
        for (method, path, op) in operations(&doc()) {
            let responses = op["responses"].as_object().unwrap();
            let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
            // Creating is a POST to a collection; the other POSTs are actions.
            let creates = !path.contains('{') && !path.ends_with("/inspect");
            let expected = match method.as_str() {
                "delete" => "204",
                "post" if path.ends_with("/revoke-sessions") => "204",
                "post" if creates => "201",
                _ => "200",
            };
            assert_eq!(success, [expected], "{method} {path}");
            if expected != "204" {
                assert!(
                    responses[expected]["content"]["application/json"]["schema"].is_object(),
                    "{method} {path}: a JSON response body"
                );
            }
        }
    }

    #[test]
    fn error_responses_use_the_error_body() {
        let doc = doc();
        for name in ["BadRequest", "Unauthorized", "NotFound", "Conflict"] {
            let schema =
                &doc["components"]["responses"][name]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/ErrorBody",
                "{name}: {schema}"
            );
        }
        let body = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(body["required"], json!(["error"]), "{body}");
        let detail = &doc["components"]["schemas"]["ErrorDetail"];
        assert_eq!(detail["required"], json!(["code", "message"]), "{detail}");
        assert_eq!(detail["properties"]["code"]["type"], "string", "{detail}");
        let expected = &[
            ("get", "/admin/api/teams/{id}", &["401", "404"][..]),
            ("post", "/admin/api/teams", &["400", "401", "409"][..]),
            (
                "post",
                "/admin/api/clients/{client_id}/rotate",
                &["400", "401", "404", "409"][..],
            ),
            (
                "delete",
                "/admin/api/account-types/{name}",
                &["401", "404", "409"][..],
            ),
            ("get", "/admin/api/explain", &["400", "401"][..]),
        ];
        for (method, path, codes) in expected {
            let responses = &doc["paths"][path][method]["responses"];
            for code in *codes {
                assert!(
                    responses[code]["$ref"].is_string(),
                    "{method} {path}: {code}"
                );
            }
        }
        // The documented body is the one the API sends.
        let sent = serde_json::to_value(ErrorBody::from(&Problem::not_found("gone"))).unwrap();
        assert_eq!(
            sent,
            json!({"error": {"code": "not_found", "message": "gone"}})
        );
    }

    #[test]
    fn request_bodies_and_parameters_are_documented() {
        let doc = doc();
        let bodies = [
            ("patch", "/admin/api/settings", "SettingsPatch"),
            ("post", "/admin/api/clients", "CreateClient"),
            ("post", "/admin/api/teams", "CreateTeam"),
            ("patch", "/admin/api/teams/{id}", "PatchTeam"),
            ("post", "/admin/api/users", "CreateUser"),
            ("patch", "/admin/api/users/{id}", "PatchUser"),
            ("post", "/admin/api/account-types", "CreateAccountType"),
            (
                "patch",
                "/admin/api/account-types/{name}",
                "PatchAccountType",
            ),
            ("post", "/admin/api/workspaces", "CreateWorkspace"),
            ("post", "/admin/api/workbooks", "CreateWorkbook"),
            ("patch", "/admin/api/workbooks/{id}", "PatchWorkbook"),
            ("put", "/admin/api/workbooks/{id}/tags/{tag}", "PutTag"),
            ("post", "/admin/api/grants", "CreateGrant"),
            ("post", "/admin/api/tokens/inspect", "InspectRequest"),
        ];
        for (method, path, schema) in bodies {
            let body = &doc["paths"][path][method]["requestBody"];
            let content = &body["content"]["application/json"]["schema"];
            assert_eq!(
                content["$ref"],
                format!("#/components/schemas/{schema}"),
                "{method} {path}: {body}"
            );
            assert_eq!(body["required"], true, "{method} {path}: required body");
            assert!(
                doc["components"]["schemas"][schema]["properties"].is_object(),
                "{schema} is defined"
            );
        }
        let rotate = &doc["paths"]["/admin/api/clients/{client_id}/rotate"]["post"]["requestBody"];
        assert_ne!(
            rotate["required"], true,
            "the rotate body is optional: {rotate}"
        );
        assert_eq!(
            rotate["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Rotate"
        );

        // Every `{param}` of a path is a documented path parameter.
        for (method, path, op) in operations(&doc) {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
        }

        let query = |path: &str| -> Vec<(String, bool)> {
            doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_owned(),
                        p["required"] == true,
                    )
                })
                .collect()
        };
        let names = |ps: Vec<(String, bool)>| ps.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(query("/admin/api/users")), ["email", "kind", "team"]);
        assert_eq!(names(query("/admin/api/grants")), ["team", "workbook"]);
        assert_eq!(
            names(query("/admin/api/audit")),
            ["email", "event", "outcome", "limit"]
        );
        assert_eq!(
            query("/admin/api/explain"),
            [
                ("email".to_owned(), true),
                ("workbook".to_owned(), true),
                ("tag".to_owned(), false)
            ]
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            assert!(resolve(&doc, &r).is_some(), "dangling $ref {r}");
        }
    }

    #[test]
    fn workbook_sources_are_tagged_by_type() {
        let doc = doc();
        let source = &doc["components"]["schemas"]["WorkbookSource"];
        let variants = source["oneOf"].as_array().expect("oneOf");
        let types: BTreeSet<&str> = variants
            .iter()
            .filter_map(|v| v["properties"]["type"]["enum"][0].as_str())
            .collect();
        assert_eq!(types, BTreeSet::from(["template", "upstream"]), "{source}");
    }
}
