//! One query, answered from a network's names or handed on: the decision and
//! the packets, with no sockets (so it is tested on bytes alone).

use super::names::{normal, Names};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::IpAddr;

/// How long a client may keep an answer: short, since containers come and go.
pub const TTL: u32 = 60;

/// The payload a UDP answer may fill when the query carries no EDNS (RFC 1035).
const PLAIN_UDP: usize = 512;
/// The most a UDP answer fills whatever the client offers (DNS flag day 2020:
/// no fragmented answers); longer ones are truncated, and TCP carries them.
const MAX_UDP: u16 = 1232;

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Local(Vec<u8>),
    /// Not a name of this network: ask the host's resolvers.
    Forward,
    /// Not a query (or not parseable): say nothing.
    Drop,
}

/// The answer to `query` from `tables` (the asker's networks, this one first).
/// Names none holds go to the host's resolvers when `forward`, else get
/// REFUSED (an internal network: the client's resolver then asks its next
/// server, another network's responder, instead of taking NXDOMAIN as final). Over UDP an answer longer than the client takes comes back
/// truncated, so it asks again by TCP.
pub fn answer(query: &[u8], tables: &[&Names], forward: bool, udp: bool) -> Reply {
    let Ok(request) = Message::from_vec(query) else {
        return Reply::Drop;
    };
    if request.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    if request.metadata.op_code != OpCode::Query {
        return Reply::Local(encode(
            &response(&request, ResponseCode::NotImp, Vec::new()),
            udp,
        ));
    }
    let [q] = request.queries.as_slice() else {
        return Reply::Local(encode(
            &response(&request, ResponseCode::FormErr, Vec::new()),
            udp,
        ));
    };
    let local = |code, records| Reply::Local(encode(&response(&request, code, records), udp));
    let elsewhere = || {
        if forward {
            Reply::Forward
        } else {
            local(ResponseCode::Refused, Vec::new())
        }
    };
    if q.query_class() != DNSClass::IN {
        return elsewhere();
    }
    if q.query_type() == RecordType::PTR {
        let Some(address) = arpa_address(q.name()) else {
            return elsewhere();
        };
        return match tables.iter().find_map(|t| t.reverse(&address)) {
            Some(name) => match Name::from_ascii(format!("{name}.")) {
                Ok(target) => local(
                    ResponseCode::NoError,
                    vec![Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    )],
                ),
                Err(_) => local(ResponseCode::ServFail, Vec::new()),
            },
            // The network's own addresses are answered here, held or not.
            None if tables.iter().any(|t| t.in_network(&address)) => {
                local(ResponseCode::NXDomain, Vec::new())
            }
            None => elsewhere(),
        };
    }
    let asked = normal(&q.name().to_ascii());
    let Some(addresses) = tables.iter().find_map(|t| t.lookup(&asked)) else {
        return elsewhere();
    };
    let records = addresses
        .iter()
        .filter_map(|a| match (a, q.query_type()) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(*v4))),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => Some(RData::AAAA(AAAA(*v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(q.name().clone(), TTL, rdata))
        .collect();
    // A name held with no record of the type asked: NOERROR with no answers
    // (NODATA), so the client does not take the name for missing.
    local(ResponseCode::NoError, records)
}

/// The address a full `in-addr.arpa`/`ip6.arpa` name stands for.
fn arpa_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// A SERVFAIL for `query` (the host's resolvers did not answer), if it parses.
pub fn failure(query: &[u8], udp: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    Some(encode(
        &response(&request, ResponseCode::ServFail, Vec::new()),
        udp,
    ))
}

fn response(request: &Message, code: ResponseCode, answers: Vec<Record>) -> Message {
    let mut m = Message::response(request.metadata.id, request.metadata.op_code);
    m.metadata.recursion_desired = request.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = code == ResponseCode::NoError && !answers.is_empty();
    m.metadata.response_code = code;
    m.queries = request.queries.clone();
    m.answers = answers;
    if let Some(asked) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(asked.max_payload().clamp(PLAIN_UDP as u16, MAX_UDP));
        m.edns = Some(edns);
    }
    m
}

/// The message's bytes; over UDP, truncated (no records, TC set) when longer
/// than the client said it takes.
fn encode(m: &Message, udp: bool) -> Vec<u8> {
    let limit = m
        .edns
        .as_ref()
        .map_or(PLAIN_UDP, |e| usize::from(e.max_payload()));
    match m.to_vec() {
        Ok(bytes) if !udp || bytes.len() <= limit => bytes,
        Ok(_) => m.truncate().to_vec().unwrap_or_default(),
        // Only a name past DNS's limits fails to encode; none is held.
        Err(_) => {
            let mut short =
                Message::error_msg(m.metadata.id, m.metadata.op_code, ResponseCode::ServFail);
            short.queries = m.queries.clone();
            short.to_vec().unwrap_or_default()
        }
    }
}

/// A query for `name` and `kind` (for tests and the benchmark).
pub fn query(id: u16, name: &str, kind: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    if let Ok(name) = Name::from_ascii(name) {
        m.queries.push(Query::query(name, kind));
    }
    m.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let mut n = Names::new(vec![
            "10.1.0.0/24".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ]);
        n.add(
            ["web", "front"],
            &["10.1.0.2".parse().unwrap(), "fd00:1::2".parse().unwrap()],
        );
        n
    }

    fn parsed(reply: Reply) -> Message {
        match reply {
            Reply::Local(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("not answered here: {other:?}"),
        }
    }

    fn rdata(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn held_names_get_their_family_and_the_rest_goes_on() {
        let n = names();
        let m = parsed(answer(&query(7, "WEB.", RecordType::A), &[&n], true, true));
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(rdata(&m), ["10.1.0.2"]);
        let m = parsed(answer(
            &query(8, "front", RecordType::AAAA),
            &[&n],
            true,
            true,
        ));
        assert_eq!(rdata(&m), ["fd00:1::2"]);
        let m = parsed(answer(&query(9, "web", RecordType::MX), &[&n], true, true));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(
            answer(&query(10, "example.com.", RecordType::A), &[&n], true, true),
            Reply::Forward
        );
        let m = parsed(answer(
            &query(11, "example.com.", RecordType::A),
            &[&n],
            false,
            true,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        // The asker's other network answers what this one does not hold.
        let mut other = Names::new(vec!["10.2.0.0/24".parse().unwrap()]);
        other.add(["db"], &["10.2.0.5".parse().unwrap()]);
        let m = parsed(answer(
            &query(12, "db", RecordType::A),
            &[&n, &other],
            true,
            true,
        ));
        assert_eq!(rdata(&m), ["10.2.0.5"]);
    }

    #[test]
    fn reverse_lookups_answer_the_networks_addresses_only() {
        let n = names();
        let m = parsed(answer(
            &query(1, "2.0.1.10.in-addr.arpa.", RecordType::PTR),
            &[&n],
            true,
            true,
        ));
        assert_eq!(rdata(&m), ["web."]);
        let m = parsed(answer(
            &query(2, "9.0.1.10.in-addr.arpa.", RecordType::PTR),
            &[&n],
            true,
            true,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            answer(
                &query(3, "8.8.8.8.in-addr.arpa.", RecordType::PTR),
                &[&n],
                true,
                true
            ),
            Reply::Forward
        );
    }

    #[test]
    fn garbage_is_dropped_and_answers_are_not_answered() {
        let n = names();
        assert_eq!(answer(b"\x00\x01garbage", &[&n], true, true), Reply::Drop);
        let mut m = Message::from_vec(&query(5, "web", RecordType::A)).unwrap();
        m.metadata.message_type = MessageType::Response;
        assert_eq!(answer(&m.to_vec().unwrap(), &[&n], true, true), Reply::Drop);
        assert!(failure(b"", true).is_none());
        let m = Message::from_vec(&failure(&query(6, "x", RecordType::A), true).unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn a_long_answer_over_udp_is_truncated() {
        let mut n = Names::new(vec!["10.0.0.0/16".parse().unwrap()]);
        for i in 0..100u8 {
            n.add(["many"], &[IpAddr::from([10, 0, 1, i])]);
        }
        let m = parsed(answer(&query(1, "many", RecordType::A), &[&n], true, true));
        assert!(m.metadata.truncation && m.answers.is_empty());
        let m = parsed(answer(&query(1, "many", RecordType::A), &[&n], true, false));
        assert_eq!(m.answers.len(), 100);
    }
}
