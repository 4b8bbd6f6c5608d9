//! `openapi/bulkexport.json` and `openapi/admin.json` describe exactly the
//! routes the service serves; the operation table and the README follow them.

use std::collections::BTreeSet;

use bulkexport::api::{ADMIN_ROUTES, PUBLIC_ROUTES};

use crate::helpers::TestApp;

/// `/v1/Exports/{ResourceType}/Days/{Day}` → `/v1/Exports/{}/Days/{}`.
fn template(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The router answers 405 to exactly the methods `routes` does not list.
async fn serves_exactly(app: &TestApp, routes: &[(&str, &[&str])]) {
    for (path, methods) in routes {
        let concrete = template(path).replace("{}", "x");
        for method in ["GET", "POST", "DELETE", "PUT", "PATCH"] {
            let r = app
                .http
                .request(method.parse().unwrap(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let listed = methods.contains(&method);
            assert_eq!(
                r.status() == 405,
                !listed,
                "{method} {path}: {} (listed: {listed})",
                r.status()
            );
        }
    }
}

/// Every (path shape, method) a document describes.
fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "delete", "put", "patch"].contains(&m.as_str()))
                .map(move |m| (template(path), m.to_uppercase()))
        })
        .collect()
}

fn public_doc() -> serde_json::Value {
    serde_json::from_str(include_str!("../../openapi/bulkexport.json")).unwrap()
}

fn admin_doc() -> serde_json::Value {
    serde_json::from_str(include_str!("../../openapi/admin.json")).unwrap()
}

#[test]
fn the_admin_document_lists_every_admin_route_and_the_operation_table_both() {
    let doc = admin_doc();
    let served: BTreeSet<(String, String)> = ADMIN_ROUTES
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(move |m| (template(path), m.to_string())))
        .collect();
    assert_eq!(documented(&doc), served);
    let mut ids = BTreeSet::new();
    for d in [public_doc(), doc] {
        for (path, ops) in d["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                ids.insert(id.to_string());
                assert_eq!(
                    bulkexport::domain::operations::operation_of(&method.to_uppercase(), path),
                    Some(id),
                    "{method} {path}"
                );
            }
        }
    }
    let table: BTreeSet<String> = bulkexport::domain::operations::OPERATIONS
        .iter()
        .map(|(_, _, id)| id.to_string())
        .collect();
    assert_eq!(ids, table, "the operation table and the documents");
}

#[test]
fn the_readme_names_every_admin_operation() {
    let readme = include_str!("../../README.md");
    for (path, ops) in admin_doc()["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let line = format!("`{} {path}`", method.to_uppercase());
            assert!(readme.contains(&line), "README.md lacks {line}");
        }
    }
}

#[tokio::test]
async fn the_admin_document_is_served_and_the_router_serves_exactly_its_methods() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(app.url("/admin/v1/openapi.json"))
        .bearer_auth(crate::helpers::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served: serde_json::Value = r.json().await.unwrap();
    assert_eq!(served, admin_doc());
    serves_exactly(&app, ADMIN_ROUTES).await;
}

#[test]
fn the_document_lists_every_public_route_and_method() {
    let doc = public_doc();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "delete", "put", "patch"].contains(&m.as_str()))
                .map(move |m| (template(path), m.to_uppercase()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = PUBLIC_ROUTES
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(move |m| (template(path), m.to_string())))
        .collect();
    assert_eq!(documented, served);
    for ops in doc["paths"].as_object().unwrap().values() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} has an operationId");
        }
    }
}

#[tokio::test]
async fn the_router_serves_exactly_the_listed_methods() {
    let app = TestApp::spawn().await;
    serves_exactly(&app, PUBLIC_ROUTES).await;
}
