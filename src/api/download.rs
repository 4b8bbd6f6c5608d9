//! Serving day files behind signed links: raw gzip, no Basic auth, with
//! Content-Length, ETag, HEAD and single byte ranges so downloads can resume.

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::request::{form_pairs, PathParams};
use super::AppState;
use crate::domain::{Day, ResourceType};

pub async fn download_day(
    State(state): State<AppState>,
    uri: OriginalUri,
    PathParams((account_sid, rt, file)): PathParams<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found_path(uri.path());
    let rt: ResourceType = rt.parse().map_err(|_| not_found())?;
    let day = file
        .strip_suffix(".json.gz")
        .and_then(|d| Day::parse(d).ok())
        .ok_or_else(not_found)?;
    let query = form_pairs(uri.query().unwrap_or_default().as_bytes(), "query string")?;
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let expires = param("Expires").and_then(|e| e.parse::<i64>().ok());
    let (Some(expires), Some(signature)) = (expires, param("Signature")) else {
        return Err(ApiError::Forbidden(
            "The download link is missing its Expires or Signature".into(),
        ));
    };
    let dl = state
        .exports
        .open_download(&account_sid, rt, day, expires, signature)
        .await?;

    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    resp_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0"),
    );
    if let Ok(v) = HeaderValue::from_str(&dl.etag) {
        resp_headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{day}.json.gz\"")) {
        resp_headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if inm
            .split(',')
            .any(|t| t.trim() == dl.etag || t.trim() == "*")
        {
            return Ok((StatusCode::NOT_MODIFIED, resp_headers).into_response());
        }
    }
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == dl.etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_ok => parse_range(r, dl.size)?,
        _ => None,
    };
    let (status, len) = match &range {
        Some(r) => {
            let v = format!("bytes {}-{}/{}", r.start, r.end - 1, dl.size);
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp_headers.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, r.end - r.start)
        }
        None => (StatusCode::OK, dl.size),
    };
    resp_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let cut = match len {
        0 => None,
        _ => state.exports.download_cut(&account_sid, rt, day).await?,
    };
    let body = match (len, cut) {
        (0, _) => Body::empty(),
        (_, None) => Body::from_stream(state.exports.download_body(&dl, range).await?),
        // The whole length announced, fewer bytes sent: a dropped connection.
        (_, Some(keep)) => {
            let stream = state.exports.download_body(&dl, range).await?;
            Body::from_stream(truncated(stream, keep))
        }
    };
    Ok((status, resp_headers, body).into_response())
}

/// Parses a single `bytes=` range against `size` (RFC 9110 14.1.2). Several
/// ranges, or a form this does not read, are answered with the whole file
/// (as RFC 9110 allows); a range that starts at or after the end is 416.
/// Any `u64` is handled without overflow.
fn parse_range(header: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ApiError> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let range = if a.is_empty() {
        if !digits(b) {
            return Ok(None);
        }
        // A suffix longer than u64 is longer than any file: the whole file.
        let n = b.parse::<u64>().unwrap_or(u64::MAX);
        if n == 0 {
            return Err(ApiError::RangeNotSatisfiable(size));
        }
        size.saturating_sub(n)..size
    } else {
        if !digits(a) || !(b.is_empty() || digits(b)) {
            return Ok(None);
        }
        let Ok(start) = a.parse::<u64>() else {
            // A first byte beyond u64 is beyond the end.
            return Err(ApiError::RangeNotSatisfiable(size));
        };
        let end = if b.is_empty() {
            size
        } else {
            match b.parse::<u64>() {
                Ok(e) if e < start => return Ok(None),
                Ok(e) => e.saturating_add(1).min(size),
                // A last byte beyond u64 is beyond the end: up to the end.
                Err(_) => size,
            }
        };
        start..end
    };
    if range.start >= size {
        return Err(ApiError::RangeNotSatisfiable(size));
    }
    Ok(Some(range))
}

/// The first `keep` bytes of `stream`, then an error that makes the server
/// close the connection (the announced length never arrives).
fn truncated(
    stream: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    keep: u64,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    use futures::StreamExt;
    let cut_off = || std::io::Error::other("a DownloadTruncate fault cut the download");
    futures::stream::unfold(
        (stream, keep, false),
        move |(mut s, left, done)| async move {
            if done {
                return None;
            }
            if left == 0 {
                // While the body waits, the server flushes the head and the
                // bytes kept; an error at once could close the connection first.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                return Some((Err(cut_off()), (s, 0, true)));
            }
            match s.next().await {
                None => None,
                Some(Err(e)) => Some((Err(e), (s, 0, true))),
                Some(Ok(mut chunk)) => {
                    if chunk.len() as u64 >= left {
                        chunk.truncate(left as usize);
                        Some((Ok(chunk), (s, 0, false)))
                    } else {
                        let rest = left - chunk.len() as u64;
                        Some((Ok(chunk), (s, rest, false)))
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::parse_range;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), Some(50..100));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert_eq!(
            parse_range("bytes=0-18446744073709551615", 5913).unwrap(),
            Some(0..5913)
        );
        assert_eq!(
            parse_range("bytes=5-18446744073709551615", 5913).unwrap(),
            Some(5..5913)
        );
        assert_eq!(
            parse_range("bytes=5-99999999999999999999999", 5913).unwrap(),
            Some(5..5913)
        );
        assert!(parse_range("bytes=99999999999999999999999-", 5913).is_err());
        assert_eq!(
            parse_range("bytes=-99999999999999999999999", 5913).unwrap(),
            Some(0..5913)
        );
        assert_eq!(parse_range("bytes=+5-9", 100).unwrap(), None);
    }

    proptest! {
        /// Whatever the header, the parser answers without panicking, and a
        /// range it grants lies inside the file and is not empty.
        #[test]
        fn any_header_gives_a_range_inside_the_file_or_none_or_416(
            header in "(bytes=)?[0-9 ,+-]{0,45}",
            size in 0u64..10_000_000,
        ) {
            if let Ok(Some(r)) = parse_range(&header, size) {
                prop_assert!(r.start < r.end && r.end <= size, "{header} gave {r:?} of {size}");
            }
        }

        #[test]
        fn any_numbers_give_a_range_inside_the_file_or_416(
            a in any::<u64>(), b in any::<u64>(), size in 0u64..u64::MAX,
        ) {
            for header in [format!("bytes={a}-{b}"), format!("bytes={a}-"), format!("bytes=-{b}")] {
                match parse_range(&header, size) {
                    Ok(Some(r)) => prop_assert!(r.start < r.end && r.end <= size),
                    Ok(None) => prop_assert!(header.contains('-') && a > b),
                    Err(_) => {}
                }
            }
        }
    }
}
