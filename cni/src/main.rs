//! `netd-cni`: a CNI plugin (spec 0.3.0 to 1.1.0) that turns each call into
//! calls to netd's native API. The runtime runs it with CNI_* variables and the
//! network configuration on stdin; it prints a result or an error in the
//! specification's JSON on stdout. See docs/cni.md.

mod env;
mod error;
mod ops;
mod spec;

use env::{Command, Env};
use error::CniError;
use spec::{Code, ErrorOut, NetConf};
use std::io::{Read, Write};

/// More than any network configuration needs.
const MAX_CONFIG: u64 = 1 << 20;

fn main() {
    let (version, result) = run();
    let mut out = std::io::stdout().lock();
    let code = match result {
        Ok(Some(json)) => {
            let _ = writeln!(out, "{json}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            let body = ErrorOut {
                cni_version: version,
                code: e.code as u32,
                msg: e.msg,
                details: e.details,
            };
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&body).unwrap_or_else(|_| "{}".into())
            );
            1
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}

/// The configuration's version (for the error's), and what to print.
fn run() -> (String, Result<Option<String>, CniError>) {
    let mut version = spec::SUPPORTED[spec::SUPPORTED.len() - 1].to_string();
    let env = Env::read(|k| std::env::var(k).ok());
    // Not run by a runtime (no command): no configuration will come on stdin
    // either, so none is waited for.
    if std::env::var_os("CNI_COMMAND").is_none() {
        if let Err(e) = env {
            return (version, Err(e));
        }
    }
    let mut input = String::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_CONFIG + 1)
        .read_to_string(&mut input)
    {
        return (
            version,
            Err(CniError::new(
                Code::Io,
                format!("reading the configuration from stdin: {e}"),
            )),
        );
    }
    if input.len() as u64 > MAX_CONFIG {
        return (
            version,
            Err(CniError::new(
                Code::Decode,
                format!("the configuration on stdin is over {MAX_CONFIG} bytes"),
            )),
        );
    }
    // Errors answer in the configuration's version when it names one this
    // plugin speaks, even when the rest of it or the environment is wrong.
    let asked = serde_json::from_str::<serde_json::Value>(&input)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
        .filter(|v| spec::SUPPORTED.contains(&v.as_str()));
    if let Some(v) = &asked {
        version = v.clone();
    }
    let env = match env {
        Ok(e) => e,
        Err(e) => return (version, Err(e)),
    };
    if env.command == Command::Version {
        let answer = spec::Versions {
            cni_version: asked.unwrap_or(version.clone()),
            supported_versions: spec::SUPPORTED.iter().map(|v| v.to_string()).collect(),
        };
        return (version, to_json(&answer).map(Some));
    }
    let conf = match parse_conf(&input) {
        Ok(c) => c,
        Err(e) => return (version, Err(e)),
    };
    version = conf.cni_version.clone();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return (
                version,
                Err(CniError::new(Code::Io, format!("starting: {e}"))),
            )
        }
    };
    // One call at a time per container (a runtime may run a list's at once).
    let lock = match env.command {
        Command::Add | Command::Del | Command::Check => {
            match ops::lock_container(&env.container_id) {
                Ok(l) => Some(l),
                Err(e) => return (version, Err(e)),
            }
        }
        _ => None,
    };
    let result = runtime.block_on(async {
        let result = match env.command {
            Command::Add => match (ops::add(&env, &conf).await, &conf.prev_result) {
                (Ok(o), None) => to_json(&o).map(Some),
                // A later plugin in a chain: the earlier ones' result, and this one's.
                (Ok(o), Some(prev)) => ops::chained(prev, &o).and_then(|v| to_json(&v)).map(Some),
                (Err(e), _) => Err(e),
            },
            Command::Del => match ops::del(&env, &conf).await {
                Ok(gone) => {
                    if let (true, Some(l)) = (gone, lock) {
                        l.remove();
                    }
                    return Ok(None);
                }
                Err(e) => Err(e),
            },
            Command::Check => ops::check(&env, &conf).await.map(|_| None),
            Command::Status => ops::status(&conf).await.map(|_| None),
            Command::Gc => ops::gc(&conf).await.map(|_| None),
            Command::Version => Ok(None),
        };
        // A lock file stays only while netd holds something of the container.
        if let Some(l) = lock {
            if result.is_err() && ops::nothing_of(&conf, &env.container_id).await {
                l.remove();
            }
        }
        result
    });
    (version, result)
}

fn to_json(v: &impl serde::Serialize) -> Result<String, CniError> {
    serde_json::to_string(v)
        .map_err(|e| CniError::new(Code::Io, format!("writing the result: {e}")))
}

/// The configuration, checked: valid JSON of its shape, a version this plugin
/// speaks, a name.
fn parse_conf(input: &str) -> Result<NetConf, CniError> {
    let conf: NetConf = serde_json::from_str(input).map_err(|e| {
        CniError::new(
            Code::Decode,
            format!("the network configuration on stdin is not valid: {e}"),
        )
    })?;
    if !spec::SUPPORTED.contains(&conf.cni_version.as_str()) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "cniVersion {:?} is not one netd-cni speaks ({})",
                conf.cni_version,
                spec::SUPPORTED.join(", ")
            ),
        ));
    }
    if conf.name.is_empty() {
        return Err(CniError::config("the configuration has no network name"));
    }
    Ok(conf)
}
