//! netd, the network daemon. Built so far: its store. The controller, the native API,
//! the Docker face and the CLI come with issue 4 (see ARCHITECTURE.md).

pub mod store;
