//! The console's sessions at the HTTP level: cookie attributes (Secure
//! behind HTTPS), the CSRF token, a tampered cookie, the security headers,
//! and one account kept out of another's pages. The browser walk through
//! the pages is tests/clients/test_console.py.

use crate::helpers::{settings_for, start_time, Place, TestApp};

/// The console cookie a response sets, as `name=value`, with its attributes.
fn session_cookie(r: &reqwest::Response) -> (String, String) {
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("bulkexport_console="))
        .expect("a session cookie");
    let pair = set.split(';').next().unwrap().to_string();
    (pair, set)
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 32].to_string()
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

async fn post(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Signs in as `sid` with `token`: the session cookie.
async fn sign_in(app: &TestApp, sid: &str, token: &str) -> String {
    let r = get(app, "/console", None).await;
    let (cookie, _) = session_cookie(&r);
    let page = r.text().await.unwrap();
    let form = [
        ("csrf", csrf_of(&page)),
        ("account_sid", sid.into()),
        ("auth_token", token.into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(app, "/console/sign-in", &cookie, &form).await;
    assert_eq!(r.status(), 303, "signed in");
    session_cookie(&r).0
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure_httponly_and_strict() {
    let place = Place::new().await;
    let mut settings = settings_for(&place, 0);
    settings.public_url = Some("https://exports.example.com".into());
    let app = TestApp::spawn_with(
        place,
        settings,
        bulkexport::clock::Clock::starting_at(start_time()),
    )
    .await;
    let r = get(&app, "/console", None).await;
    let (_, attributes) = session_cookie(&r);
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn over_plain_http_the_cookie_is_not_marked_secure() {
    let app = TestApp::spawn().await;
    let (_, attributes) = session_cookie(&get(&app, "/console", None).await);
    assert!(!attributes.contains("Secure"), "{attributes}");
}

#[tokio::test]
async fn a_form_without_the_sessions_token_or_with_a_tampered_cookie_is_refused() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let r = get(&app, "/console", None).await;
    let (cookie, _) = session_cookie(&r);
    let form = [
        ("csrf", "0".repeat(32)),
        ("account_sid", a.sid.clone()),
        ("auth_token", a.token.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(&app, "/console/sign-in", &cookie, &form).await;
    assert_eq!(r.status(), 403);

    // A session cookie whose value was changed is not believed: signed in
    // as an account, then edited to say admin, it is a new anonymous one.
    let signed = sign_in(&app, &a.sid, &a.token).await;
    let forged = signed.replacen("account%7C", "admin%7C", 1);
    assert_ne!(forged, signed);
    let r = get(&app, "/console/admin", Some(&forged)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console");
    let r = get(
        &app,
        &format!("/console/accounts/{}/jobs", a.sid),
        Some(&signed),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_account_sees_its_own_pages_only_and_unsigned_visitors_none() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.account().await, app.account().await);
    let r = get(&app, &format!("/console/accounts/{}/jobs", a.sid), None).await;
    assert_eq!(r.status(), 303, "not signed in: to the sign-in page");
    let cookie = sign_in(&app, &b.sid, &b.token).await;
    for page in [
        "jobs",
        "days",
        "configuration",
        "notifications",
        "days/Messages/2024-06-01",
    ] {
        let r = get(
            &app,
            &format!("/console/accounts/{}/{page}", a.sid),
            Some(&cookie),
        )
        .await;
        assert_eq!(r.status(), 404, "{page}");
        let r = get(
            &app,
            &format!("/console/accounts/{}/{page}", b.sid),
            Some(&cookie),
        )
        .await;
        assert_ne!(r.status(), 403, "{page}");
    }
    let r = get(&app, "/console/admin/faults", Some(&cookie)).await;
    assert_eq!(r.status(), 403);
}
