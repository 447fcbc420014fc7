//! The demo (`embedgate demo`): a seeded organisation with two customers,
//! and a small host app at `/demo/` that signs a fresh embed URL on every
//! load, so provisioning, access and denial can be seen by clicking.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::admin::{self, Actor};
use crate::domain::WorkbookSource;
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::SettingsPatch;

pub const DEMO_CLIENT_ID: &str = "demo-host";

/// What the demo host page signs with.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    pub client_id: String,
    pub secret: String,
}

/// A person the demo host page can sign in as.
#[derive(Debug, Clone, Serialize)]
pub struct DemoUser {
    pub key: &'static str,
    pub label: &'static str,
    pub email: &'static str,
    pub teams: Option<&'static [&'static str]>,
    pub account_type: Option<&'static str>,
    pub company: Option<&'static str>,
    pub first_name: Option<&'static str>,
}

pub const USERS: &[DemoUser] = &[
    DemoUser {
        key: "ana",
        label: "Ana (Acme, Explorer)",
        email: "ana@acme.example",
        teams: Some(&["Acme Analysts"]),
        account_type: Some("Explorer"),
        company: Some("acme"),
        first_name: Some("Ana"),
    },
    DemoUser {
        key: "bo",
        label: "Bo (Acme, Viewer)",
        email: "bo@acme.example",
        teams: Some(&["Acme Analysts"]),
        account_type: Some("Viewer"),
        company: Some("acme"),
        first_name: Some("Bo"),
    },
    DemoUser {
        key: "gina",
        label: "Gina (Globex, Explorer)",
        email: "gina@globex.example",
        teams: Some(&["Globex Analysts"]),
        account_type: Some("Explorer"),
        company: Some("globex"),
        first_name: Some("Gina"),
    },
    DemoUser {
        key: "staff",
        label: "Sam (internal staff, sees all companies)",
        email: "sam@embedgate.example",
        teams: None,
        account_type: None,
        company: None,
        first_name: None,
    },
    DemoUser {
        key: "newcomer",
        label: "A new Acme employee (auto-provisioned on first visit)",
        email: "newcomer@acme.example",
        teams: Some(&["Acme Analysts"]),
        account_type: None,
        company: Some("acme"),
        first_name: Some("Nico"),
    },
    DemoUser {
        key: "stranger",
        label: "An unknown email without teams (denied)",
        email: "stranger@nowhere.example",
        teams: None,
        account_type: None,
        company: None,
        first_name: None,
    },
];

pub const WORKBOOKS: &[(&str, &str)] = &[
    ("sales", "Sales overview"),
    ("orders", "Open orders"),
    ("inventory", "Inventory"),
];

fn template(template: &str, dataset: &str, company_field: Option<&str>) -> WorkbookSource {
    WorkbookSource::Template {
        template: template.into(),
        dataset: Some(dataset.into()),
        company_field: company_field.map(str::to_owned),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, Problem> {
    serde_json::from_value(v).map_err(|e| Problem::validation(e.to_string()))
}

/// Seeds the demo organisation through the admin API's own code paths and
/// returns the demo client's secret.
pub async fn seed(gw: &Gateway) -> Result<String, Problem> {
    let a = Actor {
        admin: "demo seed".into(),
        ..Actor::default()
    };
    for (name, description) in [
        ("Acme Analysts", "Acme Corp's analysts (customer)"),
        ("Globex Analysts", "Globex Inc's analysts (customer)"),
        ("Staff", "Our own people"),
    ] {
        admin::teams::create(
            gw,
            &a,
            parse(json!({"name": name, "description": description}))?,
        )
        .await?;
    }
    admin::account_types::create(
        gw,
        &a,
        parse(json!({"name": "Staff", "permissions": ["view", "explore", "export", "edit", "all_companies"]}))?,
    )
    .await?;
    let reports =
        admin::workspaces::create(gw, &a, parse(json!({"name": "Customer reports"}))?).await?;
    let finance = admin::workspaces::create(
        gw,
        &a,
        parse(json!({"name": "Finance", "parent": reports.id}))?,
    )
    .await?;
    let books = [
        (
            "sales",
            "Sales overview",
            Some(finance.id),
            template("sales.html", "sales.csv", Some("company")),
        ),
        (
            "orders",
            "Open orders",
            Some(reports.id),
            template("orders.html", "orders.csv", Some("company")),
        ),
        (
            "inventory",
            "Inventory",
            None,
            template("inventory.html", "inventory.csv", None),
        ),
    ];
    for (id, name, workspace, source) in books {
        admin::workbooks::create(
            gw,
            &a,
            admin::workbooks::CreateWorkbook {
                id: id.into(),
                name: name.into(),
                workspace,
                source,
            },
        )
        .await?;
    }
    admin::workbooks::put_tag(
        gw,
        &a,
        "sales",
        "v2",
        admin::workbooks::PutTag {
            source: template("sales_v2.html", "sales.csv", Some("company")),
        },
    )
    .await?;
    for grant in [
        json!({"team": "Acme Analysts", "workspace": reports.id, "level": "explore"}),
        json!({"team": "Acme Analysts", "workbook": "sales", "level": "view", "tag": "v2"}),
        json!({"team": "Globex Analysts", "workbook": "sales", "level": "view"}),
        json!({"team": "Globex Analysts", "workbook": "inventory", "level": "view"}),
        json!({"team": "Staff", "workspace": reports.id, "level": "edit"}),
        json!({"team": "Staff", "workbook": "inventory", "level": "edit"}),
        json!({"team": "Staff", "workbook": "sales", "level": "edit", "tag": "v2"}),
    ] {
        admin::grants::create(gw, &a, parse(grant)?).await?;
    }
    admin::users::create(
        gw,
        &a,
        parse(
            json!({"email": "sam@embedgate.example", "kind": "internal", "teams": ["Staff"],
            "account_type": "Staff", "first_name": "Sam", "last_name": "Staff"}),
        )?,
    )
    .await?;
    admin::settings::patch(
        gw,
        &a,
        parse::<SettingsPatch>(
            json!({"company_separation": {"enabled": true, "attribute": "company"}}),
        )?,
    )
    .await?;
    let origin = url::Url::parse(&gw.config.server.public_url)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| Problem::validation("public_url"))?;
    let client = admin::clients::create(
        gw,
        &a,
        parse(json!({"client_id": DEMO_CLIENT_ID, "name": "Demo host app",
            "allowed_origins": [origin], "allow_internal_users": true}))?,
    )
    .await?;
    client.secret.ok_or_else(Problem::internal)
}

/// The demo client's secret in an existing demo database.
pub async fn existing_secret(gw: &Gateway) -> anyhow::Result<Option<String>> {
    Ok(gw
        .store
        .get_client(DEMO_CLIENT_ID)
        .await?
        .and_then(|c| c.secret))
}

/// What the host page template is rendered with.
#[derive(Debug, Serialize)]
pub struct HostPage {
    pub users: &'static [DemoUser],
    pub workbooks: Vec<BTreeMap<&'static str, &'static str>>,
    pub user: &'static DemoUser,
    pub workbook: String,
    pub tag: Option<String>,
    pub iframe_src: String,
    pub claims: serde_json::Value,
}

/// Signs a fresh embed URL for the chosen demo user and workbook.
pub fn host_page(
    gw: &Gateway,
    demo: &DemoSettings,
    user_key: Option<&str>,
    workbook: Option<&str>,
    tag: Option<&str>,
) -> anyhow::Result<HostPage> {
    let user = USERS
        .iter()
        .find(|u| Some(u.key) == user_key)
        .unwrap_or(&USERS[0]);
    let workbook = WORKBOOKS
        .iter()
        .map(|(id, _)| *id)
        .find(|id| Some(*id) == workbook)
        .unwrap_or(WORKBOOKS[0].0)
        .to_owned();
    let tag = tag.filter(|t| *t == "v2").map(str::to_owned);
    let mut attributes = crate::domain::Attributes::new();
    if let Some(company) = user.company {
        attributes.insert("company".into(), company.into());
    }
    let request = crate::sign::SignRequest {
        client_id: demo.client_id.clone(),
        secret: demo.secret.clone(),
        algorithm: crate::token::SigningAlgorithm::HS256,
        email: user.email.into(),
        workbook: workbook.clone(),
        teams: user
            .teams
            .map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
        account_type: user.account_type.map(str::to_owned),
        attributes: attributes.clone(),
        first_name: user.first_name.map(str::to_owned),
        last_name: None,
        ttl_secs: 300,
        tag: tag.clone(),
        base_url: String::new(),
        now: gw.now(),
    };
    let iframe_src = crate::sign::sign_url(&request)?;
    let claims = json!({
        "sub": user.email, "teams": user.teams, "account_type": user.account_type,
        "user_attributes": attributes, "first_name": user.first_name,
    });
    Ok(HostPage {
        users: USERS,
        workbooks: WORKBOOKS
            .iter()
            .map(|(id, name)| BTreeMap::from([("id", *id), ("name", *name)]))
            .collect(),
        user,
        workbook,
        tag,
        iframe_src,
        claims,
    })
}
