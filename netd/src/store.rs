//! netd's store: the shared `store` crate (redb records made durable by a
//! write-ahead log, `netd.redb` and `netd.redb.wal` under the state dir) with
//! netd's kinds of record.
//!
//! Only records are stored. The address allocator keeps no state of its own here:
//! the controller derives it from the records at every start, so it can never
//! disagree with them.

pub use store::StoreError;

/// The kinds of record netd keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Networks by id.
    Network,
    /// Endpoints by id.
    Endpoint,
    /// Sandboxes by id.
    Sandbox,
    /// Pools dockerd holds through the IpamDriver, by pool id.
    EnginePool,
    /// Addresses dockerd holds through the IpamDriver, by pool id and address.
    EngineAddress,
}

impl Kind {
    /// Every kind, in the order the controller loads them.
    pub const ALL: [Kind; 5] = [
        Kind::Network,
        Kind::Endpoint,
        Kind::Sandbox,
        Kind::EnginePool,
        Kind::EngineAddress,
    ];
}

impl store::Kind for Kind {
    fn table_name(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Endpoint => "endpoints",
            Kind::Sandbox => "sandboxes",
            Kind::EnginePool => "engine_pools",
            Kind::EngineAddress => "engine_addresses",
        }
    }

    fn code(self) -> u8 {
        match self {
            Kind::Network => 0,
            Kind::Endpoint => 1,
            Kind::Sandbox => 2,
            Kind::EnginePool => 3,
            Kind::EngineAddress => 4,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| store::Kind::code(*k) == code)
    }
}

/// Tables of earlier versions, which kept the allocator's own state; dropped at open.
pub const LEGACY_TABLES: [&str; 2] = ["ipam_journal", "ipam_snapshot"];

/// netd's store.
pub type Store = store::Store<Kind>;

/// Open netd's store at `path` (dropping the tables of earlier versions).
pub fn open(path: &std::path::Path) -> Result<Store, StoreError> {
    Store::open_dropping(path, &LEGACY_TABLES)
}
