//! Turning a set of drivers into an axum [`Router`] that speaks the plugin protocol.

use super::body::{decode, read_limited};
use super::traits::{IpamDriver, NetworkDriver, VolumeDriver};
use crate::error::PluginError;
use crate::protocol::activate::{ActivateResponse, Interface};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

/// Content type of every reply, as the engine expects.
pub const PLUGIN_CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.1+json";

/// Default cap on a request body.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Builds the HTTP face of a plugin from any set of drivers.
///
/// ```no_run
/// # use plugin_api::server::Plugin;
/// # fn demo(volumes: impl plugin_api::VolumeDriver) {
/// let router = Plugin::new().volume(volumes).router();
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Plugin {
    network: Option<Arc<dyn NetworkDriver>>,
    ipam: Option<Arc<dyn IpamDriver>>,
    volume: Option<Arc<dyn VolumeDriver>>,
    body_limit: Option<usize>,
}

impl Plugin {
    /// A plugin that implements nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `NetworkDriver.*` with `driver`.
    pub fn network(mut self, driver: impl NetworkDriver) -> Self {
        self.network = Some(Arc::new(driver));
        self
    }

    /// Serve `NetworkDriver.*` with a shared driver.
    pub fn network_arc(mut self, driver: Arc<dyn NetworkDriver>) -> Self {
        self.network = Some(driver);
        self
    }

    /// Serve `IpamDriver.*` with `driver`.
    pub fn ipam(mut self, driver: impl IpamDriver) -> Self {
        self.ipam = Some(Arc::new(driver));
        self
    }

    /// Serve `IpamDriver.*` with a shared driver.
    pub fn ipam_arc(mut self, driver: Arc<dyn IpamDriver>) -> Self {
        self.ipam = Some(driver);
        self
    }

    /// Serve `VolumeDriver.*` with `driver`.
    pub fn volume(mut self, driver: impl VolumeDriver) -> Self {
        self.volume = Some(Arc::new(driver));
        self
    }

    /// Serve `VolumeDriver.*` with a shared driver.
    pub fn volume_arc(mut self, driver: Arc<dyn VolumeDriver>) -> Self {
        self.volume = Some(driver);
        self
    }

    /// Cap request bodies at `bytes` (default 1 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// The interfaces this plugin implements, in the order `Plugin.Activate` lists them.
    pub fn implements(&self) -> Vec<Interface> {
        let mut out = Vec::new();
        if self.network.is_some() {
            out.push(Interface::NetworkDriver);
        }
        if self.ipam.is_some() {
            out.push(Interface::IpamDriver);
        }
        if self.volume.is_some() {
            out.push(Interface::VolumeDriver);
        }
        out
    }

    /// The axum router: `POST /Plugin.Activate` and one route per call of each
    /// implemented interface; anything else is answered 404 with a JSON `Err`.
    pub fn router(self) -> Router {
        let limit = self.body_limit.unwrap_or(DEFAULT_BODY_LIMIT);
        let implements = self.implements();
        let activate = ActivateResponse {
            implements: implements.iter().map(|i| i.as_str().to_string()).collect(),
        };
        let mut r = Routes {
            router: Router::new(),
            limit,
        };
        r.add(
            (),
            "Plugin.Activate",
            move |(), _: serde::de::IgnoredAny| {
                let reply = activate.clone();
                async move { Ok(reply) }
            },
        );
        if let Some(d) = self.network {
            add_network_routes(&mut r, d);
        }
        if let Some(d) = self.ipam {
            add_ipam_routes(&mut r, d);
        }
        if let Some(d) = self.volume {
            add_volume_routes(&mut r, d);
        }
        let names: Vec<&'static str> = implements.iter().map(|i| i.as_str()).collect();
        r.router.fallback(move |req: Request| {
            let names = names.clone();
            async move {
                let path = req.uri().path().to_string();
                let implemented = if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                };
                error_response(
                    &PluginError::new(format!(
                        "unknown plugin method {path:?}: this plugin implements {implemented}"
                    ))
                    .with_status(StatusCode::NOT_FOUND),
                )
            }
        })
    }
}

/// Reply with a successful JSON body.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PLUGIN_CONTENT_TYPE),
    );
    resp
}

/// Reply with `{"Err": message}` and the error's status.
pub(crate) fn error_response(err: &PluginError) -> Response {
    json_response(err.status(), &json!({ "Err": err.message() }))
}

/// An empty JSON object, the success reply of calls that return nothing.
#[derive(Serialize)]
struct Empty {}

struct Routes {
    router: Router,
    limit: usize,
}

impl Routes {
    /// Route `/method` to `f`, with body reading, decoding and error mapping around it.
    fn add<D, Req, Resp, F, Fut>(&mut self, driver: D, method: &'static str, f: F)
    where
        D: Clone + Send + Sync + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize,
        F: Fn(D, Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, PluginError>> + Send,
    {
        let limit = self.limit;
        let handler = move |req: Request| {
            let driver = driver.clone();
            let f = f.clone();
            async move {
                let result = async {
                    if req.method() != Method::POST {
                        return Err(PluginError::new(format!(
                            "{method} must be called with POST, not {}",
                            req.method()
                        ))
                        .with_status(StatusCode::METHOD_NOT_ALLOWED));
                    }
                    let (parts, body): (_, Body) = req.into_parts();
                    let bytes = read_limited(&parts.headers, body, limit, method).await?;
                    let request: Req = decode(&bytes, method)?;
                    let reply = f(driver, request).await?;
                    serde_json::to_value(reply).map_err(|e| {
                        PluginError::new(format!("encoding the reply to {method}: {e}"))
                    })
                }
                .await;
                match result {
                    Ok(body) => {
                        tracing::debug!(method, "plugin call succeeded");
                        json_response(StatusCode::OK, &body)
                    }
                    Err(err) => {
                        tracing::info!(method, status = %err.status(), error = %err, "plugin call failed");
                        error_response(&err)
                    }
                }
            }
        };
        let router = std::mem::take(&mut self.router);
        self.router = router.route(&format!("/{method}"), any(handler));
    }
}

/// Adapts a call that returns `()` to the `{}` reply.
async fn unit(f: impl Future<Output = Result<(), PluginError>>) -> Result<Empty, PluginError> {
    f.await.map(|()| Empty {})
}

fn add_network_routes(r: &mut Routes, d: Arc<dyn NetworkDriver>) {
    r.add(
        d.clone(),
        "NetworkDriver.GetCapabilities",
        |d, _: serde::de::IgnoredAny| async move { d.get_capabilities().await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.GwAllocCheck",
        |d, req| async move { d.gw_alloc_check(req).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.CreateNetwork",
        |d, req| async move { unit(d.create_network(req)).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.DeleteNetwork",
        |d, req| async move { unit(d.delete_network(req)).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.AllocateNetwork",
        |d, req| async move { d.allocate_network(req).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.FreeNetwork",
        |d, req| async move { unit(d.free_network(req)).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.CreateEndpoint",
        |d, req| async move { d.create_endpoint(req).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.EndpointOperInfo",
        |d, req| async move { d.endpoint_oper_info(req).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.DeleteEndpoint",
        |d, req| async move { unit(d.delete_endpoint(req)).await },
    );
    r.add(d.clone(), "NetworkDriver.Join", |d, req| async move {
        d.join(req).await
    });
    r.add(d.clone(), "NetworkDriver.Leave", |d, req| async move {
        unit(d.leave(req)).await
    });
    r.add(
        d.clone(),
        "NetworkDriver.DiscoverNew",
        |d, req| async move { unit(d.discover_new(req)).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.DiscoverDelete",
        |d, req| async move { unit(d.discover_delete(req)).await },
    );
    r.add(
        d.clone(),
        "NetworkDriver.ProgramExternalConnectivity",
        |d, req| async move { unit(d.program_external_connectivity(req)).await },
    );
    r.add(
        d,
        "NetworkDriver.RevokeExternalConnectivity",
        |d, req| async move { unit(d.revoke_external_connectivity(req)).await },
    );
}

fn add_ipam_routes(r: &mut Routes, d: Arc<dyn IpamDriver>) {
    r.add(
        d.clone(),
        "IpamDriver.GetCapabilities",
        |d, _: serde::de::IgnoredAny| async move { d.get_capabilities().await },
    );
    r.add(
        d.clone(),
        "IpamDriver.GetDefaultAddressSpaces",
        |d, _: serde::de::IgnoredAny| async move { d.get_default_address_spaces().await },
    );
    r.add(d.clone(), "IpamDriver.RequestPool", |d, req| async move {
        d.request_pool(req).await
    });
    r.add(d.clone(), "IpamDriver.ReleasePool", |d, req| async move {
        unit(d.release_pool(req)).await
    });
    r.add(
        d.clone(),
        "IpamDriver.RequestAddress",
        |d, req| async move { d.request_address(req).await },
    );
    r.add(d, "IpamDriver.ReleaseAddress", |d, req| async move {
        unit(d.release_address(req)).await
    });
}

fn add_volume_routes(r: &mut Routes, d: Arc<dyn VolumeDriver>) {
    r.add(d.clone(), "VolumeDriver.Create", |d, req| async move {
        unit(d.create(req)).await
    });
    r.add(d.clone(), "VolumeDriver.Remove", |d, req| async move {
        unit(d.remove(req)).await
    });
    r.add(d.clone(), "VolumeDriver.Mount", |d, req| async move {
        d.mount(req).await
    });
    r.add(d.clone(), "VolumeDriver.Unmount", |d, req| async move {
        unit(d.unmount(req)).await
    });
    r.add(d.clone(), "VolumeDriver.Path", |d, req| async move {
        d.path(req).await
    });
    r.add(d.clone(), "VolumeDriver.Get", |d, req| async move {
        d.get(req).await
    });
    r.add(
        d.clone(),
        "VolumeDriver.List",
        |d, _: serde::de::IgnoredAny| async move { d.list().await },
    );
    r.add(
        d,
        "VolumeDriver.Capabilities",
        |d, _: serde::de::IgnoredAny| async move { d.capabilities().await },
    );
}
