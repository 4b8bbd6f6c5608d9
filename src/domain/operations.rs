//! The operation ids of the HTTP API, as its OpenAPI documents name them
//! (`openapi/bulkexport.json` for the public routes, `openapi/admin.json`
//! for the admin API): what the request journal records and what a fault's
//! `Operation` filter names. A test holds this table to the documents.

/// Method, path template (parameters in braces) and operation id.
pub const OPERATIONS: &[(&str, &str, &str)] = &[
    ("GET", "/livez", "Livez"),
    ("GET", "/healthz", "Healthz"),
    ("GET", "/readyz", "Readyz"),
    ("GET", "/metrics", "Metrics"),
    ("GET", "/v1/Exports/{ResourceType}", "FetchExport"),
    (
        "GET",
        "/v1/Exports/{ResourceType}/Configuration",
        "FetchExportConfiguration",
    ),
    (
        "POST",
        "/v1/Exports/{ResourceType}/Configuration",
        "UpdateExportConfiguration",
    ),
    ("GET", "/v1/Exports/{ResourceType}/Days", "ListDay"),
    ("GET", "/v1/Exports/{ResourceType}/Days/{Day}", "FetchDay"),
    (
        "GET",
        "/v1/Exports/{ResourceType}/Jobs",
        "ListExportCustomJob",
    ),
    (
        "POST",
        "/v1/Exports/{ResourceType}/Jobs",
        "CreateExportCustomJob",
    ),
    ("GET", "/v1/Exports/Jobs/{JobSid}", "FetchJob"),
    ("DELETE", "/v1/Exports/Jobs/{JobSid}", "DeleteJob"),
    (
        "GET",
        "/v1/Downloads/{AccountSid}/{ResourceType}/{File}",
        "DownloadDay",
    ),
    (
        "DELETE",
        "/v1/Archives/{Date}/Calls/{Sid}",
        "DeleteArchivedCall",
    ),
    ("GET", "/2010-04-01/Accounts.json", "ListAccount"),
    (
        "GET",
        "/2010-04-01/Accounts/{AccountSid}/Calls.json",
        "ListCall",
    ),
    (
        "GET",
        "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}",
        "FetchCall",
    ),
    (
        "DELETE",
        "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}",
        "DeleteCall",
    ),
    ("GET", "/unsubscribe", "Unsubscribe"),
    ("POST", "/admin/v1/Accounts", "CreateAccount"),
    ("POST", "/admin/v1/Accounts/{AccountSid}/Keys", "CreateKey"),
    (
        "POST",
        "/admin/v1/Accounts/{AccountSid}/Records/{ResourceType}",
        "IngestRecords",
    ),
    ("POST", "/admin/v1/Queue/Drain", "DrainQueue"),
    ("GET", "/admin/v1/Clock", "FetchClock"),
    ("POST", "/admin/v1/Clock", "SetClock"),
    ("POST", "/admin/v1/Reset", "Reset"),
    ("GET", "/admin/v1/Faults", "ListFaults"),
    ("POST", "/admin/v1/Faults", "CreateFault"),
    ("DELETE", "/admin/v1/Faults", "DeleteFaults"),
    ("DELETE", "/admin/v1/Faults/{Sid}", "DeleteFault"),
    ("GET", "/admin/v1/Deliveries", "ListDeliveries"),
    ("DELETE", "/admin/v1/Deliveries", "DeleteDeliveries"),
    ("GET", "/admin/v1/Emails", "ListEmails"),
    ("DELETE", "/admin/v1/Emails", "DeleteEmails"),
    ("GET", "/admin/v1/Requests", "ListRequests"),
    ("DELETE", "/admin/v1/Requests", "DeleteRequests"),
    ("GET", "/admin/v1/openapi.json", "FetchAdminOpenApi"),
];

/// `template` with every parameter name left out: `/a/{X}/b` is `/a/{}/b`.
pub fn shape(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_name = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_name = true;
                out.push('{');
            }
            '}' => {
                in_name = false;
                out.push('}');
            }
            _ if in_name => {}
            c => out.push(c),
        }
    }
    out
}

/// [`OPERATIONS`] with each template's shape, made once.
static SHAPED: std::sync::LazyLock<Vec<(&str, String, &str)>> = std::sync::LazyLock::new(|| {
    OPERATIONS
        .iter()
        .map(|(m, t, id)| (*m, shape(t), *id))
        .collect()
});

/// The operation id of a request by its method and route template.
pub fn operation_of(method: &str, template: &str) -> Option<&'static str> {
    let wanted = shape(template);
    SHAPED
        .iter()
        .find(|(m, t, _)| *m == method && *t == wanted)
        .map(|(_, _, id)| *id)
}

/// True when `id` names an operation of the API.
pub fn is_operation(id: &str) -> bool {
    OPERATIONS.iter().any(|(_, _, op)| *op == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_find_their_operation_whatever_their_parameters_are_called() {
        assert_eq!(
            operation_of("GET", "/2010-04-01/Accounts/{AccountSid}/Calls/{File}"),
            Some("FetchCall")
        );
        assert_eq!(
            operation_of("POST", "/v1/Exports/{X}/Jobs"),
            Some("CreateExportCustomJob")
        );
        assert_eq!(operation_of("PUT", "/v1/Exports/{X}/Jobs"), None);
        assert!(is_operation("FetchDay") && !is_operation("fetchday"));
    }
}
