//! The web server's side of SCGI, for tests and tools: a request as its bytes on the wire.

/// A whole SCGI request: the netstring header (`CONTENT_LENGTH` first, from `body`, then
/// `params`, then `SCGI=1`) and the body. A `CONTENT_LENGTH` among `params` is left out: the
/// body's length is the one the header carries.
///
/// ```
/// let wire = proto_scgi::client::request(&[(b"REQUEST_URI", b"/x")], b"hi");
/// assert_eq!(&wire[..], &b"39:CONTENT_LENGTH\x002\x00REQUEST_URI\x00/x\x00SCGI\x001\x00,hi"[..]);
/// ```
pub fn request<N: AsRef<[u8]>, V: AsRef<[u8]>>(params: &[(N, V)], body: &[u8]) -> Vec<u8> {
    let length = body.len().to_string();
    let mut header = Vec::new();
    let pairs = params
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .filter(|(n, _)| *n != b"CONTENT_LENGTH");
    for (n, v) in std::iter::once((&b"CONTENT_LENGTH"[..], length.as_bytes()))
        .chain(pairs)
        .chain(std::iter::once((&b"SCGI"[..], &b"1"[..])))
    {
        header.extend_from_slice(n);
        header.push(0);
        header.extend_from_slice(v);
        header.push(0);
    }
    let mut wire = format!("{}:", header.len()).into_bytes();
    wire.extend_from_slice(&header);
    wire.push(b',');
    wire.extend_from_slice(body);
    wire
}
