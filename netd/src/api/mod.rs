//! The native API: JSON over a unix socket, described in docs/netd-api.json
//! (OpenAPI). Handlers only decode, call the controller and encode.

mod error;
pub mod metrics;

pub use error::{ApiError, ApiErrorBody};

use crate::controller::{
    Attach, Attachment, Controller, EndpointCreate, EngineView, Join, NetworkCreate, Ports,
    SandboxCreate,
};
use crate::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use crate::store::Kind;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics::RequestMetrics;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct ApiState {
    ctl: Arc<Controller>,
    requests: Arc<RequestMetrics>,
}

/// `GET /v1/networks/{key}`: the network and its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInspect {
    /// The network.
    #[serde(flatten)]
    pub network: NetworkRecord,
    /// Its endpoints.
    pub endpoints: Vec<EndpointRecord>,
    /// Where its DNS responder listens (its gateway), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<std::net::IpAddr>,
}

/// `POST /v1/attachments`: the sandbox made, its endpoint, and the network
/// (what a CNI result needs, in one answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// The sandbox.
    pub sandbox: SandboxRecord,
    /// Its endpoint on the network.
    pub endpoint: EndpointRecord,
    /// The network.
    pub network: NetworkRecord,
    /// Where the network's DNS responder listens, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<std::net::IpAddr>,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// netd's version.
    pub version: String,
    /// Number of networks.
    pub networks: usize,
    /// Number of endpoints.
    pub endpoints: usize,
    /// Number of sandboxes.
    pub sandboxes: usize,
}

type Reply<T> = Result<T, ApiError>;

async fn body<T: DeserializeOwned>(headers: &HeaderMap, body: Body, what: &str) -> Reply<T> {
    Ok(plugin_api::server::read_json(headers, body, BODY_LIMIT, what).await?)
}

/// The router.
pub fn router(ctl: Arc<Controller>) -> Router {
    let state = ApiState {
        ctl,
        requests: Arc::new(RequestMetrics::default()),
    };
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/networks", get(list_networks).post(create_network))
        .route(
            "/v1/networks/{key}",
            get(inspect_network).delete(delete_network),
        )
        .route("/v1/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/v1/endpoints/{key}",
            get(inspect_endpoint).delete(delete_endpoint),
        )
        .route("/v1/sandboxes", get(list_sandboxes).post(create_sandbox))
        .route(
            "/v1/sandboxes/{key}",
            get(inspect_sandbox).delete(delete_sandbox),
        )
        .route("/v1/sandboxes/{key}/join", post(join))
        .route("/v1/sandboxes/{key}/leave", post(leave))
        .route("/v1/sandboxes/{key}/attach", post(attach))
        .route("/v1/sandboxes/{key}/detach", post(detach))
        .route("/v1/attachments", post(create_attached))
        .route("/v1/endpoints/{key}/ports", axum::routing::put(set_ports))
        .route("/v1/firewall", get(firewall_show))
        .route("/v1/cluster", get(cluster_status))
        .route("/v1/pools", get(list_pools))
        .route("/v1/engine/sync", post(engine_sync))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

async fn count(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    s.requests
        .observe(&method, &route, resp.status().as_u16(), started.elapsed());
    resp
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no such API path {}; see docs/netd-api.json",
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn info(State(s): State<ApiState>) -> Reply<Json<Info>> {
    let (networks, endpoints, sandboxes) = s.ctl.counts();
    Ok(Json(Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        networks,
        endpoints,
        sandboxes,
    }))
}

async fn metrics_page(State(s): State<ApiState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics::render(&s.ctl, &s.requests),
    )
}

/// A listing, as the JSON the records were stored as.
fn listing(s: &ApiState, kind: Kind) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        s.ctl.list_json(kind),
    )
        .into_response()
}

async fn list_networks(State(s): State<ApiState>) -> Response {
    listing(&s, Kind::Network)
}

async fn cluster_status(State(s): State<ApiState>) -> Reply<impl IntoResponse> {
    let agent = s.ctl.overlay().ok_or_else(|| {
        crate::controller::ControllerError::Invalid(
            "netd is not in a cluster: start `netd daemon` with --cluster-store and --advertise-addr".into(),
        )
    })?;
    Ok(Json(agent.status(&s.ctl).await))
}

async fn list_pools(State(s): State<ApiState>) -> Json<Vec<ipam::PoolState>> {
    Json(s.ctl.pool_states())
}

async fn engine_sync(
    State(s): State<ApiState>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let view: EngineView = body(&headers, b, "engine sync").await?;
    Ok(Json(s.ctl.engine_sync(view).await?))
}

async fn create_network(
    State(s): State<ApiState>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: NetworkCreate = body(&headers, b, "network create").await?;
    Ok((StatusCode::CREATED, Json(s.ctl.create_network(req).await?)))
}

async fn inspect_network(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Reply<impl IntoResponse> {
    let network = s.ctl.network(&key)?;
    let endpoints = s.ctl.network_endpoints(&network.id);
    let dns = s.ctl.network_name_server(&network.id);
    Ok(Json(NetworkInspect {
        network,
        endpoints,
        dns,
    }))
}

async fn delete_network(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Reply<impl IntoResponse> {
    Ok(Json(s.ctl.delete_network(&key).await?))
}

async fn list_endpoints(State(s): State<ApiState>) -> Response {
    listing(&s, Kind::Endpoint)
}

async fn create_endpoint(
    State(s): State<ApiState>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: EndpointCreate = body(&headers, b, "endpoint create").await?;
    Ok((StatusCode::CREATED, Json(s.ctl.create_endpoint(req).await?)))
}

async fn inspect_endpoint(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Reply<impl IntoResponse> {
    Ok(Json(s.ctl.endpoint(&key)?))
}

async fn delete_endpoint(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Reply<impl IntoResponse> {
    Ok(Json(s.ctl.delete_endpoint(&key).await?))
}

async fn list_sandboxes(State(s): State<ApiState>) -> Response {
    listing(&s, Kind::Sandbox)
}

async fn create_sandbox(
    State(s): State<ApiState>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: SandboxCreate = body(&headers, b, "sandbox create").await?;
    Ok((StatusCode::CREATED, Json(s.ctl.create_sandbox(req).await?)))
}

async fn create_attached(
    State(s): State<ApiState>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: Attachment = body(&headers, b, "attachment").await?;
    let (sandbox, endpoint) = s.ctl.create_attached(req.sandbox, req.attach).await?;
    let network = s.ctl.network(&endpoint.network)?;
    let dns = s.ctl.network_name_server(&network.id);
    Ok((
        StatusCode::CREATED,
        Json(Attached {
            sandbox,
            endpoint,
            network,
            dns,
        }),
    ))
}

async fn inspect_sandbox(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Reply<impl IntoResponse> {
    Ok(Json(s.ctl.sandbox(&key)?))
}

async fn delete_sandbox(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Reply<impl IntoResponse> {
    Ok(Json(s.ctl.delete_sandbox(&key).await?))
}

async fn join(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: Join = body(&headers, b, "sandbox join").await?;
    Ok(Json(s.ctl.join(&key, &req.endpoint).await?))
}

async fn leave(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: Join = body(&headers, b, "sandbox leave").await?;
    Ok(Json(s.ctl.leave(&key, &req.endpoint).await?))
}

async fn attach(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: Attach = body(&headers, b, "sandbox attach").await?;
    Ok((StatusCode::CREATED, Json(s.ctl.attach(&key, req).await?)))
}

async fn set_ports(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: Ports = body(&headers, b, "endpoint ports").await?;
    Ok(Json(s.ctl.set_ports(&key, &req.ports).await?))
}

/// `GET /v1/firewall`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallShow {
    /// Whether netd runs its firewall (`--firewall on`).
    pub enabled: bool,
    /// The nft script netd programs (the whole table, as it would be applied now).
    pub script: String,
    /// The table as the kernel has it now (`nft list table inet netd`), if present.
    pub kernel: Option<String>,
}

async fn firewall_show(State(s): State<ApiState>) -> Reply<impl IntoResponse> {
    let Some(fw) = s.ctl.firewall() else {
        return Ok(Json(FirewallShow {
            enabled: false,
            script: String::new(),
            kernel: None,
        }));
    };
    let kernel = firewall::nft::show()
        .await
        .map_err(crate::controller::ControllerError::from)?;
    Ok(Json(FirewallShow {
        enabled: true,
        script: fw.script().await,
        kernel,
    }))
}

async fn detach(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Reply<impl IntoResponse> {
    let req: Join = body(&headers, b, "sandbox detach").await?;
    Ok(Json(s.ctl.detach(&key, &req.endpoint).await?))
}
