//! `/metrics` in the Prometheus text format: object counts from the store, the
//! allocator's pools, and per-route request counts and time.

use crate::controller::Controller;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Method, route template and status code.
type RouteKey = (String, String, u16);

/// Request counts and time by method, route and status.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// Count and total seconds.
    by_route: Mutex<BTreeMap<RouteKey, (u64, f64)>>,
}

impl RequestMetrics {
    /// Count one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, took: Duration) {
        let mut map = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        entry.0 += 1;
        entry.1 += took.as_secs_f64();
    }
}

/// The metrics page.
pub fn render(ctl: &Controller, requests: &RequestMetrics) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: Result<usize, String>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        match value {
            Ok(v) => {
                let _ = writeln!(out, "{name} {v}");
            }
            Err(e) => {
                let _ = writeln!(out, "# {name} unavailable: {e}");
            }
        }
    };
    let (networks, endpoints, sandboxes) = ctl.counts();
    gauge("netd_networks", "Networks in the store.", Ok(networks));
    gauge("netd_endpoints", "Endpoints in the store.", Ok(endpoints));
    gauge(
        "netd_endpoints_joined",
        "Endpoints joined to a sandbox.",
        Ok(ctl.joined_count()),
    );
    gauge("netd_sandboxes", "Sandboxes in the store.", Ok(sandboxes));
    if let Some(agent) = ctl.overlay() {
        let (peers, _, joined) = agent.counters();
        gauge(
            "netd_overlay_joined",
            "1 while this host is a member of the cluster (its lease renewed).",
            Ok(usize::from(joined)),
        );
        gauge(
            "netd_overlay_peers",
            "Endpoints on other hosts programmed into this host's VXLAN devices.",
            Ok(peers as usize),
        );
    }
    let pools = ctl.pools();
    gauge(
        "netd_ipam_pools",
        "Address pools allocated.",
        Ok(pools.len()),
    );
    let _ = writeln!(
        out,
        "# HELP netd_ipam_addresses_allocated Addresses handed out, per pool.\n# TYPE netd_ipam_addresses_allocated gauge"
    );
    for p in &pools {
        let _ = writeln!(
            out,
            "netd_ipam_addresses_allocated{{pool=\"{}\"}} {}",
            p.id, p.allocated
        );
    }
    let _ = writeln!(
        out,
        "# HELP netd_api_requests_total Native API requests.\n# TYPE netd_api_requests_total counter"
    );
    let map = requests.by_route.lock().unwrap_or_else(|e| e.into_inner());
    for ((method, route, status), (count, _)) in map.iter() {
        let _ = writeln!(
            out,
            "netd_api_requests_total{{method=\"{method}\",route=\"{route}\",code=\"{status}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP netd_api_request_seconds_total Time spent answering native API requests.\n# TYPE netd_api_request_seconds_total counter"
    );
    for ((method, route, status), (_, secs)) in map.iter() {
        let _ = writeln!(
            out,
            "netd_api_request_seconds_total{{method=\"{method}\",route=\"{route}\",code=\"{status}\"}} {secs:.6}"
        );
    }
    if let Some(agent) = ctl.overlay() {
        let (_, repairs, _) = agent.counters();
        let _ = writeln!(
            out,
            "# HELP netd_overlay_repairs_total Overlay entries a full comparison found missing, wrong or left over, and repaired.\n# TYPE netd_overlay_repairs_total counter\nnetd_overlay_repairs_total {repairs}"
        );
        if let Some(lag) = agent.watch_lag() {
            let _ = writeln!(
                out,
                "# HELP netd_overlay_watch_lag_seconds The longest any overlay network's peer watch has gone without being known to have every change from etcd (asked every {} s; grows while etcd does not answer).\n# TYPE netd_overlay_watch_lag_seconds gauge\nnetd_overlay_watch_lag_seconds {:.3}",
                cluster::PROGRESS_EVERY.as_secs(),
                lag.as_secs_f64()
            );
        }
    }
    out
}
