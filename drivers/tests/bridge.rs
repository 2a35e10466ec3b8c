//! The bridge driver against the real kernel: sandboxes on one network reach each
//! other and the gateway; bad specs touch nothing; a failed join leaves no link.

use drivers::netlink::Netlink;
use drivers::{BridgeDriver, Driver, EndpointSpec, Mark, NetworkSpec, SandboxSpec, SubnetSpec};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tests::TestHost;

const NET_ID: &str = "c0ffee0000000000000000000000000000000000000000000000000000000001";

fn network(options: &[(&str, &str)]) -> NetworkSpec {
    NetworkSpec {
        id: NET_ID.into(),
        subnets: vec![SubnetSpec {
            subnet: "198.18.30.0/24".parse().unwrap(),
            gateway: Some("198.18.30.1".parse().unwrap()),
        }],
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        data: BTreeMap::new(),
    }
}

const MARK: Mark = Mark(0x4c0f_fee0);

async fn driver(host: &TestHost) -> BridgeDriver {
    BridgeDriver::new(Netlink::in_netns(&host.netns_path()).await.unwrap(), MARK)
}

fn endpoint(n: u8, addresses: &[&str]) -> EndpointSpec {
    EndpointSpec {
        id: format!("{n:02x}{}", "e".repeat(62)),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        mac: Some([0x02, 0x42, 0xc6, 0x12, 0x1e, n]),
    }
}

fn sandbox(host: &TestHost) -> SandboxSpec {
    SandboxSpec::at(host.netns_path())
}

fn links(host: &TestHost) -> Vec<String> {
    host.run("ip", &["-o", "link", "show"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_on_a_bridge_network_reach_each_other() {
    let host = TestHost::new().unwrap();
    let s1 = TestHost::new().unwrap();
    let s2 = TestHost::new().unwrap();
    let driver = driver(&host).await;

    // Bad specs are refused before anything is made.
    for (options, want) in [
        (
            vec![("com.docker.network.driver.mtu", "9x")],
            "expected a number from 68 to 65535",
        ),
        (
            vec![("com.docker.network.bridge.name", "far-too-long-a-name")],
            "a link name has 1 to 15",
        ),
        (
            vec![("com.docker.network.bridge.bogus", "1")],
            "unknown bridge option",
        ),
        (
            vec![("com.docker.network.driver.mtu", "+1500")],
            "expected a number from 68 to 65535",
        ),
        (
            vec![("com.docker.network.bridge.enable_icc", "garbage")],
            "expected true or false",
        ),
        (
            vec![("com.docker.network.bridge.host_binding_ipv4", "nope")],
            "expected an IPv4 address",
        ),
    ] {
        let err = driver.create_network(&network(&options)).await.unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    assert_eq!(links(&host), ["lo"]);

    let mut net = network(&[("com.docker.network.driver.mtu", "1400")]);
    net.data = driver.create_network(&net).await.unwrap();
    // Creating again (as reconciling does) keeps what is there.
    assert_eq!(driver.create_network(&net).await.unwrap(), net.data);
    assert_eq!(links(&host), ["lo", "br-c0ffee000000"]);
    // An IPv4-only network's bridge has IPv6 off (no link-local, no MLD).
    let v6 = host
        .run(
            "cat",
            &["/proc/sys/net/ipv6/conf/br-c0ffee000000/disable_ipv6"],
        )
        .unwrap();
    assert_eq!(v6.trim(), "1");

    let e1 = endpoint(1, &["198.18.30.2/24"]);
    let e2 = endpoint(2, &["198.18.30.3/24"]);
    let joined = driver.join(&net, &e1, &sandbox(&s1), "eth0").await.unwrap();
    assert_eq!(joined.host_link.as_deref(), Some("vn01eeeeeeeeee"));
    driver.join(&net, &e2, &sandbox(&s2), "eth0").await.unwrap();

    for target in ["198.18.30.3", "198.18.30.1"] {
        let out = s1
            .run("busybox", &["ping", "-c", "1", "-W", "3", target])
            .unwrap_or_else(|e| panic!("ping {target}: {e}"));
        assert!(out.contains("1 packets received"), "{out}");
    }
    let eth0 = s2.run("ip", &["-o", "link", "show", "eth0"]).unwrap();
    assert!(
        eth0.contains("mtu 1400") && eth0.contains("02:42:c6:12:1e:02"),
        "{eth0}"
    );
    // One queue each way on both ends (the kernel's default is one per CPU).
    for (ns, link) in [(&s2, "eth0"), (&host, "vn02eeeeeeeeee")] {
        let detail = ns.run("ip", &["-d", "link", "show", link]).unwrap();
        assert!(
            detail.contains("numtxqueues 1 numrxqueues 1"),
            "{link}: {detail}"
        );
    }
    let routes = s2.run("ip", &["route"]).unwrap();
    assert!(
        routes.contains("default via 198.18.30.1 dev eth0"),
        "{routes}"
    );

    // A join that fails half-way (IPv6 is off in that sandbox) leaves no link.
    let s3 = TestHost::new().unwrap();
    for key in ["all", "default"] {
        s3.run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{key}.disable_ipv6=1")],
        )
        .unwrap();
    }
    let e3 = endpoint(3, &["198.18.30.4/24", "fd00:30::4/64"]);
    let err = driver
        .join(&net, &e3, &sandbox(&s3), "eth0")
        .await
        .unwrap_err();
    // The driver says what it was doing; its source, which request the kernel refused.
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("configuring the interface: adding address fd00:30::4/64"),
        "{chain}"
    );
    assert!(!links(&host).contains(&"vn03eeeeeeeeee".to_string()));
    assert_eq!(links(&s3), ["lo"]);
    assert_eq!(links(&host).len(), 4, "{:?}", links(&host));

    // Dual stack: the IPv6 address and a link-local one (neighbour discovery needs it).
    let s4 = TestHost::new().unwrap();
    let e4 = endpoint(4, &["198.18.30.5/24", "fd00:30::5/64"]);
    driver.join(&net, &e4, &sandbox(&s4), "eth0").await.unwrap();
    // The link-local address comes once the kernel's link watcher has seen the carrier.
    let v6 = tests::wait_for("a link-local address", Duration::from_secs(5), || {
        let v6 = s4.run("ip", &["-6", "-o", "addr", "show", "dev", "eth0"])?;
        Ok(v6.contains("inet6 fe80::").then_some(v6))
    })
    .unwrap();
    assert!(v6.contains("inet6 fd00:30::5/64"), "{v6}");
    // IPv4 only (joined well before): no IPv6 link-local address, as Docker's
    // containers have none.
    let v6 = s2
        .run("ip", &["-6", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert_eq!(v6.trim(), "", "an IPv4-only interface has IPv6 addresses");
    driver
        .leave(&net, &e4, &sandbox(&s4), "eth0")
        .await
        .unwrap();

    // Leave removes the pair, twice is fine; deleting the network removes the bridge.
    driver
        .leave(&net, &e1, &sandbox(&s1), "eth0")
        .await
        .unwrap();
    driver
        .leave(&net, &e1, &sandbox(&s1), "eth0")
        .await
        .unwrap();
    assert_eq!(links(&s1), ["lo"]);
    driver
        .leave(&net, &e2, &sandbox(&s2), "eth0")
        .await
        .unwrap();
    driver.delete_network(&net).await.unwrap();
    driver.delete_network(&net).await.unwrap();
    assert_eq!(links(&host), ["lo"]);
}

fn add_link(host: &TestHost, args: &[&str]) {
    let mut all = vec!["link", "add"];
    all.extend_from_slice(args);
    host.run("ip", &all).unwrap();
}

fn addresses(host: &TestHost, link: &str) -> String {
    host.run("ip", &["-o", "addr", "show", "dev", link])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_bridge_must_be_a_bridge_and_one_that_existed_is_left_in_place() {
    let host = TestHost::new().unwrap();
    let driver = driver(&host).await;
    add_link(&host, &["fv0", "type", "veth", "peer", "name", "fv1"]);
    add_link(&host, &["brx", "type", "bridge"]);
    host.run("ip", &["addr", "add", "192.0.2.1/24", "dev", "brx"])
        .unwrap();

    // Anything that is not a bridge is refused and left as it was.
    for name in ["fv0", "lo"] {
        let net = network(&[("com.docker.network.bridge.name", name)]);
        let err = driver.create_network(&net).await.unwrap_err();
        assert!(err.to_string().contains("not a bridge"), "{name}: {err}");
        assert!(!addresses(&host, name).contains("198.18.30.1"), "{name}");
    }

    // An existing bridge is used: it gets the gateway, and at delete it stays,
    // with its own address and without the gateway.
    let mut net = network(&[("com.docker.network.bridge.name", "brx")]);
    net.data = driver.create_network(&net).await.unwrap();
    assert_eq!(net.data.get("bridge").map(String::as_str), Some("existing"));
    assert!(addresses(&host, "brx").contains("198.18.30.1/24"));
    driver.delete_network(&net).await.unwrap();
    assert!(links(&host).contains(&"brx".to_string()));
    let left = addresses(&host, "brx");
    assert!(!left.contains("198.18.30.1"), "{left}");
    assert!(left.contains("192.0.2.1/24"), "{left}");
    assert!(links(&host).contains(&"fv0".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_links_with_the_drivers_mark_are_swept_or_deleted() {
    let host = TestHost::new().unwrap();
    let s1 = TestHost::new().unwrap();
    let driver = driver(&host).await;
    let mut net = network(&[]);
    net.data = driver.create_network(&net).await.unwrap();
    let e1 = endpoint(1, &["198.18.30.2/24"]);
    driver.join(&net, &e1, &sandbox(&s1), "eth0").await.unwrap();
    // An orphan of ours (marked), and links of someone else's with names like ours.
    let e2 = endpoint(2, &["198.18.30.3/24"]);
    let s2 = TestHost::new().unwrap();
    driver.join(&net, &e2, &sandbox(&s2), "eth0").await.unwrap();
    add_link(
        &host,
        &["vn0123456789ab", "type", "veth", "peer", "name", "x0"],
    );
    add_link(&host, &["br-0123456789ab", "type", "bridge"]);
    // Another instance's links (another mark) are not this one's either.
    let other = BridgeDriver::new(
        Netlink::in_netns(&host.netns_path()).await.unwrap(),
        Mark(0x4000_0001),
    );
    let mut theirs = NetworkSpec {
        id: "0ddba11000000000000000000000000000000000000000000000000000000000".into(),
        ..network(&[])
    };
    theirs.subnets.clear();
    theirs.data = other.create_network(&theirs).await.unwrap();

    let kept: HashSet<String> = ["vn01eeeeeeeeee".to_string()].into();
    let swept = driver.sweep(std::slice::from_ref(&net), &kept).await;
    assert_eq!(
        swept.removed,
        vec!["vn02eeeeeeeeee".to_string()],
        "{swept:?}"
    );
    assert!(swept.errors.is_empty(), "{swept:?}");
    let now = links(&host);
    for name in [
        "br-c0ffee000000",
        "vn01eeeeeeeeee",
        "vn0123456789ab",
        "x0",
        "br-0123456789ab",
        "br-0ddba1100000",
    ] {
        assert!(
            now.contains(&name.to_string()),
            "{name} was removed: {now:?}"
        );
    }

    // A leave whose link name someone else now has leaves that link alone.
    let foreign = EndpointSpec {
        id: "0123456789ab".to_string() + &"0".repeat(52),
        ..endpoint(9, &[])
    };
    driver
        .leave(&net, &foreign, &sandbox(&s1), "eth0")
        .await
        .unwrap();
    assert!(links(&host).contains(&"vn0123456789ab".to_string()));
    // And deleting a network whose bridge someone replaced leaves theirs.
    driver
        .leave(&net, &e1, &sandbox(&s1), "eth0")
        .await
        .unwrap();
    host.run("ip", &["link", "del", "br-c0ffee000000"]).unwrap();
    add_link(&host, &["br-c0ffee000000", "type", "bridge"]);
    driver.delete_network(&net).await.unwrap();
    assert!(links(&host).contains(&"br-c0ffee000000".to_string()));
}
