//! A minimal volume plugin: each volume is a directory under `--root`.
//!
//! ```text
//! cargo run -p plugin-api --example volume_driver -- --name dirvol --root /var/lib/dirvol
//! docker volume create -d dirvol v1
//! ```
//!
//! It prints one line per call (`call VolumeDriver.Mount name=v1 ...`) so you can
//! watch what the engine asks. Mount counts references per caller ID because the
//! engine may mount twice with one ID.

use clap::Parser;
use plugin_api::protocol::volume::*;
use plugin_api::protocol::Timestamp;
use plugin_api::{async_trait, Plugin, PluginError, Registration, VolumeDriver};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Parser)]
struct Args {
    /// Plugin name: the engine's `-d` value and the socket's file name.
    #[arg(long, default_value = "dirvol")]
    name: String,
    /// Directory holding one directory per volume.
    #[arg(long, default_value = "/var/lib/dirvol")]
    root: PathBuf,
    /// Directory for the socket (the engine scans /run/docker/plugins).
    #[arg(long, default_value = plugin_api::server::DEFAULT_SOCKET_DIR)]
    socket_dir: PathBuf,
    /// Register with a `<name>.spec` file in this directory (the engine reads
    /// /etc/docker/plugins) instead of putting the socket where the engine scans.
    #[arg(long)]
    spec_dir: Option<PathBuf>,
}

/// What the driver remembers about one volume.
struct VolumeState {
    created: Timestamp,
    /// Mount references per caller ID.
    refs: HashMap<String, u32>,
}

struct DirVolumes {
    root: PathBuf,
    volumes: Mutex<HashMap<String, VolumeState>>,
}

impl DirVolumes {
    fn path(&self, name: &str) -> Result<PathBuf, PluginError> {
        let ok = !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(format!("invalid volume name {name:?}").into());
        }
        Ok(self.root.join(name))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VolumeState>> {
        // A poisoned lock only means another call panicked; the map is still usable.
        self.volumes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn describe(&self, name: &str, created: Timestamp) -> Volume {
        Volume {
            name: name.to_string(),
            mountpoint: self.root.join(name).display().to_string(),
            created_at: Some(created),
            ..Volume::default()
        }
    }
}

fn no_such(name: &str) -> PluginError {
    format!("no such volume: {name}").into()
}

#[async_trait]
impl VolumeDriver for DirVolumes {
    async fn create(&self, req: CreateVolumeRequest) -> Result<(), PluginError> {
        println!(
            "call VolumeDriver.Create name={} opts={:?}",
            req.name, req.opts
        );
        if let Some(key) = req.opts.keys().next() {
            return Err(format!("unknown option {key:?}: this driver takes none").into());
        }
        let path = self.path(&req.name)?;
        std::fs::create_dir_all(&path).map_err(|e| PluginError::from_error(&e))?;
        self.lock().entry(req.name).or_insert_with(|| VolumeState {
            created: Timestamp::now(),
            refs: HashMap::new(),
        });
        Ok(())
    }

    async fn remove(&self, req: RemoveVolumeRequest) -> Result<(), PluginError> {
        println!("call VolumeDriver.Remove name={}", req.name);
        let path = self.path(&req.name)?;
        let mut volumes = self.lock();
        let state = volumes.get(&req.name).ok_or_else(|| no_such(&req.name))?;
        if !state.refs.is_empty() {
            let holders: Vec<&str> = state.refs.keys().map(String::as_str).collect();
            return Err(format!("volume {} is in use by {}", req.name, holders.join(", ")).into());
        }
        std::fs::remove_dir_all(&path).map_err(|e| PluginError::from_error(&e))?;
        volumes.remove(&req.name);
        Ok(())
    }

    async fn mount(&self, req: MountRequest) -> Result<MountpointResponse, PluginError> {
        println!("call VolumeDriver.Mount name={} id={}", req.name, req.id);
        let path = self.path(&req.name)?;
        let mut volumes = self.lock();
        let state = volumes
            .get_mut(&req.name)
            .ok_or_else(|| no_such(&req.name))?;
        *state.refs.entry(req.id).or_default() += 1;
        Ok(MountpointResponse {
            mountpoint: path.display().to_string(),
        })
    }

    async fn unmount(&self, req: UnmountRequest) -> Result<(), PluginError> {
        println!("call VolumeDriver.Unmount name={} id={}", req.name, req.id);
        let mut volumes = self.lock();
        let state = volumes
            .get_mut(&req.name)
            .ok_or_else(|| no_such(&req.name))?;
        match state.refs.get_mut(&req.id) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                state.refs.remove(&req.id);
            }
            None => return Err(format!("volume {} is not mounted by {}", req.name, req.id).into()),
        }
        Ok(())
    }

    async fn path(&self, req: PathRequest) -> Result<MountpointResponse, PluginError> {
        println!("call VolumeDriver.Path name={}", req.name);
        let volumes = self.lock();
        volumes.get(&req.name).ok_or_else(|| no_such(&req.name))?;
        Ok(MountpointResponse {
            mountpoint: self.path(&req.name)?.display().to_string(),
        })
    }

    async fn get(&self, req: GetVolumeRequest) -> Result<GetVolumeResponse, PluginError> {
        println!("call VolumeDriver.Get name={}", req.name);
        let volumes = self.lock();
        let state = volumes.get(&req.name).ok_or_else(|| no_such(&req.name))?;
        Ok(GetVolumeResponse {
            volume: self.describe(&req.name, state.created),
        })
    }

    async fn list(&self) -> Result<ListVolumesResponse, PluginError> {
        println!("call VolumeDriver.List");
        let volumes = self.lock();
        let mut out: Vec<Volume> = volumes
            .iter()
            .map(|(name, state)| self.describe(name, state.created))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListVolumesResponse { volumes: out })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.root)?;
    let driver = DirVolumes {
        root: args.root,
        volumes: Mutex::new(HashMap::new()),
    };
    let registration = match args.spec_dir {
        Some(spec_dir) => Registration::Spec {
            socket: args.socket_dir.join(format!("{}.sock", args.name)),
            spec_dir,
        },
        None => Registration::SocketIn(args.socket_dir),
    };
    plugin_api::serve_until_signal(
        &args.name,
        &registration,
        Plugin::new().volume(driver).router(),
    )
    .await?;
    Ok(())
}
