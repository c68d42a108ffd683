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
    pub(super) fn scan(&self, name: &[u8]) -> Option<usize> {
        (0..self.len()).find(|&i| same_name(self.name_at(i), name))
    }

    /// Adds a variable, last.
    pub(super) fn push(&mut self, name: &[u8], value: &[u8]) {
        let pair = (self.copy(name), self.copy(value));
        self.list.push(pair);
    }

    /// Replaces the value of the `i`th variable.
    pub(super) fn set_value_at(&mut self, i: usize, value: Bytes) {
        self.list[i].1 = Text::Own(value);
    }

    /// Sets `name` to `value`, where it is if `at`, else last.
    pub(super) fn set(&mut self, at: Option<usize>, name: &'static str, value: Bytes) {
        match at {
            Some(i) => self.set_value_at(i, value),
            None => self.list.push((name.into(), Text::Own(value))),
        }
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
