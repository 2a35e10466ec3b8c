//! Namespaces pinned as files: created with only loopback, usable by path, removed
//! without leaving a mount, refused where something exists.

use drivers::netlink::Netlink;
use drivers::netns::{self, NetnsError};
use tests::TestHost;

#[tokio::test]
async fn a_pinned_namespace_lives_until_removed() {
    // The test host only provides a scratch directory with a unique name.
    let host = TestHost::new().unwrap();
    let path = host.dir().join("sandbox-1");
    netns::create(&path).unwrap();
    assert!(netns::is_netns(&path));

    let nl = Netlink::in_netns(&path).await.unwrap();
    let names: Vec<String> = nl
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["lo"]);
    // Another process can enter it by path.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(["ip", "-o", "link", "show"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("lo:"));
    // It is not the test's own namespace.
    assert!(netns::is_netns(std::path::Path::new("/proc/self/ns/net")));
    assert_ne!(
        std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap(),
        std::fs::metadata("/proc/self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap()
    );

    let err = netns::create(&path).unwrap_err();
    assert!(matches!(err, NetnsError::Exists(_)), "{err}");
    let plain = host.dir().join("plain-file");
    std::fs::write(&plain, "").unwrap();
    assert!(!netns::is_netns(&plain));

    assert!(netns::remove(&path).unwrap());
    assert!(!path.exists());
    assert!(!netns::remove(&path).unwrap());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("sandbox-1"), "{mounts}");
}
