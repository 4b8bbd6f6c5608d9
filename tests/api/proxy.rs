//! The proxy mode: TLS through CONNECT with a certificate from the local CA,
//! canonical URLs, downloads through the proxy, and refusal of anything else.

use bulkexport::domain::ResourceType;
use bulkexport::proxy::ca;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{gunzip, read, Account, TestApp};

/// A client that, like the official ones, reaches https://*.twilio.com through
/// the proxy and trusts only the local CA.
fn proxied_client(app: &TestApp) -> reqwest::Client {
    let pem = std::fs::read(ca::cert_path(app.place.dir.path())).unwrap();
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", app.proxy.unwrap())).unwrap())
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(http: &reqwest::Client, a: &Account, url: &str) -> (u16, Value) {
    read(
        http.get(url)
            .basic_auth(&a.sid, Some(&a.token))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn official_hosts_are_served_through_the_proxy_with_canonical_urls() {
    let app = TestApp::spawn_proxied().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-05", "2024-06-05", 40)
        .await;
    let http = proxied_client(&app);

    let created = http
        .post("https://bulkexports.twilio.com/v1/Exports/Messages/Jobs")
        .basic_auth(&a.sid, Some(&a.token))
        .form(&[
            ("StartDay", "2024-06-05"),
            ("EndDay", "2024-06-05"),
            ("FriendlyName", "proxied"),
        ])
        .send()
        .await
        .unwrap();
    let (status, job) = read(created).await;
    assert_eq!(status, 201, "{job}");
    let sid = job["job_sid"].as_str().unwrap().to_string();
    app.drain().await;

    // A regional host is served too; URLs stay canonical.
    let (status, job) = get(
        &http,
        &a,
        &format!("https://bulkexports.us1.twilio.com/v1/Exports/Jobs/{sid}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(job["details"][0]["status"], "Completed");
    assert_eq!(
        job["url"],
        format!("https://bulkexports.twilio.com/v1/Exports/Jobs/{sid}")
    );

    let (status, days) = get(
        &http,
        &a,
        "https://bulkexports.twilio.com/v1/Exports/Messages/Days?PageSize=1",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        days["meta"]["url"],
        "https://bulkexports.twilio.com/v1/Exports/Messages/Days?PageSize=1&Page=0"
    );

    let (status, day) = get(
        &http,
        &a,
        "https://bulkexports.twilio.com/v1/Exports/Messages/Days/2024-06-05",
    )
    .await;
    assert_eq!(status, 307);
    let link = day["redirect_to"].as_str().unwrap();
    assert!(
        link.starts_with("https://bulkexports.twilio.com/v1/Downloads/"),
        "{link}"
    );
    let file = http.get(link).send().await.unwrap();
    assert_eq!(file.status(), 200);
    let text = gunzip(&file.bytes().await.unwrap());
    assert_eq!(text.lines().count(), 40);

    // A plain-HTTP proxy request for a served host is answered the same way.
    let (status, job) = get(
        &http,
        &a,
        &format!("http://bulkexports.twilio.com/v1/Exports/Jobs/{sid}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        job["url"],
        format!("https://bulkexports.twilio.com/v1/Exports/Jobs/{sid}")
    );

    // The direct listener is unchanged.
    let (status, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(status, 200);
    assert_eq!(job["url"], format!("{}/v1/Exports/Jobs/{sid}", app.base));
}

/// The raw reply of the proxy to one request line.
async fn proxy_reply(app: &TestApp, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(app.proxy.unwrap())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = vec![0u8; 4096];
    let n = stream.read(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

#[tokio::test]
async fn every_other_target_is_refused() {
    let app = TestApp::spawn_proxied().await;
    for target in [
        "example.com:443",
        "api.twilio.com:443",
        "bulkexports.twilio.com:80",
        "bulkexports.twilio.com.evil.example:443",
        "127.0.0.1:443",
    ] {
        let reply = proxy_reply(
            &app,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 403"), "{target}: {reply}");
        assert!(reply.contains("20403"), "{reply}");
    }
    let reply = proxy_reply(
        &app,
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    let reply = proxy_reply(
        &app,
        "GET /v1/Exports/Messages/Days HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    let reply = proxy_reply(
        &app,
        "CONNECT voice.ie1.twilio.com:443 HTTP/1.1\r\nHost: voice.ie1.twilio.com:443\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn the_ca_is_private_constrained_and_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, created) = ca::init(dir.path()).unwrap();
    assert!(created);
    let (again, created) = ca::init(dir.path()).unwrap();
    assert!(!created);
    assert_eq!(path, again);
    assert_eq!(ca::existing_cert(dir.path()).unwrap(), path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = path.with_file_name("ca-key.pem");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
        let mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let pem = std::fs::read(&path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert!(cert.is_ca());
    let constraints = cert
        .name_constraints()
        .unwrap()
        .expect("name constraints are present");
    assert!(constraints.critical);
    let permitted: Vec<String> = constraints
        .value
        .permitted_subtrees
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| match &s.base {
            x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
            other => panic!("unexpected subtree {other:?}"),
        })
        .collect();
    assert!(permitted.contains(&"bulkexports.twilio.com".to_string()));
    assert!(permitted.contains(&"voice.sydney.au1.twilio.com".to_string()));
    assert!(!permitted
        .iter()
        .any(|p| p == "twilio.com" || p == "api.twilio.com"));
    assert!(ca::existing_cert(tempfile::tempdir().unwrap().path()).is_err());
}
