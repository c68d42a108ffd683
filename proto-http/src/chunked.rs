//! Where a chunked request body ends, found as hyper's chunked decoder finds it (hyper 1.x,
//! `proto::h1::decode`): the same states, the same bytes accepted. It keeps no line: a chunk
//! extension or a trailer section of any length is skipped in place, so there is no bound
//! past which the watch would lose its place while hyper reads on. Where hyper's decoder
//! fails (and hyper closes the connection), this says so.

/// The place in a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Before a chunk size: a hex digit must come.
    Start,
    /// In the hex digits of a chunk size, so far.
    Size(u64),
    /// Spaces or tabs after the size.
    SizeLws(u64),
    /// In a chunk extension, up to the CR.
    Extension(u64),
    /// After the size line's CR: its LF must come.
    SizeLf(u64),
    /// Inside a chunk's data: this many bytes left.
    Data(u64),
    /// After a chunk's data: its CR must come.
    DataCr,
    /// Its LF.
    DataLf,
    /// After the last chunk's line or a trailer line: a CR ends the body, anything else
    /// begins a trailer line.
    EndCr,
    /// The LF that ends the body.
    EndLf,
    /// In a trailer line, up to its CR.
    Trailer,
    /// The LF of a trailer line.
    TrailerLf,
}

/// What a run of body bytes came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// All of them are body; more is to come.
    More,
    /// The body ended this many bytes in.
    End(usize),
    /// hyper's decoder refuses them: it fails the body and closes the connection.
    Invalid,
}

impl Chunked {
    /// Follows `data`, the next bytes of the body.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Step {
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            // Long stretches are skipped whole; the few framing bytes go one by one.
            match *self {
                Chunked::Data(left) => {
                    let n = left.min(rest.len() as u64);
                    *self = match left - n {
                        0 => Chunked::DataCr,
                        left => Chunked::Data(left),
                    };
                    at += n as usize;
                    continue;
                }
                Chunked::Extension(size) => match memchr::memchr2(b'\r', b'\n', rest) {
                    None => return Step::More,
                    // hyper refuses a bare LF in an extension.
                    Some(i) if rest[i] == b'\n' => return Step::Invalid,
                    Some(i) => {
                        *self = Chunked::SizeLf(size);
                        at += i + 1;
                        continue;
                    }
                },
                Chunked::Trailer => match memchr::memchr(b'\r', rest) {
                    None => return Step::More,
                    Some(i) => {
                        *self = Chunked::TrailerLf;
                        at += i + 1;
                        continue;
                    }
                },
                _ => {}
            }
            let b = rest[0];
            at += 1;
            *self = match (*self, b) {
                (Chunked::Start, _) => match hex(b) {
                    Some(d) => Chunked::Size(d),
                    None => return Step::Invalid,
                },
                (Chunked::Size(size), _) => match hex(b) {
                    Some(d) => match size.checked_mul(16).and_then(|s| s.checked_add(d)) {
                        Some(size) => Chunked::Size(size),
                        None => return Step::Invalid,
                    },
                    None => match after_size(size, b) {
                        Some(next) => next,
                        None => return Step::Invalid,
                    },
                },
                (Chunked::SizeLws(size), _) => match after_size(size, b) {
                    Some(next) => next,
                    None => return Step::Invalid,
                },
                (Chunked::SizeLf(0), b'\n') => Chunked::EndCr,
                (Chunked::SizeLf(size), b'\n') => Chunked::Data(size),
                (Chunked::DataCr, b'\r') => Chunked::DataLf,
                (Chunked::DataLf, b'\n') => Chunked::Start,
                (Chunked::EndCr, b'\r') => Chunked::EndLf,
                (Chunked::EndCr, _) => Chunked::Trailer,
                (Chunked::EndLf, b'\n') => return Step::End(at),
                (Chunked::TrailerLf, b'\n') => Chunked::EndCr,
                _ => return Step::Invalid,
            };
        }
        Step::More
    }
}

/// What may follow a chunk size's digits.
fn after_size(size: u64, b: u8) -> Option<Chunked> {
    match b {
        b' ' | b'\t' => Some(Chunked::SizeLws(size)),
        b';' => Some(Chunked::Extension(size)),
        b'\r' => Some(Chunked::SizeLf(size)),
        _ => None,
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the body ends, fed in pieces of `step` bytes.
    fn end(body: &[u8], step: usize) -> Option<usize> {
        let mut c = Chunked::Start;
        let mut seen = 0;
        for piece in body.chunks(step) {
            match c.feed(piece) {
                Step::More => seen += piece.len(),
                Step::End(n) => return Some(seen + n),
                Step::Invalid => return None,
            }
        }
        None
    }

    #[test]
    fn ends_where_hyper_ends_in_any_pieces() {
        let long = "x".repeat(20_000);
        let bodies = [
            "5\r\nhello\r\n0\r\n\r\n".to_owned(),
            "A ;a=b\r\n0123456789\r\n00\r\n\r\n".to_owned(),
            format!("3;{long}\r\nabc\r\n0;{long}\r\n\r\n"),
            format!("0\r\nX-Long: {long}\r\nY: 1\n2\r\n\r\n"),
            "0\r\n\n\r\n\r\n".to_owned(),
        ];
        for body in &bodies {
            let whole = body.len();
            let mut stream = body.clone().into_bytes();
            stream.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            for step in [1, 2, 3, 7, 4096, 5000, 1 << 20] {
                assert_eq!(end(&stream, step), Some(whole), "{step}: {body:.40}");
            }
        }
    }

    #[test]
    fn what_hyper_refuses_is_invalid() {
        for body in [
            "g\r\n",
            "5\nhello\r\n",
            "5 5\r\n",
            "5;a\nhello\r\n",
            "5\r\nhelloX\r\n",
            "5\r\nhello\r\r",
            "0\r\nX: 1\rY\r\n",
            "0\r\n\rX",
            "10000000000000000\r\n",
        ] {
            assert_eq!(end(body.as_bytes(), 1), None, "{body:?}");
            let mut c = Chunked::Start;
            assert_eq!(c.feed(body.as_bytes()), Step::Invalid, "{body:?}");
        }
    }
}
