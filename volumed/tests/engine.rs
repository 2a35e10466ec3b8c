//! volumed under a real dockerd (the suite's private dockerd in a test host):
//! volumes with labels and options, shared between containers, data kept after
//! the containers go, refused removal while in use, counts right after `docker
//! cp`, volumes made by `--mount`, and a kill -9 of volumed while a container
//! holds a tmpfs volume.

mod common;

use common::{Calls, Volumed};
use tests::Dockerd;

#[test]
fn docker_volumes_on_volumed() {
    let mut v = Volumed::start_with_docker();
    let v = &mut v;
    let docker = Dockerd::start(&v.host).unwrap();
    let run = |args: &[&str]| {
        docker
            .run(args)
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
    };
    run(&[
        "volume", "create", "-d", "volumed", "--label", "team=a", "v1",
    ]);
    let inspect = docker.json(&["volume", "inspect", "v1"]).unwrap();
    assert_eq!(inspect[0]["Driver"], "volumed", "{inspect}");
    assert_eq!(inspect[0]["Labels"]["team"], "a", "{inspect}");

    // Two containers share it; the data outlives them.
    run(&[
        "run",
        "--rm",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f",
    ]);
    let read = run(&["run", "--rm", "-v", "v1:/data", "busybox", "cat", "/data/f"]);
    assert_eq!(read.trim(), "hello");
    assert_eq!(
        std::fs::read_to_string(v.data_root().join("volumes/v1/_data/f")).unwrap(),
        "hello\n"
    );

    // In use: not removed; docker cp leaves the counts right.
    run(&[
        "run", "-d", "--name", "holder", "-v", "v1:/data", "busybox", "sleep", "1000",
    ]);
    let err = docker.run_err(&["volume", "rm", "v1"]).unwrap();
    assert!(err.contains("in use"), "{err}");
    let src = v.host.dir().join("copied");
    std::fs::write(&src, "copied in").unwrap();
    run(&["cp", &src.display().to_string(), "holder:/data/copied"]);
    let refs = v.client.volume("v1").unwrap().references();
    assert_eq!(
        refs,
        1,
        "after docker cp: {:?}",
        v.client.volume("v1").unwrap().refs
    );
    run(&["rm", "-f", "holder"]);
    assert_eq!(v.client.volume("v1").unwrap().references(), 0);

    // --mount with volume-driver makes the volume through volumed.
    run(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=auto1,dst=/x,volume-driver=volumed",
        "busybox",
        "true",
    ]);
    assert!(
        v.client.volume("auto1").is_ok(),
        "auto1 was not made by volumed"
    );

    // A tmpfs volume with a size, held by a container while volumed is killed.
    run(&[
        "volume",
        "create",
        "-d",
        "volumed",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=16m",
        "t1",
    ]);
    let df = run(&["run", "--rm", "-v", "t1:/t", "busybox", "df", "-k", "/t"]);
    assert!(df.contains("16384"), "{df}");
    run(&[
        "run", "-d", "--name", "holder2", "-v", "t1:/t", "busybox", "sleep", "1000",
    ]);
    let data = v.data_root().join("volumes/t1/_data");
    assert!(v.mounted(&data));
    let mut daemon = v.daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    daemon.wait_exit(std::time::Duration::from_secs(5)).unwrap();
    v.daemon = Some(v.start_daemon());
    assert!(
        v.mounted(&data),
        "the tmpfs was lost across volumed's restart"
    );
    run(&["rm", "-f", "holder2"]);
    assert!(!v.mounted(&data), "still mounted after its last user went");
    assert_eq!(v.client.volume("t1").unwrap().references(), 0);
    // A bind-typed volume: a host directory, seen inside the container.
    let shared = v.host.dir().join("shared-dir");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("from-host"), "host file").unwrap();
    let device = format!("device={}", shared.display());
    run(&[
        "volume",
        "create",
        "-d",
        "volumed",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "b1",
    ]);
    let seen = run(&[
        "run",
        "--rm",
        "-v",
        "b1:/b",
        "busybox",
        "cat",
        "/b/from-host",
    ]);
    assert_eq!(seen.trim(), "host file");
    // -v of a name that does not exist yet, with volumed as the driver.
    run(&[
        "run",
        "--rm",
        "--volume-driver",
        "volumed",
        "-v",
        "auto2:/y",
        "busybox",
        "true",
    ]);
    assert!(
        v.client.volume("auto2").is_ok(),
        "auto2 was not made by volumed"
    );
    run(&["volume", "rm", "t1", "auto1", "auto2", "b1"]);
    assert!(v.client.volume("t1").is_err());
    drop(docker);

    // dockerd restarted (it asks volumed for each volume it knows): v1 keeps its
    // labels and its data.
    let docker = Dockerd::start(&v.host).unwrap();
    let inspect = docker.json(&["volume", "inspect", "v1"]).unwrap();
    assert_eq!(inspect[0]["Labels"]["team"], "a", "{inspect}");
    let read = docker
        .run(&["run", "--rm", "-v", "v1:/data", "busybox", "cat", "/data/f"])
        .unwrap();
    assert_eq!(read.trim(), "hello");
    docker.run(&["volume", "rm", "v1"]).unwrap();
    assert!(v.client.volume("v1").is_err());
}
