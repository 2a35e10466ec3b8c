//! A plugin process built on plugin-api, as an operator runs it: it registers its
//! socket, shuts down cleanly on SIGTERM and SIGINT (removing the socket), and a
//! restart after a crash replaces the stale socket.

use nix::sys::signal::Signal;
use plugin_api::PluginClient;
use std::time::Duration;
use tests::{example_binary, TestHost};

fn activate(host: &TestHost, name: &str) -> Vec<String> {
    let socket = host.plugin_dir().join(format!("{name}.sock"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(PluginClient::unix(socket).activate())
        .unwrap()
        .implements
}

#[test]
fn a_plugin_stops_cleanly_on_sigterm_and_sigint() {
    let host = TestHost::new().unwrap();
    let bin = example_binary("volume_driver").unwrap();
    let root = host.dir().join("volumes").display().to_string();
    let socket = host.plugin_dir().join("dirvol.sock");
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let mut plugin = host
            .spawn_plugin("dirvol", &bin, &["--root", &root])
            .unwrap();
        assert_eq!(activate(&host, "dirvol"), ["VolumeDriver"]);
        plugin.signal(signal).unwrap();
        let status = plugin.wait_exit(Duration::from_secs(10)).unwrap();
        assert!(status.success(), "{signal}: exited with {status}");
        assert!(!socket.exists(), "{signal}: the socket was left behind");
    }
}

#[test]
fn a_restart_after_a_crash_replaces_the_stale_socket() {
    let host = TestHost::new().unwrap();
    let bin = example_binary("network_driver").unwrap();
    let socket = host.plugin_dir().join("vethnet.sock");
    let mut crashed = host.spawn_plugin("vethnet", &bin, &[]).unwrap();
    crashed.signal(Signal::SIGKILL).unwrap();
    crashed.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(socket.exists(), "a killed plugin cannot remove its socket");

    let _restarted = host.spawn_plugin("vethnet", &bin, &[]).unwrap();
    assert_eq!(activate(&host, "vethnet"), ["NetworkDriver"]);
}

#[test]
fn a_second_plugin_cannot_take_a_live_plugins_socket() {
    let host = TestHost::new().unwrap();
    let bin = example_binary("network_driver").unwrap();
    let _first = host.spawn_plugin("vethnet", &bin, &[]).unwrap();
    let mut second = host.spawn("vethnet-2", &bin, &[]).unwrap();
    let status = second.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    assert!(
        second.log().contains("in use by another running plugin"),
        "{}",
        second.log()
    );
    assert_eq!(activate(&host, "vethnet"), ["NetworkDriver"]);
}
