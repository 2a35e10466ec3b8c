//! Reading a request body the way the engine sends it: no Content-Type, maybe empty,
//! capped in size, decoded with an error that names the offending field.

use crate::error::PluginError;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A request body that did not arrive whole in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// A request body that must arrive whole within a time limit, counted from when
/// its request's head was read: a client that sends half a body and stops holds
/// nothing for long.
pub(crate) struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl TimedBody {
    pub(crate) fn new(inner: Incoming, limit: Duration) -> Self {
        TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|r| r.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Read at most `limit` bytes of `body`.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    method: &str,
) -> Result<Bytes, PluginError> {
    let too_large = || {
        PluginError::new(format!(
            "request body of {method} is larger than the limit of {limit} bytes"
        ))
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    // Refuse early when the sender says how much it will send.
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(err) if timed_out(&*err) => Err(PluginError::new(format!(
            "request body of {method}: {}",
            PluginError::from_error(&*err).message()
        ))
        .with_status(StatusCode::REQUEST_TIMEOUT)),
        Err(err) => Err(PluginError::bad_request(format!(
            "reading request body of {method}: {err}"
        ))),
    }
}

/// Whether `err` (or an error it wraps) is a [`BodyTimeout`].
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<BodyTimeout>().is_some() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Decode JSON; an empty body counts as `{}` because the engine sends nothing for
/// argument-less calls. Errors name the JSON path that failed.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], method: &str) -> Result<T, PluginError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Every call's body is an object: serde would also take an array, matching fields
    // by position and so bypassing the field names (and `deny_unknown_fields`).
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(PluginError::bad_request(format!(
            "invalid JSON body for {method}: expected a JSON object"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let place = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(" at {path}")
        };
        PluginError::bad_request(format!("invalid JSON body for {method}{place}: {inner}"))
    })?;
    de.end().map_err(|err| {
        PluginError::bad_request(format!("invalid JSON body for {method}: {err}"))
    })?;
    Ok(value)
}

/// Read and decode a JSON request body the way the plugin router does (size cap,
/// empty body as `{}`, errors naming the field), for other HTTP APIs built on axum
/// that want the same behaviour. `what` names the call in error messages.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<T, PluginError> {
    let bytes = read_limited(headers, body, limit, what).await?;
    decode(&bytes, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::volume::CreateVolumeRequest;

    #[test]
    fn names_the_field() {
        let err =
            decode::<CreateVolumeRequest>(br#"{"Name": 3}"#, "VolumeDriver.Create").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.message().contains("at Name"), "{}", err.message());
        assert!(
            err.message().contains("invalid type: integer `3`"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn only_objects() {
        for body in [&b"[\"v1\"]"[..], b"null", b"3", b"\"x\""] {
            let err = decode::<CreateVolumeRequest>(body, "VolumeDriver.Create").unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(
                err.message().contains("expected a JSON object"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn empty_is_an_empty_object() {
        let err = decode::<CreateVolumeRequest>(b"", "VolumeDriver.Create").unwrap_err();
        assert!(
            err.message().contains("missing field `Name`"),
            "{}",
            err.message()
        );
    }
}
