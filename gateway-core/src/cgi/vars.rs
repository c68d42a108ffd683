//! The variables of an environ being built: their bytes copied into one buffer, so that the
//! finished [`Environ`] holds one reference count for all of them. A front server can send a
//! hundred thousand tiny pairs in one request; a reference count or an allocation per name and
//! per value would cost more than the copy of its few bytes.

use bytes::Bytes;

use crate::environ::{Text, same_name};
use crate::{Environ, Protocol};

/// Variables in the order set; [`NameIndex`](super::names::NameIndex) finds them by name.
#[derive(Default)]
pub(super) struct Vars {
    text: Vec<u8>,
    list: Vec<(Text, Text)>,
    /// Each name's [`tag`], in `list`'s order: a scan compares these, not the names.
    tags: Vec<u64>,
    /// One bit per tag set (a Bloom filter): a name whose bit is clear is not here, and most
    /// names looked for are new ones, so most looks end here without a scan.
    seen: [u64; 4],
}

impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries((0..self.len()).map(|i| {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (text(self.name_at(i)), text(self.value_at(i)))
            }))
            .finish()
    }
}

impl Vars {
    /// Room for `vars` variables of `text` bytes in all.
    pub(super) fn with_capacity(vars: usize, text: usize) -> Self {
        Vars {
            text: Vec::with_capacity(text),
            list: Vec::with_capacity(vars),
            tags: Vec::with_capacity(vars),
            seen: [0; 4],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn name_at(&self, i: usize) -> &[u8] {
        self.bytes_of(&self.list[i].0)
    }

    pub(super) fn value_at(&self, i: usize) -> &[u8] {
        self.bytes_of(&self.list[i].1)
    }

    /// Where `name` is, if set, by scanning: the name index does it below its threshold.
    #[inline]
    pub(super) fn scan(&self, name: Name<'_>) -> Option<usize> {
        let Name { bytes: name, tag } = name;
        let (word, bit) = seen_bit(tag);
        if self.seen[word] & bit == 0 {
            return None;
        }
        let mut from = 0;
        // A tight look for the tag, then the name to confirm it.
        while let Some(i) = self.tags[from..].iter().position(|&t| t == tag) {
            if same_name(self.name_at(from + i), name) {
                return Some(from + i);
            }
            from += i + 1;
        }
        None
    }

    /// Adds a variable, last.
    #[inline]
    pub(super) fn push(&mut self, name: Name<'_>, value: &[u8]) {
        let pair = (self.copy(name.bytes), self.copy(value));
        self.list.push(pair);
        self.add_tag(name.tag);
    }

    /// Replaces the value of the `i`th variable.
    pub(super) fn set_value_at(&mut self, i: usize, value: Bytes) {
        self.list[i].1 = Text::Own(value);
    }

    /// Sets `name` to `value`, where it is if `at`, else last.
    pub(super) fn set(&mut self, at: Option<usize>, name: &'static str, value: Bytes) {
        match at {
            Some(i) => self.set_value_at(i, value),
            None => {
                self.list.push((name.into(), Text::Own(value)));
                self.add_tag(tag(name.as_bytes()));
            }
        }
    }

    fn add_tag(&mut self, tag: u64) {
        let (word, bit) = seen_bit(tag);
        self.seen[word] |= bit;
        self.tags.push(tag);
    }

    pub(super) fn into_environ(self, protocol: Protocol) -> Environ {
        Environ::from_text(protocol, self.text.into(), self.list)
    }

    /// `bytes` as a range of the text; owned past 4 GiB, which a range cannot name.
    fn copy(&mut self, bytes: &[u8]) -> Text {
        let start = self.text.len();
        match u32::try_from(start + bytes.len()) {
            Ok(end) => {
                self.text.extend_from_slice(bytes);
                Text::In(start as u32, end)
            }
            Err(_) => Text::Own(Bytes::copy_from_slice(bytes)),
        }
    }

    fn bytes_of<'a>(&'a self, text: &'a Text) -> &'a [u8] {
        match text {
            Text::In(start, end) => &self.text[*start as usize..*end as usize],
            Text::Own(b) => b,
        }
    }
}

/// A name with its [`tag`], made once for both the look for it and its push.
#[derive(Clone, Copy)]
pub(super) struct Name<'a> {
    pub(super) bytes: &'a [u8],
    tag: u64,
}

impl<'a> Name<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Name {
            bytes,
            tag: tag(bytes),
        }
    }
}

/// The word and bit of [`Vars::seen`] for `tag`: from its top bits once mixed by a multiply.
fn seen_bit(tag: u64) -> (usize, u64) {
    let at = (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
    (at >> 6, 1 << (at & 63))
}

/// A name's length and its first and last eight bytes (fewer for a shorter name), in one word:
/// names that differ nearly always differ here, so that a scan reads a word per variable
/// instead of each name's bytes. Equal tags are confirmed on the names.
fn tag(name: &[u8]) -> u64 {
    let len = name.len() as u64;
    match (name.first_chunk::<8>(), name.last_chunk::<8>()) {
        (Some(head), Some(tail)) => {
            u64::from_le_bytes(*head) ^ u64::from_le_bytes(*tail).rotate_left(31) ^ len << 56
        }
        // At most seven bytes: they fit below the length.
        _ => name.iter().fold(0, |t, &b| t << 8 | u64::from(b)) ^ len << 56,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_tells_apart_names_of_one_tag() {
        // Same length, same first and last eight bytes: the tag cannot tell them apart.
        let (a, b) = (&b"HTTP_XX_1_YY_ZZZZ"[..], &b"HTTP_XX_2_YY_ZZZZ"[..]);
        assert_eq!(tag(a), tag(b));
        let mut vars = Vars::with_capacity(4, 64);
        vars.push(Name::new(a), b"1");
        assert_eq!(vars.scan(Name::new(b)), None);
        vars.push(Name::new(b), b"2");
        vars.set(None, "GATEWAY_INTERFACE", Bytes::from_static(b"CGI/1.1"));
        for (name, at) in [(a, 0), (b, 1), (&b"GATEWAY_INTERFACE"[..], 2)] {
            assert_eq!(vars.scan(Name::new(name)), Some(at));
        }
        for short in [&b""[..], b"A", b"HTTPS", b"HTTPS_"] {
            assert_eq!(vars.scan(Name::new(short)), None);
        }
    }
}
