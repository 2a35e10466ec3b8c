//! The names one network answers: each joined endpoint's sandbox name, host
//! name and aliases, to its addresses on that network; and back, for PTR. Also,
//! for each address, the other networks its sandbox is on: a sandbox on two
//! networks resolves the names of both, whichever responder it asks.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// A network's names, as the responder looks them up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    /// Lowercase, without a trailing dot; several endpoints may share one (an
    /// alias), and then every address answers.
    by_name: HashMap<String, Vec<IpAddr>>,
    /// The first name of the endpoint holding each address.
    by_address: HashMap<IpAddr, String>,
    /// The other networks (ids) of the sandbox holding each address.
    others: HashMap<IpAddr, Vec<String>>,
    subnets: Vec<IpNet>,
}

/// `name` as looked up: lowercase, no trailing dot.
pub fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Names {
    /// No names yet, on a network with these subnets.
    pub fn new(subnets: Vec<IpNet>) -> Names {
        Names {
            subnets,
            ..Names::default()
        }
    }

    /// An endpoint's names (the first is its PTR answer) and its addresses.
    /// Names that are empty are skipped; a name given twice counts once.
    pub fn add<'a>(&mut self, names: impl IntoIterator<Item = &'a str>, addresses: &[IpAddr]) {
        let mut first = true;
        let mut seen: Vec<String> = Vec::new();
        for name in names {
            let name = normal(name);
            if name.is_empty() || seen.contains(&name) {
                continue;
            }
            if first {
                for a in addresses {
                    self.by_address.entry(*a).or_insert_with(|| name.clone());
                }
                first = false;
            }
            let held = self.by_name.entry(name.clone()).or_default();
            for a in addresses {
                if !held.contains(a) {
                    held.push(*a);
                }
            }
            seen.push(name);
        }
    }

    /// The sandbox holding `addresses` is on network `other` too.
    pub fn add_other(&mut self, addresses: &[IpAddr], other: &str) {
        for a in addresses {
            let list = self.others.entry(*a).or_default();
            if !list.iter().any(|o| o == other) {
                list.push(other.to_string());
            }
        }
    }

    /// The other networks of the sandbox that holds `address` here.
    pub fn others(&self, address: &IpAddr) -> &[String] {
        self.others.get(address).map_or(&[], Vec::as_slice)
    }

    /// The addresses `name` answers with (already [`normal`]).
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.by_name.get(name).map(Vec::as_slice)
    }

    /// The name an address answers a PTR query with.
    pub fn reverse(&self, address: &IpAddr) -> Option<&str> {
        self.by_address.get(address).map(String::as_str)
    }

    /// Whether `address` is in the network's subnets.
    pub fn in_network(&self, address: &IpAddr) -> bool {
        self.subnets.iter().any(|s| s.contains(address))
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_are_case_blind_and_shared_aliases_answer_every_holder() {
        let mut n = Names::new(vec!["10.1.0.0/24".parse().unwrap()]);
        n.add(["Web", "web", "front"], &[ip("10.1.0.2"), ip("fd00::2")]);
        n.add(["db", "front"], &[ip("10.1.0.3")]);
        assert_eq!(
            n.lookup(&normal("WEB.")).unwrap(),
            &[ip("10.1.0.2"), ip("fd00::2")]
        );
        assert_eq!(
            n.lookup("front").unwrap(),
            &[ip("10.1.0.2"), ip("fd00::2"), ip("10.1.0.3")]
        );
        assert_eq!(n.reverse(&ip("10.1.0.3")), Some("db"));
        assert_eq!(n.reverse(&ip("10.1.0.2")), Some("web"));
        assert!(n.lookup("nothing").is_none());
        assert!(n.in_network(&ip("10.1.0.200")) && !n.in_network(&ip("10.2.0.1")));
        assert_eq!(n.len(), 3);
        n.add_other(&[ip("10.1.0.3")], "net2");
        n.add_other(&[ip("10.1.0.3")], "net2");
        assert_eq!(n.others(&ip("10.1.0.3")), ["net2"]);
        assert!(n.others(&ip("10.1.0.2")).is_empty());
    }
}
