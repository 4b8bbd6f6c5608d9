use crate::helpers::{assert_twilio_error, read, TestApp};

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_with_challenge() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let r = app
        .http
        .get(app.url("/v1/Exports/Messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"Twilio API\""
    );
    let (status, body) = read(r).await;
    assert_twilio_error(status, &body, 401, 20003);
    assert_eq!(body["message"], "Authenticate");

    // A credential that just authenticated (and is remembered for a few
    // seconds) lets no other password in.
    let r = app
        .http
        .get(app.url("/v1/Exports/Messages"))
        .basic_auth(&a.sid, Some(&a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(app.url("/v1/Exports/Messages"))
        .basic_auth(&a.sid, Some("wrong"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_twilio_error(status, &body, 401, 20003);
}

#[tokio::test]
async fn api_keys_and_subaccounts_authenticate() {
    let app = TestApp::spawn().await;
    let parent = app.account().await;
    let key = app.exports.create_api_key(&parent.sid, "k").await.unwrap();
    let r = app
        .http
        .get(app.url("/v1/Exports/Calls"))
        .basic_auth(&key.sid, Some(&key.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(app.url("/v1/Exports/Calls"))
        .basic_auth(&key.sid, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let sub = app
        .exports
        .create_account("sub", Some(&parent.sid))
        .await
        .unwrap();
    let r = app
        .http
        .get(app.url("/v1/Exports/Calls"))
        .basic_auth(&sub.sid, Some(&parent.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a subaccount with its parent's token");
    let r = app
        .http
        .get(app.url("/v1/Exports/Calls"))
        .basic_auth(&sub.sid, Some(&sub.auth_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(app.url("/v1/Exports/Calls"))
        .basic_auth(&parent.sid, Some(&sub.auth_token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a parent does not accept its subaccount's token"
    );
}

#[tokio::test]
async fn cors_and_json_content_type() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let r = app
        .http
        .get(app.url("/v1/Exports/Messages"))
        .basic_auth(&a.sid, Some(&a.token))
        .header("Origin", "https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let r = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url("/v1/Exports/Messages/Jobs"),
        )
        .header("Origin", "https://example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
}

#[tokio::test]
async fn admin_api_needs_its_token() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .post(app.url("/admin/v1/Accounts"))
        .form(&[("FriendlyName", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(app.url("/admin/v1/Accounts"))
        .bearer_auth(crate::helpers::ADMIN)
        .form(&[("FriendlyName", "x")])
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, 201);
    assert!(body["sid"].as_str().unwrap().starts_with("AC"));
}
