//! One pass over a protobuf message's bytes against its descriptor, without decoding it: the
//! same structural rules prost applies when it decodes (so a message that passes decodes),
//! plus the text rule no store accepts: a string must not hold U+0000 (Postgres refuses it in
//! `text`, and a key or log line with one is a trap).

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// prost's own nesting limit: deeper messages fail to decode.
const RECURSION_LIMIT: u32 = 100;

/// What is wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The bytes are not an encoding of the message (bad varint, truncated field, a wire type
    /// the field cannot have, nesting too deep).
    Malformed,
    /// A string field breaks a text rule; `field` is its path (`items[1].product_id`).
    Text {
        /// Proto field path of the offending value.
        field: String,
        /// What the value must be.
        description: &'static str,
    },
}

/// Checks that `bytes` encode a `message` whose strings are valid UTF-8 without NUL.
pub fn check(message: &MessageDescriptor, bytes: &[u8]) -> Result<(), Problem> {
    check_message(message, bytes, RECURSION_LIMIT)
}

fn check_message(message: &MessageDescriptor, mut buf: &[u8], depth: u32) -> Result<(), Problem> {
    let depth = depth.checked_sub(1).ok_or(Problem::Malformed)?;
    // Occurrences so far of each repeated field, only to name the element in a violation.
    let mut seen: Vec<(u32, usize)> = Vec::new();
    while !buf.is_empty() {
        let (number, wire) = key(&mut buf)?;
        let Some(field) = message.get_field(number) else {
            skip(wire, number, &mut buf, depth)?;
            continue;
        };
        let index = if field.is_list() || field.is_map() {
            let slot = match seen.iter_mut().find(|(n, _)| *n == number) {
                Some(slot) => slot,
                None => {
                    seen.push((number, 0));
                    seen.last_mut().ok_or(Problem::Malformed)?
                }
            };
            slot.1 += 1;
            Some(slot.1 - 1)
        } else {
            None
        };
        check_field(&field, wire, &mut buf, depth).map_err(|problem| match problem {
            Problem::Text {
                field: inner,
                description,
            } => Problem::Text {
                field: path(&field, index, &inner),
                description,
            },
            malformed => malformed,
        })?;
    }
    Ok(())
}

/// `name`, `name[i]`, then `.inner` when the problem is nested.
fn path(field: &FieldDescriptor, index: Option<usize>, inner: &str) -> String {
    let mut out = field.name().to_owned();
    if let Some(i) = index {
        out.push_str(&format!("[{i}]"));
    }
    if !inner.is_empty() {
        out.push('.');
        out.push_str(inner);
    }
    out
}

fn check_field(
    field: &FieldDescriptor,
    wire: Wire,
    buf: &mut &[u8],
    depth: u32,
) -> Result<(), Problem> {
    let kind = field.kind();
    match (kind, wire) {
        (Kind::String, Wire::Len) => text(take_len(buf)?),
        (Kind::Bytes, Wire::Len) => take_len(buf).map(drop),
        (Kind::Message(nested), Wire::Len) => check_message(&nested, take_len(buf)?, depth),
        (scalar, Wire::Len) if field.is_list() => packed(&scalar, take_len(buf)?),
        (scalar, wire) if scalar_wire(&scalar) == Some(wire) => {
            skip(wire, field.number(), buf, depth)
        }
        _ => Err(Problem::Malformed),
    }
}

/// A string value: what prost requires (UTF-8) and what stores require (no NUL). The field
/// path is filled in by the callers on the way out.
fn text(bytes: &[u8]) -> Result<(), Problem> {
    let description = match std::str::from_utf8(bytes) {
        Err(_) => "must be valid UTF-8",
        Ok(s) if s.contains('\0') => "must not contain NUL characters",
        Ok(_) => return Ok(()),
    };
    Err(Problem::Text {
        field: String::new(),
        description,
    })
}

/// The wire type a scalar (non-packed) value of `kind` has.
fn scalar_wire(kind: &Kind) -> Option<Wire> {
    match kind {
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Bool
        | Kind::Enum(_) => Some(Wire::Varint),
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => Some(Wire::Fixed64),
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => Some(Wire::Fixed32),
        Kind::String | Kind::Bytes | Kind::Message(_) => None,
    }
}

/// A packed run of scalars: whole varints, or a multiple of the fixed width.
fn packed(kind: &Kind, mut bytes: &[u8]) -> Result<(), Problem> {
    match scalar_wire(kind) {
        Some(Wire::Varint) => {
            while !bytes.is_empty() {
                varint(&mut bytes)?;
            }
            Ok(())
        }
        Some(Wire::Fixed64) if bytes.len().is_multiple_of(8) => Ok(()),
        Some(Wire::Fixed32) if bytes.len().is_multiple_of(4) => Ok(()),
        _ => Err(Problem::Malformed),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

fn key(buf: &mut &[u8]) -> Result<(u32, Wire), Problem> {
    let key = u32::try_from(varint(buf)?).map_err(|_| Problem::Malformed)?;
    let wire = match key & 7 {
        0 => Wire::Varint,
        1 => Wire::Fixed64,
        2 => Wire::Len,
        3 => Wire::StartGroup,
        4 => Wire::EndGroup,
        5 => Wire::Fixed32,
        _ => return Err(Problem::Malformed),
    };
    match key >> 3 {
        0 => Err(Problem::Malformed),
        number => Ok((number, wire)),
    }
}

/// Steps over one value of an unknown field (groups included, as prost skips them).
fn skip(wire: Wire, number: u32, buf: &mut &[u8], depth: u32) -> Result<(), Problem> {
    match wire {
        Wire::Varint => varint(buf).map(drop),
        Wire::Fixed64 => take(buf, 8).map(drop),
        Wire::Fixed32 => take(buf, 4).map(drop),
        Wire::Len => take_len(buf).map(drop),
        Wire::StartGroup => {
            let depth = depth.checked_sub(1).ok_or(Problem::Malformed)?;
            loop {
                match key(buf)? {
                    (end, Wire::EndGroup) if end == number => return Ok(()),
                    (_, Wire::EndGroup) => return Err(Problem::Malformed),
                    (inner, wire) => skip(wire, inner, buf, depth)?,
                }
            }
        }
        Wire::EndGroup => Err(Problem::Malformed),
    }
}

/// A base-128 varint as prost reads it: at most ten bytes, the tenth at most 1.
fn varint(buf: &mut &[u8]) -> Result<u64, Problem> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or(Problem::Malformed)?;
        *buf = rest;
        if i == 9 && byte > 1 {
            return Err(Problem::Malformed);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Problem::Malformed)
}

fn take_len<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], Problem> {
    let len = usize::try_from(varint(buf)?).map_err(|_| Problem::Malformed)?;
    take(buf, len)
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], Problem> {
    if buf.len() < len {
        return Err(Problem::Malformed);
    }
    let (value, rest) = buf.split_at(len);
    *buf = rest;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mercato::pb::catalog::v1::ListProductsRequest;
    use mercato::pb::order::v1::{OrderItem, PlaceOrderRequest, ShippingAddress};
    use prost::Message as _;
    use prost_reflect::DescriptorPool;

    fn descriptor(name: &str) -> MessageDescriptor {
        DescriptorPool::decode(mercato::DESCRIPTOR_SET)
            .unwrap()
            .get_message_by_name(name)
            .unwrap()
    }

    fn text_problem(field: &str, description: &'static str) -> Problem {
        Problem::Text {
            field: field.into(),
            description,
        }
    }

    #[test]
    fn a_message_prost_encoded_passes() {
        let request = PlaceOrderRequest {
            items: vec![OrderItem {
                product_id: "p".into(),
                quantity: 3,
            }],
            idempotency_key: "k".into(),
            ..Default::default()
        };
        let order = descriptor("mercato.order.v1.PlaceOrderRequest");
        assert_eq!(check(&order, &request.encode_to_vec()), Ok(()));
        assert_eq!(check(&order, &[]), Ok(()));
    }

    #[test]
    fn a_nul_is_named_by_its_field_path() {
        let list = descriptor("mercato.catalog.v1.ListProductsRequest");
        let query = ListProductsRequest {
            query: "a\0b".into(),
            ..Default::default()
        };
        assert_eq!(
            check(&list, &query.encode_to_vec()),
            Err(text_problem("query", "must not contain NUL characters"))
        );

        let order = descriptor("mercato.order.v1.PlaceOrderRequest");
        let nested = PlaceOrderRequest {
            items: vec![
                OrderItem {
                    product_id: "fine".into(),
                    quantity: 1,
                },
                OrderItem {
                    product_id: "x\0".into(),
                    quantity: 1,
                },
            ],
            shipping_address: Some(ShippingAddress {
                city: "Ber\0lin".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let problem = check(&order, &nested.encode_to_vec());
        assert_eq!(
            problem,
            Err(text_problem(
                "items[1].product_id",
                "must not contain NUL characters"
            ))
        );
        let address_only = PlaceOrderRequest {
            shipping_address: nested.shipping_address,
            ..Default::default()
        };
        assert_eq!(
            check(&order, &address_only.encode_to_vec()),
            Err(text_problem(
                "shipping_address.city",
                "must not contain NUL characters"
            ))
        );
    }

    #[test]
    fn a_string_that_is_not_utf8_is_a_text_problem() {
        let list = descriptor("mercato.catalog.v1.ListProductsRequest");
        let field = list.get_field_by_name("query").unwrap().number();
        let bytes = [(field << 3 | 2) as u8, 2, 0xc3, 0x28];
        assert_eq!(
            check(&list, &bytes),
            Err(text_problem("query", "must be valid UTF-8"))
        );
    }

    #[test]
    fn broken_encodings_are_malformed() {
        let list = descriptor("mercato.catalog.v1.ListProductsRequest");
        let query = list.get_field_by_name("query").unwrap().number() as u8;
        let page_size = list.get_field_by_name("page_size").unwrap().number() as u8;
        let cases: &[&[u8]] = &[
            &[0x08 | 0x80],              // key varint cut short
            &[page_size << 3, 0xff],     // value varint cut short
            &[query << 3 | 2, 5, b'a'],  // length beyond the end
            &[page_size << 3 | 2, 1, 1], // a singular int32 sent as bytes
            &[query << 3, 1],            // a string sent as a varint
            &[0x07],                     // wire type 7
            &[0x00, 0x00],               // field number 0
            &[0x0c],                     // end group with no start
            &[0x78 | 3, 0x0c],           // group 15 closed as group 1
            &[
                page_size << 3,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x02,
            ],
        ];
        for bytes in cases {
            assert_eq!(check(&list, bytes), Err(Problem::Malformed), "{bytes:x?}");
            assert!(ListProductsRequest::decode(*bytes).is_err(), "{bytes:x?}");
        }
    }

    #[test]
    fn unknown_fields_are_skipped_as_prost_skips_them() {
        let list = descriptor("mercato.catalog.v1.ListProductsRequest");
        // field 900 varint, field 901 fixed64, field 902 bytes, group 903 holding a varint.
        let mut bytes = vec![0xa0, 0x38, 0x01];
        bytes.extend([0xa9, 0x38, 1, 2, 3, 4, 5, 6, 7, 8]);
        bytes.extend([0xb2, 0x38, 2, 0, 0]);
        bytes.extend([0xbb, 0x38, 0x08, 0x01, 0xbc, 0x38]);
        assert_eq!(check(&list, &bytes), Ok(()));
        assert!(ListProductsRequest::decode(bytes.as_slice()).is_ok());
    }

    #[test]
    fn nesting_past_prosts_limit_is_malformed() {
        let list = descriptor("mercato.catalog.v1.ListProductsRequest");
        // Unknown group 15 opened 120 times, then closed 120 times.
        let deep = [vec![0x7b; 120], vec![0x7c; 120]].concat();
        assert_eq!(check(&list, &deep), Err(Problem::Malformed));
        assert!(ListProductsRequest::decode(deep.as_slice()).is_err());
        let shallow = [vec![0x7b; 50], vec![0x7c; 50]].concat();
        assert_eq!(check(&list, &shallow), Ok(()));
        assert!(ListProductsRequest::decode(shallow.as_slice()).is_ok());
    }
}
