//! Opaque page tokens for keyset (cursor) pagination: the last row's sort key, serialised and
//! base64url-encoded, bound to the query it came from so it cannot be replayed against another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;

use crate::error::{FieldViolations, invalid_argument};

/// Default page size when the client sends 0.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i64 = 100;

/// Validates `page_size`: 0 means the default; 1..=100 is taken as is.
pub fn page_size(requested: i32) -> Result<i64, Status> {
    checked_page_size(requested).ok_or_else(|| invalid_argument("page_size", page_size_range()))
}

/// [`page_size`] for a request checked field by field: a bad size is added to `violations`
/// (the same wording for every list RPC) and gives `None`.
pub fn page_size_or_violation(requested: i32, violations: &mut FieldViolations) -> Option<i64> {
    let size = checked_page_size(requested);
    if size.is_none() {
        violations.add("page_size", page_size_range());
    }
    size
}

fn page_size_range() -> String {
    format!("must be between 0 and {MAX_PAGE_SIZE}")
}

fn checked_page_size(requested: i32) -> Option<i64> {
    match i64::from(requested) {
        0 => Some(DEFAULT_PAGE_SIZE),
        n if (1..=MAX_PAGE_SIZE).contains(&n) => Some(n),
        _ => None,
    }
}

/// Cuts the rows of a keyset query, fetched with one row more than `limit`, down to the page,
/// and returns the page's last row when that extra row showed another page follows (its sort
/// key is the cursor of the next page token).
pub fn trim_page<T>(rows: &mut Vec<T>, limit: i64) -> Option<&T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    if more { rows.last() } else { None }
}

#[derive(Serialize, serde::Deserialize)]
struct Envelope<C> {
    /// Fingerprint of the filters the token was issued for.
    q: u64,
    c: C,
}

/// Encodes `cursor` for the query identified by `query_fingerprint`.
pub fn encode<C: Serialize>(query_fingerprint: u64, cursor: &C) -> String {
    let json = serde_json::to_vec(&Envelope {
        q: query_fingerprint,
        c: cursor,
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a token; empty means the first page. A token that is malformed or was issued for
/// other filters is INVALID_ARGUMENT on `page_token`.
pub fn decode<C: DeserializeOwned>(
    token: &str,
    query_fingerprint: u64,
) -> Result<Option<C>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid_argument("page_token", "malformed or expired page token");
    if token.len() > 1024 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let envelope: Envelope<C> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if envelope.q != query_fingerprint {
        return Err(invalid_argument(
            "page_token",
            "page token was issued for different filters",
        ));
    }
    Ok(Some(envelope.c))
}

/// A stable fingerprint of the filter values a listing was called with (FNV-1a; stable across
/// processes and versions, unlike `DefaultHasher`).
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_to_its_size_and_names_its_last_row_only_when_more_follow() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(trim_page(&mut rows, 2), Some(&2));
        assert_eq!(rows, [1, 2]);
        let mut rows = vec![1, 2];
        assert_eq!(trim_page(&mut rows, 2), None);
        assert_eq!(rows, [1, 2]);
        let mut rows: Vec<i32> = Vec::new();
        assert_eq!(trim_page(&mut rows, 2), None);
    }

    #[test]
    fn a_token_round_trips() {
        let q = fingerprint(&["shoes", ""]);
        let token = encode(q, &("Boot".to_owned(), 42u32));
        let back: Option<(String, u32)> = decode(&token, q).unwrap();
        assert_eq!(back, Some(("Boot".to_owned(), 42)));
    }

    #[test]
    fn a_token_for_other_filters_is_rejected() {
        let token = encode(fingerprint(&["a"]), &1u32);
        let err = decode::<u32>(&token, fingerprint(&["b"])).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn garbage_is_invalid_argument() {
        for token in ["!!!", "bm90IGpzb24", &"A".repeat(5000)] {
            let err = decode::<u32>(token, 0).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{token}");
        }
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(100).unwrap(), 100);
        assert!(page_size(101).is_err());
        assert!(page_size(-1).is_err());
        let mut violations = FieldViolations::new();
        assert_eq!(page_size_or_violation(7, &mut violations), Some(7));
        assert!(violations.is_empty());
        assert_eq!(page_size_or_violation(101, &mut violations), None);
        assert!(!violations.is_empty());
    }
}
