//! `openapi/bulkexport.json` describes exactly the routes the service serves.

use std::collections::BTreeSet;

use bulkexport::api::PUBLIC_ROUTES;

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

#[test]
fn the_document_lists_every_public_route_and_method() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/bulkexport.json")).unwrap();
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
    for (path, methods) in PUBLIC_ROUTES {
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
