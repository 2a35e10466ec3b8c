//! netd on sockets it is handed (systemd's socket activation): a request that
//! comes while netd is away waits and is answered when it is back, and netd leaves
//! the sockets in place when it stops.

mod common;

use common::{network, runtime, sandbox, Netd};
use nix::sys::signal::Signal;
use plugin_api::client::PluginClient;
use std::time::Duration;

#[test]
fn requests_made_while_netd_is_away_are_answered_when_it_is_back() {
    let mut netd = Netd::start_activated();
    let c = netd.client.clone();
    let rt = runtime();
    rt.block_on(c.create_network(&network("n1", "10.92.0.0/24")))
        .unwrap();

    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();
    // While it is away, a native call and a plugin call (as dockerd makes) wait.
    let native = {
        let c = c.clone();
        std::thread::spawn(move || {
            runtime().block_on(async {
                let sb = c.create_sandbox(&sandbox("a")).await?;
                c.attach("a", &common::attach("n1")).await.map(|e| (sb, e))
            })
        })
    };
    let plugin_socket = netd.host.plugin_dir().join("netd.sock");
    let docker = std::thread::spawn(move || {
        runtime().block_on(PluginClient::unix(plugin_socket).activate())
    });
    std::thread::sleep(Duration::from_millis(1500));
    if native.is_finished() {
        panic!("answered while netd was away: {:?}", native.join());
    }
    if docker.is_finished() {
        panic!("answered while netd was away: {:?}", docker.join());
    }

    netd.launch();
    let (sb, ep) = native
        .join()
        .unwrap()
        .expect("the queued calls were answered");
    let activated = docker
        .join()
        .unwrap()
        .expect("the queued plugin call was answered");
    assert!(
        activated.implements.iter().any(|i| i == "NetworkDriver"),
        "{activated:?}"
    );
    assert!(netd.pings(&sb, "10.92.0.1"), "no way to its gateway");
    assert_eq!(ep.addresses[0].to_string(), "10.92.0.2/24");

    // Stopped cleanly, netd leaves the sockets to their owner.
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGTERM).unwrap();
    let status = daemon.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}\n{}", daemon.log());
    assert!(netd.host.dir().join("netd.sock").exists());
    assert!(netd.host.plugin_dir().join("netd.sock").exists());
    netd.launch();
    assert_eq!(rt.block_on(c.endpoints()).unwrap().len(), 1);
}
