//! Incomplete multipart uploads in an S3 bucket: a process that dies while it
//! uploads a day file leaves one behind, invisible but holding the bytes
//! (personal data). object_store can abort an upload whose id it knows but
//! cannot list them, so this lists them with S3's `ListMultipartUploads`,
//! signed by object_store's own SigV4 signer, and aborts each through it.

use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::Signer;
use serde::Deserialize;

use super::Error;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default, rename = "Upload")]
    uploads: Vec<Upload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Upload {
    key: String,
    upload_id: String,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Leftovers(format!("{what}: {e}"))
}

/// Aborts every incomplete multipart upload of exactly `path`.
pub(super) async fn abort_uploads(s3: &AmazonS3, region: &str, path: &Path) -> Result<(), Error> {
    for upload in list_uploads(s3, region, path).await? {
        if upload.key == path.as_ref() {
            s3.abort_multipart(path, &upload.upload_id).await?;
            tracing::info!(key = %path, "aborted an incomplete upload left by an interrupted export");
        }
    }
    Ok(())
}

/// How many incomplete multipart uploads of exactly `path` there are.
pub(super) async fn count_uploads(
    s3: &AmazonS3,
    region: &str,
    path: &Path,
) -> Result<usize, Error> {
    Ok(list_uploads(s3, region, path)
        .await?
        .iter()
        .filter(|u| u.key == path.as_ref())
        .count())
}

async fn list_uploads(s3: &AmazonS3, region: &str, path: &Path) -> Result<Vec<Upload>, Error> {
    // The bucket's URL as object_store addresses it (path-style or
    // virtual-hosted, custom endpoint or not): the URL of an object, less
    // the object's name and the signature.
    let probe = s3
        .signed_url(
            http::Method::GET,
            &Path::from("probe"),
            std::time::Duration::from_secs(60),
        )
        .await?;
    let mut url = probe;
    url.set_query(None);
    let bucket_path = url
        .path()
        .strip_suffix("/probe")
        .unwrap_or(url.path())
        .to_string();
    url.set_path(&bucket_path);
    url.query_pairs_mut()
        .append_pair("uploads", "")
        .append_pair("prefix", path.as_ref());
    let credential = s3.credentials().get_credential().await?;
    let mut request = http::Request::builder()
        .method(http::Method::GET)
        .uri(url.as_str())
        .body(object_store::client::HttpRequestBody::empty())
        .map_err(|e| failed("building the ListMultipartUploads request", e))?;
    AwsAuthorizer::new(&credential, "s3", region).authorize(&mut request, None);
    let client = reqwest::Client::new();
    let mut send = client.get(url.as_str());
    for (name, value) in request.headers() {
        if name != http::header::HOST {
            send = send.header(name, value);
        }
    }
    let response = send
        .send()
        .await
        .map_err(|e| failed("listing incomplete uploads", e.without_url()))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| failed("listing incomplete uploads", e.without_url()))?;
    if !status.is_success() {
        return Err(failed(
            "listing incomplete uploads",
            format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ),
        ));
    }
    let parsed: ListMultipartUploadsResult =
        quick_xml::de::from_str(&body).map_err(|e| failed("reading the upload list", e))?;
    Ok(parsed.uploads)
}
