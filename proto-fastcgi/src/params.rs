//! Name-value pairs (PARAMS, GET_VALUES, GET_VALUES_RESULT): lengths of 1 byte (< 128) or
//! 4 bytes (top bit set, 31 bits), then name, then value.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Pairs that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The stream of pairs passed its cap.
    #[error("params larger than {0} bytes")]
    TooLarge(usize),
    /// The stream ended inside a pair.
    #[error("params end inside a name-value pair")]
    Truncated,
}

/// Decodes the pairs of one stream fed record by record. A pair may straddle records: its
/// start is kept until the rest arrives. Pairs inside one record are lent as slices of it.
/// The whole stream is capped, so a declared length of 2 GiB costs nothing but an error once
/// the cap is passed.
///
/// ```
/// use proto_fastcgi::{ParamsDecoder, put_pair};
///
/// let mut wire = bytes::BytesMut::new();
/// put_pair(&mut wire, b"SCRIPT_NAME", b"/index");
/// let (a, b) = wire.split_at(5); // straddle two records
/// let mut pairs = Vec::new();
/// let mut dec = ParamsDecoder::new(1024);
/// let mut push = |n: &[u8], v: &[u8]| pairs.push((n.to_vec(), v.to_vec()));
/// dec.feed(bytes::Bytes::copy_from_slice(a), &mut push).unwrap();
/// dec.feed(bytes::Bytes::copy_from_slice(b), &mut push).unwrap();
/// dec.finish().unwrap();
/// assert_eq!(pairs, [(b"SCRIPT_NAME".to_vec(), b"/index".to_vec())]);
/// ```
#[derive(Debug)]
pub struct ParamsDecoder {
    pending: BytesMut,
    /// How long `pending` must grow before its pair is whole: until then a record is only
    /// appended, so a pair sent a byte per record costs linear time, not quadratic.
    need: usize,
    total: usize,
    limit: usize,
}

impl ParamsDecoder {
    /// A decoder for a stream of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ParamsDecoder {
            pending: BytesMut::new(),
            need: 0,
            total: 0,
            limit,
        }
    }

    /// Feeds one record's content and hands each complete pair to `pair`.
    pub fn feed(
        &mut self,
        content: Bytes,
        mut pair: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), ParamsError> {
        self.total = self.total.saturating_add(content.len());
        if self.total > self.limit {
            return Err(ParamsError::TooLarge(self.limit));
        }
        let mut data = if self.pending.is_empty() {
            content
        } else {
            self.pending.extend_from_slice(&content);
            if self.pending.len() < self.need {
                return Ok(());
            }
            self.pending.split().freeze()
        };
        while let Some((name, value, used)) = parse_pair(&data) {
            pair(&data[name], &data[value]);
            data.advance(used);
        }
        self.need = pair_size(&data).unwrap_or(data.len() + 1);
        self.pending.extend_from_slice(&data);
        Ok(())
    }

    /// Ends the stream: an error when it stopped inside a pair.
    pub fn finish(self) -> Result<(), ParamsError> {
        match self.pending.is_empty() {
            true => Ok(()),
            false => Err(ParamsError::Truncated),
        }
    }
}

/// Decodes a whole set of pairs at once (GET_VALUES, GET_VALUES_RESULT).
pub fn decode_pairs(content: Bytes) -> Result<Vec<(Bytes, Bytes)>, ParamsError> {
    let mut pairs = Vec::new();
    let mut dec = ParamsDecoder::new(usize::MAX);
    dec.feed(content, |n, v| {
        pairs.push((Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
    })?;
    dec.finish()?;
    Ok(pairs)
}

/// The ranges of name and value in `data`, and the bytes the pair takes; `None` until the
/// whole pair is there.
fn parse_pair(data: &[u8]) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>, usize)> {
    let (name_len, a) = parse_len(data)?;
    let (value_len, b) = parse_len(data.get(a..)?)?;
    let name_start = a + b;
    let value_start = name_start.checked_add(name_len)?;
    let end = value_start.checked_add(value_len)?;
    (end <= data.len()).then_some((name_start..value_start, value_start..end, end))
}

/// The bytes the pair at the start of `data` takes, once its two lengths are there.
fn pair_size(data: &[u8]) -> Option<usize> {
    let (name_len, a) = parse_len(data)?;
    let (value_len, b) = parse_len(data.get(a..)?)?;
    Some((a + b).saturating_add(name_len).saturating_add(value_len))
}

fn parse_len(data: &[u8]) -> Option<(usize, usize)> {
    let first = *data.first()?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let b = data.get(..4)?;
    let len = u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]);
    Some((len as usize, 4))
}

/// Appends one pair. Lengths over 2^31 - 1 cannot be written and are cut there (no CGI
/// variable comes near).
pub fn put_pair(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    let name = &name[..name.len().min(0x7fff_ffff)];
    let value = &value[..value.len().min(0x7fff_ffff)];
    dst.reserve(8 + name.len() + value.len());
    put_len(dst, name.len());
    put_len(dst, value.len());
    dst.put_slice(name);
    dst.put_slice(value);
}

fn put_len(dst: &mut BytesMut, len: usize) {
    if len < 0x80 {
        dst.put_u8(len as u8);
    } else {
        dst.put_u32(len as u32 | 0x8000_0000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(pairs: &[(Vec<u8>, Vec<u8>)]) -> BytesMut {
        let mut buf = BytesMut::new();
        for (n, v) in pairs {
            put_pair(&mut buf, n, v);
        }
        buf
    }

    #[test]
    fn one_and_four_byte_lengths() {
        let long = vec![b'x'; 200];
        let buf = encode(&[(b"A".to_vec(), long.clone())]);
        assert_eq!(&buf[..5], &[1, 0x80, 0, 0, 200]);
        let pairs = decode_pairs(buf.freeze()).unwrap();
        assert_eq!(pairs, [(Bytes::from_static(b"A"), Bytes::from(long))]);
    }

    #[test]
    fn a_pair_sent_a_byte_per_record_is_whole_once() {
        // Re-copying the pair's start on every record made this quadratic (32 GiB of copying).
        let value = vec![b'v'; 256 << 10];
        let wire = encode(&[(b"BIG".to_vec(), value.clone())]).freeze();
        let mut dec = ParamsDecoder::new(1 << 20);
        let mut got = Vec::new();
        for i in 0..wire.len() {
            dec.feed(wire.slice(i..i + 1), |n, v| {
                got.push((n.to_vec(), v.to_vec()))
            })
            .unwrap();
        }
        dec.finish().unwrap();
        assert_eq!(got, [(b"BIG".to_vec(), value)]);
    }

    #[test]
    fn truncated_and_capped() {
        let buf = encode(&[(b"NAME".to_vec(), b"value".to_vec())]);
        let cut = buf.freeze().slice(..7);
        assert_eq!(decode_pairs(cut), Err(ParamsError::Truncated));
        // A 2 GiB declared value allocates nothing; the cap ends it.
        let mut dec = ParamsDecoder::new(64);
        let huge = Bytes::from_static(&[1, 0xff, 0xff, 0xff, 0xff, b'N']);
        dec.feed(huge, |_, _| panic!("no pair")).unwrap();
        let more = Bytes::from(vec![0u8; 64]);
        assert_eq!(dec.feed(more, |_, _| {}), Err(ParamsError::TooLarge(64)));
    }

    proptest! {
        #[test]
        fn round_trip_split_at_every_point(
            pairs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..200), proptest::collection::vec(any::<u8>(), 0..300)),
                0..6,
            ),
            cut_a in any::<prop::sample::Index>(),
            cut_b in any::<prop::sample::Index>(),
        ) {
            let wire = encode(&pairs).freeze();
            let (mut a, mut b) = (cut_a.index(wire.len() + 1), cut_b.index(wire.len() + 1));
            if a > b { std::mem::swap(&mut a, &mut b); }
            let mut got = Vec::new();
            let mut dec = ParamsDecoder::new(usize::MAX);
            for part in [wire.slice(..a), wire.slice(a..b), wire.slice(b..)] {
                dec.feed(part, |n, v| got.push((n.to_vec(), v.to_vec()))).unwrap();
            }
            dec.finish().unwrap();
            prop_assert_eq!(got, pairs);
        }
    }
}
