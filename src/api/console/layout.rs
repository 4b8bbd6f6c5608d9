//! The console's page shell, navigation and small formatting helpers.

use maud::{html, Markup, DOCTYPE};

use super::session::{Session, Who};
use crate::domain::ResourceType;

/// The resource types, in the order the tabs show them.
pub const TYPES: [ResourceType; 4] = [
    ResourceType::Messages,
    ResourceType::Calls,
    ResourceType::Conferences,
    ResourceType::Participants,
];

/// Where a page sits: the section it belongs to and the account it shows.
pub struct Place<'a> {
    pub section: &'a str,
    pub account: Option<&'a str>,
}

/// A whole page: head, navigation for who is signed in, and `body`.
pub fn page(title: &str, session: &Session, place: &Place, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · bulkexport" }
                link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "bulkexport" }
                    nav { (links(session, place)) }
                    @if session.who != Who::Nobody {
                        form.signout method="post" action="/console/sign-out" {
                            (csrf(session))
                            span.who { (who(&session.who)) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn who(w: &Who) -> String {
    match w {
        Who::Account { account_sid, .. } => account_sid.clone(),
        Who::Admin => "admin".into(),
        Who::Nobody => String::new(),
    }
}

fn links(session: &Session, place: &Place) -> Markup {
    let account_links = |sid: &str| {
        html! {
            @for (section, label) in [("jobs", "Jobs"), ("days", "Days"), ("configuration", "Configuration"), ("notifications", "Notifications")] {
                a class=(if place.section == section { "on" } else { "" })
                  href={ "/console/accounts/" (sid) "/" (section) } { (label) }
            }
        }
    };
    html! {
        @match &session.who {
            Who::Account { account_sid, .. } => { (account_links(account_sid)) }
            Who::Admin => {
                @for (section, href, label) in [
                    ("admin", "/console/admin", "Overview"),
                    ("accounts", "/console/admin/accounts", "Accounts"),
                    ("requests", "/console/admin/requests", "Requests"),
                    ("emails", "/console/admin/emails", "Emails"),
                    ("faults", "/console/admin/faults", "Faults"),
                ] {
                    a class=(if place.section == section { "on" } else { "" }) href=(href) { (label) }
                }
                @if let Some(sid) = place.account {
                    span.sep { "·" } span.acct { (sid) } (account_links(sid))
                }
            }
            Who::Nobody => {}
        }
    }
}

/// The hidden field every form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// Tabs of the resource types, linking to `base?type=…`.
pub fn type_tabs(base: &str, current: ResourceType) -> Markup {
    html! {
        nav.tabs {
            @for rt in TYPES {
                a class=(if rt == current { "on" } else { "" }) href={ (base) "?type=" (rt.as_str()) } { (rt.as_str()) }
            }
        }
    }
}

/// A status as a coloured badge.
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// An error shown in place, above the form it is about.
pub fn error_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message { p.error role="alert" { (m) } }
    }
}

/// A labelled text field holding `value`.
pub fn field(label: &str, name: &str, value: &str, hint: &str) -> Markup {
    html! {
        label { span { (label) } input type="text" name=(name) value=(value) placeholder=(hint); }
    }
}

pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A JSON value as a table cell shows it: strings bare, the rest as JSON.
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
