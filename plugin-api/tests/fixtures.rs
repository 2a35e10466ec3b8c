//! Every fixture under `tests/fixtures/` (the engine's JSON, field for field) decodes
//! into the crate's type with the right values and encodes back to the same JSON.
//!
//! The only differences allowed are the Go-only fields named in [`GoOnly`].

mod common;

use common::{fixture, fixture_text, fixtures_dir};
use ipnet::IpNet;
use plugin_api::protocol::ipam::*;
use plugin_api::protocol::network::*;
use plugin_api::protocol::volume::*;
use plugin_api::protocol::{ActivateResponse, Interface, MacAddress, Scope, Timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::net::IpAddr;

const NETWORK_ID: &str = "3f9c2a8e51d04b7c9e6a1f20d8b7c5e4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8";
const ENDPOINT_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00";
const MOUNT_ID: &str = "b87d7442095999a92b65b3d9691e697b61713829cc0ffd1bb72e4ccd51aa4d6c";

/// Fields a Go plugin sends that the crate's types legitimately do not carry.
#[derive(Clone, Copy)]
enum GoOnly {
    /// Nothing: the JSON must come back exactly.
    Nothing,
    /// Go's network and volume replies embed `"Err": ""`. The crate's server
    /// answers success without it and failure with HTTP 500 and `Err`.
    EmptyErr,
    /// IPAM replies embed `"Error": ""` instead (and have no `Err`).
    EmptyError,
}

/// `wire` without the Go-only field, which must be there and empty, with the
/// other error field absent.
fn without(go_only: GoOnly, name: &str, mut wire: Value) -> Value {
    let (field, other) = match go_only {
        GoOnly::Nothing => return wire,
        GoOnly::EmptyErr => ("Err", "Error"),
        GoOnly::EmptyError => ("Error", "Err"),
    };
    let obj = wire.as_object_mut().expect("a reply is a JSON object");
    assert_eq!(obj.remove(field), Some(json!("")), "{name}: {field}");
    assert!(!obj.contains_key(other), "{name} has {other}");
    wire
}

fn parse<T: DeserializeOwned>(name: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} does not decode: {e}"))
}

/// Decode fixture `name`, encode it again and compare with the fixture minus `go_only`.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str, go_only: GoOnly) -> T {
    let decoded: T = parse(name, &fixture_text(name));
    let encoded = serde_json::to_value(&decoded).unwrap();
    assert_eq!(
        encoded,
        without(go_only, name, fixture(name)),
        "{name}: encoded JSON differs from the fixture"
    );
    decoded
}

/// Decode fixture `name` after `edit` changed it (for the engine's variants).
fn parse_edited<T: DeserializeOwned>(name: &str, edit: impl FnOnce(&mut Value)) -> T {
    try_parse_edited(name, edit).unwrap_or_else(|e| panic!("edited {name} does not decode: {e}"))
}

fn try_parse_edited<T: DeserializeOwned>(
    name: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<T, serde_json::Error> {
    let mut wire = fixture(name);
    edit(&mut wire);
    serde_json::from_str(&wire.to_string())
}

fn remove(field: &'static str) -> impl FnOnce(&mut Value) {
    move |v| {
        v.as_object_mut().unwrap().remove(field).expect(field);
    }
}

fn set(field: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |v| {
        v[field] = value;
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---- Plugin.Activate -------------------------------------------------------------

#[test]
fn activate_response() {
    let r: ActivateResponse = round_trip("Plugin.Activate.response", GoOnly::Nothing);
    assert_eq!(
        r.implements,
        ["NetworkDriver", "IpamDriver", "VolumeDriver"]
    );
    for i in [
        Interface::NetworkDriver,
        Interface::IpamDriver,
        Interface::VolumeDriver,
    ] {
        assert!(r.implements(i), "{i}");
    }
}

// ---- calls without arguments, replies without data -------------------------------

/// The engine passes no arguments to these calls: dockerd sends an empty body, its
/// docs and some versions `{}`. The router tests send both.
#[test]
fn argument_less_requests_are_empty_objects() {
    for name in [
        "NetworkDriver.GetCapabilities.request",
        "IpamDriver.GetCapabilities.request",
        "IpamDriver.GetDefaultAddressSpaces.request",
        "VolumeDriver.Capabilities.request",
        "VolumeDriver.List.request",
    ] {
        assert_eq!(fixture(name), json!({}), "{name}");
    }
}

/// Replies to calls whose trait method returns `()`: once the Go-only error field
/// is gone nothing is left, so the router's `{}` is the complete answer.
#[test]
fn unit_replies_are_empty_but_for_the_error_field() {
    for (name, go_only) in [
        ("NetworkDriver.CreateNetwork.response", GoOnly::EmptyErr),
        ("NetworkDriver.DeleteNetwork.response", GoOnly::EmptyErr),
        ("NetworkDriver.FreeNetwork.response", GoOnly::EmptyErr),
        ("NetworkDriver.DeleteEndpoint.response", GoOnly::EmptyErr),
        ("NetworkDriver.Leave.response", GoOnly::EmptyErr),
        ("NetworkDriver.DiscoverNew.response", GoOnly::EmptyErr),
        ("NetworkDriver.DiscoverDelete.response", GoOnly::EmptyErr),
        (
            "NetworkDriver.ProgramExternalConnectivity.response",
            GoOnly::EmptyErr,
        ),
        (
            "NetworkDriver.RevokeExternalConnectivity.response",
            GoOnly::EmptyErr,
        ),
        ("IpamDriver.ReleasePool.response", GoOnly::EmptyError),
        ("IpamDriver.ReleaseAddress.response", GoOnly::EmptyError),
        ("VolumeDriver.Create.response", GoOnly::EmptyErr),
        ("VolumeDriver.Remove.response", GoOnly::EmptyErr),
        ("VolumeDriver.Unmount.response", GoOnly::EmptyErr),
    ] {
        assert_eq!(without(go_only, name, fixture(name)), json!({}), "{name}");
    }
}

// ---- IpamDriver ------------------------------------------------------------------

#[test]
fn ipam_get_capabilities_response() {
    let r: IpamCapabilities = round_trip("IpamDriver.GetCapabilities.response", GoOnly::EmptyError);
    assert!(r.requires_mac_address);
    assert!(r.requires_request_replay);
}

#[test]
fn ipam_default_address_spaces_response() {
    let r: AddressSpacesResponse = round_trip(
        "IpamDriver.GetDefaultAddressSpaces.response",
        GoOnly::EmptyError,
    );
    assert_eq!(r.local_default_address_space, LOCAL_DEFAULT_ADDRESS_SPACE);
    assert_eq!(r.global_default_address_space, GLOBAL_DEFAULT_ADDRESS_SPACE);
}

#[test]
fn ipam_request_pool() {
    let req: RequestPoolRequest = round_trip("IpamDriver.RequestPool.request", GoOnly::Nothing);
    assert_eq!(req.address_space, "LocalDefault");
    assert_eq!(req.pool, Some(net("172.20.0.0/16")));
    assert_eq!(req.sub_pool, Some(net("172.20.10.0/24")));
    assert_eq!(req.options["com.example.ipam.zone"], "rack-a");
    assert!(!req.v6);

    let resp: RequestPoolResponse =
        round_trip("IpamDriver.RequestPool.response", GoOnly::EmptyError);
    assert_eq!(resp.pool_id, "LocalDefault/172.20.0.0/16");
    assert_eq!(resp.pool, net("172.20.0.0/16"));
    assert_eq!(resp.data["com.docker.network.gateway"], "172.20.0.1/16");
}

#[test]
fn ipam_release_pool_request() {
    let req: ReleasePoolRequest = round_trip("IpamDriver.ReleasePool.request", GoOnly::Nothing);
    assert_eq!(req.pool_id, "LocalDefault/172.20.0.0/16");
}

#[test]
fn ipam_request_address() {
    let req: RequestAddressRequest =
        round_trip("IpamDriver.RequestAddress.request", GoOnly::Nothing);
    assert_eq!(req.pool_id, "LocalDefault/172.20.0.0/16");
    // The request carries a bare address...
    assert_eq!(req.address, Some(ip("172.20.0.1")));
    assert!(req.is_gateway());

    // ...the reply one with the pool's prefix length.
    let resp: RequestAddressResponse =
        round_trip("IpamDriver.RequestAddress.response", GoOnly::EmptyError);
    assert_eq!(resp.address.addr(), ip("172.20.0.1"));
    assert_eq!(resp.address.prefix_len(), 16);
    assert_eq!(resp.data["com.example.lease"], "infinite");
}

#[test]
fn ipam_release_address_request() {
    let req: ReleaseAddressRequest =
        round_trip("IpamDriver.ReleaseAddress.request", GoOnly::Nothing);
    assert_eq!(req.pool_id, "LocalDefault/172.20.0.0/16");
    assert_eq!(req.address, ip("172.20.0.1"));
}

// ---- NetworkDriver ---------------------------------------------------------------

#[test]
fn network_get_capabilities_response() {
    let r: NetworkCapabilities =
        round_trip("NetworkDriver.GetCapabilities.response", GoOnly::EmptyErr);
    assert_eq!(r.scope, Scope::Local);
    assert_eq!(r.connectivity_scope, Scope::Global);
    assert!(r.gw_alloc_checker);
}

#[test]
fn network_gw_alloc_check() {
    let req: GwAllocCheckRequest =
        round_trip("NetworkDriver.GwAllocCheck.request", GoOnly::Nothing);
    assert_eq!(req.options["com.docker.network.enable_ipv4"], json!(true));
    assert_eq!(
        req.options[OPTION_GENERIC]["com.docker.network.driver.mtu"],
        "1450"
    );

    let resp: GwAllocCheckResponse =
        round_trip("NetworkDriver.GwAllocCheck.response", GoOnly::EmptyErr);
    assert!(resp.skip_ipv4);
    assert!(!resp.skip_ipv6);
}

#[test]
fn network_create_network_request() {
    let req: CreateNetworkRequest =
        round_trip("NetworkDriver.CreateNetwork.request", GoOnly::Nothing);
    assert_eq!(req.network_id, NETWORK_ID);
    assert_eq!(req.options[OPTION_ENABLE_IPV6], json!(true));
    let generic = req.generic_options();
    assert_eq!(generic["com.docker.network.driver.mtu"], "1450");
    assert_eq!(generic["vlan"], "100");

    let v4 = &req.ipv4_data[0];
    assert_eq!(v4.address_space, "LocalDefault");
    assert_eq!(v4.pool, net("172.20.0.0/16"));
    // The gateway arrives in CIDR form: the address with the pool's prefix length.
    let gateway = v4.gateway.expect("IPv4 gateway");
    assert_eq!(gateway, net("172.20.0.1/16"));
    assert_eq!(gateway.addr(), ip("172.20.0.1"));
    assert_eq!(gateway.prefix_len(), 16);
    assert_eq!(v4.aux_addresses["router"], net("172.20.0.2/16"));

    let v6 = &req.ipv6_data[0];
    assert_eq!(v6.pool, net("fd00:1:2::/64"));
    assert_eq!(v6.gateway, Some(net("fd00:1:2::1/64")));
    assert_eq!(v6.aux_addresses["router6"], net("fd00:1:2::2/64"));
}

#[test]
fn network_allocate_network() {
    let req: AllocateNetworkRequest =
        round_trip("NetworkDriver.AllocateNetwork.request", GoOnly::Nothing);
    assert_eq!(req.network_id, NETWORK_ID);
    assert_eq!(req.options["vni"], "4097");
    assert_eq!(req.ipv4_data[0].address_space, "GlobalDefault");
    assert_eq!(req.ipv4_data[0].gateway, Some(net("10.0.9.1/24")));
    assert_eq!(
        req.ipv6_data[0].aux_addresses["router6"],
        net("fd00:9::2/64")
    );

    let resp: AllocateNetworkResponse =
        round_trip("NetworkDriver.AllocateNetwork.response", GoOnly::EmptyErr);
    assert_eq!(resp.options["com.example.vni"], "4097");
}

#[test]
fn network_delete_and_free_network_requests() {
    let req: DeleteNetworkRequest =
        round_trip("NetworkDriver.DeleteNetwork.request", GoOnly::Nothing);
    assert_eq!(req.network_id, NETWORK_ID);
    let req: FreeNetworkRequest = round_trip("NetworkDriver.FreeNetwork.request", GoOnly::Nothing);
    assert_eq!(req.network_id, NETWORK_ID);
}

#[test]
fn network_create_endpoint() {
    let req: CreateEndpointRequest =
        round_trip("NetworkDriver.CreateEndpoint.request", GoOnly::Nothing);
    assert_eq!(req.network_id, NETWORK_ID);
    assert_eq!(req.endpoint_id, ENDPOINT_ID);
    let iface = req.interface.expect("Interface");
    assert_eq!(iface.address, Some(net("172.20.0.5/16")));
    assert_eq!(iface.address_ipv6, Some(net("fd00:1:2::5/64")));
    assert_eq!(
        iface.mac_address,
        Some(MacAddress([0x02, 0x42, 0xac, 0x14, 0x00, 0x05]))
    );
    // Go's net.HardwareAddr option travels as base64 and is passed through as is.
    assert_eq!(
        req.options["com.docker.network.endpoint.macaddress"],
        "AkKsFAAF"
    );
    assert_eq!(
        req.options["com.docker.network.portmap"][0]["HostPort"],
        8080
    );

    let resp: CreateEndpointResponse =
        round_trip("NetworkDriver.CreateEndpoint.response", GoOnly::EmptyErr);
    assert_eq!(resp.interface, Some(iface));
}

#[test]
fn network_endpoint_requests() {
    for name in [
        "NetworkDriver.EndpointOperInfo.request",
        "NetworkDriver.DeleteEndpoint.request",
        "NetworkDriver.Leave.request",
        "NetworkDriver.RevokeExternalConnectivity.request",
    ] {
        let req: EndpointRequest = round_trip(name, GoOnly::Nothing);
        assert_eq!(req.network_id, NETWORK_ID, "{name}");
        assert_eq!(req.endpoint_id, ENDPOINT_ID, "{name}");
    }
}

#[test]
fn network_endpoint_oper_info_response() {
    let r: EndpointOperInfoResponse =
        round_trip("NetworkDriver.EndpointOperInfo.response", GoOnly::EmptyErr);
    assert_eq!(r.value["com.example.vlan"], "100");
    assert_eq!(r.value["com.example.port-state"], "up");
}

#[test]
fn network_join() {
    let req: JoinRequest = round_trip("NetworkDriver.Join.request", GoOnly::Nothing);
    assert_eq!(req.network_id, NETWORK_ID);
    assert_eq!(req.endpoint_id, ENDPOINT_ID);
    assert_eq!(req.sandbox_key, "/var/run/docker/netns/5f1c2a9b8e7d");
    assert_eq!(
        req.options["com.docker.network.endpoint.exposedports"][0]["Proto"],
        6
    );

    let resp: JoinResponse = round_trip("NetworkDriver.Join.response", GoOnly::EmptyErr);
    let name = resp.interface_name.expect("InterfaceName");
    assert_eq!(name.src_name, "veth5f1c2a9");
    assert_eq!(name.dst_name, "eth0");
    assert_eq!(name.dst_prefix, "eth");
    // Join gateways are bare addresses, unlike CreateNetwork's.
    assert_eq!(resp.gateway, Some(ip("172.20.0.1")));
    assert_eq!(resp.gateway_ipv6, Some(ip("fd00:1:2::1")));
    assert!(resp.disable_gateway_service);
    let [via, direct] = resp.static_routes.as_slice() else {
        panic!("two routes expected: {:?}", resp.static_routes);
    };
    assert_eq!(via.destination, net("10.10.0.0/16"));
    assert_eq!(via.route_type, RouteType::NextHop);
    assert_eq!(via.next_hop, Some(ip("172.20.0.254")));
    assert_eq!(direct.destination, net("192.168.50.0/24"));
    assert_eq!(direct.route_type, RouteType::Connected);
    assert_eq!(direct.next_hop, None);
}

#[test]
fn network_discover_new_request() {
    let req: DiscoveryNotification =
        round_trip("NetworkDriver.DiscoverNew.request", GoOnly::Nothing);
    assert_eq!(req.discovery_type, DiscoveryType::Node);
    let node = req.node().expect("node data");
    assert_eq!(node.address, "192.168.1.10");
    assert_eq!(node.bind_address, "0.0.0.0");
    assert!(node.is_self);
    // The typed node data writes the engine's field names (`Self`, not `self`).
    assert_eq!(
        serde_json::to_value(&node).unwrap(),
        fixture("NetworkDriver.DiscoverNew.request")["DiscoveryData"]
    );
}

#[test]
fn network_discover_delete_request() {
    let req: DiscoveryNotification =
        round_trip("NetworkDriver.DiscoverDelete.request", GoOnly::Nothing);
    assert_eq!(req.discovery_type, DiscoveryType::Node);
    let node = req.node().expect("node data");
    assert_eq!(node.address, "192.168.1.11");
    assert!(!node.is_self);
}

#[test]
fn network_program_external_connectivity_request() {
    let req: ProgramExternalConnectivityRequest = round_trip(
        "NetworkDriver.ProgramExternalConnectivity.request",
        GoOnly::Nothing,
    );
    assert_eq!(req.endpoint_id, ENDPOINT_ID);
    assert_eq!(
        req.options["com.docker.network.driver.private.no_proxy_6to4"],
        json!(true)
    );
    assert_eq!(req.options["com.docker.network.portmap"][0]["Port"], 80);
}

// ---- VolumeDriver ----------------------------------------------------------------

#[test]
fn volume_capabilities_response() {
    let r: CapabilitiesResponse =
        round_trip("VolumeDriver.Capabilities.response", GoOnly::EmptyErr);
    assert_eq!(r.capabilities.scope, Scope::Global);
}

#[test]
fn volume_create_request() {
    let req: CreateVolumeRequest = round_trip("VolumeDriver.Create.request", GoOnly::Nothing);
    assert_eq!(req.name, "myvol");
    assert_eq!(req.opts["size"], "10G");
    assert_eq!(req.opts["type"], "ssd");
}

#[test]
fn volume_name_requests() {
    for name in [
        "VolumeDriver.Get.request",
        "VolumeDriver.Path.request",
        "VolumeDriver.Remove.request",
    ] {
        let req: VolumeRequest = round_trip(name, GoOnly::Nothing);
        assert_eq!(req.name, "myvol", "{name}");
    }
}

#[test]
fn volume_mount_and_unmount_requests() {
    for name in ["VolumeDriver.Mount.request", "VolumeDriver.Unmount.request"] {
        let req: MountRequest = round_trip(name, GoOnly::Nothing);
        assert_eq!(req.name, "myvol", "{name}");
        assert_eq!(req.id, MOUNT_ID, "{name}");
    }
}

#[test]
fn volume_mountpoint_responses() {
    for name in ["VolumeDriver.Mount.response", "VolumeDriver.Path.response"] {
        let r: MountpointResponse = round_trip(name, GoOnly::EmptyErr);
        assert_eq!(r.mountpoint, "/mnt/volumes/myvol", "{name}");
    }
}

#[test]
fn volume_get_response() {
    let r: GetVolumeResponse = round_trip("VolumeDriver.Get.response", GoOnly::EmptyErr);
    let v = r.volume;
    assert_eq!(v.name, "myvol");
    assert_eq!(v.mountpoint, "/mnt/volumes/myvol");
    assert_eq!(
        v.created_at,
        Some(Timestamp(time::macros::datetime!(
            2024-05-14 09:21:33.123456789 UTC
        )))
    );
    assert_eq!(v.status["size"], "10G");
    assert_eq!(v.status["replicas"], 3);
}

#[test]
fn volume_list_response() {
    let r: ListVolumesResponse = round_trip("VolumeDriver.List.response", GoOnly::EmptyErr);
    let [v] = r.volumes.as_slice() else {
        panic!("one volume expected: {:?}", r.volumes);
    };
    assert_eq!(v.name, "myvol");
    assert_eq!(v.mountpoint, "/mnt/volumes/myvol");
    assert_eq!(
        v.created_at,
        Some(Timestamp(time::macros::datetime!(2024-05-14 09:21:33 UTC)))
    );
    assert_eq!(v.status["size"], "10G");
}

// ---- the engine's variants of the same calls --------------------------------------

#[test]
fn null_or_missing_options_are_empty() {
    let null: fn(&mut Value) = |v| v["Options"] = Value::Null;
    let missing: fn(&mut Value) = |v| remove("Options")(v);
    for edit in [null, missing] {
        let r: CreateNetworkRequest = parse_edited("NetworkDriver.CreateNetwork.request", edit);
        assert!(r.options.is_empty());
        assert!(r.generic_options().is_empty());
        let r: AllocateNetworkRequest = parse_edited("NetworkDriver.AllocateNetwork.request", edit);
        assert!(r.options.is_empty());
        let r: JoinRequest = parse_edited("NetworkDriver.Join.request", edit);
        assert!(r.options.is_empty());
        let r: CreateEndpointRequest = parse_edited("NetworkDriver.CreateEndpoint.request", edit);
        assert!(r.options.is_empty());
        let r: ProgramExternalConnectivityRequest =
            parse_edited("NetworkDriver.ProgramExternalConnectivity.request", edit);
        assert!(r.options.is_empty());
        let r: GwAllocCheckRequest = parse_edited("NetworkDriver.GwAllocCheck.request", edit);
        assert!(r.options.is_empty());
        let r: RequestPoolRequest = parse_edited("IpamDriver.RequestPool.request", edit);
        assert!(r.options.is_empty());
        // Aux-address reservations send `"Options": null`: not a gateway request.
        let r: RequestAddressRequest = parse_edited("IpamDriver.RequestAddress.request", edit);
        assert!(r.options.is_empty());
        assert!(!r.is_gateway());
    }
}

#[test]
fn null_or_missing_volume_opts_are_empty() {
    let r: CreateVolumeRequest =
        parse_edited("VolumeDriver.Create.request", set("Opts", Value::Null));
    assert_eq!(r.name, "myvol");
    assert!(r.opts.is_empty());
    let r: CreateVolumeRequest = parse_edited("VolumeDriver.Create.request", remove("Opts"));
    assert!(r.opts.is_empty());
}

#[test]
fn null_lists_are_empty() {
    // AllocateNetwork always sends `"IPv6Data": null`; CreateNetwork `[]` without IPv6.
    let r: AllocateNetworkRequest = parse_edited(
        "NetworkDriver.AllocateNetwork.request",
        set("IPv6Data", Value::Null),
    );
    assert!(r.ipv6_data.is_empty());
    assert_eq!(r.ipv4_data.len(), 1);
    let r: CreateNetworkRequest = parse_edited(
        "NetworkDriver.CreateNetwork.request",
        set("IPv6Data", json!([])),
    );
    assert!(r.ipv6_data.is_empty());
    let r: JoinResponse = parse_edited(
        "NetworkDriver.Join.response",
        set("StaticRoutes", Value::Null),
    );
    assert!(r.static_routes.is_empty());
    let r: ListVolumesResponse =
        parse_edited("VolumeDriver.List.response", set("Volumes", Value::Null));
    assert!(r.volumes.is_empty());
    let r: ActivateResponse =
        parse_edited("Plugin.Activate.response", set("Implements", Value::Null));
    assert!(r.implements.is_empty());
}

#[test]
fn ipam_data_without_gateway_or_aux_addresses() {
    // Go's IPAMData marshals to a map that leaves out nil Gateway and AuxAddresses.
    // Swarm's AllocateNetwork also sends an empty AddressSpace.
    let r: AllocateNetworkRequest = parse_edited("NetworkDriver.AllocateNetwork.request", |v| {
        let data = v["IPv4Data"][0].as_object_mut().unwrap();
        data.remove("Gateway");
        data.remove("AuxAddresses");
        data["AddressSpace"] = json!("");
    });
    let data = &r.ipv4_data[0];
    assert_eq!(data.address_space, "");
    assert_eq!(data.pool, net("10.0.9.0/24"));
    assert_eq!(data.gateway, None);
    assert!(data.aux_addresses.is_empty());
    // ...and it is written back the same way.
    assert_eq!(
        serde_json::to_value(data).unwrap(),
        json!({"AddressSpace": "", "Pool": "10.0.9.0/24"})
    );
}

#[test]
fn empty_addresses_are_none() {
    let empty = json!({"Address": "", "AddressIPv6": "", "MacAddress": ""});
    let r: CreateEndpointRequest = parse_edited(
        "NetworkDriver.CreateEndpoint.request",
        set("Interface", empty.clone()),
    );
    assert_eq!(r.interface, Some(EndpointInterface::default()));
    // Written back as the engine's zero values, which it reads as "not set".
    assert_eq!(serde_json::to_value(r.interface).unwrap(), empty);

    for interface in [Some(Value::Null), None] {
        let r: CreateEndpointRequest =
            parse_edited(
                "NetworkDriver.CreateEndpoint.request",
                |v| match interface {
                    Some(null) => v["Interface"] = null,
                    None => remove("Interface")(v),
                },
            );
        assert_eq!(r.interface, None);
    }
    let r: CreateEndpointResponse = parse_edited(
        "NetworkDriver.CreateEndpoint.response",
        set("Interface", Value::Null),
    );
    assert_eq!(r.interface, None);

    let r: RequestAddressRequest = parse_edited(
        "IpamDriver.RequestAddress.request",
        set("Address", json!("")),
    );
    assert_eq!(r.address, None);
    let r: RequestPoolRequest = parse_edited("IpamDriver.RequestPool.request", |v| {
        v["Pool"] = json!("");
        v["SubPool"] = json!("");
    });
    assert_eq!((r.pool, r.sub_pool), (None, None));

    let r: JoinResponse = parse_edited("NetworkDriver.Join.response", |v| {
        v["Gateway"] = json!("");
        v["GatewayIPv6"] = json!("");
    });
    assert_eq!((r.gateway, r.gateway_ipv6), (None, None));
    assert_eq!(r.static_routes[1].next_hop, None);
}

#[test]
fn bad_addresses_are_rejected_with_the_value() {
    let err =
        try_parse_edited::<CreateNetworkRequest>("NetworkDriver.CreateNetwork.request", |v| {
            v["IPv4Data"][0]["Gateway"] = json!("172.20.0.300/16");
        })
        .unwrap_err();
    assert!(err.to_string().contains("172.20.0.300/16"), "{err}");
    let err =
        try_parse_edited::<CreateNetworkRequest>("NetworkDriver.CreateNetwork.request", |v| {
            v["IPv4Data"][0]["AuxAddresses"]["router"] = json!("nope");
        })
        .unwrap_err();
    assert!(err.to_string().contains("aux address router"), "{err}");
    let err =
        try_parse_edited::<CreateEndpointRequest>("NetworkDriver.CreateEndpoint.request", |v| {
            v["Interface"]["MacAddress"] = json!("02:42:ac:14:00")
        })
        .unwrap_err();
    assert!(err.to_string().contains("invalid MAC address"), "{err}");
}

#[test]
fn created_at_must_be_rfc3339() {
    for bad in [
        "2024-05-14 09:21:33",
        "2024-05-14T09:21:33",
        "14 May 2024",
        "",
    ] {
        let err = try_parse_edited::<GetVolumeResponse>("VolumeDriver.Get.response", |v| {
            v["Volume"]["CreatedAt"] = json!(bad)
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("is not an RFC 3339 time"),
            "{bad:?}: {err}"
        );
    }
    // Go's RFC 3339 with an offset is fine and kept as sent.
    let r: GetVolumeResponse = parse_edited("VolumeDriver.Get.response", |v| {
        v["Volume"]["CreatedAt"] = json!("2024-05-14T11:21:33+02:00")
    });
    let created = r.volume.created_at.unwrap();
    assert_eq!(created.to_string(), "2024-05-14T11:21:33+02:00");
    assert_eq!(created.0, time::macros::datetime!(2024-05-14 09:21:33 UTC));
    // Without a time the field is left out rather than sent empty (which Go rejects).
    let r: GetVolumeResponse = parse_edited("VolumeDriver.Get.response", |v| {
        v["Volume"].as_object_mut().unwrap().remove("CreatedAt");
    });
    assert_eq!(r.volume.created_at, None);
    let encoded = serde_json::to_value(&r).unwrap();
    assert!(encoded["Volume"].get("CreatedAt").is_none(), "{encoded}");
}

#[test]
fn discovery_types_other_than_node() {
    // The engine only forwards type 1, but other values must not break decoding.
    let r: DiscoveryNotification = parse_edited(
        "NetworkDriver.DiscoverNew.request",
        set("DiscoveryType", json!(2)),
    );
    assert_eq!(r.discovery_type, DiscoveryType::EncryptionKeysConfig);
    assert_eq!(r.node(), None);
    let r: DiscoveryNotification = parse_edited(
        "NetworkDriver.DiscoverNew.request",
        set("DiscoveryType", json!(42)),
    );
    assert_eq!(r.discovery_type, DiscoveryType::Other(42));
    assert_eq!(serde_json::to_value(&r).unwrap()["DiscoveryType"], 42);
}

#[test]
fn unknown_route_type_is_rejected() {
    let err = try_parse_edited::<JoinResponse>("NetworkDriver.Join.response", |v| {
        v["StaticRoutes"][0]["RouteType"] = json!(2)
    })
    .unwrap_err();
    assert!(err.to_string().contains("unknown RouteType 2"), "{err}");
}

#[test]
fn unknown_fields_are_ignored() {
    // Newer engines add fields (GwAllocChecker, enable_ipv4); older plugins must not break.
    let r: JoinRequest = parse_edited(
        "NetworkDriver.Join.request",
        set("SomethingNew", json!({"x": 1})),
    );
    assert_eq!(r.endpoint_id, ENDPOINT_ID);
    let r: MountRequest = parse_edited("VolumeDriver.Mount.request", set("Extra", json!(true)));
    assert_eq!(r.id, MOUNT_ID);
}

// ---- coverage --------------------------------------------------------------------

/// Every `.json` file in the fixtures directory is named by a test in this file.
#[test]
fn every_fixture_file_has_a_test() {
    let source = include_str!("fixtures.rs");
    let mut missing = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = file.strip_suffix(".json") else {
            assert_eq!(file, "SOURCES.md", "unexpected file in tests/fixtures");
            continue;
        };
        count += 1;
        if !source.contains(&format!("\"{stem}\"")) {
            missing.push(file);
        }
    }
    assert!(count > 0, "no fixtures found");
    assert!(missing.is_empty(), "fixtures without a test: {missing:?}");
}
