//! Cutting a subnet into the blocks hosts claim.

use ipnet::IpNet;

/// The block size for `subnet`: IPv4 /26 blocks for a /22 or larger, else 16
/// blocks of the subnet (a /24 gives /28s) down to /30; IPv6 /112 blocks, or 16
/// of a smaller subnet.
pub fn default_block_prefix(subnet: &IpNet) -> u8 {
    let p = subnet.prefix_len();
    match subnet {
        IpNet::V4(_) if p <= 22 => 26,
        IpNet::V4(_) => (p + 4).min(30).max(p),
        IpNet::V6(_) if p <= 108 => 112,
        IpNet::V6(_) => (p + 4).min(126).max(p),
    }
}

/// The blocks of `subnet` with prefix `prefix`, in order.
pub fn blocks_of(subnet: &IpNet, prefix: u8) -> impl Iterator<Item = IpNet> {
    subnet
        .subnets(prefix.max(subnet.prefix_len()))
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_24_gives_sixteen_blocks_of_sixteen() {
        let s: IpNet = "10.0.0.0/24".parse().unwrap();
        let p = default_block_prefix(&s);
        assert_eq!(p, 28);
        let blocks: Vec<IpNet> = blocks_of(&s, p).collect();
        assert_eq!(blocks.len(), 16);
        assert_eq!(blocks[1].to_string(), "10.0.0.16/28");
        let big: IpNet = "10.0.0.0/16".parse().unwrap();
        assert_eq!(default_block_prefix(&big), 26);
        let tiny: IpNet = "10.0.0.0/30".parse().unwrap();
        assert_eq!(default_block_prefix(&tiny), 30);
    }
}
