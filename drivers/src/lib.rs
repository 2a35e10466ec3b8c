//! Network drivers (bridge, host, none, later overlay and remote) behind one trait,
//! and the netlink layer they use. The driver trait and the drivers come with
//! issue 4; the netlink layer is here.

pub mod netlink;
