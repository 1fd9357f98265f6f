//! The gRPC framing of a request body, checked by the gateway before it forwards the body:
//! a unary request is exactly one message frame (flag byte, big-endian length, that many
//! bytes), compressed only when the request names a `grpc-encoding`. A body that breaks
//! that (a length prefix longer than what follows, a compression flag with no encoding, no
//! message or several) is the caller's mistake: INVALID_ARGUMENT "malformed request body"
//! from the gateway itself, never forwarded, never an upstream failure for the breaker.
//! What is inside the message (protobuf) is the upstream's to decode and judge; its answer
//! passes through unchanged.

use http::HeaderValue;

use crate::body::BodyError;

/// The gRPC message header: compressed flag and big-endian length.
const HEADER: usize = 5;

/// Checks that `body` is one gRPC message frame, compressed only when `encoding` (the
/// request's `grpc-encoding`) names a compression.
pub fn check_unary(body: &[u8], encoding: Option<&HeaderValue>) -> Result<(), BodyError> {
    let malformed = |reason: String| BodyError::Malformed { reason };
    let compression = encoding.is_some_and(|e| e.as_bytes() != b"identity");
    let mut rest = body;
    let mut messages = 0usize;
    while !rest.is_empty() {
        let Some(header) = rest.get(..HEADER) else {
            return Err(malformed(format!(
                "{} bytes after the last message are not a frame header",
                rest.len()
            )));
        };
        match header[0] {
            0 => {}
            1 if compression => {}
            1 => {
                return Err(malformed(
                    "a message is marked compressed but the request names no grpc-encoding"
                        .to_owned(),
                ));
            }
            flag => return Err(malformed(format!("unknown frame flag {flag:#04x}"))),
        }
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let available = rest.len() - HEADER;
        if length > available {
            return Err(malformed(format!(
                "the length prefix announces {length} bytes, {available} follow"
            )));
        }
        rest = &rest[HEADER + length..];
        messages += 1;
    }
    match messages {
        1 => Ok(()),
        0 => Err(malformed("no request message".to_owned())),
        n => Err(malformed(format!(
            "{n} messages where the RPC takes one request message"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn check(body: &[u8]) -> Result<(), BodyError> {
        check_unary(body, None)
    }

    #[test]
    fn one_whole_frame_passes() {
        assert!(check(b"\x00\x00\x00\x00\x02\x08\x01").is_ok());
        assert!(check(b"\x00\x00\x00\x00\x00").is_ok(), "an empty message");
        let gzip = HeaderValue::from_static("gzip");
        assert!(check_unary(b"\x01\x00\x00\x00\x01\x00", Some(&gzip)).is_ok());
    }

    #[test]
    fn broken_frames_are_invalid_argument() {
        for bad in [
            &b"\x00\x00\x00\x00\x64\x08\x01"[..],
            b"\x01\x00\x00\x00\x02\x08\x01",
            b"\x00\x00\x00",
            b"",
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\x80\x00\x00\x00\x00",
        ] {
            let err = check(bad).unwrap_err();
            assert_eq!(err.status().code(), Code::InvalidArgument, "{bad:?}");
            assert!(
                err.to_string().starts_with("malformed request body"),
                "{err}"
            );
        }
        let identity = HeaderValue::from_static("identity");
        assert!(check_unary(b"\x01\x00\x00\x00\x01\x00", Some(&identity)).is_err());
    }
}
