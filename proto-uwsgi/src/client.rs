//! The web server's side of uwsgi, for tests and tools: a request as its bytes on the wire.

/// A whole uwsgi request as nginx sends one: `modifier1` 0, `CONTENT_LENGTH` first (from
/// `body`), then `params`, then the body. A `CONTENT_LENGTH` among `params` is left out: the
/// body's length is the one the packet carries.
///
/// Panics if the vars come to more than 65,535 bytes, which no packet can carry.
///
/// ```
/// let wire = proto_uwsgi::client::request(&[("REQUEST_URI", "/x")], b"hi");
/// assert_eq!(&wire[..4], &[0, 36, 0, 0]);
/// assert_eq!(&wire[4..22], b"\x0e\x00CONTENT_LENGTH\x01\x00");
/// assert!(wire.ends_with(b"\x0b\x00REQUEST_URI\x02\x00/xhi"));
/// ```
pub fn request<N: AsRef<[u8]>, V: AsRef<[u8]>>(params: &[(N, V)], body: &[u8]) -> Vec<u8> {
    let length = body.len().to_string();
    let pairs = std::iter::once((&b"CONTENT_LENGTH"[..], length.as_bytes())).chain(
        params
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .filter(|(n, _)| *n != b"CONTENT_LENGTH"),
    );
    let mut wire = packet(0, 0, pairs);
    wire.extend_from_slice(body);
    wire
}

/// The header and vars of a packet with these modifiers and exactly these pairs, in order.
///
/// Panics if a name, a value or the whole vars block is over 65,535 bytes.
pub fn packet<'a>(
    modifier1: u8,
    modifier2: u8,
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Vec<u8> {
    let mut wire = vec![modifier1, 0, 0, modifier2];
    for (name, value) in pairs {
        for s in [name, value] {
            let len = u16::try_from(s.len()).expect("a uwsgi string is at most 65,535 bytes");
            wire.extend_from_slice(&len.to_le_bytes());
            wire.extend_from_slice(s);
        }
    }
    let datasize =
        u16::try_from(wire.len() - 4).expect("uwsgi vars are at most 65,535 bytes in all");
    wire[1..3].copy_from_slice(&datasize.to_le_bytes());
    wire
}
