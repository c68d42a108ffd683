//! The FastCGI 1.0 record: header, types, and the fixed bodies of BEGIN_REQUEST and
//! END_REQUEST.

/// The only protocol version.
pub const VERSION: u8 = 1;
/// Bytes in a record header.
pub const HEADER_LEN: usize = 8;
/// The most content one record carries.
pub const MAX_CONTENT: usize = 65_535;

/// `FCGI_KEEP_CONN`: the web server keeps the connection after END_REQUEST.
pub const KEEP_CONN: u8 = 1;

/// The record types of FastCGI 1.0, plus any other byte (answered with UNKNOWN_TYPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// 1: starts a request.
    BeginRequest,
    /// 2: the web server abandons a request.
    AbortRequest,
    /// 3: the application finished a request.
    EndRequest,
    /// 4: name-value pairs, the CGI environment.
    Params,
    /// 5: the request body.
    Stdin,
    /// 6: the response.
    Stdout,
    /// 7: errors for the web server's log.
    Stderr,
    /// 8: the FILTER role's file data.
    Data,
    /// 9: the web server asks for variables (management, id 0).
    GetValues,
    /// 10: the answer to GET_VALUES.
    GetValuesResult,
    /// 11: the answer to a management record of a type the receiver does not know.
    UnknownType,
    /// Any other type byte.
    Other(u8),
}

impl RecordType {
    /// The type byte on the wire.
    pub fn to_u8(self) -> u8 {
        match self {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Other(t) => t,
        }
    }
}

impl From<u8> for RecordType {
    fn from(t: u8) -> Self {
        match t {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            t => RecordType::Other(t),
        }
    }
}

/// The role a BEGIN_REQUEST asks the application to play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// 1: answer the request (the usual role).
    Responder,
    /// 2: allow or deny it.
    Authorizer,
    /// 3: transform a file.
    Filter,
    /// Any other value.
    Other(u16),
}

impl Role {
    /// The role on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Role::Responder => 1,
            Role::Authorizer => 2,
            Role::Filter => 3,
            Role::Other(r) => r,
        }
    }
}

impl From<u16> for Role {
    fn from(r: u16) -> Self {
        match r {
            1 => Role::Responder,
            2 => Role::Authorizer,
            3 => Role::Filter,
            r => Role::Other(r),
        }
    }
}

/// The protocol status of an END_REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// 0: the request ran to its end.
    RequestComplete,
    /// 1: this application does not multiplex connections.
    CantMpxConn,
    /// 2: out of a resource (here: the per-connection request cap).
    Overloaded,
    /// 3: the role is not supported.
    UnknownRole,
    /// Any other value.
    Other(u8),
}

impl ProtocolStatus {
    /// The status byte on the wire.
    pub fn to_u8(self) -> u8 {
        match self {
            ProtocolStatus::RequestComplete => 0,
            ProtocolStatus::CantMpxConn => 1,
            ProtocolStatus::Overloaded => 2,
            ProtocolStatus::UnknownRole => 3,
            ProtocolStatus::Other(s) => s,
        }
    }
}

impl From<u8> for ProtocolStatus {
    fn from(s: u8) -> Self {
        match s {
            0 => ProtocolStatus::RequestComplete,
            1 => ProtocolStatus::CantMpxConn,
            2 => ProtocolStatus::Overloaded,
            3 => ProtocolStatus::UnknownRole,
            s => ProtocolStatus::Other(s),
        }
    }
}

/// The body of BEGIN_REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeginRequest {
    /// The role asked for.
    pub role: Role,
    /// `KEEP_CONN` or 0.
    pub flags: u8,
}

impl BeginRequest {
    /// Reads the 8-byte body; `None` when it is shorter.
    pub fn parse(content: &[u8]) -> Option<Self> {
        let b = content.get(..3)?;
        Some(BeginRequest {
            role: u16::from_be_bytes([b[0], b[1]]).into(),
            flags: b[2],
        })
    }

    /// Whether the web server keeps the connection after this request.
    pub fn keep_conn(&self) -> bool {
        self.flags & KEEP_CONN != 0
    }

    /// The 8-byte body.
    pub fn to_bytes(self) -> [u8; 8] {
        let r = self.role.to_u16().to_be_bytes();
        [r[0], r[1], self.flags, 0, 0, 0, 0, 0]
    }
}

/// The body of END_REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndRequest {
    /// The application's exit status (0 when it answered).
    pub app_status: u32,
    /// How the request ended.
    pub protocol_status: ProtocolStatus,
}

impl EndRequest {
    /// Reads the 8-byte body; `None` when it is shorter.
    pub fn parse(content: &[u8]) -> Option<Self> {
        let b = content.get(..5)?;
        Some(EndRequest {
            app_status: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            protocol_status: b[4].into(),
        })
    }

    /// The 8-byte body.
    pub fn to_bytes(self) -> [u8; 8] {
        let s = self.app_status.to_be_bytes();
        [
            s[0],
            s[1],
            s[2],
            s[3],
            self.protocol_status.to_u8(),
            0,
            0,
            0,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        for t in 0..=255u8 {
            assert_eq!(RecordType::from(t).to_u8(), t);
        }
        assert_eq!(RecordType::from(11), RecordType::UnknownType);
        assert_eq!(RecordType::from(12), RecordType::Other(12));
    }

    #[test]
    fn fixed_bodies() {
        let begin = BeginRequest {
            role: Role::Responder,
            flags: KEEP_CONN,
        };
        assert_eq!(begin.to_bytes(), [0, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(BeginRequest::parse(&begin.to_bytes()), Some(begin));
        assert!(begin.keep_conn());
        assert_eq!(BeginRequest::parse(&[0, 1]), None);
        let end = EndRequest {
            app_status: 7,
            protocol_status: ProtocolStatus::Overloaded,
        };
        assert_eq!(end.to_bytes(), [0, 0, 0, 7, 2, 0, 0, 0]);
        assert_eq!(EndRequest::parse(&end.to_bytes()), Some(end));
    }
}
