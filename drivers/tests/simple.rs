//! `none` leaves a sandbox with loopback only, up; `host` touches nothing; both refuse
//! options and subnets.

use drivers::{Driver, EndpointSpec, NetworkSpec, SandboxSpec, SimpleDriver, SubnetSpec};
use tests::TestHost;

#[tokio::test]
async fn none_gives_loopback_only_and_host_changes_nothing() {
    let sandbox = TestHost::new().unwrap();
    // A fresh namespace's lo starts down; the harness brings it up, so take it down.
    sandbox.run("ip", &["link", "set", "lo", "down"]).unwrap();
    let spec = SandboxSpec::at(sandbox.netns_path());
    let net = NetworkSpec {
        id: "n".repeat(64),
        ..NetworkSpec::default()
    };
    let ep = EndpointSpec::default();
    SimpleDriver::None
        .join(&net, &ep, &spec, "eth0")
        .await
        .unwrap();
    let links = sandbox.run("ip", &["-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    let ping = sandbox
        .run("busybox", &["ping", "-c", "1", "-W", "2", "127.0.0.1"])
        .unwrap();
    assert!(ping.contains("1 packets received"), "{ping}");

    SimpleDriver::Host
        .join(&net, &ep, &spec, "eth0")
        .await
        .unwrap();
    assert_eq!(sandbox.run("ip", &["-o", "link", "show"]).unwrap(), links);

    let with_subnet = NetworkSpec {
        subnets: vec![SubnetSpec {
            subnet: "198.18.40.0/24".parse().unwrap(),
            gateway: None,
        }],
        ..net.clone()
    };
    let err = SimpleDriver::None
        .create_network(&with_subnet)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid subnet: the none driver has no addresses of its own, got 198.18.40.0/24"
    );
    let mut with_option = net.clone();
    with_option.options.insert("x".into(), "1".into());
    let err = SimpleDriver::Host
        .create_network(&with_option)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid option: the host driver takes no options, got \"x\""
    );
}
