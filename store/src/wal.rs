//! The store's write-ahead log: what makes a commit durable with one small write.
//!
//! A redb commit that is durable on its own writes every B-tree page it touched
//! (about nine for an attach) and flushes them; `fdatasync` time grows with the
//! pages. So each batch is also written here, as one record of whole 4 KiB pages
//! into a file whose blocks already exist (no size or extent change to flush),
//! and redb commits without a flush. Every so often (when the log is full) one
//! durable redb commit takes everything in and the log starts again at offset 0.
//!
//! A record: a 24-byte header (magic, payload length, sequence number, CRC-32 of
//! sequence and payload) and the payload, padded to a page. Reading back takes
//! records from offset 0 while each is whole and numbered one after the last:
//! a torn last write fails its CRC, and records of the previous round, left
//! behind after a restart of the log, have lower numbers.

use super::Kind;
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The log's size: 256 single-page records between durable redb commits.
pub const LOG_BYTES: u64 = 1 << 20;
const PAGE: u64 = 4096;
const HEADER: usize = 24;
const MAGIC: u32 = u32::from_le_bytes(*b"ndwl");

/// One change of a batch, as redb is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp<K: Kind> {
    /// A record written.
    Put(K, String, Vec<u8>),
    /// A record deleted.
    Delete(K, String),
}

/// A record read back: its number and its batch's changes.
pub type Record<K> = (u64, Vec<LogOp<K>>);

/// The open log and where the next record goes.
#[derive(Debug)]
pub struct Wal<K: Kind> {
    file: File,
    path: PathBuf,
    offset: u64,
    /// The length of the last record appended (0: none since the last restart).
    last_len: u64,
    kinds: PhantomData<K>,
}

impl<K: Kind> Wal<K> {
    /// Open the log at `path`, creating it (full size, zero-filled, synced with its
    /// directory) if it is missing or short; with every record in it, oldest first.
    pub fn open(path: &Path) -> io::Result<(Wal<K>, Vec<Record<K>>)> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        if file.metadata()?.len() < LOG_BYTES {
            // Written, not just sized: a sparse or unwritten block would make each
            // record's flush also flush the allocation.
            file.write_all_at(&vec![0; LOG_BYTES as usize], 0)?;
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let mut records = Vec::new();
        let mut offset = 0;
        while let Some((seq, ops, len)) = read_record(&file, offset)? {
            if records
                .last()
                .is_some_and(|(last, _): &Record<K>| seq != last + 1)
            {
                break;
            }
            records.push((seq, ops));
            offset += len;
        }
        let wal = Wal {
            file,
            path: path.to_path_buf(),
            offset,
            last_len: 0,
            kinds: PhantomData,
        };
        Ok((wal, records))
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write record `seq` and flush it. `Ok(false)`: it does not fit in what is left
    /// of the log (start it again, or commit the batch durably without it).
    pub fn append(&mut self, seq: u64, ops: &[LogOp<K>]) -> io::Result<bool> {
        let bytes = encode_record(seq, ops);
        if self.offset + bytes.len() as u64 > LOG_BYTES {
            return Ok(false);
        }
        self.file.write_all_at(&bytes, self.offset)?;
        self.file.sync_data()?;
        self.last_len = bytes.len() as u64;
        self.offset += self.last_len;
        Ok(true)
    }

    /// Take back the last record appended (its batch could not be applied): its
    /// first page zeroed and flushed, so it is never read back.
    pub fn retract(&mut self) -> io::Result<()> {
        if self.last_len == 0 {
            return Ok(());
        }
        let at = self.offset - self.last_len;
        self.file.write_all_at(&[0; PAGE as usize], at)?;
        self.file.sync_data()?;
        self.offset = at;
        self.last_len = 0;
        Ok(())
    }

    /// Start again at offset 0: everything logged so far is durable in redb.
    pub fn restart(&mut self) {
        self.offset = 0;
        self.last_len = 0;
    }
}

fn encode_record<K: Kind>(seq: u64, ops: &[LogOp<K>]) -> Vec<u8> {
    let mut payload = Vec::new();
    for op in ops {
        match op {
            LogOp::Put(kind, id, value) => {
                payload.push(0);
                payload.push(kind.code());
                put_bytes(&mut payload, id.as_bytes());
                put_bytes(&mut payload, value);
            }
            LogOp::Delete(kind, id) => {
                payload.push(1);
                payload.push(kind.code());
                put_bytes(&mut payload, id.as_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(HEADER + payload.len() + PAGE as usize);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&checksum(seq, &payload).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&payload);
    let padded = out.len().div_ceil(PAGE as usize) * PAGE as usize;
    out.resize(padded, 0);
    out
}

/// The record at `offset`, if a whole one is there: sequence number, changes and
/// its length on disk.
/// A record read at an offset: its number, its changes, and its length.
type ReadRecord<K> = (u64, Vec<LogOp<K>>, u64);

fn read_record<K: Kind>(file: &File, offset: u64) -> io::Result<Option<ReadRecord<K>>> {
    if offset + HEADER as u64 > LOG_BYTES {
        return Ok(None);
    }
    let mut header = [0; HEADER];
    file.read_exact_at(&mut header, offset)?;
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (magic, len) = (word(0), word(4) as u64);
    let seq = u64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ]);
    if magic != MAGIC || offset + HEADER as u64 + len > LOG_BYTES {
        return Ok(None);
    }
    let mut payload = vec![0; len as usize];
    file.read_exact_at(&mut payload, offset + HEADER as u64)?;
    if checksum(seq, &payload) != word(16) {
        return Ok(None);
    }
    let Some(ops) = decode_payload(&payload) else {
        return Ok(None);
    };
    let on_disk = (HEADER as u64 + len).div_ceil(PAGE) * PAGE;
    Ok(Some((seq, ops, on_disk)))
}

fn decode_payload<K: Kind>(mut p: &[u8]) -> Option<Vec<LogOp<K>>> {
    let mut ops = Vec::new();
    while let Some((&tag, rest)) = p.split_first() {
        p = rest;
        let op = match tag {
            0 | 1 => {
                let (&code, rest) = p.split_first()?;
                p = rest;
                let kind = K::from_code(code)?;
                let id = String::from_utf8(take_bytes(&mut p)?.to_vec()).ok()?;
                if tag == 0 {
                    LogOp::Put(kind, id, take_bytes(&mut p)?.to_vec())
                } else {
                    LogOp::Delete(kind, id)
                }
            }
            _ => return None,
        };
        ops.push(op);
    }
    Some(ops)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take_bytes<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = p.split_at_checked(4)?;
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let (bytes, rest) = rest.split_at_checked(len)?;
    *p = rest;
    Some(bytes)
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds for the tests.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Network,
        Endpoint,
        Sandbox,
        EngineAddress,
    }

    impl super::Kind for Kind {
        fn table_name(self) -> &'static str {
            "t"
        }
        fn code(self) -> u8 {
            self as u8
        }
        fn from_code(code: u8) -> Option<Self> {
            [
                Kind::Network,
                Kind::Endpoint,
                Kind::Sandbox,
                Kind::EngineAddress,
            ]
            .into_iter()
            .find(|k| *k as u8 == code)
        }
    }

    fn ops(n: u8) -> Vec<LogOp<Kind>> {
        vec![
            LogOp::Put(Kind::Endpoint, format!("ep{n}"), vec![n; 300]),
            LogOp::Delete(Kind::Sandbox, "gone".into()),
            LogOp::Put(Kind::EngineAddress, format!("a{n}"), b"{\"a\":1}".to_vec()),
        ]
    }

    #[test]
    fn records_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, old) = Wal::<Kind>::open(&path).unwrap();
        assert!(old.is_empty());
        for n in 1..=3 {
            assert!(wal.append(u64::from(n), &ops(n)).unwrap());
        }
        drop(wal);
        let (_, back) = Wal::<Kind>::open(&path).unwrap();
        let want: Vec<_> = (1..=3).map(|n| (u64::from(n), ops(n))).collect();
        assert_eq!(back, want);
    }

    #[test]
    fn a_torn_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::<Kind>::open(&path).unwrap();
        for n in 1..=3 {
            wal.append(u64::from(n), &ops(n)).unwrap();
        }
        // One byte of the second record's payload changed: it and what follows go.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", PAGE + HEADER as u64 + 10).unwrap();
        let (_, back) = Wal::<Kind>::open(&path).unwrap();
        assert_eq!(back, vec![(1, ops(1))]);
    }

    #[test]
    fn after_a_restart_the_previous_rounds_records_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::<Kind>::open(&path).unwrap();
        for n in 1..=3 {
            wal.append(u64::from(n), &ops(n)).unwrap();
        }
        wal.restart();
        wal.append(4, &ops(4)).unwrap();
        let (_, back) = Wal::<Kind>::open(&path).unwrap();
        assert_eq!(back, vec![(4, ops(4))]);
    }

    #[test]
    fn a_retracted_record_is_not_read_and_its_place_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::<Kind>::open(&path).unwrap();
        wal.append(1, &ops(1)).unwrap();
        wal.append(2, &ops(2)).unwrap();
        wal.retract().unwrap();
        assert_eq!(Wal::<Kind>::open(&path).unwrap().1, vec![(1, ops(1))]);
        wal.append(2, &ops(5)).unwrap();
        assert_eq!(
            Wal::<Kind>::open(&path).unwrap().1,
            vec![(1, ops(1)), (2, ops(5))]
        );
    }

    #[test]
    fn a_record_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&dir.path().join("log")).unwrap();
        let big = vec![LogOp::Put(
            Kind::Network,
            "n".into(),
            vec![7; LOG_BYTES as usize],
        )];
        assert!(!wal.append(1, &big).unwrap());
        let mut n = 0;
        while wal.append(n + 1, &ops(1)).unwrap() {
            n += 1;
        }
        assert_eq!(n, LOG_BYTES / PAGE, "one page per small record");
    }
}
