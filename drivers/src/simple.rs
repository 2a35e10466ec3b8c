//! The `host` and `none` drivers: no links of their own.
//!
//! `host`: the container shares the daemon's namespace, so joining changes nothing.
//! `none`: the container has its own namespace with only loopback, brought up.

use crate::driver::{
    Driver, DriverData, DriverError, EndpointSpec, Joined, NetworkSpec, SandboxSpec,
};
use crate::netlink::LOOPBACK_INDEX;
use async_trait::async_trait;

/// The `host` or the `none` driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleDriver {
    /// Containers use the daemon's own network namespace.
    Host,
    /// Containers get a namespace with loopback only.
    None,
}

#[async_trait]
impl Driver for SimpleDriver {
    fn kind(&self) -> &'static str {
        match self {
            SimpleDriver::Host => "host",
            SimpleDriver::None => "none",
        }
    }

    fn validate(&self, net: &NetworkSpec) -> Result<(), DriverError> {
        let kind = self.kind();
        if let Some(key) = net.options.keys().next() {
            return Err(DriverError::invalid(
                "option",
                format!("the {kind} driver takes no options, got {key:?}"),
            ));
        }
        if let Some(s) = net.subnets.first() {
            return Err(DriverError::invalid(
                "subnet",
                format!(
                    "the {kind} driver has no addresses of its own, got {}",
                    s.subnet
                ),
            ));
        }
        Ok(())
    }

    async fn create_network(&self, net: &NetworkSpec) -> Result<DriverData, DriverError> {
        self.validate(net)?;
        Ok(net.data.clone())
    }

    async fn delete_network(&self, _: &NetworkSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn join(
        &self,
        _: &NetworkSpec,
        _: &EndpointSpec,
        sandbox: &SandboxSpec,
        _: &str,
    ) -> Result<Joined, DriverError> {
        if let (SimpleDriver::None, Some(netns)) = (self, &sandbox.netns) {
            let doing = || format!("bringing lo up in {}", netns.display());
            if let Some(inside) = sandbox
                .connect()
                .await
                .map_err(DriverError::kernel(doing()))?
            {
                inside
                    .set_up(LOOPBACK_INDEX)
                    .await
                    .map_err(DriverError::kernel(doing()))?;
            }
        }
        Ok(Joined::default())
    }

    async fn leave(
        &self,
        _: &NetworkSpec,
        _: &EndpointSpec,
        _: &SandboxSpec,
        _: &str,
    ) -> Result<(), DriverError> {
        Ok(())
    }
}
