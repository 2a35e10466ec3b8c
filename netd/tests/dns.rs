//! Each network's DNS responder, asked from inside sandboxes the way a
//! container asks: by busybox's resolver and by a program resolving through the
//! resolv.conf netd wrote, mounted over /etc/resolv.conf.

mod common;

use common::{attach, ipv4, network, runtime, sandbox, Netd};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use netd::controller::Attach;
use netd::model::SandboxRecord;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The address the test's upstream resolver gives `example.test`.
const UPSTREAM_ANSWER: &str = "192.0.2.7";

/// A resolver on the host's 127.0.0.1:53 (where a host's systemd-resolved or
/// dnsmasq would be, and where no container reaches): `example.test` is
/// 192.0.2.7, anything else NXDOMAIN. Stops when the flag is set.
fn upstream_resolver(netd: &Netd, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let netns = std::fs::File::open(netd.host.netns_path()).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:53").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.message_type = MessageType::Response;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.queries = q.queries.clone();
            match q.queries.first() {
                Some(query) if query.name().to_ascii() == "example.test." => {
                    if query.query_type() == RecordType::A {
                        r.answers.push(Record::from_rdata(
                            query.name().clone(),
                            30,
                            RData::A(A(UPSTREAM_ANSWER.parse().unwrap())),
                        ));
                    }
                }
                _ => r.metadata.response_code = ResponseCode::NXDomain,
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the upstream resolver binds");
    handle
}

/// busybox's nslookup of `name` (or an address) from `sb`, asking `server`.
fn lookup(netd: &Netd, sb: &SandboxRecord, name: &str, server: &str) -> (bool, String) {
    let out = netd.in_sandbox(
        sb,
        &[
            "timeout",
            "5",
            "busybox",
            "nslookup",
            "-timeout=1",
            name,
            server,
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The name servers of the sandbox's resolv.conf.
fn name_servers(sb: &SandboxRecord) -> Vec<String> {
    std::fs::read_to_string(&sb.resolv_conf)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::to_string)
        .collect()
}

#[test]
fn sandboxes_find_each_other_by_name_and_other_names_go_upstream() {
    // The host's resolv.conf names only its loopback resolver.
    let host = tests::TestHost::new().unwrap();
    let resolv = host.dir().join("host-resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
    let resolv_arg = resolv.display().to_string();
    let mut netd = Netd::start_on(host, false, &["--resolv-conf", &resolv_arg]);
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = upstream_resolver(&netd, Arc::clone(&stop));
    let c = netd.client.clone();
    let rt = runtime();
    let (web, db, other, both, web_ep, other_ep) = rt.block_on(async {
        c.create_network(&network("n1", "10.93.1.0/24"))
            .await
            .unwrap();
        c.create_network(&network("n2", "10.93.2.0/24"))
            .await
            .unwrap();
        let mut off = network("quiet", "10.93.3.0/24");
        off.options.insert("com.netd.dns".into(), "false".into());
        c.create_network(&off).await.unwrap();
        for name in ["web", "db", "other", "both", "lone"] {
            c.create_sandbox(&sandbox(name)).await.unwrap();
        }
        let web_ep = c
            .attach(
                "web",
                &Attach {
                    aliases: vec!["front".into(), "Shop.Example".into()],
                    ..attach("n1")
                },
            )
            .await
            .unwrap();
        c.attach("db", &attach("n1")).await.unwrap();
        let other_ep = c.attach("other", &attach("n2")).await.unwrap();
        c.attach("both", &attach("n1")).await.unwrap();
        c.attach("both", &attach("n2")).await.unwrap();
        c.attach("lone", &attach("quiet")).await.unwrap();
        let get = |n: &'static str| c.sandbox(n);
        (
            get("web").await.unwrap(),
            get("db").await.unwrap(),
            get("other").await.unwrap(),
            get("both").await.unwrap(),
            web_ep,
            other_ep,
        )
    });

    // resolv.conf names the networks' responders, on their gateways.
    assert_eq!(name_servers(&db), ["10.93.1.1"]);
    assert_eq!(name_servers(&both), ["10.93.1.1", "10.93.2.1"]);
    assert_eq!(db.dns, ["10.93.1.1".parse::<std::net::IpAddr>().unwrap()]);
    // A network without one: the host's resolvers a container can reach (the
    // host's loopback one it cannot), else Docker's fallback.
    let lone = rt.block_on(c.sandbox("lone")).unwrap();
    assert_eq!(name_servers(&lone), ["8.8.8.8", "8.8.4.4"]);

    // Names, aliases (any case) and reverse lookups on the network.
    let web_ip = ipv4(&web_ep);
    for name in ["web", "front", "shop.example", "WEB"] {
        let (ok, text) = lookup(&netd, &db, name, "10.93.1.1");
        assert!(
            ok && text.contains(&format!("Address: {web_ip}")),
            "{name}: {text}"
        );
    }
    let (ok, text) = lookup(&netd, &db, &web_ip, "10.93.1.1");
    assert!(ok && text.contains("name = web"), "{text}");
    // A sandbox on two networks resolves both networks' names from either
    // responder; one on n1 only does not see n2's.
    let other_ip = ipv4(&other_ep);
    let (ok, text) = lookup(&netd, &both, "other", "10.93.1.1");
    assert!(ok && text.contains(&other_ip), "{text}");
    let (ok, text) = lookup(&netd, &db, "other", "10.93.1.1");
    assert!(!ok && text.contains("NXDOMAIN"), "{text}");
    // Anything else goes to the host's resolver, which the container could not
    // reach itself.
    let (ok, text) = lookup(&netd, &db, "example.test", "10.93.1.1");
    assert!(ok && text.contains(UPSTREAM_ANSWER), "{text}");
    let (ok, text) = lookup(&netd, &db, "example.test", "127.0.0.1");
    assert!(!ok, "the container reached the host's loopback: {text}");

    // A program resolving through the mounted resolv.conf reaches "web" by name.
    let script = format!(
        "mount --bind {} /etc/resolv.conf && busybox ping -c 1 -W 2 web",
        db.resolv_conf.display()
    );
    let out = netd.in_sandbox(&db, &["unshare", "-m", "sh", "-c", &script]);
    assert!(out.status.success(), "ping web by name: {out:?}");

    // Never answered from outside the network: another network's sandbox
    // asking n1's responder, and the host itself.
    let (ok, text) = lookup(&netd, &other, "web", "10.93.1.1");
    assert!(!ok && !text.contains(&web_ip), "{text}");
    let out = netd
        .host
        .command("timeout")
        .args(["5", "busybox", "nslookup", "-timeout=1", "web", "10.93.1.1"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&web_ip),
        "{out:?}"
    );

    // Across a kill -9, the responders come back with the names.
    netd.kill_9();
    netd.launch();
    let (ok, text) = lookup(&netd, &db, "front", "10.93.1.1");
    assert!(ok && text.contains(&web_ip), "after a restart: {text}");

    // A detached sandbox's name is gone; its resolv.conf goes back to the
    // host's when it is on no network with a responder.
    rt.block_on(c.detach("web", &web_ep.id)).unwrap();
    let (ok, text) = lookup(&netd, &db, "web", "10.93.1.1");
    assert!(!ok && !text.contains(&web_ip), "{text}");
    let web = rt.block_on(c.sandbox(&web.name)).unwrap();
    assert_eq!(name_servers(&web), ["8.8.8.8", "8.8.4.4"]);

    stop.store(true, Ordering::Relaxed);
    upstream.join().unwrap();
}

#[test]
fn bad_aliases_and_dns_options_are_refused() {
    let (netd, rt) = Netd::start_with_network("n1", "10.93.4.0/24");
    let c = &netd.client;
    rt.block_on(c.create_sandbox(&sandbox("a"))).unwrap();
    for bad in ["has space", "-dash", "a..b", &"x".repeat(64), "ünï"] {
        let err = rt
            .block_on(c.attach(
                "a",
                &Attach {
                    aliases: vec![bad.to_string()],
                    ..attach("n1")
                },
            ))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid alias"), "{bad}: {err}");
    }
    let many: Vec<String> = (0..33).map(|i| format!("a{i}")).collect();
    let err = rt
        .block_on(c.attach(
            "a",
            &Attach {
                aliases: many,
                ..attach("n1")
            },
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 32"), "{err}");
    assert!(rt.block_on(c.endpoints()).unwrap().is_empty());
    let mut bad = network("n2", "10.93.5.0/24");
    bad.options.insert("com.netd.dns".into(), "maybe".into());
    let err = rt.block_on(c.create_network(&bad)).unwrap_err().to_string();
    assert!(err.contains("com.netd.dns"), "{err}");
}

/// Runs `f` on a thread inside the namespace at `netns` (a sandbox's), as a
/// program in the container would.
fn inside<T: Send + 'static>(netns: &std::path::Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(netns).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// An A query for `name`; with `edns`, offering that payload size.
fn a_query(name: &str, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 7;
    m.metadata.recursion_desired = true;
    m.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(name).unwrap(),
        RecordType::A,
    ));
    if let Some(size) = edns {
        let mut e = hickory_proto::op::Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// The A records' addresses of an answer.
fn addresses(m: &Message) -> std::collections::BTreeSet<std::net::IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_long_answer_comes_truncated_over_udp_and_whole_over_tcp() {
    // 80 sandboxes share the alias "pool": 80 A records, about 1,300 bytes.
    let (netd, rt) = Netd::start_with_network("n1", "10.93.6.0/24");
    let c = &netd.client;
    let mut expected = std::collections::BTreeSet::new();
    for i in 0..80 {
        let name = format!("p{i}");
        rt.block_on(c.create_sandbox(&sandbox(&name))).unwrap();
        let ep = rt
            .block_on(c.attach(
                &name,
                &Attach {
                    aliases: vec!["pool".into()],
                    ..attach("n1")
                },
            ))
            .unwrap();
        expected.insert(ipv4(&ep).parse::<std::net::IpAddr>().unwrap());
    }
    let asker = rt.block_on(c.sandbox("p0")).unwrap();
    // The namespace file as netd sees it (netd runs in the host's own mount
    // namespace, where its namespaces are mounted).
    let pid = netd.daemon.as_ref().unwrap().pid();
    let netns = std::path::PathBuf::from(format!("/proc/{pid}/root{}", asker.netns.display()));
    let server = "10.93.6.1:53";

    // Over UDP: with no EDNS the answer fits 512 bytes, with EDNS offering 4096
    // it fits 1232 (no fragments); both say "truncated" and carry no records.
    let (plain, big) = inside(&netns, move || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        for edns in [None, Some(4096)] {
            sock.send_to(&a_query("pool.", edns), server).unwrap();
            let mut buf = [0u8; 65535];
            let n = sock.recv(&mut buf).expect("a UDP answer");
            out.push(buf[..n].to_vec());
        }
        (out.remove(0), out.remove(0))
    });
    assert!(plain.len() <= 512, "{} bytes without EDNS", plain.len());
    assert!(big.len() <= 1232, "{} bytes with EDNS 4096", big.len());
    for bytes in [&plain, &big] {
        let m = Message::from_vec(bytes).unwrap();
        assert!(m.metadata.truncation, "{m:?}");
        assert!(m.answers.is_empty(), "{m:?}");
    }

    // Over TCP the whole answer: every sandbox's address.
    let whole = inside(&netns, move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let q = a_query("pool.", None);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        body
    });
    let m = Message::from_vec(&whole).unwrap();
    assert!(!m.metadata.truncation, "{m:?}");
    assert_eq!(addresses(&m), expected);

    // A TCP client that connects and says nothing is let go (after 10 s),
    // so idle connections cannot pile up.
    let closed = inside(&netns, move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 16];
        s.read(&mut buf)
    });
    assert_eq!(closed.ok(), Some(0), "the idle connection was not closed");
}
