//! The slot-migration wire format over one QUIC stream (all integers big-endian).
//!
//! Frames, source → destination: `u32 length`, `u8 type`, body:
//! * BEGIN (1): source node id (20 bytes), migration id (u64), first slot (u16), last slot (u16);
//! * BATCH (2): record count (u32), then per record: slot (u16), key length (u32), key, record
//!   length (u32), record;
//! * DONE (3): first slot, last slot (the range was claimed for the destination);
//! * PUBLISH (4): channel length (u32), channel, message length (u32), message: a PUBLISH made
//!   on the sending node, for this node's subscribers (no reply; see `migrate::publish`).
//!
//! Replies, destination → source: `u8 status` (0 ok, 1 refused), `u32 count` (keys installed),
//! `u16 length`, message.
//!
//! Each record is `crate::value::codec`'s encoding with generation 0 (version, expiry, kind,
//! payload): the same bytes the warm tier stores, so a value of any type crosses nodes the way
//! it reaches disk, and nodes of builds that share the codec version migrate to each other.

use membership::Slot;
use membership::swim::NodeId;

use super::context::{MigrateError, io};
use super::gate::BATCH_KEYS;
use crate::store::Key;
use crate::value::Value;
use crate::value::codec::{self, Record};

/// Largest frame accepted from a peer.
const MAX_FRAME: usize = 1 << 30;

const FRAME_BEGIN: u8 = 1;
const FRAME_BATCH: u8 = 2;
const FRAME_DONE: u8 = 3;
const FRAME_PUBLISH: u8 = 4;
pub(super) const REPLY_OK: u8 = 0;
pub(super) const REPLY_REFUSED: u8 = 1;

/// One key in transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub slot: Slot,
    pub key: Key,
    pub value: Value,
    pub expire_at: u64,
}

pub fn encode_begin(from: &NodeId, id: u64, first: u16, last: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(37);
    b.extend_from_slice(&33u32.to_be_bytes());
    b.push(FRAME_BEGIN);
    b.extend_from_slice(&from.0);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b
}

pub fn encode_done(first: u16, last: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(9);
    b.extend_from_slice(&5u32.to_be_bytes());
    b.push(FRAME_DONE);
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b
}

pub fn encode_batch(items: &[Item]) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    b.push(FRAME_BATCH);
    b.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for it in items {
        b.extend_from_slice(&it.slot.get().to_be_bytes());
        b.extend_from_slice(&(it.key.len() as u32).to_be_bytes());
        b.extend_from_slice(&it.key);
        b.extend_from_slice(&(codec::encoded_len(&it.value) as u32).to_be_bytes());
        codec::encode_into(&mut b, 0, it.expire_at, &it.value);
    }
    let len = (b.len() - 4) as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    b
}

pub fn encode_publish(channel: &[u8], message: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(13 + channel.len() + message.len());
    let len = 9 + channel.len() + message.len();
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.push(FRAME_PUBLISH);
    b.extend_from_slice(&(channel.len() as u32).to_be_bytes());
    b.extend_from_slice(channel);
    b.extend_from_slice(&(message.len() as u32).to_be_bytes());
    b.extend_from_slice(message);
    b
}

/// A decoded frame body.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Begin {
        from: NodeId,
        id: u64,
        first: u16,
        last: u16,
    },
    Batch(Vec<Item>),
    Done {
        first: u16,
        last: u16,
    },
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MigrateError> {
        if self.0.len() < n {
            return Err(MigrateError::Frame("truncated"));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u16(&mut self) -> Result<u16, MigrateError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, MigrateError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn slot_of(n: u16) -> Result<Slot, MigrateError> {
    Slot::new(n).ok_or(MigrateError::Frame("slot out of range"))
}

/// Decodes a frame body (after its length prefix).
pub fn decode_frame(body: &[u8]) -> Result<Frame, MigrateError> {
    let mut c = Cursor(body);
    let kind = c.take(1)?[0];
    let frame = match kind {
        FRAME_BEGIN => {
            let mut id = [0u8; 20];
            id.copy_from_slice(c.take(20)?);
            let mid = c.take(8)?;
            let mid = u64::from_be_bytes([
                mid[0], mid[1], mid[2], mid[3], mid[4], mid[5], mid[6], mid[7],
            ]);
            let (first, last) = (c.u16()?, c.u16()?);
            slot_of(first)?;
            slot_of(last)?;
            if first > last {
                return Err(MigrateError::Frame("empty range"));
            }
            Frame::Begin {
                from: NodeId(id),
                id: mid,
                first,
                last,
            }
        }
        FRAME_BATCH => {
            let n = c.u32()? as usize;
            let mut items = Vec::with_capacity(n.min(BATCH_KEYS * 4));
            for _ in 0..n {
                let slot = slot_of(c.u16()?)?;
                let klen = c.u32()? as usize;
                let key = Key::from_slice(c.take(klen)?);
                if Slot::for_key(&key) != slot {
                    return Err(MigrateError::Frame("key is not in its slot"));
                }
                let rlen = c.u32()? as usize;
                let rec: Record =
                    codec::decode(c.take(rlen)?).map_err(|_| MigrateError::Frame("bad record"))?;
                items.push(Item {
                    slot,
                    key,
                    value: rec.value,
                    expire_at: rec.expire_at,
                });
            }
            Frame::Batch(items)
        }
        FRAME_DONE => Frame::Done {
            first: c.u16()?,
            last: c.u16()?,
        },
        FRAME_PUBLISH => {
            let n = c.u32()? as usize;
            let channel = c.take(n)?.to_vec();
            let n = c.u32()? as usize;
            Frame::Publish {
                channel,
                message: c.take(n)?.to_vec(),
            }
        }
        _ => return Err(MigrateError::Frame("unknown frame type")),
    };
    if !c.0.is_empty() {
        return Err(MigrateError::Frame("trailing bytes"));
    }
    Ok(frame)
}

pub(super) async fn read_frame(
    recv: &mut quinn::RecvStream,
) -> Result<Option<Frame>, MigrateError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(_) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(MigrateError::Frame("frame length"));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(io)?;
    decode_frame(&body).map(Some)
}

pub(super) async fn write_reply(
    send: &mut quinn::SendStream,
    status: u8,
    count: u32,
    msg: &str,
) -> Result<(), MigrateError> {
    let msg = &msg.as_bytes()[..msg.len().min(1024)];
    let mut b = Vec::with_capacity(7 + msg.len());
    b.push(status);
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    b.extend_from_slice(msg);
    send.write_all(&b).await.map_err(io)
}

pub(super) async fn read_reply(recv: &mut quinn::RecvStream) -> Result<u32, MigrateError> {
    let mut h = [0u8; 7];
    recv.read_exact(&mut h).await.map_err(io)?;
    let count = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes([h[5], h[6]]))];
    recv.read_exact(&mut msg).await.map_err(io)?;
    match h[0] {
        REPLY_OK => Ok(count),
        _ => Err(MigrateError::Refused(
            String::from_utf8_lossy(&msg).into_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::codec::tests::unhex;
    use bytes::Bytes;

    fn item(key: &str, value: Value, expire_at: u64) -> Item {
        Item {
            slot: Slot::for_key(key.as_bytes()),
            key: Key::from_slice(key.as_bytes()),
            value,
            expire_at,
        }
    }

    #[test]
    fn publish_frames_round_trip() {
        let f = encode_publish(b"news", b"");
        assert_eq!(
            decode_frame(&f[4..]).expect("publish"),
            Frame::Publish {
                channel: b"news".to_vec(),
                message: Vec::new()
            }
        );
        assert_eq!(
            u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize,
            f.len() - 4
        );
        assert!(decode_frame(&f[4..f.len() - 1]).is_err() || f.len() == 17);
    }

    /// Frames as the migration code wrote them before the value codec existed (captured from
    /// that code): this build decodes them and writes the same bytes, so nodes of either build
    /// migrate slots to each other.
    #[test]
    fn golden_frames_of_the_original_format() {
        let mut h = crate::value::HashValue::default();
        h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
        let items = vec![
            item("a", Value::Str(Bytes::from_static(b"1")), 0),
            item("{a}b", Value::Hash(h), 123),
        ];
        let batch = unhex(concat!(
            "0000004d02000000023c87000000016100000013010000000000000000000000000000000000313c87",
            "000000047b617d620000001c010000000000000000000000000000007b0100000001660000000176"
        ));
        assert_eq!(
            decode_frame(&batch[4..]).expect("batch"),
            Frame::Batch(items.clone())
        );
        assert_eq!(encode_batch(&items), batch);
        let begin =
            unhex("000000210107070707070707070707070707070707070707070000000000000063000a0014");
        let frame = Frame::Begin {
            from: NodeId([7; 20]),
            id: 99,
            first: 10,
            last: 20,
        };
        assert_eq!(decode_frame(&begin[4..]).expect("begin"), frame);
        assert_eq!(encode_begin(&NodeId([7; 20]), 99, 10, 20), begin);
        let done = unhex("000000050300010002");
        assert_eq!(
            decode_frame(&done[4..]).expect("done"),
            Frame::Done { first: 1, last: 2 }
        );
        assert_eq!(encode_done(1, 2), done);
    }

    #[test]
    fn frames_round_trip() {
        let mut h = crate::store::HashValue::default();
        h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
        let items = vec![
            item("a", Value::Str(Bytes::from_static(b"1")), 0),
            item("{a}b", Value::Hash(h), 123),
            item("", Value::Str(Bytes::new()), 7),
        ];
        let b = encode_batch(&items);
        assert_eq!(
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len() - 4
        );
        assert_eq!(decode_frame(&b[4..]).expect("batch"), Frame::Batch(items));
        let id = NodeId([7; 20]);
        let b = encode_begin(&id, 99, 10, 20);
        assert_eq!(
            decode_frame(&b[4..]).expect("begin"),
            Frame::Begin {
                from: id,
                id: 99,
                first: 10,
                last: 20
            }
        );
        let b = encode_done(1, 2);
        assert_eq!(
            decode_frame(&b[4..]).expect("done"),
            Frame::Done { first: 1, last: 2 }
        );
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let good = encode_batch(&[item("k", Value::Str(Bytes::from_static(b"v")), 0)]);
        for cut in 0..good.len() - 4 {
            assert!(decode_frame(&good[4..4 + cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_slot = good.clone();
        wrong_slot[9] ^= 1;
        assert!(decode_frame(&wrong_slot[4..]).is_err());
        assert!(decode_frame(&[9]).is_err());
        let mut begin = encode_begin(&NodeId([1; 20]), 1, 5, 4);
        assert!(decode_frame(&begin[4..]).is_err(), "empty range");
        begin = encode_begin(&NodeId([1; 20]), 1, 0, 16384);
        assert!(decode_frame(&begin[4..]).is_err(), "slot out of range");
        let mut trailing = encode_done(1, 2);
        trailing.push(0);
        assert!(decode_frame(&trailing[4..]).is_err());
    }
}
