//! The native API: JSON over a unix socket. `GET/POST /v1/volumes`,
//! `GET/DELETE /v1/volumes/{name}`, `POST /v1/volumes/{name}/mount|unmount`,
//! `POST /v1/volumes/prune`. Errors are `{"message", "kind"}`.

use crate::manager::Manager;
use crate::VolumeError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// `POST /v1/volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCreate {
    /// Name; generated (an anonymous volume) if absent.
    #[serde(default)]
    pub name: Option<String>,
    /// `local` (default), or a plugin volumed fronts (`--remote-driver`).
    #[serde(default)]
    pub driver: Option<String>,
    /// The driver's options (`local`: `type`, `device`, `o`, `size`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `POST /v1/volumes/{name}/mount` and `unmount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountBody {
    /// The caller's ID (references are counted per ID).
    #[serde(default)]
    pub id: String,
}

/// `POST /v1/volumes/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneBody {
    /// Also named volumes (by default only anonymous ones).
    #[serde(default)]
    pub all: bool,
}

pub use native_api::ApiErrorBody;

struct ApiError(StatusCode, ApiErrorBody);

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        let (status, kind) = e.kind().status();
        ApiError(
            status,
            ApiErrorBody {
                message: e.to_string(),
                kind: kind.into(),
            },
        )
    }
}

impl From<plugin_api::PluginError> for ApiError {
    fn from(e: plugin_api::PluginError) -> Self {
        let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "invalid"
        };
        ApiError(
            e.status(),
            ApiErrorBody {
                message: e.message().to_string(),
                kind: kind.into(),
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

type Reply<T> = Result<T, ApiError>;

async fn body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    b: Body,
    what: &str,
) -> Reply<T> {
    Ok(plugin_api::server::read_json(headers, b, BODY_LIMIT, what).await?)
}

/// `POST /v1/mounts/release`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The caller whose references go.
    pub id: String,
}

#[derive(Clone)]
struct ApiState {
    manager: Arc<Manager>,
    policy: Arc<crate::resolve::Policy>,
}

impl axum::extract::FromRef<ApiState> for Arc<Manager> {
    fn from_ref(s: &ApiState) -> Self {
        Arc::clone(&s.manager)
    }
}

/// The router.
pub fn router(manager: Arc<Manager>, policy: crate::resolve::Policy) -> Router {
    let state = ApiState {
        manager,
        policy: Arc::new(policy),
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/mounts/resolve", post(resolve))
        .route("/v1/mounts/release", post(release))
        .route("/v1/volumes", get(list).post(create))
        .route("/v1/volumes/prune", post(prune))
        .route("/v1/volumes/{name}", get(inspect).delete(remove))
        .route("/v1/volumes/{name}/mount", post(mount))
        .route("/v1/volumes/{name}/unmount", post(unmount))
        .with_state(state)
}

async fn resolve(
    State(s): State<ApiState>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: crate::resolve::ResolveRequest = body(&headers, b, "mounts resolve").await?;
    if req.id.is_empty() {
        return Err(VolumeError::Invalid(
            "id: the caller's ID is needed (references are taken under it)".into(),
        )
        .into());
    }
    Ok(Json(
        crate::resolve::resolve(&s.manager, &s.policy, &req).await?,
    ))
}

async fn release(
    State(s): State<ApiState>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: ReleaseBody = body(&headers, b, "mounts release").await?;
    Ok(Json(s.manager.release(&req.id).await?))
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(m): State<Arc<Manager>>) -> impl IntoResponse {
    let volumes = m.list();
    let referenced = volumes.iter().filter(|v| v.references() > 0).count();
    let references: u64 = volumes.iter().map(|v| u64::from(v.references())).sum();
    let body = format!(
        "# HELP volumed_volumes Volumes volumed keeps.\n# TYPE volumed_volumes gauge\nvolumed_volumes {}\n\
         # HELP volumed_volumes_in_use Volumes with at least one mount reference.\n# TYPE volumed_volumes_in_use gauge\nvolumed_volumes_in_use {referenced}\n\
         # HELP volumed_references Mount references held, over all volumes.\n# TYPE volumed_references gauge\nvolumed_references {references}\n",
        volumes.len()
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

async fn list(State(m): State<Arc<Manager>>) -> impl IntoResponse {
    Json(m.list())
}

async fn create(
    State(m): State<Arc<Manager>>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: VolumeCreate = body(&headers, b, "volume create").await?;
    let v = m
        .create_with(
            req.name.as_deref(),
            req.driver.as_deref(),
            req.options,
            req.labels,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn inspect(
    State(m): State<Arc<Manager>>,
    Path(name): Path<String>,
) -> Reply<impl IntoResponse> {
    Ok(Json(m.get(&name)?))
}

async fn remove(
    State(m): State<Arc<Manager>>,
    Path(name): Path<String>,
) -> Reply<impl IntoResponse> {
    Ok(Json(m.remove(&name).await?))
}

async fn mount(
    State(m): State<Arc<Manager>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: MountBody = body(&headers, b, "volume mount").await?;
    m.mount(&name, &req.id).await?;
    Ok(Json(m.get(&name)?))
}

async fn unmount(
    State(m): State<Arc<Manager>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: MountBody = body(&headers, b, "volume unmount").await?;
    m.unmount(&name, &req.id).await?;
    Ok(Json(m.get(&name)?))
}

async fn prune(
    State(m): State<Arc<Manager>>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: PruneBody = body(&headers, b, "volume prune").await?;
    Ok(Json(m.prune(req.all).await))
}
