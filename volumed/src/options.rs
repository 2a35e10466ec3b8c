//! Volume names and the `local` driver's options, with Docker's rules: only
//! `type`, `device`, `o` and `size`; `device` needs `type`, `type` needs `device`,
//! `o` needs both.

use crate::VolumeError;
use std::collections::BTreeMap;

/// Check a volume name: `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$` (so never `..`, `/` or a
/// path).
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name.len() >= 2
        && name.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        return Ok(());
    }
    if first_ok && name.len() == 1 {
        return Err(VolumeError::Invalid(format!(
            "{name:?} is too short: a local volume name has at least two characters ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
        )));
    }
    Err(VolumeError::Invalid(format!(
        "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed (at least two)"
    )))
}

const VALID: [&str; 4] = ["type", "device", "o", "size"];

/// What a `local` volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A directory under the data root.
    Plain,
    /// A tmpfs mounted on the volume's `_data` while in use (`type=tmpfs`); its
    /// data goes with the last unmount, as with Docker.
    Tmpfs {
        /// `o`, the tmpfs options (`size=64m,uid=1000,mode=0700`).
        options: String,
    },
    /// A filesystem image of its own, `size` bytes, mounted on `_data` while in
    /// use (`type=ext4 device=image size=1G`): a size that holds on any host
    /// filesystem.
    Image {
        /// The filesystem made in it (`ext4` or `xfs`).
        fstype: String,
        /// Its size in bytes.
        size: u64,
        /// `o`, its mount options.
        options: String,
    },
    /// A directory under the data root held to `size` bytes by a project quota
    /// (`size=10G` alone, as Docker: the data root must be on XFS mounted with
    /// prjquota).
    Quota {
        /// The limit in bytes.
        size: u64,
    },
    /// An NFS export mounted on `_data` while in use (`type=nfs o=addr=SERVER
    /// device=:/export`, as Docker: a server name in `addr` is resolved at
    /// mount).
    Nfs {
        /// `nfs` or `nfs4`.
        fstype: String,
        /// The export (`:/path` or `server:/path`).
        device: String,
        /// `o`, with `addr=`.
        options: String,
    },
    /// A host directory bound on `_data` while in use (`type=none o=bind device=/dir`).
    Bind {
        /// The host directory.
        device: String,
        /// `o`, with `bind` (and maybe `ro`).
        options: String,
    },
}

impl Backing {
    /// Whether it is mounted on `_data` while referenced.
    pub fn mounted(&self) -> bool {
        !matches!(self, Backing::Plain | Backing::Quota { .. })
    }
}

fn invalid(why: String) -> VolumeError {
    VolumeError::Invalid(why)
}

/// The backing `opts` ask for (Docker's `local` option rules), or why not.
pub fn parse(opts: &BTreeMap<String, String>) -> Result<Backing, VolumeError> {
    for key in opts.keys() {
        if !VALID.contains(&key.as_str()) {
            return Err(invalid(format!(
                "invalid option: {key:?} (the local driver takes type, device, o and size)"
            )));
        }
    }
    let need = |key: &str, needs: &[&str]| -> Result<(), VolumeError> {
        if opts.contains_key(key) {
            for n in needs {
                if !opts.contains_key(*n) {
                    return Err(invalid(format!(
                        "missing required option: {n:?} (option {key:?} needs it)"
                    )));
                }
            }
        }
        Ok(())
    };
    need("device", &["type"])?;
    need("type", &["device"])?;
    need("o", &["type", "device"])?;
    let image = opts.get("device").map(String::as_str) == Some("image");
    let kind = opts.get("type").map(String::as_str);
    if let (Some(size), Some(kind)) = (opts.get("size"), kind) {
        // Only where it is enforced: a tmpfs takes it as its own size, an image
        // is made that big, a plain volume gets a project quota.
        if kind != "tmpfs" && !image {
            return Err(invalid(format!(
                "option size={size} does not apply to type={kind}: a size holds for a plain volume (project quota), type=tmpfs, or a volume of its own image (type=ext4 device=image size={size})"
            )));
        }
    }
    let o = opts.get("o").cloned().unwrap_or_default();
    match kind {
        None => match opts.get("size") {
            None => Ok(Backing::Plain),
            // As with Docker, size=0 is no limit.
            Some(size) => Ok(match size_bytes(size)? {
                0 => Backing::Plain,
                size => Backing::Quota { size },
            }),
        },
        Some("tmpfs") => {
            let mut options = o;
            if let Some(size) = opts.get("size") {
                // A percentage of memory is tmpfs's own; other sizes in bytes.
                let size = match size.strip_suffix('%') {
                    Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                        size.clone()
                    }
                    _ => size_bytes(size)?.to_string(),
                };
                if !options.is_empty() {
                    options.push(',');
                }
                options.push_str(&format!("size={size}"));
            }
            check_mount_options(&options)?;
            Ok(Backing::Tmpfs { options })
        }
        Some("none") => {
            let device = opts.get("device").cloned().unwrap_or_default();
            if !o.split(',').any(|x| x == "bind" || x == "rbind") {
                return Err(invalid(
                    "type=none needs o=bind (and a host directory as device)".into(),
                ));
            }
            if !device.starts_with('/') {
                return Err(invalid(format!(
                    "device {device:?}: a bind volume needs an absolute host path"
                )));
            }
            check_mount_options(&o)?;
            Ok(Backing::Bind { device, options: o })
        }
        Some("nfs") | Some("nfs4") => {
            if !o.split(',').any(|x| x.starts_with("addr=")) {
                return Err(invalid(
                    "type=nfs needs the server in o (o=addr=SERVER,...) and the export as device (:/path)".into(),
                ));
            }
            let device = opts.get("device").cloned().unwrap_or_default();
            if !device.contains(":/") {
                return Err(invalid(format!(
                    "device {device:?}: an nfs volume needs the export as :/path (or server:/path)"
                )));
            }
            check_mount_options(&o)?;
            Ok(Backing::Nfs {
                fstype: kind.unwrap_or("nfs").to_string(),
                device,
                options: o,
            })
        }
        Some(fstype @ ("ext4" | "xfs")) if image => {
            let Some(size) = opts.get("size") else {
                return Err(invalid(format!(
                    "type={fstype} device=image needs size (size=1G)"
                )));
            };
            let bytes = size_bytes(size)?;
            let min = crate::image::min_size(fstype);
            if bytes < min {
                return Err(invalid(format!(
                    "size={size}: a type={fstype} image volume needs at least {}m",
                    min >> 20
                )));
            }
            check_mount_options(&o)?;
            Ok(Backing::Image {
                fstype: fstype.to_string(),
                size: bytes,
                options: o,
            })
        }
        Some(other) => Err(invalid(format!(
            "type={other}: this volumed serves type=tmpfs, type=none (o=bind), type=nfs|nfs4 and type=ext4|xfs with device=image"
        ))),
    }
}

/// `size` in bytes, with Docker's spelling (`units.RAMInBytes`): a number,
/// maybe with a fraction, then maybe a space, then maybe k, m, g, t or p (powers
/// of 1024), maybe with `i` and `b` (`10g`, `1.5G`, `512MiB`, `100kb`).
fn size_bytes(size: &str) -> Result<u64, VolumeError> {
    let bad = || {
        invalid(format!(
            "size={size}: expected a number with an optional unit (k, m, g, t or p, as in 10g or 1.5GiB)"
        ))
    };
    let number_end = size
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(size.len());
    let (number, unit) = size.split_at(number_end);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(invalid(format!("size={size}: too large")));
    }
    Ok(bytes as u64)
}

/// Mount options are passed to the kernel as text: keep them to what mount(8)
/// syntax allows (no newlines or NULs, no empty items).
fn check_mount_options(o: &str) -> Result<(), VolumeError> {
    if o.bytes().any(|b| b == 0 || b == b'\n')
        || o.split(',').any(|x| x.is_empty() && !o.is_empty())
    {
        return Err(invalid(format!("o={o:?}: not a mount option list")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sizes_are_spelled_as_docker_spells_them() {
        for (text, bytes) in [
            ("0", 0),
            ("100", 100),
            ("10k", 10 << 10),
            ("10g", 10 << 30),
            ("1.5G", 3 << 29),
            ("512MiB", 512 << 20),
            ("100kb", 100 << 10),
            ("2 t", 2 << 40),
        ] {
            assert_eq!(size_bytes(text).unwrap(), bytes, "{text}");
        }
        for bad in ["", "g", "1x", "1.", ".5g", "1..2m", "-1", "1gg", "10%"] {
            assert!(size_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["v1", "a.b_c-d", "0x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "..", ".x", "a/b", "/etc", "a b", "-x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_follow_dockers_rules() {
        assert_eq!(parse(&opts(&[])).unwrap(), Backing::Plain);
        let err = parse(&opts(&[("foo", "1")])).unwrap_err().to_string();
        assert!(err.contains("invalid option: \"foo\""), "{err}");
        let err = parse(&opts(&[("device", "tmpfs")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing required option: \"type\""), "{err}");
        let err = parse(&opts(&[("o", "size=1m"), ("type", "tmpfs")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing required option: \"device\""), "{err}");
        assert_eq!(
            parse(&opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=64m")
            ]))
            .unwrap(),
            Backing::Tmpfs {
                options: "size=64m".into()
            }
        );
        assert_eq!(
            parse(&opts(&[("size", "1g")])).unwrap(),
            Backing::Quota { size: 1 << 30 }
        );
        let err = parse(&opts(&[
            ("type", "none"),
            ("device", "/d"),
            ("o", "bind"),
            ("size", "1g"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not apply to type=none"), "{err}");
        assert_eq!(
            parse(&opts(&[
                ("type", "ext4"),
                ("device", "image"),
                ("size", "32m")
            ]))
            .unwrap(),
            Backing::Image {
                fstype: "ext4".into(),
                size: 32 << 20,
                options: String::new()
            }
        );
        let err = parse(&opts(&[("type", "ext4"), ("device", "image")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs size"), "{err}");
        let err = parse(&opts(&[
            ("type", "ext4"),
            ("device", "image"),
            ("size", "1m"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("at least 16m"), "{err}");
        let err = parse(&opts(&[
            ("type", "xfs"),
            ("device", "image"),
            ("size", "100m"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("at least 300m"), "{err}");
        let err = parse(&opts(&[("type", "none"), ("device", "rel"), ("o", "bind")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
        let err = parse(&opts(&[
            ("type", "nfs"),
            ("device", ":/x"),
            ("o", "vers=4"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs the server"), "{err}");
        assert_eq!(
            parse(&opts(&[
                ("type", "nfs"),
                ("device", ":/export"),
                ("o", "addr=nas.lan,vers=4")
            ]))
            .unwrap(),
            Backing::Nfs {
                fstype: "nfs".into(),
                device: ":/export".into(),
                options: "addr=nas.lan,vers=4".into()
            }
        );
    }
}
