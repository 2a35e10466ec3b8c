//! The volumes benchmark (`bench/volumes` runs it; ignored in the suite: timings
//! are never pass/fail). From one run on one host:
//! - 1,000 plain volumes created, mounted, unmounted and removed through the
//!   plugin protocol (volumed's socket), median per operation;
//! - the same creates and removes through dockerd's API with its own `local`
//!   driver, and with volumed as the driver;
//! - listing 10,000 volumes through the native API.

mod common;

use common::Volumed;
use hyper::Method;
use plugin_api::protocol::volume::*;
use plugin_api::PluginClient;
use serde_json::json;
use std::time::{Duration, Instant};
use tests::Dockerd;
use volumed::client::Client;
use volumed::model::VolumeRecord;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn timed<F, Fut>(count: usize, f: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        f(i).await;
        times.push(t.elapsed());
    }
    median(times)
}

#[test]
#[ignore]
fn volumes_bench() {
    let n: usize = std::env::var("VOLUMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let listed: usize = std::env::var("LISTED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let v = Volumed::start_with_docker();
    let docker = Dockerd::start(&v.host).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plugin = PluginClient::unix(v.host.plugin_dir().join("volumed.sock"));
    let name = |i: usize| format!("b{i}");
    rt.block_on(async {
        let create = timed(n, |i| {
            let req = CreateVolumeRequest {
                name: name(i),
                opts: Default::default(),
            };
            let plugin = &plugin;
            async move {
                let _: serde_json::Value = plugin.call("VolumeDriver.Create", &req).await.unwrap();
            }
        })
        .await;
        let mount = timed(n, |i| {
            let req = MountRequest {
                name: name(i),
                id: format!("c{i}"),
            };
            let plugin = &plugin;
            async move {
                let _: MountpointResponse = plugin.call("VolumeDriver.Mount", &req).await.unwrap();
            }
        })
        .await;
        let unmount = timed(n, |i| {
            let req = MountRequest {
                name: name(i),
                id: format!("c{i}"),
            };
            let plugin = &plugin;
            async move {
                let _: serde_json::Value = plugin.call("VolumeDriver.Unmount", &req).await.unwrap();
            }
        })
        .await;
        let remove = timed(n, |i| {
            let req = VolumeRequest { name: name(i) };
            let plugin = &plugin;
            async move {
                let _: serde_json::Value = plugin.call("VolumeDriver.Remove", &req).await.unwrap();
            }
        })
        .await;
        println!("volumed through the plugin protocol, {n} plain volumes, median:");
        for (what, d) in [
            ("create", create),
            ("mount", mount),
            ("unmount", unmount),
            ("remove", remove),
        ] {
            println!("  {what:<8} {}", ms(d));
        }

        let api = Client::new(docker.socket());
        let engine = |driver: &'static str| {
            let api = api.clone();
            async move {
                let create = timed(n.min(300), |i| {
                    let api = api.clone();
                    async move {
                        let body = json!({"Name": format!("{driver}{i}"), "Driver": driver});
                        let _: serde_json::Value = api
                            .call(Method::POST, "/v1.41/volumes/create", Some(&body))
                            .await
                            .unwrap();
                    }
                })
                .await;
                let remove = timed(n.min(300), |i| {
                    let api = api.clone();
                    async move {
                        let path = format!("/v1.41/volumes/{driver}{i}");
                        let _ = api
                            .call::<serde_json::Value>(Method::DELETE, &path, None::<&()>)
                            .await;
                    }
                })
                .await;
                (create, remove)
            }
        };
        let (local_create, local_remove) = engine("local").await;
        let (ours_create, ours_remove) = engine("volumed").await;
        println!(
            "through dockerd's API ({} volumes each), median:",
            n.min(300)
        );
        println!(
            "  create  local {}  volumed {}",
            ms(local_create),
            ms(ours_create)
        );
        println!(
            "  remove  local {}  volumed {}",
            ms(local_remove),
            ms(ours_remove)
        );

        let native = v.client.clone();
        for i in 0..listed {
            let body = json!({ "name": format!("l{i}") });
            let _: VolumeRecord = native
                .call(Method::POST, "/v1/volumes", Some(&body))
                .await
                .unwrap();
        }
        let list = timed(9, |_| {
            let native = native.clone();
            async move {
                let all: Vec<VolumeRecord> = native
                    .call(Method::GET, "/v1/volumes", None::<&()>)
                    .await
                    .unwrap();
                assert_eq!(all.len(), listed);
            }
        })
        .await;
        println!(
            "list {listed} volumes through the native API, median of 9: {}",
            ms(list)
        );
    });
}
