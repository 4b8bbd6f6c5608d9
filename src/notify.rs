//! Outbound notifications: webhooks signed exactly as Twilio signs them, sent
//! with a timeout, no redirects and a small response read; and the check that
//! keeps webhooks away from internal addresses when that is asked for.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// How much of a webhook's response body is read.
const MAX_RESPONSE_BYTES: usize = 4096;

/// `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + each POST
/// parameter's name and value, sorted by name)). For GET the URL (with its
/// query) is signed alone.
pub fn twilio_signature(auth_token: &str, url: &str, post_params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = post_params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL a GET webhook is sent to: the parameters in its query.
fn get_url(url: &str, params: &[(String, String)]) -> Result<url::Url, url::ParseError> {
    let mut full = url::Url::parse(url)?;
    full.query_pairs_mut()
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok(full)
}

/// The `X-Twilio-Signature` a webhook of `method` to `url` with `params`
/// carries when signed with `auth_token`: what a receiver checks.
pub fn expected_signature(
    auth_token: &str,
    url: &str,
    method: &str,
    params: &[(String, String)],
) -> Option<String> {
    if method.eq_ignore_ascii_case("GET") {
        let full = get_url(url, params).ok()?;
        Some(twilio_signature(auth_token, full.as_str(), &[]))
    } else {
        Some(twilio_signature(auth_token, url, params))
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(String),
    /// Worth another attempt: connection error, timeout, 429, 5xx.
    Retry(String),
    /// Not worth another attempt: another 4xx, a redirect, a refused address.
    Fail(String),
}

/// Sends webhooks.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    refuse_private: bool,
}

impl WebhookSender {
    pub fn new(timeout: Duration, refuse_private: bool) -> WebhookSender {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Header names as Twilio writes them (X-Twilio-Signature): receivers
            // that look headers up by exact name then find them.
            .http1_title_case_headers()
            .user_agent(concat!("bulkexport/", env!("CARGO_PKG_VERSION")));
        if refuse_private {
            // The addresses connected to are the ones checked: a name that
            // resolves elsewhere between a check and the connection (DNS
            // rebinding) still meets this resolver.
            builder = builder
                .dns_resolver(std::sync::Arc::new(PublicOnly))
                .no_proxy();
        }
        let http = builder.build().unwrap_or_else(|_| reqwest::Client::new());
        WebhookSender {
            http,
            refuse_private,
        }
    }

    /// One attempt: POST with a form body, or GET with the parameters in the query.
    pub async fn send(
        &self,
        url: &str,
        method: &str,
        params: &[(String, String)],
        auth_token: &str,
        idempotency_token: &str,
    ) -> Outcome {
        self.send_recorded(url, method, params, auth_token, idempotency_token)
            .await
            .outcome
    }

    /// [`WebhookSender::send`], telling also the headers sent and the
    /// answer's status code (for the delivery journal).
    pub async fn send_recorded(
        &self,
        url: &str,
        method: &str,
        params: &[(String, String)],
        auth_token: &str,
        idempotency_token: &str,
    ) -> Sent {
        let mut headers = Vec::new();
        let (outcome, status_code) = self
            .attempt(
                url,
                method,
                params,
                auth_token,
                idempotency_token,
                &mut headers,
            )
            .await;
        Sent {
            outcome,
            status_code,
            headers,
        }
    }

    async fn attempt(
        &self,
        url: &str,
        method: &str,
        params: &[(String, String)],
        auth_token: &str,
        idempotency_token: &str,
        headers: &mut Vec<(String, String)>,
    ) -> (Outcome, Option<u16>) {
        if self.refuse_private {
            // A literal address never reaches the resolver: judged here.
            if let Err(e) = check_literal(url) {
                return (Outcome::Fail(e), None);
            }
        }
        let request = if method.eq_ignore_ascii_case("GET") {
            let full = match get_url(url, params) {
                Ok(u) => u,
                Err(e) => return (Outcome::Fail(format!("bad URL: {e}")), None),
            };
            let signature = twilio_signature(auth_token, full.as_str(), &[]);
            headers.push(("X-Twilio-Signature".into(), signature.clone()));
            self.http
                .get(full.as_str())
                .header("X-Twilio-Signature", signature)
        } else {
            let signature = twilio_signature(auth_token, url, params);
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
            headers.push(("X-Twilio-Signature".into(), signature.clone()));
            self.http
                .post(url)
                .form(params)
                .header("X-Twilio-Signature", signature)
        };
        headers.push((
            "I-Twilio-Idempotency-Token".into(),
            idempotency_token.into(),
        ));
        let response = match request
            .header("I-Twilio-Idempotency-Token", idempotency_token)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if refused_address(&e) => {
                return (Outcome::Fail(redact_error(&e)), None);
            }
            Err(e) if e.is_timeout() => {
                return (
                    Outcome::Retry(format!("timed out: {}", redact_error(&e))),
                    None,
                )
            }
            Err(e) => {
                return (
                    Outcome::Retry(format!("request failed: {}", redact_error(&e))),
                    None,
                )
            }
        };
        let status = response.status();
        let code = Some(status.as_u16());
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - body.len())]);
            if body.len() >= MAX_RESPONSE_BYTES {
                break;
            }
        }
        let detail = format!("HTTP {}", status.as_u16());
        let outcome = if status.is_success() {
            Outcome::Delivered(detail)
        } else if status.as_u16() == 429 || status.is_server_error() {
            Outcome::Retry(detail)
        } else {
            Outcome::Fail(format!(
                "{detail}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .flat_map(char::escape_default)
                    .collect::<String>()
            ))
        };
        (outcome, code)
    }
}

/// One webhook attempt as it went: its outcome, the answer's status code
/// (none when no answer came) and the headers sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub outcome: Outcome,
    pub status_code: Option<u16>,
    pub headers: Vec<(String, String)>,
}

/// A reqwest error as text with its causes, and the URL it names shown
/// without its userinfo.
fn redact_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    match e.url() {
        Some(url) => text.replace(
            url.as_str(),
            &crate::config::url_without_userinfo(url.as_str()),
        ),
        None => text,
    }
}

/// True when the error comes from [`PublicOnly`] refusing every address
/// (the HTTP client's connector wraps it, so it is known by its text).
fn refused_address(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<RefusedAddress>() || s.to_string().ends_with(REFUSED) {
            return true;
        }
        source = s.source();
    }
    false
}

/// How a refused address is described.
const REFUSED: &str = "which webhooks may not reach";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RefusedAddress(String);

/// A resolver that hands the HTTP client only public addresses, so that
/// the addresses it connects to are the ones checked.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let own = own_addresses();
            let public: Vec<std::net::SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !crate::net::is_special(&a.ip(), &own))
                .collect();
            if public.is_empty() {
                let shown = found
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(Box::new(RefusedAddress(format!(
                    "the host {host:?} resolves to the internal address {shown}, {REFUSED}"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of this host's own interfaces.
fn own_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default()
}

/// Refuses a URL whose host is a literal internal address.
fn check_literal(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("the URL has no host".into()),
    };
    if crate::net::is_special(&ip, &own_addresses()) {
        Err(format!(
            "the address {ip} is internal, and webhooks may not reach it"
        ))
    } else {
        Ok(())
    }
}

/// Refuses URLs whose host is, or resolves to, a special-purpose address
/// (loopback, private, link-local, the host's own, …). Used when a webhook
/// URL is given, to answer at once; every delivery is checked again on the
/// addresses it connects to.
pub async fn check_public(url: &str) -> Result<(), String> {
    let shown = crate::config::url_without_userinfo(url);
    let parsed = url::Url::parse(url).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(_) => return check_literal(url).map_err(|e| format!("{shown:?}: {e}")),
        None => return Err(format!("{shown:?} has no host")),
    };
    let port = parsed.port_or_known_default().unwrap_or(443);
    let own = own_addresses();
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("the host of {shown:?} does not resolve: {e}"))?
        .map(|a| a.ip())
        .collect();
    match addrs.iter().find(|ip| crate::net::is_special(ip, &own)) {
        Some(ip) => Err(format!(
            "{shown:?} resolves to the internal address {ip}, which webhooks may not reach"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_twilios_test_vector() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[tokio::test]
    async fn internal_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest",
            "http://[::1]:8080/",
            "http://192.168.0.1/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[::127.0.0.1]/",
            "http://0.0.0.1/",
            "http://198.18.0.1/",
            "http://224.0.0.1/",
            "http://localhost:9/",
        ] {
            assert!(check_public(url).await.is_err(), "{url}");
        }
        assert!(check_public("http://93.184.215.14/hook").await.is_ok());
    }

    /// Deliveries are checked on the addresses connected to: a name that
    /// resolves to loopback and the host's own interface address are refused,
    /// and the listener there never sees a connection.
    #[tokio::test]
    async fn deliveries_never_connect_to_internal_addresses() {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sender = WebhookSender::new(Duration::from_secs(2), true);
        let mut urls = vec![format!("http://localhost:{port}/hook")];
        urls.extend(
            own_addresses()
                .into_iter()
                .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
                .map(|ip| format!("http://{ip}:{port}/hook")),
        );
        for url in &urls {
            match sender.send(url, "POST", &[], "token", "idem").await {
                Outcome::Fail(e) => assert!(e.contains("internal"), "{url}: {e}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a refused delivery reached the listener");
        let open = WebhookSender::new(Duration::from_secs(2), false);
        let sent = tokio::spawn(async move {
            open.send(
                &format!("http://localhost:{port}/hook"),
                "POST",
                &[],
                "t",
                "i",
            )
            .await
        });
        assert!(
            listener.accept().await.is_ok(),
            "without the setting it connects"
        );
        drop(sent);
    }
}

/// Sends emails over SMTP with lettre, or, with no SMTP server configured,
/// writes them to the log and says so.
#[derive(Clone)]
pub struct EmailSender {
    transport: Option<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EmailSender(from {}, smtp: {})",
            self.from,
            self.transport.is_some()
        )
    }
}

impl EmailSender {
    /// `smtp_url` as lettre reads it: `smtp://host:port`, `smtp://host?tls=required`,
    /// `smtps://user:password@host`.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        timeout: Duration,
    ) -> Result<EmailSender, String> {
        let from = from
            .parse()
            .map_err(|e| format!("email_from {from:?} is not an email address: {e}"))?;
        let transport = match smtp_url {
            None => None,
            Some(url) => Some(
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("smtp_url is not a valid SMTP URL: {e}"))?
                    .timeout(Some(timeout))
                    .build(),
            ),
        };
        Ok(EmailSender { transport, from })
    }

    /// One attempt at sending a plain-text email.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Outcome {
        use lettre::AsyncTransport;
        let Some(transport) = &self.transport else {
            tracing::info!(
                to,
                subject,
                body,
                "no SMTP server is configured (smtp_url), so this email is only logged"
            );
            return Outcome::Delivered("logged: no SMTP server configured".into());
        };
        let to: lettre::message::Mailbox = match to.parse() {
            Ok(m) => m,
            Err(e) => return Outcome::Fail(format!("bad recipient {to:?}: {e}")),
        };
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body.to_string());
        let message = match message {
            Ok(m) => m,
            Err(e) => return Outcome::Fail(format!("could not build the email: {e}")),
        };
        match transport.send(message).await {
            Ok(response) => Outcome::Delivered(format!("SMTP {}", response.code())),
            Err(e) if e.is_permanent() => Outcome::Fail(format!("SMTP refused: {e}")),
            Err(e) => Outcome::Retry(format!("SMTP: {e}")),
        }
    }
}
