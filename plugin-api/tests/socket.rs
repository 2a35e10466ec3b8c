//! `PluginSocket`: permissions, replacing stale sockets, refusing what must not be
//! replaced, `.spec` registration and clean-up, and discovery as the engine does it.
//! These tests run as root (they chown the socket).

mod common;

use common::{Fake, Served};
use plugin_api::client::{discover, PluginAddr};
use plugin_api::server::ServeError;
use plugin_api::{Plugin, PluginClient, PluginSocket, Registration, SocketPermissions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn socket_in(dir: &Path) -> Registration {
    Registration::SocketIn(dir.to_path_buf())
}

fn router() -> axum::Router {
    Plugin::new().volume(Fake::default()).router()
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Mode bits and group of the socket at `path`, after checking it is a socket.
fn mode_and_gid(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(
        meta.file_type().is_socket(),
        "{} is a socket",
        path.display()
    );
    (meta.mode() & 0o7777, meta.gid())
}

async fn assert_answers(client: PluginClient) {
    let activated = client.activate().await.expect("the plugin answers");
    assert_eq!(activated.implements, ["VolumeDriver"]);
}

#[tokio::test]
async fn socket_is_0600_by_default_and_removed_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = PluginSocket::bind("perm", &socket_in(dir.path()), Default::default()).unwrap();
    let path = dir.path().join("perm.sock");
    assert_eq!(socket.socket_path(), path);
    assert_eq!(mode_and_gid(&path).0, 0o600);
    // Bound under a temporary name, then renamed: nothing else is left behind.
    assert_eq!(entries(dir.path()), ["perm.sock"]);

    let served = Served::spawn(socket, router());
    assert_answers(served.client()).await;
    served.stop().await.unwrap();
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn group_permissions() {
    let root = SocketPermissions::group("root").unwrap();
    assert_eq!(
        root,
        SocketPermissions {
            mode: 0o660,
            gid: Some(0)
        }
    );
    assert!(matches!(
        SocketPermissions::group("no-such-group-here"),
        Err(ServeError::UnknownGroup(name)) if name == "no-such-group-here"
    ));

    // gid 4242 need not exist: root may chown to any gid, and unlike gid 0 it
    // shows that the group is really set.
    for (perms, gid) in [
        (root, 0),
        (
            SocketPermissions {
                mode: 0o660,
                gid: Some(4242),
            },
            4242,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let socket = PluginSocket::bind("grp", &socket_in(dir.path()), perms).unwrap();
        assert_eq!(mode_and_gid(socket.socket_path()), (0o660, gid));
        let served = Served::spawn(socket, router());
        assert_answers(served.client()).await;
        served.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // What a crashed plugin leaves: a socket file nobody listens on.
    drop(UnixListener::bind(&path).unwrap());
    assert!(UnixStream::connect(&path).is_err());

    let socket = PluginSocket::bind("stale", &socket_in(dir.path()), Default::default()).unwrap();
    assert_eq!(socket.socket_path(), path);
    let served = Served::spawn(socket, router());
    assert_answers(PluginClient::unix(&path)).await;
    served.stop().await.unwrap();
}

#[tokio::test]
async fn a_live_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let live = UnixListener::bind(&path).unwrap();

    let err = PluginSocket::bind("live", &socket_in(dir.path()), Default::default()).unwrap_err();
    assert!(
        matches!(&err, ServeError::InUse(p) if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    // The running plugin keeps its socket.
    assert_eq!(entries(dir.path()), ["live.sock"]);
    UnixStream::connect(&path).expect("the live socket still answers");
    drop(live);
}

#[test]
fn what_is_not_a_socket_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.sock");
    std::fs::write(&file, "precious").unwrap();
    let err = PluginSocket::bind("file", &socket_in(dir.path()), Default::default()).unwrap_err();
    assert!(
        matches!(&err, ServeError::NotASocket(p) if *p == file),
        "{err:?}"
    );
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");

    std::fs::create_dir(dir.path().join("dir.sock")).unwrap();
    let err = PluginSocket::bind("dir", &socket_in(dir.path()), Default::default()).unwrap_err();
    assert!(matches!(err, ServeError::NotASocket(_)), "{err:?}");
    assert!(dir.path().join("dir.sock").is_dir());
    assert_eq!(entries(dir.path()), ["dir.sock", "file.sock"]);
}

#[test]
fn invalid_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "../evil", "a/b", ".hidden", "-x", "a b"] {
        let err = PluginSocket::bind(name, &socket_in(dir.path()), Default::default()).unwrap_err();
        assert!(
            matches!(&err, ServeError::InvalidName(n) if n == name),
            "{name:?}: {err:?}"
        );
    }
    assert_eq!(entries(dir.path()), Vec::<String>::new());
    assert!(!dir.path().parent().unwrap().join("evil.sock").exists());
}

#[tokio::test]
async fn an_unserved_socket_is_removed_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let registration = Registration::Spec {
        spec_dir: dir.path().join("etc"),
        socket: dir.path().join("run/dropped.sock"),
    };
    let socket = PluginSocket::bind("dropped", &registration, Default::default()).unwrap();
    assert!(dir.path().join("etc/dropped.spec").exists());
    drop(socket);
    assert_eq!(entries(&dir.path().join("run")), Vec::<String>::new());
    assert_eq!(entries(&dir.path().join("etc")), Vec::<String>::new());
}

#[tokio::test]
async fn spec_registration_is_found_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let spec_dir = dir.path().join("etc/docker/plugins");
    let socket_path = dir.path().join("run/specplug/specplug.sock");
    let registration = Registration::Spec {
        spec_dir: spec_dir.clone(),
        socket: socket_path.clone(),
    };
    let socket = PluginSocket::bind("specplug", &registration, Default::default()).unwrap();
    assert_eq!(socket.socket_path(), socket_path);
    let spec = spec_dir.join("specplug.spec");
    assert_eq!(
        std::fs::read_to_string(&spec).unwrap(),
        format!("unix://{}\n", socket_path.display())
    );
    assert_eq!(entries(&spec_dir), ["specplug.spec"]);

    let served = Served::spawn(socket, router());
    // No socket in the socket directory: the engine falls back to the spec file.
    let no_sockets = dir.path().join("empty");
    std::fs::create_dir(&no_sockets).unwrap();
    let addr = discover("specplug", &no_sockets, &[spec_dir.as_path()]).unwrap();
    assert_eq!(addr, PluginAddr::Unix(socket_path.clone()));
    assert_answers(PluginClient::new(addr)).await;

    served.stop().await.unwrap();
    assert!(!spec.exists(), "spec file left behind");
    assert!(!socket_path.exists(), "socket left behind");
}

#[tokio::test]
async fn discover_finds_the_socket_first() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("run");
    let specs = dir.path().join("etc");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(specs.join("found.spec"), "unix:///elsewhere.sock\n").unwrap();

    let socket = PluginSocket::bind("found", &socket_in(&sockets), Default::default()).unwrap();
    let served = Served::spawn(socket, router());
    let addr = discover("found", &sockets, &[specs.as_path()]).unwrap();
    assert_eq!(addr, PluginAddr::Unix(sockets.join("found.sock")));
    assert_answers(PluginClient::new(addr)).await;
    served.stop().await.unwrap();

    let err = discover("found", &sockets, &[]).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::slow(Duration::from_millis(300));
    let socket = PluginSocket::bind("slow", &socket_in(dir.path()), Default::default()).unwrap();
    let served = Served::spawn(socket, Plugin::new().volume(fake.clone()).router());
    let client = served.client();
    let call = tokio::spawn(async move {
        client
            .call::<_, serde_json::Value>("VolumeDriver.Mount", &serde_json::json!({"Name": "v"}))
            .await
    });
    while fake.methods().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    served.stop().await.unwrap();
    let reply = call.await.unwrap().expect("the call in flight is answered");
    assert_eq!(reply["Mountpoint"], "/mnt/volumes/v");
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

/// Without a registration the socket goes where the engine scans.
#[test]
fn default_registration_is_the_engines_directory() {
    assert_eq!(
        Registration::default(),
        Registration::SocketIn(PathBuf::from("/run/docker/plugins"))
    );
}

/// A handler that panics is answered in the protocol's error form (the engine shows
/// `Err`), and the socket goes on serving the next call.
#[tokio::test]
async fn a_handler_that_panics_is_answered_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = PluginSocket::bind("panics", &socket_in(dir.path()), Default::default()).unwrap();
    let panicking = axum::Router::new().route(
        "/Test.Panic",
        axum::routing::post(|| async {
            if true {
                panic!("a bug in the handler");
            }
            ""
        }),
    );
    let served = Served::spawn(socket, router().merge(panicking));
    let client = served.client();
    for _ in 0..2 {
        let err = client
            .call::<_, serde_json::Value>("Test.Panic", &serde_json::json!({}))
            .await
            .unwrap_err();
        match err {
            plugin_api::client::ClientError::Plugin {
                status, message, ..
            } => assert_eq!(
                (status, message.as_str()),
                (500, "internal error: the handler failed")
            ),
            other => panic!("expected a plugin error, got {other:?}"),
        }
    }
    assert_answers(client).await;
    served.stop().await.unwrap();
}
