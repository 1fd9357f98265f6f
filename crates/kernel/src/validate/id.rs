//! Required and optional UUIDs: the ids of every Mercato resource.

use uuid::Uuid;

use super::REQUIRED;
use crate::error::FieldViolations;

const NOT_A_UUID: &str = "must be a UUID";

/// The UUID in `raw`; records "is required" when it is empty and "must be a UUID" when it
/// is not one. Any spelling `Uuid::parse_str` reads is accepted (hyphenated, simple, braced,
/// URN, either case); `Uuid::to_string` gives the canonical form.
pub fn uuid(v: &mut FieldViolations, field: &str, raw: &str) -> Option<Uuid> {
    if raw.is_empty() {
        v.add(field, REQUIRED);
        return None;
    }
    optional_uuid(v, field, raw)
}

/// The UUID in `raw`, or `None` when it is empty (the field is not set); records "must be a
/// UUID" when it is set to something else. Tell the two `None`s apart by the violations.
pub fn optional_uuid(v: &mut FieldViolations, field: &str, raw: &str) -> Option<Uuid> {
    if raw.is_empty() {
        return None;
    }
    match Uuid::parse_str(raw) {
        Ok(id) => Some(id),
        Err(_) => {
            v.add(field, NOT_A_UUID);
            None
        }
    }
}

/// Longest [`order_ref`].
pub const MAX_ORDER_REF_CHARS: usize = 64;

/// Whether `raw` is an order as the services an order calls know it (inventory's
/// reservations, discount's redemptions): 1 to [`MAX_ORDER_REF_CHARS`] ASCII letters,
/// digits, '-' or '_' (a UUID is one; so is a test's or an older system's key); records
/// the violation under `field` when not.
pub fn order_ref(v: &mut FieldViolations, field: &str, raw: &str) -> bool {
    let valid = (1..=MAX_ORDER_REF_CHARS).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        v.add(
            field,
            format!("must be 1 to {MAX_ORDER_REF_CHARS} of A-Z, a-z, 0-9, '-' and '_'"),
        );
    }
    valid
}

/// [`uuid`] for a request whose only input is that id: the id, or its one violation
/// (`FieldViolations::into_status` makes it the INVALID_ARGUMENT answer).
pub fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, FieldViolations> {
    let mut v = FieldViolations::new();
    uuid(&mut v, field, raw).ok_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::described;

    const ID: &str = "0190a5a4-7b3e-7cc1-9d4e-6f7a8b9c0d1e";

    #[test]
    fn every_spelling_of_a_uuid_parses_to_one_id() {
        let canonical = Uuid::parse_str(ID).unwrap();
        for spelling in [
            ID.to_owned(),
            ID.to_ascii_uppercase(),
            ID.replace('-', ""),
            format!("{{{ID}}}"),
            format!("urn:uuid:{ID}"),
        ] {
            let mut v = FieldViolations::new();
            assert_eq!(uuid(&mut v, "id", &spelling), Some(canonical), "{spelling}");
            assert!(v.is_empty());
        }
        assert_eq!(canonical.to_string(), ID);
    }

    #[test]
    fn an_empty_id_is_required_and_anything_else_must_be_a_uuid() {
        let mut v = FieldViolations::new();
        assert_eq!(uuid(&mut v, "a", ""), None);
        assert_eq!(uuid(&mut v, "b", "lamp"), None);
        assert_eq!(uuid(&mut v, "c", &format!("{ID}0")), None);
        assert_eq!(uuid(&mut v, "d", &format!(" {ID}")), None);
        assert_eq!(
            described(v),
            [
                "a: is required",
                "b: must be a UUID",
                "c: must be a UUID",
                "d: must be a UUID",
            ]
        );
    }

    #[test]
    fn an_optional_id_may_be_empty_but_not_malformed() {
        let mut v = FieldViolations::new();
        assert_eq!(optional_uuid(&mut v, "category_id", ""), None);
        assert!(v.is_empty());
        assert_eq!(optional_uuid(&mut v, "category_id", "nope"), None);
        assert_eq!(described(v), ["category_id: must be a UUID"]);
    }

    #[test]
    fn an_order_ref_is_a_bounded_ascii_key() {
        let mut v = FieldViolations::new();
        assert!(order_ref(&mut v, "a", ID));
        assert!(order_ref(&mut v, "b", "order-1_A"));
        assert!(order_ref(&mut v, "c", &"x".repeat(MAX_ORDER_REF_CHARS)));
        assert!(v.is_empty());
        assert!(!order_ref(&mut v, "d", ""));
        assert!(!order_ref(
            &mut v,
            "e",
            &"x".repeat(MAX_ORDER_REF_CHARS + 1)
        ));
        assert!(!order_ref(&mut v, "f", "order 1"));
        assert!(!order_ref(&mut v, "g", "ordér"));
        let wording = "must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_'";
        assert_eq!(
            described(v),
            ["d", "e", "f", "g"].map(|f| format!("{f}: {wording}"))
        );
    }

    #[test]
    fn a_lone_id_is_parsed_or_its_violation_returned() {
        assert_eq!(parse_uuid("id", ID).unwrap().to_string(), ID);
        assert_eq!(
            described(parse_uuid("id", "").unwrap_err()),
            ["id: is required"]
        );
        assert_eq!(
            described(parse_uuid("id", "x").unwrap_err()),
            ["id: must be a UUID"]
        );
    }
}
