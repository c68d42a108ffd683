//! Where each variable of an environ being built is, by name: a front server can send a hundred
//! thousand names in one request, and finding each repeat by scanning would cost their square.

use std::hash::{BuildHasher as _, RandomState};

use hashbrown::HashTable;

use super::vars::{Name, Vars};

/// Up to this many variables, a name is found by scanning them, which for the twenty or so a
/// web server sends costs less than hashing; past it, by a hash table of their positions.
const SCAN_MAX: usize = 32;

/// The positions of the variables being built, by name. The hash is std's keyed SipHash, as
/// the names are the front server's (and its client's, for `HTTP_*`); each position is kept
/// with its name's hash, so that growing the table hashes nothing again. Boxed, and only past
/// [`SCAN_MAX`] names: FastCGI keeps one per request slot.
#[derive(Debug, Default)]
pub(super) struct NameIndex {
    table: Option<Box<Table>>,
}

/// A hasher and, for each variable, its name's hash and its position.
type Table = (RandomState, HashTable<(u64, usize)>);

/// What [`NameIndex::find`] found: where the name is, if set, and its hash, for
/// [`NameIndex::added`].
pub(super) struct Found {
    pub(super) at: Option<usize>,
    hash: u64,
}

impl NameIndex {
    /// Where `name` is in `vars`, if it is set.
    #[inline]
    pub(super) fn find(&self, vars: &Vars, name: Name<'_>) -> Found {
        let Some((hasher, table)) = self.table.as_deref() else {
            return Found {
                at: vars.scan(name),
                hash: 0,
            };
        };
        let hash = hasher.hash_one(name.bytes);
        let at = table
            .find(hash, |&(h, at)| h == hash && vars.name_at(at) == name.bytes)
            .map(|&(_, at)| at);
        Found { at, hash }
    }

    /// Notes the variable just added to `vars` (its last), which `find` did not find.
    #[inline]
    pub(super) fn added(&mut self, vars: &Vars, found: Found) {
        match self.table.as_deref_mut() {
            Some((_, table)) => {
                let at = vars.len() - 1;
                table.insert_unique(found.hash, (found.hash, at), |&(h, _)| h);
            }
            None if vars.len() > SCAN_MAX => self.build(vars),
            None => {}
        }
    }

    /// The table, once the variables pass [`SCAN_MAX`].
    #[cold]
    fn build(&mut self, vars: &Vars) {
        let hasher = RandomState::new();
        // Grown as names come, not sized for all up front: a small table stays in the cache,
        // and a 1 MiB head of names built 35% faster so than in one sized for all.
        let mut table = HashTable::with_capacity(2 * vars.len());
        for at in 0..vars.len() {
            let hash = hasher.hash_one(vars.name_at(at));
            table.insert_unique(hash, (hash, at), |&(h, _)| h);
        }
        self.table = Some(Box::new((hasher, table)));
    }
}
